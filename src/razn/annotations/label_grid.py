"""Polygons <-> label grid: rasterising annotations and vectorising segmentations.

A label grid is a raster of class values (docs/design.md: 0 not yet
segmented, 1 normal, 2 benign, 3 in situ, 4 invasive) at an integer
downsample ``d`` of level 0. Label pixel ``(i, j)`` covers the level-0
square ``[j*d, (j+1)*d) x [i*d, (i+1)*d)``; its centre is
``((j+0.5)*d, (i+0.5)*d)``. This module owns the two conversions between
that grid and polygons in level-0 pixels, and one rule ties them together:
**a label pixel belongs to a polygon exactly when its centre lies inside**.

- `rasterize` paints polygons (with holes) with that centre rule; where
  classes overlap the higher value, the more severe class, wins.
- `vectorize` traces each connected region with marching squares
  (`skimage.measure.find_contours`): the outline runs through the midpoints
  between inside and outside pixel centres, so straight edges lie on pixel
  boundaries and corners are cut at 45 degrees. Before simplification,
  rasterising the outlines gives the grid back pixel for pixel.

Example
-------
>>> import numpy as np
>>> labels = np.zeros((4, 4), np.uint8)
>>> labels[1:3, 1:3] = 4                       # a 2x2 invasive square
>>> regions = vectorize(labels, downsample=8)
>>> regions[4].bounds                           # level-0 pixels
(8.0, 8.0, 24.0, 24.0)
>>> bool((rasterize([(4, regions[4])], (4, 4), 8) == labels).all())
True
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np
import shapely
from scipy import ndimage
from shapely.geometry.base import BaseGeometry
from skimage.measure import find_contours

__all__ = ["rasterize", "vectorize", "polygonal_parts"]

# Spans are painted a band of rows at a time through a difference array of
# this many cells, so a slide-sized grid never needs a full-size temporary.
_BAND_CELLS = 1 << 22

# 8-connectivity: diagonal neighbours are one region, which matches how
# find_contours(fully_connected="high") joins them.
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def rasterize(
    shapes: Iterable[tuple[int, BaseGeometry]],
    shape: tuple[int, int],
    downsample: int,
    *,
    fill: int = 0,
    offset: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Paint polygons in level-0 pixels onto a label grid.

    Parameters
    ----------
    shapes
        ``(class_value, geometry)`` pairs; geometries in level-0 pixels.
        Polygons and MultiPolygons are painted with their holes; points and
        lines are ignored (they cover no pixel centre). Invalid polygons are
        repaired with `shapely.make_valid` first.
    shape
        ``(height, width)`` of the label grid.
    downsample
        Integer downsample ``d`` of the grid relative to level 0.
    fill
        Value of pixels no shape covers (0 "not yet segmented"; BACH
        ground truth uses 1, "everything not annotated is normal").
    offset
        Level-0 ``(x, y)`` of the grid's pixel ``(0, 0)`` corner, to paint
        a tile of a larger grid.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array of ``shape``. A pixel takes a shape's value when
        its centre lies inside the shape; where shapes of different classes
        overlap, the highest value (the most severe class) wins.
    """
    downsample = _check_downsample(downsample)
    height, width = (int(n) for n in shape)
    labels = np.full((height, width), _check_value(fill), dtype=np.uint8)
    by_value: dict[int, list[BaseGeometry]] = defaultdict(list)
    for value, geometry in shapes:
        by_value[_check_value(value)].extend(polygonal_parts(geometry))
    # Painting in ascending order lets the more severe class overwrite.
    for value in sorted(by_value):
        polygons = np.asarray(by_value[value], dtype=object)
        if polygons.size:
            rows, starts, stops = _scanline_spans(polygons, height, width, downsample, offset)
            _paint_spans(labels, rows, starts, stops, value)
    return labels


