"""Migration check against openslide-python: `Slide` reads as OpenSlide users expect.

`Slide.dimensions` is (width, height), as OpenSlide, tiffslide and fastslide
have it (in 0.1 it was (height, width), the order `Slide.shape` now has),
and `read_region` without mpp= or downsample= reads level 0 at full
resolution, as OpenSlide's level 0. Both real slides in ../shared/data;
skipped without openslide (the `benchmarks` extra).
"""

from __future__ import annotations

import numpy as np
import pytest

import razn

openslide = pytest.importorskip("openslide")


@pytest.fixture(params=["cmu_svs", "tcga_svs"])
def both(request):
    path = request.getfixturevalue(request.param)
    reference = openslide.OpenSlide(str(path))
    with razn.open_slide(path) as slide:
        yield slide, reference
    reference.close()


def test_dimensions_are_openslides(both):
    slide, reference = both
    assert slide.dimensions == reference.dimensions
    width, height = reference.dimensions
    assert slide.shape == (height, width) == slide.levels[0].shape[:2]


def test_stored_levels_are_openslides(both):
    slide, reference = both
    stored = [(w, h) for (h, w), s in ((lv.shape, lv.stored) for lv in slide.level_info) if s]
    assert stored == list(reference.level_dimensions)


def test_read_region_defaults_to_level_0(both):
    # The TCGA crop has no mpp, so only a default that needs none can read it.
    slide, reference = both
    width, height = slide.dimensions
    for location, size in (((0, 0), (64, 48)), ((width - 200, height - 150), (200, 150))):
        expected = np.asarray(reference.read_region(location, 0, size).convert("RGB"))
        np.testing.assert_array_equal(slide.read_region(location, size), expected)
