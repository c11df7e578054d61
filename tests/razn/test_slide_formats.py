"""Pyramids written here with tifffile: SubIFD, page, OME, single level, RGBA."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import razn
from tests.razn.slide_files import (
    tissue_image,
    write_ome_pyramid,
    write_page_pyramid,
    write_subifd_pyramid,
)


@pytest.fixture(scope="module")
def image():
    return tissue_image(600, 900)


@pytest.mark.parametrize("writer", [write_subifd_pyramid, write_page_pyramid])
def test_pyramids_open_with_every_level(tmp_path, image, writer):
    path = tmp_path / "slide.tif"
    pyramid = writer(path, image)
    with razn.open_slide(path) as slide:
        stored = [lv for lv in slide.level_info if lv.stored]
        assert [lv.shape for lv in stored] == [p.shape[:2] for p in pyramid]
        assert slide.downsamples[:3] == pytest.approx([1, 2, 4], abs=0.01)
        for index, level in enumerate(pyramid):
            np.testing.assert_array_equal(slide.levels[index].compute(), level)
        # Reading at downsample 4 reads level 2 itself, not level 0 resized.
        np.testing.assert_array_equal(
            slide.read_region((0, 0), (400, 200), downsample=4), pyramid[2][:50, :100]
        )


@pytest.mark.parametrize(("unit", "mpp"), [("µm", 0.25), ("nm", 0.5), ("mm", 0.3)])
def test_ome_tiff_physical_size(tmp_path, image, unit, mpp):
    path = tmp_path / "slide.ome.tif"
    write_ome_pyramid(path, image, mpp=mpp, unit=unit)
    with razn.open_slide(path) as slide:
        assert slide.format == "ome-tiff"
        assert slide.mpp == pytest.approx(mpp)
        assert slide.mpp_source == "OME PhysicalSizeX"
        assert slide.level_mpp(1) == pytest.approx(2 * mpp)


def test_resolution_tags_give_mpp_and_screen_dpi_does_not(tmp_path, image):
    real = tmp_path / "real.tif"
    # 40000 pixels per cm = 0.25 um per pixel.
    tifffile.imwrite(
        real, image, tile=(128, 128), resolution=(40000, 40000), resolutionunit="CENTIMETER"
    )
    with razn.open_slide(real) as slide:
        assert slide.mpp == pytest.approx(0.25)
    screen = tmp_path / "screen.tif"
    tifffile.imwrite(screen, image, tile=(128, 128), resolution=(72, 72), resolutionunit="INCH")
    with razn.open_slide(screen) as slide:
        assert slide.mpp is None


def test_single_level_gets_lazy_levels(tmp_path):
    image = tissue_image(2300, 1500)
    path = tmp_path / "flat.tif"
    tifffile.imwrite(path, image, tile=(256, 256), photometric="rgb")
    with razn.open_slide(path) as slide:
        assert [lv.stored for lv in slide.level_info] == [True, False, False]
        assert slide.level_info[-1].shape == (575, 375)
        # Derived levels are dask graphs over level 0, computed only on demand.
        coarse = slide.levels[2]
        assert coarse.dask is not None and not isinstance(coarse, np.ndarray)
        expected = image[:2300, :1500].reshape(575, 4, 375, 4, 3).mean(axis=(1, 3))
        np.testing.assert_allclose(coarse.compute(), expected, atol=1)


def test_stripped_tiff_reads_through_zarr(tmp_path, image):
    path = tmp_path / "strips.tif"
    tifffile.imwrite(path, image, photometric="rgb", rowsperstrip=64, compression="zlib")
    with razn.open_slide(path) as slide:
        np.testing.assert_array_equal(
            slide.read_region((10, 20), (300, 100), downsample=1), image[20:120, 10:310]
        )


def test_rgba_becomes_rgb(tmp_path, image):
    rgba = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    path = tmp_path / "rgba.tif"
    tifffile.imwrite(path, rgba, tile=(128, 128), photometric="rgb", extrasamples=["UNASSALPHA"])
    with razn.open_slide(path) as slide:
        assert slide.levels[0].shape == (600, 900, 3)
        np.testing.assert_array_equal(slide.read_region((0, 0), (900, 600), downsample=1), image)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_plain_images_are_one_level_slides(tmp_path, image, suffix):
    from PIL import Image

    path = tmp_path / f"photo{suffix}"
    Image.fromarray(image).save(path)
    with razn.open_slide(path) as slide:
        assert slide.format == "image"
        assert slide.shape == (600, 900)
        region = slide.read_region((100, 100), (200, 100), downsample=1)
        if suffix == ".png":
            np.testing.assert_array_equal(region, image[100:200, 100:300])
        else:
            assert np.abs(region.astype(int) - image[100:200, 100:300]).mean() < 12


def test_tissue_mask_finds_the_ellipse(tmp_path):
    image = tissue_image(2048, 2048)
    path = tmp_path / "ellipse.tif"
    write_subifd_pyramid(path, image, levels=4)
    with razn.open_slide(path) as slide:
        # The ellipse's area is pi * (1/3)^2 of the square.
        assert slide.tissue_fraction == pytest.approx(np.pi / 9, abs=0.03)
        mask = slide.tissue_mask
        assert mask.fraction_in((1000, 1000), (64, 64)) == 1.0
        assert mask.fraction_in((0, 0), (64, 64)) == 0.0
