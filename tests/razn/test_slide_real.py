"""The real slides in ../shared/data open, and decode as tifffile decodes them."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import razn
from razn.errors import SlideError


def test_aperio_jpeg_slide_levels_and_metadata(cmu_svs):
    with razn.open_slide(cmu_svs) as slide, tifffile.TiffFile(cmu_svs) as tif:
        baseline = tif.series[0]
        stored = [lv for lv in slide.level_info if lv.stored]
        assert [lv.shape for lv in stored] == [lv.shape[:2] for lv in baseline.levels]
        assert slide.format == "aperio-svs"
        assert slide.mpp == pytest.approx(0.499)
        assert slide.magnification == 20
        assert slide.tile_size == (240, 240)
        assert slide.compression == "jpeg"
        # A one-level file still gets coarser levels for viewing, derived lazily.
        assert len(slide.levels) > 1 and not slide.level_info[1].stored


def test_aperio_jpeg_tiles_equal_tifffile_decoding(cmu_svs):
    with razn.open_slide(cmu_svs) as slide, tifffile.TiffFile(cmu_svs) as tif:
        page = tif.series[0].levels[0].pages[0]
        expected = page.asarray()
        # Straddles tile borders (tiles are 240 pixels).
        region = slide.read_region((230, 470), (500, 300), downsample=1)
        np.testing.assert_array_equal(region, expected[470:770, 230:730])
        # The lazy dask level shows the same pixels.
        np.testing.assert_array_equal(
            slide.levels[0][470:770, 230:730].compute(), expected[470:770, 230:730]
        )


def test_jpeg2000_slide_decodes_both_levels(tcga_svs):
    with razn.open_slide(tcga_svs) as slide, tifffile.TiffFile(tcga_svs) as tif:
        assert slide.compression == "aperio_jp2000_rgb"
        levels = tif.series[0].levels
        assert [lv.shape for lv in slide.level_info if lv.stored] == [
            lv.shape[:2] for lv in levels
        ]
        expected = levels[1].pages[0].asarray()
        d = slide.downsamples[1]
        assert d == pytest.approx(2.0, abs=0.01)
        # The middle of the slide, where the tissue is (level-1 pixels 900.., 700..).
        dx, dy = slide.level_info[1].downsample_xy
        got = slide.read_region((900 * dx, 700 * dy), (512 * dx, 256 * dy), downsample=d)
        np.testing.assert_array_equal(got, expected[700:956, 900:1412])
        # Real tissue, not a blank decode.
        assert got.std() > 10


def test_slide_without_mpp_opens_and_says_so(tcga_svs):
    with razn.open_slide(tcga_svs) as slide:
        assert slide.mpp is None and slide.mpp_source is None
        assert slide.read_region((0, 0), (64, 64), downsample=1).shape == (64, 64, 3)
        with pytest.raises(SlideError, match="no pixel size"):
            slide.read_region((0, 0), (64, 64), mpp=1.0)
    with razn.open_slide(tcga_svs, mpp=0.5) as slide:
        assert (slide.mpp, slide.mpp_source) == (0.5, "user")
        assert slide.read_region((0, 0), (64, 64), mpp=1.0).shape == (32, 32, 3)


def test_tissue_fraction_of_real_slides(cmu_svs, tcga_svs):
    # Judged by eye on the thumbnails: the CMU crop is about one third tissue,
    # the TCGA crop about two thirds.
    with razn.open_slide(cmu_svs) as slide:
        assert 0.25 < slide.tissue_fraction < 0.5
    with razn.open_slide(tcga_svs) as slide:
        assert 0.5 < slide.tissue_fraction < 0.8


def test_read_region_matches_openslide(cmu_svs):
    openslide = pytest.importorskip("openslide")
    with razn.open_slide(cmu_svs) as slide:
        reference = openslide.OpenSlide(str(cmu_svs))
        expected = np.asarray(reference.read_region((1000, 1200), 0, (300, 200)).convert("RGB"))
        reference.close()
        np.testing.assert_array_equal(
            slide.read_region((1000, 1200), (300, 200), downsample=1), expected
        )
