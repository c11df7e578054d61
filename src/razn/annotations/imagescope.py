"""Aperio ImageScope XML: the format the BACH whole-slide annotations ship in.

The layout is ``Annotations[@MicronsPerPixel]/Annotation/Regions/Region/
Vertices/Vertex[@X, @Y]`` in level-0 pixels. Region ``Type`` decides the
shape: 0 freehand (a polygon through the vertices), 1 rectangle (its corner
vertices), 2 ellipse (inscribed in the box its two vertices span, written as
a 64-gon), 3 arrow (skipped, it points rather than outlines); other types are
skipped and counted. A region with ``NegativeROA="1"`` is ImageScope's
negative region: it is cut out of the positive regions of its annotation.

The class is taken as public BACH readers take it: the Region's first
non-empty ``Attributes/Attribute@Value``, else ``Region@Text``, then matched
by `razn.annotations.model.ClassMatcher` ("benign", "in situ", "invasive");
text that matches nothing is reported, not guessed. ``MicronsPerPixel`` is
read when it is positive (ImageScope writes 0 when it does not know).
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

__all__ = ["read_imagescope", "parse_imagescope"]

FREEHAND, RECTANGLE, ELLIPSE, ARROW = 0, 1, 2, 3
_ELLIPSE_VERTICES = 64


def read_imagescope(
    path: str | os.PathLike,
    *,
    class_map: Mapping[str, int | str] | None = None,
    classes: tuple[TissueClass, ...] = DEFAULT_CLASSES,
) -> AnnotationSet:
    """Read an ImageScope XML file (see the module docstring)."""
    from razn.annotations.safe_xml import parse_xml

    root = parse_xml(Path(path).read_bytes(), path)
    if root.tag != "Annotations":
        raise AnnotationError(f"not ImageScope XML (root <{root.tag}>, not <Annotations>)", path)
    return parse_imagescope(root, ClassMatcher(classes, class_map), path=path)


def parse_imagescope(root: ET.Element, matcher: ClassMatcher, *, path=None) -> AnnotationSet:
    """Regions of a parsed ImageScope ``<Annotations>`` element."""
    report = ImportReport("imagescope", mpp=_mpp(root.get("MicronsPerPixel"), path))
    annotations: list[Annotation] = []
    regions_seen = 0
    for number, annotation in enumerate(root.iter("Annotation"), start=1):
        positive: list[tuple[str, shapely.Polygon]] = []
        negative: list[shapely.Polygon] = []
        for region in annotation.iter("Region"):
            regions_seen += 1
            where = (
                f"annotation {shown(annotation.get('Id', str(number)), 20, quote=False)} "
                f"region {shown(region.get('Id', '?'), 20, quote=False)}"
            )
            polygon = _region_polygon(region, report, where, path)
            if polygon is None:
                continue
            if not polygon.is_valid:
                report.repaired += 1
            parts = polygonal_parts(polygon)
            if region.get("NegativeROA", "0") == "1":
                negative.extend(parts)
            else:
                positive.extend((_region_class(region), part) for part in parts)
        hole = shapely.union_all(negative) if negative else None
        for text, polygon in positive:
            if hole is not None:
                polygon = polygon.difference(hole)
            value = matcher.match(text)
            for part in polygonal_parts(polygon):
                if value is None:
                    report.unmatched[text] += 1
                annotations.append(Annotation(part, text, value))
    if regions_seen == 0:
        raise AnnotationError("ImageScope XML without any <Region>: nothing to import", path)
    return AnnotationSet(annotations, report)


def _region_class(region: ET.Element) -> str:
    for attribute in region.findall("Attributes/Attribute"):
        value = (attribute.get("Value") or "").strip()
        if value:
            return value
    return (region.get("Text") or "").strip()


def _region_polygon(region: ET.Element, report: ImportReport, where: str, path):
    try:
        kind = int(region.get("Type", FREEHAND))
    except ValueError:
        raise AnnotationError(
            f"{where}: Type {shown(region.get('Type') or '')} is not a number", path
        ) from None
    if kind == ARROW:
        report.skipped["arrow"] += 1
        return None
    if kind not in (FREEHAND, RECTANGLE, ELLIPSE):
        report.skipped[f"region type {kind}"] += 1
        return None
    xy = _vertices(region, where, path)
    if len(xy) == 0:
        report.skipped["empty"] += 1
        return None
    if kind == ELLIPSE or (kind == RECTANGLE and len(xy) == 2):
        (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
        if x1 <= x0 or y1 <= y0:
            report.skipped["degenerate"] += 1
            return None
        if kind == RECTANGLE:
            return shapely.box(x0, y0, x1, y1)
        angle = np.linspace(0, 2 * np.pi, _ELLIPSE_VERTICES, endpoint=False)
        centre, radius = ((x0 + x1) / 2, (y0 + y1) / 2), ((x1 - x0) / 2, (y1 - y0) / 2)
        xy = np.column_stack(
            [centre[0] + radius[0] * np.cos(angle), centre[1] + radius[1] * np.sin(angle)]
        )
    if len(np.unique(xy, axis=0)) < 3:
        report.skipped["degenerate"] += 1
        return None
    return shapely.Polygon(xy)


def _vertices(region: ET.Element, where: str, path) -> np.ndarray:
    try:
        xy = [(float(v.get("X")), float(v.get("Y"))) for v in region.iter("Vertex")]
    except (TypeError, ValueError):
        raise AnnotationError(f"{where}: a Vertex without numeric X and Y", path) from None
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(xy).all():
        raise AnnotationError(f"{where}: vertex coordinates must be finite", path)
    return xy


def _mpp(text: str | None, path) -> float | None:
    if text is None:
        return None
    try:
        mpp = float(text)
    except ValueError:
        raise AnnotationError(f"MicronsPerPixel {shown(text)} is not a number", path) from None
    return mpp if np.isfinite(mpp) and mpp > 0 else None
