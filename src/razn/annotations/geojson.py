"""QuPath GeoJSON: writing segmentations as QuPath annotations, and reading them back.

The format is the one QuPath itself reads and writes (docs/design.md):
a FeatureCollection whose Features have a UUID ``id``, a Polygon (first ring
the shell, the others holes, every ring closed) or MultiPolygon in level-0
pixels with the origin top left, ``properties.objectType = "annotation"``
and ``properties.classification = {"name": ..., "color": [r, g, b]}`` (QuPath
rejects a classification object without a colour). Rings are written in the
RFC 7946 orientation (shell counter-clockwise in x/y), which QuPath ignores
but other GeoJSON tools expect.

Reading is lenient where QuPath is: a FeatureCollection, a single Feature or
a bare JSON array of Features; a classification object (``name``, QuPath's
derived ``names``), a plain string, or nothing. Points and lines are counted
in the report and skipped. It is strict where being lenient would hide an
error: invalid JSON, a FeatureCollection without ``features`` and
coordinates that are not numbers raise `AnnotationError`.

Example
-------
>>> import shapely
>>> from razn.classes import INVASIVE
>>> features = geojson_features({INVASIVE: shapely.box(0, 0, 64, 32)}, mpp=0.5)
>>> features[0]["properties"]["classification"]
{'name': 'Invasive carcinoma', 'color': [211, 47, 47]}
>>> features[0]["properties"]["measurements"]
{'Area µm^2': 512.0}
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from razn.annotations.label_grid import polygonal_parts
from razn.annotations.model import Annotation, AnnotationSet, ClassMatcher, ImportReport, shown
from razn.atomic import write_text_atomic
from razn.classes import DEFAULT_CLASSES, TissueClass, class_by_value
from razn.errors import AnnotationError

__all__ = ["geojson_features", "write_geojson", "read_geojson", "parse_geojson"]

# The measurement name QuPath uses for an annotation's area.
AREA_MEASUREMENT = "Area µm^2"


def write_geojson(
    path: str | os.PathLike,
    geometries_by_class: Mapping[int, BaseGeometry],
    *,
    classes: tuple[TissueClass, ...] = DEFAULT_CLASSES,
    mpp: float | None = None,
    per_region: bool = True,
    unclassified: tuple[BaseGeometry, ...] | list[BaseGeometry] = (),
) -> int:
    """Write polygons as a QuPath GeoJSON FeatureCollection, atomically.

    Parameters
    ----------
    path
        Output file (``.geojson``); replaced only once fully written.
    geometries_by_class
        Class value -> (Multi)Polygon in level-0 pixels, as `vectorize`
        returns. Empty geometries are left out.
    classes
        Class table giving each value its QuPath name and colour.
    mpp
        Level-0 microns per pixel; when given each feature carries its area
        in um^2 in ``measurements``.
    per_region
        One feature per connected region (each can be clicked in QuPath);
        False writes one MultiPolygon feature per class.
    unclassified
        Regions without a class, written as QuPath writes its own
        unclassified annotations: no ``classification`` at all.

    Returns
    -------
    int
        The number of features written.
    """
    features = geojson_features(
        geometries_by_class, classes=classes, mpp=mpp, per_region=per_region
    )
    for geometry in unclassified:
        for polygon in polygonal_parts(geometry):
            polygon = shapely.orient_polygons(polygon)
            features.append(_feature([polygon], None, mpp))
    text = json.dumps({"type": "FeatureCollection", "features": features}, separators=(",", ":"))
    write_text_atomic(path, text)
    return len(features)


def geojson_features(
    geometries_by_class: Mapping[int, BaseGeometry],
    *,
    classes: tuple[TissueClass, ...] = DEFAULT_CLASSES,
    mpp: float | None = None,
    per_region: bool = True,
) -> list[dict]:
    """QuPath annotation Features for ``geometries_by_class`` (see `write_geojson`)."""
    features = []
    for value, geometry in sorted(geometries_by_class.items()):
        try:
            tissue = class_by_value(value, classes)
        except KeyError:
            raise ValueError(f"class value {value} is not in the class table") from None
        polygons = polygonal_parts(geometry)
        if not polygons:
            continue
        polygons = list(shapely.orient_polygons(np.asarray(polygons, dtype=object)))
        groups = [[p] for p in polygons] if per_region else [polygons]
        for group in groups:
            features.append(_feature(group, tissue, mpp))
    return features


def read_geojson(
    path: str | os.PathLike,
    *,
    class_map: Mapping[str, int | str] | None = None,
    classes: tuple[TissueClass, ...] = DEFAULT_CLASSES,
) -> AnnotationSet:
    """Read a QuPath GeoJSON file (see the module docstring for what is accepted)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise AnnotationError(f"not UTF-8 text: {error.reason}", path) from None
    return parse_geojson(text, ClassMatcher(classes, class_map), path=path)