def vectorize(
    labels: np.ndarray,
    downsample: int,
    *,
    simplify: float = 0.0,
    min_area: float = 0.0,
    classes: Iterable[int] | None = None,
    offset: tuple[float, float] = (0.0, 0.0),
) -> dict[int, shapely.MultiPolygon]:
    """Trace a label grid into one MultiPolygon per class, in level-0 pixels.

    Parameters
    ----------
    labels
        2-D integer array of class values (a dask array is computed).
    downsample
        Integer downsample ``d`` of the grid relative to level 0.
    simplify
        Douglas-Peucker tolerance in label pixels: every simplified outline
        stays within this distance of the traced one. 0 keeps every vertex
        (outlines still lose collinear points).
    min_area
        In label pixels^2. Regions with fewer pixels are dropped (specks),
        and holes enclosing less area are filled.
    classes
        Class values to trace; default every non-zero value present.
    offset
        Level-0 ``(x, y)`` of the grid's pixel ``(0, 0)`` corner, so a tile
        can be vectorised in place.

    Returns
    -------
    dict[int, shapely.MultiPolygon]
        Valid MultiPolygons (possibly empty) keyed by class value. Each part
        is one 8-connected region of that class, with its holes.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a label grid is 2-D, got shape {labels.shape}")
    downsample = _check_downsample(downsample)
    if simplify < 0 or min_area < 0:
        raise ValueError("simplify and min_area must be >= 0")
    if classes is None:
        present = np.bincount(labels.ravel(), minlength=1) if labels.size else np.zeros(1)
        classes = [int(v) for v in np.flatnonzero(present) if v != 0]
    return {
        int(value): _trace_class(labels == value, downsample, simplify, min_area, offset)
        for value in classes
    }


def polygonal_parts(geometry: BaseGeometry | None) -> list[shapely.Polygon]:
    """The non-empty polygons of a geometry, repaired if invalid.

    Points and lines have no area and are left out; a self-intersecting
    polygon is repaired with `shapely.make_valid` (a bow tie becomes two
    triangles) rather than rejected.
    """
    if geometry is None or geometry.is_empty:
        return []
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    parts = shapely.get_parts(geometry)
    polygons: list[shapely.Polygon] = []
    for part in parts:
        if isinstance(part, shapely.Polygon):
            if not part.is_empty:
                polygons.append(part)
        elif isinstance(part, shapely.MultiPolygon | shapely.GeometryCollection):
            polygons.extend(polygonal_parts(part))
    return polygons


# --- rasterising ---------------------------------------------------------------------------


def _scanline_spans(polygons, height, width, downsample, offset):
    """Runs of pixel centres inside each polygon, by even-odd scanline.

    skimage.draw.polygon tests every pixel of the bounding box against every
    edge, which is far too slow for a tissue outline spanning a slide; this
    intersects each edge with the pixel-centre rows it crosses instead, all
    polygons at once. Even-odd is exact here because each polygon is valid
    (holes inside the shell, parts disjoint) and is paired on its own.
    """
    rings, ring_polygon = shapely.get_rings(polygons, return_index=True)
    coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
    # Grid units with pixel centres on integers.
    u = (coords[:, 0] - offset[0]) / downsample - 0.5
    v = (coords[:, 1] - offset[1]) / downsample - 0.5
    edge = coord_ring[1:] == coord_ring[:-1]
    u0, v0, u1, v1 = u[:-1][edge], v[:-1][edge], u[1:][edge], v[1:][edge]
    owner = ring_polygon[coord_ring[:-1][edge]]
    # Half-open rule: an edge crosses row i when min(v) <= i < max(v), so a
    # vertex on a row is counted once and horizontal edges never.
    first = np.clip(np.ceil(np.minimum(v0, v1)), 0, height).astype(np.int64)
    stop = np.clip(np.ceil(np.maximum(v0, v1)), 0, height).astype(np.int64)
    count = np.maximum(stop - first, 0)
    total = int(count.sum())
    if total == 0:
        empty = np.empty(0, np.int64)
        return empty, empty, empty
    edge_of = np.repeat(np.arange(count.size), count)
    within = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    rows = first[edge_of] + within
    du = (u1 - u0)[edge_of] / (v1 - v0)[edge_of]
    cross = u0[edge_of] + (rows - v0[edge_of]) * du
    order = np.lexsort((cross, rows, owner[edge_of]))
    rows, cross = rows[order], cross[order]
    # Clipping whole rows keeps an even count per (polygon, row): pair them.
    rows = rows[0::2]
    starts = np.clip(np.ceil(cross[0::2]), 0, width).astype(np.int64)
    stops = np.clip(np.ceil(cross[1::2]), 0, width).astype(np.int64)
    keep = stops > starts
    return rows[keep], starts[keep], stops[keep]


def _paint_spans(labels, rows, starts, stops, value):
    """Set ``labels[row, start:stop] = value`` for every span, a band at a time."""
    if rows.size == 0:
        return
    height, width = labels.shape
    stride = width + 1
    band = max(1, _BAND_CELLS // stride)
    order = np.argsort(rows, kind="stable")
    rows, starts, stops = rows[order], starts[order], stops[order]
    for top in range(int(rows[0]) - int(rows[0]) % band, int(rows[-1]) + 1, band):
        lo, hi = np.searchsorted(rows, [top, top + band])
        if lo == hi:
            continue
        bottom = min(top + band, height)
        cells = (bottom - top) * stride
        local = (rows[lo:hi] - top) * stride
        # Overlapping spans (polygons of one class) add up; > 0 is inside.
        diff = np.bincount(local + starts[lo:hi], minlength=cells)
        diff -= np.bincount(local + stops[lo:hi], minlength=cells)
        inside = np.cumsum(diff.reshape(bottom - top, stride), axis=1)[:, :width] > 0
        labels[top:bottom][inside] = value


# --- vectorising ---------------------------------------------------------------------------


def _trace_class(mask, downsample, simplify, min_area, offset):
    """One class's mask -> a valid MultiPolygon in level-0 pixels."""
    regions, _ = ndimage.label(mask, structure=_EIGHT_CONNECTED, output=np.int32)
    pixel_counts = np.bincount(regions.ravel())
    ring_coords: list[np.ndarray] = []
    rings_per_polygon: list[int] = []
    for index, box in enumerate(ndimage.find_objects(regions), start=1):
        if box is None or pixel_counts[index] < max(min_area, 1):
            continue  # a speck: skip before paying for its tracing
        # One pixel of background around the crop closes every contour.
        region = np.pad(regions[box] == index, 1)
        contours = find_contours(region, 0.5, fully_connected="high")
        areas = np.array([abs(_ring_area(c)) for c in contours])
        shell = int(np.argmax(areas))
        holes = [i for i in range(len(contours)) if i != shell and areas[i] >= min_area]
        row0, col0 = box[0].start - 1, box[1].start - 1  # undo the crop and the pad
        for i in [shell, *holes]:
            rc = _drop_collinear(contours[i])
            xy = np.empty_like(rc)
            xy[:, 0] = (rc[:, 1] + col0 + 0.5) * downsample + offset[0]
            xy[:, 1] = (rc[:, 0] + row0 + 0.5) * downsample + offset[1]
            ring_coords.append(xy)
        rings_per_polygon.append(1 + len(holes))
    del regions
    if not ring_coords:
        return shapely.MultiPolygon()
    ring_offsets = np.concatenate([[0], np.cumsum([len(r) for r in ring_coords])])
    polygon_offsets = np.concatenate([[0], np.cumsum(rings_per_polygon)])
    polygons = shapely.from_ragged_array(
        shapely.GeometryType.POLYGON,
        np.concatenate(ring_coords),
        (ring_offsets, polygon_offsets),
    )
    if simplify > 0:
        polygons = _simplify(polygons, simplify * downsample)
    result = shapely.multipolygons(polygons)
    if not result.is_valid:
        # Simplification can make two close regions of one class touch or
        # overlap; merging them is what the outline then means.
        result = shapely.union_all(polygons)
        result = shapely.multipolygons(polygonal_parts(result))
    return result


