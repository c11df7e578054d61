"""The synthetic-slide sample: generated into the cache, aligned layers."""

from __future__ import annotations

import numpy as np
import pytest

from napari_razn import _sample_data


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_RAZN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cache_folder_honours_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("NAPARI_RAZN_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _sample_data.cache_folder() == tmp_path / "xdg" / "napari-razn"
    monkeypatch.setenv("NAPARI_RAZN_CACHE", str(tmp_path / "mine"))
    assert _sample_data.cache_folder() == tmp_path / "mine"


def test_sample_is_generated_once_and_layers_align(cache):
    layers = _sample_data.make_synthetic_slide_sample()
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 3
    stamp = (cache / _sample_data.SAMPLE_NAME).stat().st_mtime_ns
    (slide_data, slide_kwargs, slide_type), (labels, label_kwargs, label_type) = layers
    assert (slide_type, label_type) == ("image", "labels")
    mpp = _sample_data.SAMPLE_MPP
    assert slide_kwargs["scale"] == pytest.approx((mpp, mpp))
    d = label_kwargs["metadata"]["label_downsample"]
    assert label_kwargs["scale"] == pytest.approx((d * mpp, d * mpp))
    assert label_kwargs["translate"] == pytest.approx(((d - 1) / 2 * mpp,) * 2)
    # The labels cover the slide: same extent in microns.
    width, height = _sample_data.SAMPLE_SIZE
    assert slide_data[0].shape[:2] == (height, width)
    assert labels.shape == (-(-height // d), -(-width // d))
    assert set(np.unique(labels)) >= {1, 2, 3, 4}
    # A second call reuses the cache; a missing file regenerates it.
    _sample_data.make_synthetic_slide_sample()
    assert (cache / _sample_data.SAMPLE_NAME).stat().st_mtime_ns == stamp
    (cache / _sample_data.SAMPLE_NAME.replace(".tif", ".labels.tif")).unlink()
    _sample_data.make_synthetic_slide_sample()
    assert len(list(cache.iterdir())) == 3


def test_layers_are_accepted_by_napari_and_align(cache, monkeypatch):
    layers = pytest.importorskip("napari.layers")
    # Reuse a small slide rather than the full sample: the layer kwargs are
    # what is checked here.
    monkeypatch.setattr(_sample_data, "SAMPLE_SIZE", (1024, 768))
    monkeypatch.setattr(_sample_data, "SAMPLE_NAME", "small.tif")
    (slide_data, slide_kwargs, _), (labels, label_kwargs, _) = (
        _sample_data.make_synthetic_slide_sample()
    )
    image = layers.Image(slide_data, **slide_kwargs)
    truth = layers.Labels(labels, **label_kwargs)
    assert image.multiscale and image.rgb
    # The outer corners of both layers coincide in world (micron) coordinates
    # (napari's extent runs between the first and last pixel centres).
    for side, sign in ((0, -1), (1, 1)):
        np.testing.assert_allclose(
            image.extent.world[side] + sign * image.scale / 2,
            truth.extent.world[side] + sign * truth.scale / 2,
            atol=1e-6,
        )


def test_the_samples_imports_leave_the_heap_frozen(tmp_path):
    """In a fresh process: the sample's warm-up imports (pandas, scipy, pint...) run
    with the collector paused and freeze what is alive after, so the full
    collections they set off no longer stall napari while it adds the layers
    (two of 70-100 ms each, docs/benchmarks.md)."""
    import subprocess
    import sys

    code = """
import gc
from napari_razn import _sample_data
_sample_data.SAMPLE_SIZE, _sample_data.SAMPLE_NAME = (1024, 768), "small.tif"
print("before", gc.get_freeze_count(), flush=True)
_sample_data.make_synthetic_slide_sample()
print("after", gc.get_freeze_count() > 2 * len(gc.get_objects()), gc.isenabled(), flush=True)
"""
    env = {**__import__("os").environ, "NAPARI_RAZN_CACHE": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=180, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "before 0" in done.stdout and "after True True" in done.stdout, done.stdout
