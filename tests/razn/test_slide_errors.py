"""Bad input gets a SlideError that names the file and says what is wrong."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import razn
from razn.errors import SlideError
from tests.razn.slide_files import tissue_image


def expect_error(path, pattern):
    with pytest.raises(SlideError, match=pattern) as info:
        razn.open_slide(path)
    assert str(path) in str(info.value)
    return info.value


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nope.svs", "no such file")


def test_folder(tmp_path):
    expect_error(tmp_path, "is a folder")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.svs"
    path.touch()
    expect_error(path, "empty")


def test_text_file_named_svs(tmp_path):
    path = tmp_path / "notes.svs"
    path.write_text("these are my notes, not a slide\n")
    expect_error(path, "text file")


def test_truncated_tiff(tmp_path, cmu_svs):
    path = tmp_path / "truncated.svs"
    path.write_bytes(cmu_svs.read_bytes()[:5000])
    expect_error(path, "corrupt|truncated")


def test_truncated_tile_data_fails_on_read(tmp_path):
    good = tmp_path / "good.tif"
    tifffile.imwrite(
        good, tissue_image(512, 512), tile=(128, 128), photometric="rgb", compression="jpeg"
    )
    data = good.read_bytes()
    path = tmp_path / "cut.tif"
    # Keep the header and IFD (written first by tifffile) but zero the tiles.
    with tifffile.TiffFile(good) as tif:
        first = int(min(tif.pages[0].dataoffsets))
    path.write_bytes(data[:first] + bytes(len(data) - first))
    with razn.open_slide(path) as slide, pytest.raises(SlideError, match="cannot decode"):
        slide.read_region((0, 0), (256, 256), downsample=1)


def test_16_bit_tiff(tmp_path):
    path = tmp_path / "deep.tif"
    tifffile.imwrite(path, np.zeros((64, 64, 3), np.uint16), photometric="rgb")
    expect_error(path, "16-bit")


def test_grayscale_tiff(tmp_path):
    path = tmp_path / "gray.tif"
    tifffile.imwrite(path, np.zeros((64, 64), np.uint8))
    expect_error(path, "grayscale")


def test_four_channel_image(tmp_path):
    path = tmp_path / "cmyk.tif"
    tifffile.imwrite(path, np.zeros((64, 64, 4), np.uint8), photometric="separated")
    expect_error(path, "4 channels")


def test_four_grayscale_planes(tmp_path):
    path = tmp_path / "planes.tif"
    tifffile.imwrite(path, np.zeros((4, 64, 64), np.uint8), photometric="minisblack")
    expect_error(path, "stack")


def test_multichannel_fluorescence(tmp_path):
    path = tmp_path / "fluo.ome.tif"
    tifffile.imwrite(path, np.zeros((6, 64, 64), np.uint8), metadata={"axes": "CYX"})
    expect_error(path, "6 channels")


def test_z_stack(tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((5, 64, 64, 3), np.uint8), photometric="rgb")
    expect_error(path, "stack")


def test_grayscale_png(tmp_path):
    from PIL import Image

    path = tmp_path / "gray.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(path)
    expect_error(path, "grayscale")


def test_non_positive_mpp(tmp_path, cmu_svs):
    with pytest.raises(SlideError, match="positive"):
        razn.open_slide(cmu_svs, mpp=0)
