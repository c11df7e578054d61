"""The ground truth of a synthetic slide: its label grid and QuPath GeoJSON.

The truth is the lesion outlines of the `Layout` (region-level, as BACH
pathologists annotate: a lesion region includes the stroma between its
ducts), sampled at the centre of each label-grid cell, optionally with the
boundaries jittered. The label grid is written by `razn.label_grid` (the
downsample and mpp recorded in the file) one band at a time through dask,
and the GeoJSON is the vectorised label grid, so the two agree exactly:
rasterising the GeoJSON at the grid's downsample gives back the grid.
"""

from __future__ import annotations

import json
import os
import uuid

import dask.array as da
import numpy as np

from razn.annotations import geojson_features, vectorize
from razn.atomic import write_text_atomic
from razn.classes import BENIGN, IN_SITU, INVASIVE
from razn.label_tiff import write_label_grid
from razn.synth.layout import Layout

_BAND_ROWS = 512


def label_grid_array(layout: Layout, downsample: int, label_noise: float = 0.0) -> da.Array:
    """Lazy class map at `downsample`, computed in bands of rows on demand."""
    spec = layout.spec
    h = -(-spec.height // downsample)
    w = -(-spec.width // downsample)
    chunks = (tuple(min(_BAND_ROWS, h - r) for r in range(0, h, _BAND_ROWS)), (w,))

    def band(block_info=None):
        (r0, r1), _ = block_info[None]["array-location"]
        return layout.label_grid(downsample, label_noise, rows=(r0, r1))

    return da.map_blocks(band, dtype=np.uint8, chunks=chunks, meta=np.zeros((0, 0), np.uint8))


def write_ground_truth(
    layout: Layout,
    labels_path: str | os.PathLike,
    geojson_path: str | os.PathLike,
    *,
    downsample: int,
    label_noise: float = 0.0,
    key: str = "",
) -> np.ndarray:
    """Write the label-grid TIFF and the GeoJSON; return the label grid.

    GeoJSON feature ids are UUIDs derived from `key` and the feature's
    position, so equal arguments write equal bytes.
    """
    spec = layout.spec
    lazy = label_grid_array(layout, downsample, label_noise)
    # The grid is small (a 100k-pixel slide at downsample 16 is 39 MB), so
    # it is computed once and reused for the TIFF and the outlines.
    labels = lazy.compute(scheduler="synchronous")
    write_label_grid(
        labels_path, labels, downsample, mpp=spec.mpp, level0_shape=(spec.height, spec.width)
    )
    # Like BACH, only lesions are annotated; everything else is normal.
    shapes = vectorize(labels, downsample, classes=(BENIGN, IN_SITU, INVASIVE))
    features = geojson_features(shapes, mpp=spec.mpp, per_region=True)
    for index, feature in enumerate(features):
        feature["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"razn-synth:{key}:{index}"))
    text = json.dumps({"type": "FeatureCollection", "features": features}, separators=(",", ":"))
    write_text_atomic(geojson_path, text)
    return labels
