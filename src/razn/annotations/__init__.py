"""Annotations in and out: QuPath GeoJSON, ImageScope XML, ASAP XML and the label grid.

The bridge between the polygons pathologists draw and the label grids RAZN
trains on and predicts. Everything is in level-0 pixels, origin top left.
See docs/annotations.md for the formats, the class-matching rules and the
overlap rule (the most severe class wins).

- `rasterize` / `vectorize`: polygons <-> label grid (`label_grid`).
- `read_annotations`: any supported file -> `AnnotationSet` (`reader`).
- `write_geojson`: polygons per class -> QuPath GeoJSON (`geojson`).
- `export_label_grid` / `annotation_label_grid`: whole grids <-> files (`export`).
"""

from razn.annotations.export import (
    annotation_format,
    annotation_label_grid,
    class_table,
    companion_slide,
    downsample_from_scales,
    export_label_grid,
)
from razn.annotations.geojson import geojson_features, read_geojson, write_geojson
from razn.annotations.label_grid import polygonal_parts, rasterize, vectorize, vectorize_in_bands
from razn.annotations.model import (
    Annotation,
    AnnotationSet,
    ClassMatch,
    ClassMatcher,
    ImportReport,
)
from razn.annotations.reader import read_annotations

__all__ = [
    "Annotation",
    "AnnotationSet",
    "ClassMatch",
    "ClassMatcher",
    "ImportReport",
    "annotation_format",
    "annotation_label_grid",
    "class_table",
    "companion_slide",
    "downsample_from_scales",
    "export_label_grid",
    "geojson_features",
    "polygonal_parts",
    "rasterize",
    "read_annotations",
    "read_geojson",
    "vectorize",
    "vectorize_in_bands",
    "write_geojson",
]