def parse_geojson(text: str, matcher: ClassMatcher, *, path=None) -> AnnotationSet:
    """Parse GeoJSON text into an `AnnotationSet`; ``path`` names errors only."""
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise AnnotationError(
            "JSON nested too deeply to be GeoJSON (GeoJSON needs at most 4 levels of "
            "coordinate lists)",
            path,
        ) from None
    except json.JSONDecodeError as error:
        raise AnnotationError(
            f"not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})", path
        ) from None
    except ValueError as error:
        raise AnnotationError(f"not valid JSON: {error}", path) from None
    features = _features_of(document, path)
    report = ImportReport("geojson")
    annotations: list[Annotation] = []
    for number, feature in enumerate(features):
        where = f"feature {number}"
        if not isinstance(feature, dict) or feature.get("type", "Feature") != "Feature":
            raise AnnotationError(f"{where} is not a GeoJSON Feature", path)
        properties = feature.get("properties") or {}
        if not isinstance(properties, dict):
            raise AnnotationError(f"{where}: properties must be an object", path)
        source_class = _class_name(properties.get("classification"), where, path)
        for geometry in _polygons(feature.get("geometry"), report, where, path):
            value = matcher.match(source_class)
            if value is None:
                report.unmatched[source_class] += 1
            annotations.append(Annotation(geometry, source_class, value))
    return AnnotationSet(annotations, report)


# --- writing -------------------------------------------------------------------------------


def _feature(
    polygons: list[shapely.Polygon], tissue: TissueClass | None, mpp: float | None
) -> dict:
    if len(polygons) == 1:
        geometry = {"type": "Polygon", "coordinates": _polygon_coordinates(polygons[0])}
    else:
        geometry = {
            "type": "MultiPolygon",
            "coordinates": [_polygon_coordinates(p) for p in polygons],
        }
    properties: dict = {"objectType": "annotation"}
    if tissue is not None:  # QuPath's unclassified annotations have no classification
        properties["classification"] = {"name": tissue.name, "color": list(tissue.color)}
    if mpp:
        area = float(sum(p.area for p in polygons)) * mpp * mpp
        properties["measurements"] = {AREA_MEASUREMENT: round(area, 3)}
    return {
        "type": "Feature",
        "id": str(uuid.uuid4()),
        "geometry": geometry,
        "properties": properties,
    }


def _polygon_coordinates(polygon: shapely.Polygon) -> list:
    rings = [polygon.exterior, *polygon.interiors]
    return [_positions(np.asarray(ring.coords)[:, :2]) for ring in rings]


def _positions(xy: np.ndarray) -> list:
    # Traced outlines sit on multiples of half a label pixel: write integers
    # when they are, to keep slide-sized exports small.
    xy = np.round(xy, 3)
    if np.array_equal(xy, np.round(xy)):
        return xy.astype(np.int64).tolist()
    return xy.tolist()


# --- reading -------------------------------------------------------------------------------


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number GeoJSON allows")


