"""The engine: exact stitching, glass skipped, thresholds, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import razn
from razn.errors import RaznError, SlideError
from razn.inference import available_devices, pick_device, segment, tile_grid
from razn.inference.tiling import on_tissue
from razn.models.views import merge_patches, split_patches
from tests.razn.inference.conftest import small_model


def stitch(grid, results):
    labels = np.zeros(grid.label_shape, np.uint8)
    for r in results:
        rows, cols, nr, nc = grid.label_slices(r.row, r.col)
        labels[rows, cols] = r.labels[:nr, :nc]
    return labels


def test_label_grid_and_tiles(slide_path, model):
    with razn.open_slide(slide_path) as slide:
        grid = tile_grid(slide, model.config)
    # 2 um label pixels on a 0.25 um/px slide; a tile is 64 px at 1 um/px.
    assert (grid.downsample, grid.tile_size, grid.tile_labels) == (8, 256, 32)
    assert (grid.rows, grid.cols) == (6, 8)
    assert grid.label_shape == (192, 256)


def test_whole_slide_equals_tile_by_tile(slide_path, model):
    with razn.open_slide(slide_path) as slide:
        grid = tile_grid(slide, model.config)
        whole = stitch(grid, segment(slide, model, batch_size=5, device="cpu"))
        one_by_one = [
            r
            for tile in grid.tiles_in()
            for r in segment(slide, model, tiles=[tile], batch_size=1, device="cpu")
        ]
        on = on_tissue(slide.tissue_mask, grid.downsample, slice(0, 192), slice(0, 256))
    np.testing.assert_array_equal(stitch(grid, one_by_one), whole)
    # Glass is no class: every tissue pixel has a class, no glass pixel has.
    assert 0 < on.mean() < 1
    np.testing.assert_array_equal(whole > 0, on)


def test_glass_never_reaches_a_network(slide_path):
    model = small_model()
    calls = []
    with razn.open_slide(slide_path) as slide:
        # A threshold that zooms into about half the tiles, so both paths run.
        p = [r.zoom_p for r in segment(slide, model, threshold=1.0, device="cpu") if r.tissue]
        threshold = float(np.median(p))
        for net in list(model.segmenters) + list(model.policies):
            net.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
        results = list(segment(slide, model, threshold=threshold, device="cpu", batch_size=4))
        mask = slide.tissue_mask
        grid = tile_grid(slide, model.config)
        expected_tissue = sum(
            mask.fraction_in(grid.box(*t)[:2], grid.box(*t)[2:]) >= 0.05 for t in grid.tiles_in()
        )
    glass = [r for r in results if not r.tissue]
    tissue = [r for r in results if r.tissue]
    assert len(tissue) == expected_tissue and 0 < len(glass) < len(results)
    assert all((r.labels == 0).all() and math.isnan(r.zoom_p) for r in glass)
    # The policy saw each tissue tile once, f_0 each tile it left alone, f_1
    # the 4 fine patches of each zoomed tile, and no net saw glass.
    zoomed = sum(r.zoomed for r in tissue)
    assert 0 < zoomed < len(tissue)
    assert sum(calls) == len(tissue) + (len(tissue) - zoomed) + 4 * zoomed


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_thresholds_zero_and_one_are_the_scale_paths(slide_path, model, threshold):
    with razn.open_slide(slide_path) as slide:
        grid = tile_grid(slide, model.config)
        results = [r for r in segment(slide, model, threshold=threshold, device="cpu") if r.tissue]
        r = results[len(results) // 2]
        x, y, w, h = r.box
        coarse = slide.read_region((x, y), (w, h), downsample=w / 64)
        fine = slide.read_region((x, y), (w, h), downsample=w / 128)
        n = grid.tile_labels
        rows, cols = slice(r.row * n, r.row * n + n), slice(r.col * n, r.col * n + n)
        on = on_tissue(slide.tissue_mask, grid.downsample, rows, cols)
    from razn.models.normalise import normalise

    with torch.no_grad():
        if threshold == 1.0:  # never zooms: f_0 on the coarse view (Scale 1)
            probs = torch.softmax(model.segmenters[0](normalise(coarse)), 1)
            assert not any(t.zoomed for t in results)
        else:  # always zooms: f_1 on the fine patches (Scale 2)
            probs = torch.softmax(model.segmenters[1](split_patches(normalise(fine), 2)), 1)
            probs = merge_patches(probs, 2)
            assert all(t.zoomed for t in results)
    pooled = torch.nn.functional.adaptive_avg_pool2d(probs, grid.tile_labels)
    expected = np.where(on, (pooled.argmax(1)[0] + 1).numpy(), 0)  # glass pixels 0
    np.testing.assert_array_equal(r.labels, expected)


def test_baselines_run_through_the_engine(slide_path):
    with razn.open_slide(slide_path) as slide:
        for name in ("scale2-small", "ms-small"):
            model = small_model(name)
            results = list(segment(slide, model, region=(0, 0, 1024, 768), device="cpu"))
            assert len(results) == 12
            assert all(not r.zoomed and math.isnan(r.zoom_p) for r in results)


def test_probabilities_on_request(slide_path, model):
    with razn.open_slide(slide_path) as slide:
        (r,) = segment(slide, model, tiles=[(3, 4)], probabilities=True, device="cpu")
    assert r.probs.shape == (4, 32, 32) and r.probs.dtype == np.float16
    np.testing.assert_allclose(r.probs.astype(np.float32).sum(0), 1, atol=1e-2)


def test_bad_region_threshold_and_missing_mpp(slide_path, model, tmp_path):
    with razn.open_slide(slide_path) as slide:
        with pytest.raises(SlideError, match="outside the slide"):
            list(segment(slide, model, region=(5000, 0, 100, 100)))
        with pytest.raises(ValueError, match="threshold"):
            list(segment(slide, model, threshold=1.5))
    import tifffile

    from tests.razn.slide_files import tissue_image

    bare = tmp_path / "bare.tif"
    tifffile.imwrite(bare, tissue_image(512, 512), photometric="rgb", tile=(128, 128))
    with razn.open_slide(bare) as slide, pytest.raises(SlideError, match="no pixel size"):
        list(segment(slide, model))


def test_one_read_thread_is_enough(slide_path, model):
    with razn.open_slide(slide_path) as slide:
        results = list(
            segment(slide, model, region=(0, 0, 1024, 512), read_threads=1, device="cpu")
        )
    assert len(results) == 8


def test_pick_device_refuses_what_is_not_there(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert available_devices()[-1] == "cpu"
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto") == torch.device(available_devices()[0])
    with pytest.raises(RaznError, match=r"device cuda is not available here \(found: .*cpu\)"):
        pick_device("cuda")
    with pytest.raises(RaznError, match="unknown device 'tpu0'"):
        pick_device("tpu0")
