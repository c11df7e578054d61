"""Label-grid TIFF (and zarr) files: self-describing, tiled, pyramidal, atomic."""

from __future__ import annotations

import json

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr

from razn.classes import DEFAULT_CLASSES, TissueClass
from razn.errors import AnnotationError
from razn.label_tiff import read_label_grid, write_label_grid


def grid(shape=(700, 900), seed=0):
    return np.random.default_rng(seed).integers(0, 5, shape, dtype=np.uint8)


def test_round_trip_with_everything_it_needs(tmp_path):
    labels = grid()
    path = tmp_path / "labels.tif"
    write_label_grid(path, labels, 16, mpp=0.2462, level0_shape=(11200 - 7, 14400 - 15))
    read = read_label_grid(path)
    np.testing.assert_array_equal(read.labels, labels)
    assert (read.downsample, read.level0_shape, read.mpp) == (16, (11193, 14385), 0.2462)
    assert read.classes == DEFAULT_CLASSES
    lazy = read_label_grid(path, lazy=True)
    assert isinstance(lazy.labels, da.Array)
    np.testing.assert_array_equal(lazy.labels[100:300, 500:].compute(), labels[100:300, 500:])


def test_file_is_tiled_compressed_pyramidal_and_coloured(tmp_path):
    labels = grid((1300, 1100))
    path = tmp_path / "labels.tif"
    write_label_grid(path, labels, 8, mpp=0.5)
    with tifffile.TiffFile(path) as tiff:
        page = tiff.pages.first
        assert page.is_tiled and page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        assert page.photometric == tifffile.PHOTOMETRIC.PALETTE
        assert tuple(page.colormap[:, 4] // 257) == DEFAULT_CLASSES[3].color
        levels = tiff.series[0].levels
        assert [level.shape for level in levels] == [(1300, 1100), (650, 550), (325, 275)]
        np.testing.assert_array_equal(levels[1].asarray(), labels[::2, ::2])
        assert json.loads(page.description)["downsample"] == 8
        assert page.tags["XResolution"].value == (2500, 1)  # 4 um per label pixel


def test_a_dask_grid_is_written_in_bands_not_whole(tmp_path):
    labels = grid((1024, 800))
    computed = []

    def record(block, block_info=None):
        computed.append(block.shape)
        return block

    lazy = da.from_array(labels, chunks=(256, 800)).map_blocks(record, dtype=np.uint8)
    path = tmp_path / "labels.tif"
    write_label_grid(path, lazy, 4)
    np.testing.assert_array_equal(read_label_grid(path).labels, labels)
    assert computed and max(rows for rows, _ in computed) <= 256


def test_custom_class_table_is_recorded(tmp_path):
    classes = (TissueClass(1, "Tumour", (255, 0, 0)), TissueClass(2, "Stroma", (0, 0, 255)))
    path = tmp_path / "labels.tif"
    write_label_grid(path, np.ones((10, 10), np.uint8), 2, classes=classes)
    assert read_label_grid(path).classes == classes


def test_a_grid_that_does_not_cover_level0_is_refused_and_nothing_written(tmp_path):
    path = tmp_path / "labels.tif"
    with pytest.raises(ValueError, match="does not cover"):
        write_label_grid(path, grid((10, 10)), 8, level0_shape=(100, 100))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("content", ["plain tiff", "not a tiff", "missing"])
def test_files_that_are_not_label_grids(tmp_path, content):
    path = tmp_path / "other.tif"
    if content == "plain tiff":
        tifffile.imwrite(path, grid((20, 20)))
    elif content == "not a tiff":
        path.write_text("hello")
    with pytest.raises(AnnotationError, match="not a label grid|not a TIFF|no such file"):
        read_label_grid(path)


def test_zarr_grids_with_and_without_attributes(tmp_path):
    labels = grid((50, 70))
    described = zarr.create_array(tmp_path / "a.zarr", shape=labels.shape, dtype="uint8")
    described[...] = labels
    described.attrs.update({"razn_label_grid": 1, "downsample": 4, "level0_shape": [200, 280]})
    read = read_label_grid(tmp_path / "a.zarr")
    np.testing.assert_array_equal(read.labels, labels)
    assert read.downsample == 4 and read.mpp is None
    bare = zarr.create_array(tmp_path / "b.zarr", shape=labels.shape, dtype="uint8")
    bare[...] = labels
    with pytest.raises(AnnotationError, match="give its downsample"):
        read_label_grid(tmp_path / "b.zarr")
    inferred = read_label_grid(tmp_path / "b.zarr", level0_shape=(398, 555))
    assert inferred.downsample == 8 and inferred.level0_shape == (398, 555)