def _features_of(document, path) -> list:
    if isinstance(document, list):
        return document  # QuPath reads a bare array of Features too
    if not isinstance(document, dict):
        raise AnnotationError("expected a FeatureCollection, a Feature or an array", path)
    kind = document.get("type")
    if kind == "FeatureCollection":
        features = document.get("features")
        if not isinstance(features, list):
            raise AnnotationError("FeatureCollection has no 'features' list", path)
        return features
    if kind == "Feature":
        return [document]
    raise AnnotationError(
        f"expected a FeatureCollection, a Feature or an array, got type {kind!r}", path
    )


def _class_name(classification, where, path) -> str:
    if classification is None:
        return ""
    if isinstance(classification, str):
        return classification
    if isinstance(classification, dict):
        # QuPath writes derived classes ("Tumor: Positive") as a list of names.
        names = classification.get("names")
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            return ": ".join(names)
        name = classification.get("name")
        if name is None or isinstance(name, str):
            return name or ""
    raise AnnotationError(f"{where}: classification must be an object or a string", path)


def _polygons(geometry, report: ImportReport, where: str, path) -> list[BaseGeometry]:
    if geometry is None:
        report.skipped["empty"] += 1
        return []
    if not isinstance(geometry, dict):
        raise AnnotationError(f"{where}: geometry must be an object", path)
    kind = geometry.get("type")
    if kind in ("Point", "MultiPoint"):
        report.skipped["point"] += 1
        return []
    if kind in ("LineString", "MultiLineString"):
        report.skipped["line"] += 1
        return []
    if kind == "GeometryCollection":
        members = geometry.get("geometries")
        if not isinstance(members, list):
            raise AnnotationError(f"{where}: GeometryCollection without 'geometries'", path)
        return [g for m in members for g in _polygons(m, report, where, path)]
    if kind not in ("Polygon", "MultiPolygon"):
        what = shown(kind) if isinstance(kind, str) else repr(kind)[:60]
        raise AnnotationError(f"{where}: unknown geometry type {what}", path)
    coordinates = geometry.get("coordinates")
    if not isinstance(coordinates, list):
        raise AnnotationError(f"{where}: {kind} without a 'coordinates' list", path)
    parts = [coordinates] if kind == "Polygon" else coordinates
    polygons = []
    for part in parts:
        if not isinstance(part, list) or not part:
            raise AnnotationError(f"{where}: a polygon must be a list of rings", path)
        rings = [_ring(ring, where, path) for ring in part]
        if rings[0] is None:
            report.skipped["degenerate"] += 1
            continue
        polygon = shapely.Polygon(rings[0], [r for r in rings[1:] if r is not None])
        if not polygon.is_valid:
            report.repaired += 1
        polygons.extend(polygonal_parts(polygon))
    return polygons


def _ring(ring, where, path) -> np.ndarray | None:
    """A ring's positions as an (n, 2) float array; None if it encloses nothing."""
    if isinstance(ring, list) and any(
        type(v) is bool for p in ring if isinstance(p, list) for v in p
    ):
        # JSON true/false would become 1/0: a vertex no one drew.
        raise AnnotationError(
            f"{where}: coordinates must be numbers, not true/false (got {_preview(ring)})",
            path,
        )
    try:
        xy = np.asarray(ring)
    except (ValueError, RecursionError):  # ragged or absurdly deep nesting
        xy = np.asarray([], dtype=object)
    if xy.ndim != 2 or xy.shape[1] not in (2, 3) or xy.dtype.kind not in "iuf":
        raise AnnotationError(
            f"{where}: a ring must be a list of [x, y] number pairs (got {_preview(ring)})",
            path,
        )
    xy = xy[:, :2].astype(np.float64)
    if not np.isfinite(xy).all():
        raise AnnotationError(f"{where}: coordinates must be finite numbers", path)
    if len(np.unique(xy, axis=0)) < 3:
        return None
    return xy


def _preview(value) -> str:
    try:
        text = json.dumps(value)
    except (RecursionError, ValueError, TypeError):
        return "a value nested too deeply to show"
    return text if len(text) <= 60 else text[:57] + "..."
