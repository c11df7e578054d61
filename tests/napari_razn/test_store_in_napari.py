"""A store from `razn segment --workers 2` in napari: layers in microns, the panel takes
over the session, a brush correction is kept in the store, and `razn train` learns from it."""

from __future__ import annotations

import numpy as np
import pytest

from napari_razn._layers import CLASSES_LAYER, ZOOM_LAYER, ZOOMED_LAYER
from tests.napari_razn.test_corrections import drag, screen_point
from tests.razn.hostile import run_razn


def razn(*args, cwd=None):
    return run_razn(*args, timeout=400, cwd=cwd)


@pytest.fixture(scope="module")
def cluster_store(small_slide, small_checkpoint, tmp_path_factory):
    pytest.importorskip("distributed")
    out = tmp_path_factory.mktemp("cluster") / "results"
    done = razn("segment", small_slide, "--model", small_checkpoint, "--out", out,
                "--workers", "2", "--device", "cpu")  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out / "ellipse.razn.zarr"


def test_a_cluster_store_opens_is_corrected_and_trains(
    make_napari_viewer, qtbot, cluster_store, small_slide, small_checkpoint, tmp_path
):
    import zarr

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1000, 700)
    viewer.open(str(cluster_store), plugin="napari-razn")
    names = [layer.name for layer in viewer.layers]
    assert names == ["ellipse.ome.tif", CLASSES_LAYER, ZOOM_LAYER, ZOOMED_LAYER]
    classes = viewer.layers[CLASSES_LAYER]
    assert tuple(classes.scale) == (2.0, 2.0)  # 8 level-0 pixels x 0.25 um
    assert tuple(viewer.layers[ZOOM_LAYER].scale) == (64.0, 64.0)  # a 256-px tile
    stored = np.asarray(zarr.open_group(str(cluster_store), mode="r")["labels/classes/0"])
    np.testing.assert_array_equal(classes.data, stored)
    # The panel takes the session over from the store, with its own editable layers.
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-razn", "RAZN")
    widget.device_picker.value = "cpu"
    qtbot.waitUntil(lambda: widget.classes_layer is not None, timeout=60000)
    assert [layer.name for layer in viewer.layers].count(CLASSES_LAYER) == 1
    assert widget.session.done.all() and widget.model_input.value == str(small_checkpoint)
    layer = widget.classes_layer
    np.testing.assert_array_equal(layer.data, stored)
    viewer.layers.selection.active = layer
    viewer.reset_view()
    qtbot.wait(100)
    layer.mode, layer.selected_label, layer.brush_size = "paint", 4, 12
    drag(viewer, [screen_point(viewer, layer, 96, 60 + 4 * i) for i in range(21)], qtbot)
    painted = widget.session.corrected.copy()
    assert painted.sum() > 100
    widget._save_now()  # what the autosave does within 2 s
    group = zarr.open_group(str(cluster_store), mode="r")
    np.testing.assert_array_equal(np.asarray(group["razn/corrected"]), painted)
    assert (np.asarray(group["labels/classes/0"])[painted] == 4).all()
    # The corrected store trains a model, as "Export corrections" files do.
    out = tmp_path / "model"
    done = razn("train", "--config", "scale1-small", "--slides", small_slide,
                "--labels", cluster_store, "--out", out, "--iterations", "2",
                "--batch-size", "2", "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (out / "model.safetensors").is_file()


def test_a_store_whose_slide_is_gone_is_one_clear_message(tmp_path, small_slide, small_checkpoint):
    import shutil

    from napari_razn._store_reader import get_reader
    from razn.inference.job import segment_slide
    from razn.models import load_model

    slide = tmp_path / "gone.ome.tif"
    shutil.copy(small_slide, slide)
    out = tmp_path / "results"
    out.mkdir()
    segment_slide(slide, load_model(small_checkpoint), out, device="cpu")
    slide.unlink()
    reader = get_reader(str(out / "gone.razn.zarr"))
    with pytest.raises(
        ValueError, match=r"gone\.razn\.zarr.*its slide .*gone\.ome\.tif was not found"
    ):
        reader(str(out / "gone.razn.zarr"))


def test_the_panel_and_the_cli_make_the_same_store(
    make_napari_viewer, qtbot, small_slide, small_checkpoint, tmp_path
):
    import zarr

    from razn.session import default_session_path
    from tests.napari_razn.test_corrections import dock_panel

    viewer, widget = dock_panel(make_napari_viewer, qtbot, small_slide, small_checkpoint)
    widget.threshold.value = 0.5
    widget.segment_slide()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60000)
    assert widget.session.done.all()
    widget._save_now()
    panel = zarr.open_group(str(default_session_path(small_slide)), mode="r")
    out = tmp_path / "results"
    done = razn("segment", small_slide, "--model", small_checkpoint, "--out", out,
                "--threshold", "0.5", "--device", "cpu")  # fmt: skip
    assert done.returncode == 0, done.stderr
    cli = zarr.open_group(str(out / "ellipse.razn.zarr"), mode="r")
    for name in ("labels/classes/0", "labels/zoomed/0", "razn/done", "razn/tissue",
                 "razn/corrected"):  # fmt: skip
        np.testing.assert_array_equal(np.asarray(panel[name]), np.asarray(cli[name]), name)
    np.testing.assert_array_equal(np.asarray(panel["zoom_p"]), np.asarray(cli["zoom_p"]))
    a, b = dict(panel["razn"].attrs), dict(cli["razn"].attrs)
    for key in ("format", "slide_shape", "mpp", "threshold", "tile_size", "downsample",
                "patch_size", "label_grid"):  # fmt: skip
        assert a[key] == b[key], key
    assert a["model"]["sha256"] == b["model"]["sha256"]
    assert dict(panel["labels/classes"].attrs) == dict(cli["labels/classes"].attrs)
