"""The one label grid -> QuPath GeoJSON export: banded, so no grid is ever traced whole.

`razn export`, `razn segment` (its `<slide>.geojson`), the panel's "Export
to QuPath" and the napari writer all call `export_geojson`. A grid taller
than `BAND_ROWS` is read and traced a band of rows at a time
(`razn.annotations.vectorize_in_bands`): an 80k x 60k slide's grid is 75
MB, and tracing it at once needs about 1 GB.
"""

from __future__ import annotations

import os

import numpy as np

from razn.classes import DEFAULT_CLASSES, NORMAL, UNLABELLED, TissueClass

#: Label-grid rows read (and traced) at a time.
BAND_ROWS = 2048


def export_geojson(
    labels,
    downsample: int,
    path: str | os.PathLike,
    *,
    mpp: float | None = None,
    classes: tuple[TissueClass, ...] = DEFAULT_CLASSES,
    values=None,
    include_normal: bool = False,
    simplify: float = 0.3,
    min_area: float = 0.0,
    per_region: bool = True,
    band_rows: int = BAND_ROWS,
) -> tuple[int, dict]:
    """Write a label grid's classes as QuPath GeoJSON annotations, atomically.

    Parameters
    ----------
    labels
        2-D class values: numpy, dask or a zarr array (read a band at a time).
    downsample
        Level-0 pixels per label pixel.
    path
        Output ``.geojson``; replaced only once fully written.
    mpp
        Level-0 microns per pixel; each feature then carries its area in um^2.
    classes
        The class table (QuPath names and colours).
    values
        Class values to export; default every class of the table except
        normal tissue (unless `include_normal`): the lesions.
    simplify
        Outline tolerance in label pixels (below 0.35 no label pixel
        changes class when the file is rasterised back).
    min_area
        In label pixels^2: smaller regions are dropped, smaller holes filled.
    per_region
        One feature per connected region; False: one MultiPolygon per class.

    Returns
    -------
    (features written, {class value: MultiPolygon})
    """
    from razn.annotations import vectorize, vectorize_in_bands, write_geojson

    if values is None:
        values = [
            c.value
            for c in classes
            if c.value != UNLABELLED and (include_normal or c.value != NORMAL)
        ]
    values = [int(v) for v in values]
    if labels.shape[0] <= band_rows:
        regions = vectorize(
            np.asarray(labels[...]), downsample, simplify=simplify, min_area=min_area,
            classes=values,
        )  # fmt: skip
    else:
        regions = vectorize_in_bands(
            lambda r0, r1: labels[r0:r1], labels.shape, downsample, values,
            band_rows=band_rows, simplify=simplify, min_area=min_area,
        )  # fmt: skip
    count = write_geojson(path, regions, classes=classes, mpp=mpp, per_region=per_region)
    return count, regions
