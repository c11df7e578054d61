"""Whole label grids to annotation files and back: what the napari plugin's QuPath I/O calls.

The napari writer and reader, and the RAZN panel's "Export to QuPath"
button, work on whole files and whole label grids, and need a few
decisions that are not napari's business: which classes leave (not 0, and
not normal by default, because the lesions are what a pathologist
reviews in QuPath), what label-grid downsample and
extent an imported file is painted at when no slide is open, which slide
file sits beside an annotation file, how a label layer's scale gives its
downsample, and whether a generic ``.json`` or ``.xml`` file is an
annotation file at all. They live here, without napari, so scripts and
tests use them as they are.

Example
-------
>>> import numpy as np, tempfile, os
>>> from razn.annotations import read_annotations
>>> labels = np.zeros((40, 60), np.uint8)
>>> labels[10:20, 30:50] = 4                    # invasive, at downsample 8
>>> path = os.path.join(tempfile.mkdtemp(), "lesions.geojson")
>>> export_label_grid(labels, 8, path)          # one feature
1
>>> read_annotations(path).shapes[0][1].bounds  # level-0 pixels
(240.0, 80.0, 400.0, 160.0)
>>> grid = annotation_label_grid(read_annotations(path))
>>> grid.downsample, bool((grid.labels == labels[:20, :50]).all())
(8, True)
"""

from __future__ import annotations

import glob
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import shapely

from razn.annotations.geojson import write_geojson
from razn.annotations.label_grid import rasterize, vectorize, vectorize_in_bands
from razn.annotations.model import AnnotationSet
from razn.classes import DEFAULT_CLASSES, NORMAL, UNLABELLED, TissueClass

if TYPE_CHECKING:
    from razn.label_grid import LabelGrid

__all__ = [
    "annotation_format",
    "annotation_label_grid",
    "class_table",
    "companion_slide",
    "downsample_from_scales",
    "export_geojson",
    "export_label_grid",
]

#: Label-grid rows read (and traced) at a time by `export_geojson`.
BAND_ROWS = 2048

# Enough to see the root element of XML or the first "type" of GeoJSON
# behind a header, without reading a large file to decide it is not ours.
_PEEK_BYTES = 4096
_GEOJSON_TYPE = re.compile(rb'"type"\s*:\s*"(FeatureCollection|Feature)"')
# XML prolog items that may precede the root: declaration, comments, DOCTYPE.
_XML_PROLOG = re.compile(rb"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>", re.DOTALL)
_XML_ROOT = re.compile(rb"<([A-Za-z_][\w.:-]*)")
_XML_FORMATS = {b"Annotations": "imagescope", b"ASAP_Annotations": "asap"}


