"""read_region: level-0 boxes at any resolution, edges, and bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

import razn
from razn.errors import SlideError
from tests.razn.slide_files import tissue_image, write_ome_pyramid


@pytest.fixture(scope="module")
def pyramid_slide(tmp_path_factory):
    path = tmp_path_factory.mktemp("slides") / "slide.ome.tif"
    pyramid = write_ome_pyramid(path, tissue_image(512, 768), mpp=0.25)
    slide = razn.open_slide(path)
    yield slide, pyramid
    slide.close()


def test_mpp_between_levels_reads_the_finer_level_and_shrinks(pyramid_slide):
    slide, pyramid = pyramid_slide
    # 0.75 um/px lies between level 0 (0.25) and level 1 (0.5): read level 1
    # (the nearest finer) and shrink by 1.5, never enlarge a coarser level.
    assert slide.best_level(3.0) == 1
    region = slide.read_region((0, 0), (600, 300), mpp=0.75)
    assert region.shape == (100, 200, 3)
    from PIL import Image

    expected = np.asarray(
        Image.fromarray(pyramid[1][:150, :300]).resize((200, 100), Image.Resampling.BOX)
    )
    np.testing.assert_array_equal(region, expected)


def test_finer_than_level_zero_enlarges(pyramid_slide):
    slide, _ = pyramid_slide
    assert slide.read_region((10, 10), (50, 40), mpp=0.125).shape == (80, 100, 3)


def test_partly_outside_is_white_and_fully_outside_is_an_error(pyramid_slide):
    slide, pyramid = pyramid_slide
    region = slide.read_region((-20, -10), (60, 40), downsample=1)
    assert (region[:10] == 255).all() and (region[:, :20] == 255).all()
    np.testing.assert_array_equal(region[10:, 20:], pyramid[0][:30, :40])
    with pytest.raises(SlideError, match="outside the slide"):
        slide.read_region((10_000, 0), (10, 10), downsample=1)


def test_bad_arguments(pyramid_slide):
    slide, _ = pyramid_slide
    with pytest.raises(ValueError, match="not both"):
        slide.read_region((0, 0), (10, 10), mpp=1, downsample=1)
    with pytest.raises(ValueError, match="positive"):
        slide.read_region((0, 0), (0, 10), downsample=1)
    with pytest.raises(ValueError, match="positive"):
        slide.read_region((0, 0), (10, 10), mpp=-1)


def test_no_resolution_reads_level_0(pyramid_slide):
    slide, pyramid = pyramid_slide
    np.testing.assert_array_equal(slide.read_region((20, 10), (40, 30)), pyramid[0][10:40, 20:60])


def test_thumbnail_keeps_aspect(pyramid_slide):
    slide, _ = pyramid_slide
    assert slide.thumbnail(96).shape == (64, 96, 3)
