"""ASAP XML: the format of the CAMELYON breast lymph-node annotations.

The layout is ``ASAP_Annotations/Annotations/Annotation[@Type, @PartOfGroup]/
Coordinates/Coordinate[@Order, @X, @Y]`` in level-0 pixels; vertices are put
in ``Order``, not file order. Types Polygon, Rectangle and Spline are read as
polygons through their vertices (a spline's control points, which ASAP draws
as a smooth curve close to them); Dot and PointSet are counted as points and
Measurement and Polyline as lines, and skipped.

The class is the annotation's ``PartOfGroup``, matched by
`razn.annotations.model.ClassMatcher`. Annotations in a group named
"Exclusion" or "_2" are CAMELYON16's exclusion regions (normal tissue inside
a tumour outline): they are cut out of the other regions, not imported.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import shapely

from razn.annotations.label_grid import polygonal_parts
from razn.annotations.model import Annotation, AnnotationSet, ClassMatcher, ImportReport, shown
from razn.classes import DEFAULT_CLASSES, TissueClass
from razn.errors import AnnotationError

__all__ = ["read_asap", "parse_asap"]

_POLYGON_TYPES = {"polygon", "rectangle", "spline"}
_POINT_TYPES = {"dot", "pointset"}
_LINE_TYPES = {"measurement", "polyline"}
_EXCLUSION_GROUPS = {"exclusion", "_2"}


def read_asap(
    path: str | os.PathLike,
    *,
    class_map: Mapping[str, int | str] | None = None,
    classes: tuple[TissueClass, ...] = DEFAULT_CLASSES,
) -> AnnotationSet:
    """Read an ASAP XML file (see the module docstring)."""
    from razn.annotations.safe_xml import parse_xml

    root = parse_xml(Path(path).read_bytes(), path)
    if root.tag != "ASAP_Annotations":
        raise AnnotationError(f"not ASAP XML (root <{root.tag}>, not <ASAP_Annotations>)", path)
    return parse_asap(root, ClassMatcher(classes, class_map), path=path)


def parse_asap(root: ET.Element, matcher: ClassMatcher, *, path=None) -> AnnotationSet:
    """Regions of a parsed ``<ASAP_Annotations>`` element."""
    report = ImportReport("asap")
    regions: list[tuple[str, shapely.Polygon]] = []
    exclusions: list[shapely.Polygon] = []
    for number, annotation in enumerate(root.iterfind("Annotations/Annotation")):
        where = f"annotation {shown(annotation.get('Name') or str(number), 40, quote=False)}"
        kind = (annotation.get("Type") or "Polygon").lower()
        if kind in _POINT_TYPES:
            report.skipped["point"] += 1
            continue
        if kind in _LINE_TYPES:
            report.skipped["line"] += 1
            continue
        if kind not in _POLYGON_TYPES:
            report.skipped[f"type {shown(annotation.get('Type') or '', 40, quote=False)}"] += 1
            continue
        xy = _coordinates(annotation, where, path)
        if len(np.unique(xy, axis=0)) < 3:
            report.skipped["empty" if len(xy) == 0 else "degenerate"] += 1
            continue
        polygon = shapely.Polygon(xy)
        if not polygon.is_valid:
            report.repaired += 1
        group = (annotation.get("PartOfGroup") or "").strip()
        if group.lower() in _EXCLUSION_GROUPS:
            exclusions.extend(polygonal_parts(polygon))
        else:
            regions.extend((group, part) for part in polygonal_parts(polygon))
    excluded = shapely.union_all(exclusions) if exclusions else None
    annotations = []
    for group, polygon in regions:
        value = matcher.match(group)
        parts = polygonal_parts(polygon.difference(excluded)) if excluded else [polygon]
        for part in parts:
            if value is None:
                report.unmatched[group] += 1
            annotations.append(Annotation(part, group, value))
    return AnnotationSet(annotations, report)


def _coordinates(annotation: ET.Element, where: str, path) -> np.ndarray:
    try:
        rows = [
            (float(c.get("Order", i)), float(c.get("X")), float(c.get("Y")))
            for i, c in enumerate(annotation.iterfind("Coordinates/Coordinate"))
        ]
    except (TypeError, ValueError):
        raise AnnotationError(
            f"{where}: a Coordinate without numeric Order, X and Y", path
        ) from None
    table = np.asarray(rows, dtype=np.float64).reshape(-1, 3)
    if not np.isfinite(table).all():
        raise AnnotationError(f"{where}: coordinates must be finite", path)
    return table[np.argsort(table[:, 0], kind="stable"), 1:]