def export_label_grid(
    labels: np.ndarray,
    downsample: int,
    path: str | os.PathLike,
    *,
    mpp: float | None = None,
    classes: tuple[TissueClass, ...] = DEFAULT_CLASSES,
    include_normal: bool = False,
    simplify: float = 0.3,
    min_area: float = 0.0,
    per_region: bool = True,
) -> int:
    """Write a label grid as QuPath GeoJSON annotations in level-0 pixels, atomically.

    `export_geojson` (the one banded export), returning the feature count.

    Parameters
    ----------
    labels
        2-D class values on a grid at ``downsample`` of level 0 (numpy, or
        dask, which is computed).
    downsample
        Level-0 pixels per label pixel.
    path
        Output ``.geojson``; replaced only once fully written.
    mpp
        Level-0 microns per pixel; when known each feature carries its area
        in um^2, as QuPath shows it.
    classes
        The class table: which values are exported, under which QuPath
        name and colour. Values not in the table (0 among them) are not
        exported.
    include_normal
        Also export normal tissue (value 1). Off by default: the lesions
        are what a pathologist reviews in QuPath.
    simplify
        Outline tolerance in label pixels (below 0.35 no label pixel
        changes class when the file is rasterised back).
    min_area
        In label pixels^2: smaller regions are dropped, smaller holes filled.
    per_region
        One feature per connected region (each selectable in QuPath); False
        writes one MultiPolygon feature per class.

    Returns
    -------
    int
        The number of features written (0 writes an empty FeatureCollection).
    """
    count, _ = export_geojson(
        labels, downsample, path, mpp=mpp, classes=classes, include_normal=include_normal,
        simplify=simplify, min_area=min_area, per_region=per_region,
    )  # fmt: skip
    return count


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
    """Write a label grid's classes as QuPath GeoJSON annotations, atomically: the one export.

    `razn export`, `razn segment` (its `<slide>.geojson`), the panel's
    "Export to QuPath" and the napari writer all come here. A grid taller
    than `band_rows` is read and traced a band of rows at a time
    (`vectorize_in_bands`): an 80k x 60k slide's grid is 75 MB, and
    tracing it at once needs about 1 GB.

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


def annotation_label_grid(
    annotations: AnnotationSet,
    *,
    level0_shape: tuple[int, int] | None = None,
    mpp: float | None = None,
    downsample: int | None = None,
    classes: tuple[TissueClass, ...] = DEFAULT_CLASSES,
) -> LabelGrid:
    """Rasterise the classified regions of an annotation file on a label grid.

    Parameters
    ----------
    annotations
        What `read_annotations` returned; only regions with a class value
        are painted (most severe class wins where they overlap).
    level0_shape
        ``(height, width)`` of the slide's level 0, when the slide is known.
        Without it the grid reaches from the origin to the regions' far
        corner, which is all of the slide the file speaks about.
    mpp
        Level-0 microns per pixel (the slide's, else the file's), which
        picks the downsample the RAZN engine would use for the slide.
    downsample
        Level-0 pixels per label pixel, overriding that choice.
    classes
        The class table the values refer to, carried in the result.

    Returns
    -------
    razn.label_grid.LabelGrid
        uint8 labels (0 where no region lies), downsample, level-0 shape,
        mpp and class table.
    """
    from razn.label_grid import LabelGrid, label_downsample

    shapes = annotations.shapes
    if level0_shape is None:
        level0_shape = _extent([geometry for _, geometry in shapes])
    height, width = (int(n) for n in level0_shape)
    if downsample is None:
        downsample = label_downsample((height, width), mpp)
    grid_shape = (math.ceil(height / downsample), math.ceil(width / downsample))
    labels = rasterize(shapes, grid_shape, downsample)
    return LabelGrid(labels, int(downsample), (height, width), mpp, tuple(classes))


def companion_slide(path: str | os.PathLike) -> Path | None:
    """The slide file beside an annotation file with the same base name, if any.

    ``A01.xml`` -> ``A01.svs``; ``tumor_031.asap.xml`` -> ``tumor_031.tif``;
    ``slide.svs.geojson`` -> ``slide.svs``; ``x.geojson`` -> ``x.ome.tif``.
    Longer base names are tried first, so the closest match wins.
    """
    from razn.slide import TIFF_SUFFIXES

    path = Path(path)
    base = path.name
    while "." in base:
        base = base.rsplit(".", 1)[0]
        candidate = path.with_name(base)
        if candidate.name.lower().endswith(TIFF_SUFFIXES) and candidate.is_file():
            return candidate
        slides = sorted(
            p
            for p in path.parent.glob(glob.escape(base) + ".*")
            if p.name.lower().endswith(TIFF_SUFFIXES) and p.is_file()
        )
        if slides:
            return slides[0]
    return None


def annotation_format(path: str | os.PathLike) -> str | None:
    """The annotation format a file looks like, "geojson", "imagescope" or "asap"; else None.

    Only the first few kilobytes are read: this decides whether a generic
    ``.json`` or ``.xml`` file is an annotation file, quickly and without
    parsing it. A GeoJSON file is recognised by a ``"type": "Feature..."``
    near its start (QuPath writes it first); an XML file by its root
    element. Whether the file is well formed is left to `read_annotations`.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(_PEEK_BYTES)
    except OSError:
        return None
    head = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] in (b"{", b"["):
        return "geojson" if _GEOJSON_TYPE.search(head) else None
    if head[:1] == b"<":
        root = _XML_ROOT.search(_XML_PROLOG.sub(b"", head))
        return _XML_FORMATS.get(root.group(1)) if root else None
    return None


def downsample_from_scales(label_scale: float, slide_scale: float) -> int:
    """The label grid's downsample from its layer scale and the slide layer's.

    Both scales are in the same units (microns per pixel, or pixels), so
    their ratio is level-0 pixels per label pixel.

    Raises
    ------
    ValueError
        The ratio is not a positive whole number: the layers do not belong
        together as a label grid and its slide.
    """
    if not (label_scale > 0 and slide_scale > 0):
        raise ValueError(f"scales must be positive, got {label_scale} and {slide_scale}")
    ratio = label_scale / slide_scale
    downsample = round(ratio)
    if downsample < 1 or not math.isclose(ratio, downsample, rel_tol=1e-6):
        raise ValueError(
            f"the label layer's scale {label_scale:g} is not a whole multiple of the "
            f"slide's {slide_scale:g}, so it is not a label grid of that slide"
        )
    return downsample


def class_table(records: Iterable[Mapping] | None) -> tuple[TissueClass, ...]:
    """Class records ``{"value", "name", "color"}`` (layer metadata, JSON) as a class table.

    None or an empty list gives the default table.
    """
    table = tuple(
        TissueClass(int(r["value"]), str(r["name"]), tuple(int(v) for v in r["color"]))
        for r in records or ()
    )
    return table or DEFAULT_CLASSES


def _extent(geometries) -> tuple[int, int]:
    """Level-0 (height, width) from the origin to the far corner of the geometries."""
    if not geometries:
        return (1, 1)
    _, _, max_x, max_y = shapely.total_bounds(np.asarray(geometries, dtype=object))
    return (max(1, math.ceil(max_y)), max(1, math.ceil(max_x)))
