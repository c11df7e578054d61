"""Rasterising polygons onto the label grid and vectorising it back."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from razn.annotations import rasterize, read_annotations, vectorize, write_geojson
from razn.classes import BENIGN, IN_SITU, INVASIVE, NORMAL


def random_tissue(seed: int, shape=(120, 160), downsample=4):
    """Blobs of every class, some with holes and islands in the holes."""
    rng = np.random.default_rng(seed)
    shapes = []
    height, width = shape
    for _ in range(12):
        value = int(rng.integers(1, 5))
        x, y = rng.uniform(0, width * downsample), rng.uniform(0, height * downsample)
        radius = rng.uniform(60, 200)
        blob = shapely.Point(x, y).buffer(radius, quad_segs=int(rng.integers(2, 9)))
        if rng.random() < 0.6:
            blob = blob.difference(shapely.Point(x, y).buffer(radius * rng.uniform(0.2, 0.6)))
        shapes.append((value, blob))
    return rasterize(shapes, shape, downsample)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


@pytest.mark.parametrize("seed", range(4))
def test_round_trip_through_geojson_keeps_every_class(tmp_path, seed):
    labels = random_tissue(seed)
    assert len(np.unique(labels)) >= 3
    path = tmp_path / "regions.geojson"
    # 0.3 label pixels, the CLI's default: corners stay off every pixel centre.
    write_geojson(path, vectorize(labels, 4, simplify=0.3), mpp=0.25)
    back = rasterize(read_annotations(path).shapes, labels.shape, 4)
    for value in (NORMAL, BENIGN, IN_SITU, INVASIVE):
        assert iou(labels == value, back == value) >= 0.99, value


def test_unsimplified_outlines_rasterise_to_the_same_grid():
    labels = random_tissue(7)
    regions = vectorize(labels, 4, simplify=0)
    np.testing.assert_array_equal(rasterize(regions.items(), labels.shape, 4), labels)


def test_painted_square_lands_at_its_level0_coordinates(tmp_path):
    labels = np.zeros((40, 60), np.uint8)
    labels[10:20, 30:50] = IN_SITU  # rows 10..19, columns 30..49
    path = tmp_path / "square.geojson"
    write_geojson(path, vectorize(labels, 4), mpp=0.5)
    (feature,) = json.loads(path.read_text())["features"]
    (ring,) = feature["geometry"]["coordinates"]
    assert ring[0] == ring[-1]
    # Edges lie on the pixel boundaries x = 120, 200 and y = 40, 80; the
    # corners are cut at 45 degrees through the boundary midpoints.
    assert {tuple(p) for p in ring} == {
        (120, 42),
        (122, 40),
        (198, 40),
        (200, 42),
        (200, 78),
        (198, 80),
        (122, 80),
        (120, 78),
    }
    assert feature["properties"]["measurements"]["Area µm^2"] == pytest.approx(
        (80 * 40 - 4 * 2) * 0.25
    )


def test_holes_and_islands_are_kept():
    labels = np.zeros((30, 30), np.uint8)
    labels[2:28, 2:28] = INVASIVE
    labels[8:22, 8:22] = 0
    labels[12:18, 12:18] = INVASIVE  # an island inside the hole
    regions = vectorize(labels, 2)[INVASIVE]
    assert regions.is_valid and len(regions.geoms) == 2
    ring, island = sorted(regions.geoms, key=lambda p: -p.area)
    assert len(ring.interiors) == 1 and len(island.interiors) == 0
    assert island.within(shapely.Polygon(ring.interiors[0]))


def test_min_area_drops_specks_and_fills_small_holes():
    labels = np.zeros((40, 40), np.uint8)
    labels[5:35, 5:35] = BENIGN
    labels[10, 10] = 0  # a one-pixel hole
    labels[20:30, 20:30] = 0  # a 100-pixel hole
    labels[1, 38] = BENIGN  # a one-pixel speck
    kept = vectorize(labels, 1, min_area=4)[BENIGN]
    assert len(kept.geoms) == 1 and len(kept.geoms[0].interiors) == 1
    everything = vectorize(labels, 1)[BENIGN]
    largest = max(everything.geoms, key=lambda p: p.area)
    assert len(everything.geoms) == 2 and len(largest.interiors) == 2


def test_simplify_stays_within_its_tolerance():
    labels = random_tissue(3)
    exact = vectorize(labels, 4)
    simple = vectorize(labels, 4, simplify=1.5)
    for value, geometry in simple.items():
        assert geometry.is_valid
        assert shapely.get_num_coordinates(geometry) < shapely.get_num_coordinates(exact[value])
        assert shapely.hausdorff_distance(geometry, exact[value]) <= 1.5 * 4 + 1e-9


def test_a_tile_vectorised_in_place_matches_the_whole_grid():
    labels = random_tissue(5)
    tile = labels[40:80, 60:120]
    in_place = vectorize(tile, 4, offset=(60 * 4, 40 * 4))
    crop = shapely.box(60 * 4, 40 * 4, 120 * 4, 80 * 4)
    for value, geometry in vectorize(labels, 4).items():
        assert in_place[value].symmetric_difference(geometry.intersection(crop)).area < 4 * 4 * 4


def test_rasterize_uses_pixel_centres_and_the_most_severe_class():
    square = shapely.box(8, 8, 24, 16)  # covers centres of rows 1, columns 1..2
    labels = rasterize([(INVASIVE, square), (BENIGN, shapely.box(0, 0, 32, 32))], (4, 4), 8)
    expected = np.full((4, 4), BENIGN)
    expected[1, 1:3] = INVASIVE
    np.testing.assert_array_equal(labels, expected)
    # A shape that covers no pixel centre paints nothing.
    assert not rasterize([(BENIGN, shapely.box(0, 0, 3, 3))], (4, 4), 8).any()


def test_rasterize_fills_the_background_and_ignores_points():
    labels = rasterize([(IN_SITU, shapely.Point(5, 5))], (3, 3), 4, fill=NORMAL)
    assert (labels == NORMAL).all() and labels.dtype == np.uint8


def test_rasterize_repairs_a_bow_tie():
    bow_tie = shapely.Polygon([(0, 0), (40, 40), (40, 0), (0, 40)])
    labels = rasterize([(BENIGN, bow_tie)], (10, 10), 4)
    assert labels[2, 0] == BENIGN and labels[2, 9] == BENIGN and labels[0, 5] == 0


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="downsample"):
        vectorize(np.zeros((2, 2), np.uint8), 0)
    with pytest.raises(ValueError, match="0..255"):
        rasterize([(300, shapely.box(0, 0, 1, 1))], (2, 2), 1)


def test_vectorize_only_the_classes_asked_for():
    labels = random_tissue(1)
    assert set(vectorize(labels, 4, classes=[INVASIVE])) == {INVASIVE}
    assert vectorize(np.zeros((5, 5), np.uint8), 4) == {}


@settings(max_examples=60, deadline=None)
@given(
    labels=arrays(
        np.uint8, st.tuples(st.integers(1, 24), st.integers(1, 24)), elements=st.integers(0, 4)
    ),
    downsample=st.integers(1, 16),
    offset=st.tuples(st.integers(-50, 50), st.integers(-50, 50)),
)
def test_property_vectorize_then_rasterize_is_exact(labels, downsample, offset):
    regions = vectorize(labels, downsample, offset=offset)
    assert all(g.is_valid and g.geom_type == "MultiPolygon" for g in regions.values())
    back = rasterize(regions.items(), labels.shape, downsample, offset=offset)
    np.testing.assert_array_equal(back, labels)


@settings(max_examples=40, deadline=None)
@given(
    points=st.lists(st.tuples(st.floats(0, 200), st.floats(0, 200)), min_size=3, max_size=12),
    hole_scale=st.floats(0.1, 0.8),
)
def test_property_rasterised_polygons_survive_a_trip_through_vectors(points, hole_scale):
    shell = shapely.Polygon(points).convex_hull
    if shell.geom_type != "Polygon" or shell.area < 1:
        return
    hole = shapely.affinity.scale(shell, hole_scale, hole_scale)
    labels = rasterize([(IN_SITU, shell.difference(hole))], (26, 26), 8)
    regions = vectorize(labels, 8, simplify=0.4)
    again = rasterize(regions.items(), labels.shape, 8)
    # Simplifying by under half a pixel may move a boundary pixel, no more.
    assert np.count_nonzero(again != labels) <= max(2, 0.02 * np.count_nonzero(labels))
