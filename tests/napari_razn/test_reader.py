"""The reader contribution: slide files become multiscale layers in microns."""

from __future__ import annotations

import numpy as np
import pytest

from napari_razn._reader import get_reader


def test_reader_claims_slides_only(cmu_svs, tmp_path):
    assert get_reader(str(cmu_svs)) is not None
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader([str(cmu_svs), str(cmu_svs)]) is None


def test_reader_layer_data(cmu_svs):
    ((data, kwargs, kind),) = get_reader(str(cmu_svs))(str(cmu_svs))
    assert kind == "image"
    assert kwargs["multiscale"] and kwargs["rgb"]
    assert kwargs["scale"] == pytest.approx((0.499, 0.499))
    assert kwargs["metadata"]["razn_slide"]["mpp"] == pytest.approx(0.499)
    assert [level.shape[:2] for level in data][:2] == [(2967, 2220), (1483, 1110)]


def test_reader_error_names_the_file(tmp_path):
    path = tmp_path / "broken.svs"
    path.write_bytes(b"II*\x00garbage")
    with pytest.raises(ValueError, match="broken.svs"):
        get_reader(str(path))(str(path))


def test_slide_opens_in_the_viewer(make_napari_viewer, cmu_svs):
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(cmu_svs), plugin="napari-razn")
    assert layer.multiscale and layer.rgb
    np.testing.assert_allclose(layer.scale, [0.499, 0.499])
    np.testing.assert_allclose(layer.translate, [0, 0])
    assert len(layer.data) == 3
    # Level k is shown with scale downsample_k * mpp: napari derives it from shapes.
    np.testing.assert_allclose(layer.downsample_factors[1], [2967 / 1483, 2220 / 1110])
    assert layer.name == "CMU-1-Small-Region.svs"
    assert str(layer.units[0]) in ("micrometer", "um")


def test_slide_without_mpp_is_in_pixels(make_napari_viewer, tcga_svs):
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(tcga_svs), plugin="napari-razn")
    np.testing.assert_allclose(layer.scale, [1, 1])
    assert layer.metadata["razn_slide"]["mpp"] is None


def test_layer_reads_through_the_tile_reader(make_napari_viewer, cmu_svs, monkeypatch):
    """napari's frames are decoded by the engine's tile reader, not a zarr store."""
    from razn.slide import LevelView
    from razn.slide._tiles import TiledLevelReader

    windows = []
    read = TiledLevelReader.read

    def counting_read(self, *window, **kwargs):
        windows.append(window)
        return read(self, *window, **kwargs)

    monkeypatch.setattr(TiledLevelReader, "read", counting_read)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(cmu_svs), plugin="napari-razn")
    assert all(isinstance(level, LevelView) for level in layer.data)
    assert windows, "napari drew the slide without the tile reader"
    # What napari shows is the slide's pixels.
    with razn_slide(cmu_svs) as slide:
        np.testing.assert_array_equal(
            np.asarray(layer.data[0][100:300, 200:400]),
            slide.read_region((200, 100), (200, 200), downsample=1),
        )


def razn_slide(path):
    import razn

    return razn.open_slide(path)