def _simplify(polygons: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker simplification that leaves every polygon valid.

    The topology-preserving variant is several times slower, so it is only
    run on the few polygons that the plain one makes invalid.
    """
    simplified = shapely.simplify(polygons, tolerance, preserve_topology=False)
    broken = ~shapely.is_valid(simplified) | shapely.is_empty(simplified)
    if broken.any():
        simplified[broken] = shapely.simplify(polygons[broken], tolerance, preserve_topology=True)
    return simplified


def _drop_collinear(rc: np.ndarray) -> np.ndarray:
    """Remove vertices on straight runs of a closed contour.

    Marching squares puts a vertex at every pixel edge crossed; along
    horizontal, vertical and 45-degree runs those are collinear. Contour
    coordinates are multiples of 0.5, so the cross product test is exact.
    """
    ring = rc[:-1]
    before = ring - np.roll(ring, 1, axis=0)
    after = np.roll(ring, -1, axis=0) - ring
    turn = before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]
    kept = ring[turn != 0]
    return np.concatenate([kept, kept[:1]])


def _ring_area(rc: np.ndarray) -> float:
    """Signed shoelace area of a closed (row, col) contour."""
    r, c = rc[:, 0], rc[:, 1]
    return 0.5 * float(np.dot(c[:-1], r[1:]) - np.dot(c[1:], r[:-1]))


def _check_downsample(downsample) -> int:
    if int(downsample) != downsample or downsample < 1:
        raise ValueError(f"downsample must be a positive integer, got {downsample!r}")
    return int(downsample)


def _check_value(value) -> int:
    if int(value) != value or not 0 <= value <= 255:
        raise ValueError(f"class values are integers 0..255, got {value!r}")
    return int(value)


def vectorize_in_bands(
    read_rows,
    shape: tuple[int, int],
    downsample: int,
    classes: Iterable[int],
    *,
    band_rows: int = 2048,
    simplify: float = 0.0,
    min_area: float = 0.0,
) -> dict[int, shapely.MultiPolygon]:
    """`vectorize` for grids too large to trace at once, a band of rows at a time.

    Tracing a whole grid holds the largest region's bounding box as float64
    (about 1 GB for an 80k x 60k slide); a band holds at most `band_rows`
    rows of it. Regions cut by a band edge are joined again (their outlines
    meet exactly on the pixel boundary there), then simplified.

    Parameters
    ----------
    read_rows : callable (row0, row1) -> 2-D labels of those grid rows (a
        zarr array's slicing, say), so the grid never sits in memory whole.
    shape : the grid's (rows, cols).
    classes : the class values to trace.
    min_area : as `vectorize`, applied once the bands are joined (a region
        cut by a band edge counts whole).
    """
    downsample = _check_downsample(downsample)
    rows = shape[0]
    pieces: dict[int, list] = {int(c): [] for c in classes}
    seams = [r * downsample for r in range(band_rows, rows, band_rows)]
    for r0 in range(0, rows, band_rows):
        band = np.asarray(read_rows(r0, min(rows, r0 + band_rows)))
        traced = vectorize(band, downsample, classes=list(pieces), offset=(0.0, r0 * downsample))
        for value, geometry in traced.items():
            pieces[value].extend(shapely.get_parts(geometry))
    result = {}
    for value, parts in pieces.items():
        at_seam = [p for p in parts if any(p.bounds[1] <= y <= p.bounds[3] for y in seams)]
        whole = [p for p in parts if not any(p.bounds[1] <= y <= p.bounds[3] for y in seams)]
        if at_seam:
            whole.extend(polygonal_parts(shapely.unary_union(at_seam)))
        if min_area > 0:
            whole = _drop_small(whole, min_area * downsample**2)
        if simplify > 0:
            whole = [
                p
                for q in whole
                for p in polygonal_parts(
                    shapely.simplify(q, simplify * downsample, preserve_topology=True)
                )
            ]
        result[value] = shapely.MultiPolygon(whole)
    return result


def _drop_small(polygons, area: float) -> list:
    """Polygons of at least `area` (level-0 px^2), holes under it filled."""
    kept = []
    for p in polygons:
        if p.area < area:
            continue
        holes = [h for h in p.interiors if shapely.Polygon(h).area >= area]
        kept.append(shapely.Polygon(p.exterior, holes))
    return kept
