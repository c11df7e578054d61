"""The label grid: class values on one raster per slide, and everything that reads or writes it.

A label grid is a 2-D uint8 raster of class values (0 not segmented or
glass, 1 normal, 2 benign, 3 in situ, 4 invasive) at an integer
downsample of level 0 (`label_downsample`: about 2 um a label pixel).
This package owns it: its resolution rule and its files (a self-describing
TIFF, a zarr array, the segmentation store's NGFF label image). Polygons
<-> grid (rasterise, trace) live in `razn.annotations.label_grid`, and the
one banded export to QuPath GeoJSON in `razn.annotations.export`, above
this package in the import layers.

Example
-------
>>> import numpy as np, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "labels.tif")
>>> write_label_grid(path, np.full((300, 400), 4, np.uint8), 8, mpp=0.25)
>>> grid = read_label_grid(path)
>>> grid.downsample, grid.level0_shape, grid.mpp, grid.labels.shape
(8, (2400, 3200), 0.25, (300, 400))
"""

from razn.label_grid._files import (
    DEFAULT_DOWNSAMPLE,
    LABEL_MPP,
    MAX_LABEL_PIXELS,
    LabelGrid,
    infer_downsample,
    label_downsample,
    label_grid_metadata,
    read_label_grid,
    write_label_grid,
)

__all__ = [
    "DEFAULT_DOWNSAMPLE",
    "LABEL_MPP",
    "MAX_LABEL_PIXELS",
    "LabelGrid",
    "infer_downsample",
    "label_downsample",
    "label_grid_metadata",
    "read_label_grid",
    "write_label_grid",
]
