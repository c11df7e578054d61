"""QuPath GeoJSON export and import, against what QuPath reads and writes."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
import shapely

from razn.annotations import ClassMatch, ImportReport, read_annotations, vectorize, write_geojson
from razn.classes import BENIGN, IN_SITU, INVASIVE
from razn.errors import AnnotationError

RING_WITH_HOLE = shapely.box(0, 0, 100, 100).difference(shapely.box(40, 40, 60, 60))


def feature(geometry, classification=None, **extra):
    properties = {"objectType": "annotation", **extra}
    if classification is not None:
        properties["classification"] = classification
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def square(x0, y0, side=10):
    ring = [[x0, y0], [x0 + side, y0], [x0 + side, y0 + side], [x0, y0 + side], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


def write_json(path, document) -> str:
    path.write_text(json.dumps(document))
    return path


def test_export_is_what_qupath_reads(tmp_path):
    two_regions = shapely.MultiPolygon([RING_WITH_HOLE, shapely.box(200, 0, 220, 20)])
    path = tmp_path / "out.geojson"
    count = write_geojson(path, {INVASIVE: two_regions, BENIGN: shapely.box(300, 300, 310, 320)})
    document = json.loads(path.read_text())
    assert document["type"] == "FeatureCollection" and count == 3 == len(document["features"])
    for f in document["features"]:
        assert f["type"] == "Feature" and uuid.UUID(f["id"]).version == 4
        assert f["geometry"]["type"] == "Polygon"
        assert f["properties"]["objectType"] == "annotation"
        assert set(f["properties"]["classification"]) == {"name", "color"}
        assert "measurements" not in f["properties"]  # no mpp given
        for ring in f["geometry"]["coordinates"]:
            assert ring[0] == ring[-1] and len(ring) >= 4
    ring_feature = max(document["features"], key=lambda f: len(f["geometry"]["coordinates"]))
    assert ring_feature["properties"]["classification"] == {
        "name": "Invasive carcinoma",
        "color": [211, 47, 47],
    }
    shell, hole = (shapely.LinearRing(r) for r in ring_feature["geometry"]["coordinates"])
    assert shell.is_ccw and not hole.is_ccw  # RFC 7946 orientation
    assert shapely.Polygon(shell, [hole]).equals(RING_WITH_HOLE)


def test_export_one_feature_per_class_with_areas(tmp_path):
    path = tmp_path / "out.geojson"
    regions = shapely.MultiPolygon([shapely.box(0, 0, 10, 10), shapely.box(20, 0, 30, 10)])
    assert write_geojson(path, {IN_SITU: regions}, mpp=0.5, per_region=False) == 1
    (only,) = json.loads(path.read_text())["features"]
    assert only["geometry"]["type"] == "MultiPolygon"
    assert only["properties"]["measurements"] == {"Area µm^2": 50.0}


def test_export_refuses_an_unknown_class_and_writes_nothing(tmp_path):
    path = tmp_path / "out.geojson"
    path.write_text("previous")
    with pytest.raises(ValueError, match="class value 9"):
        write_geojson(path, {9: shapely.box(0, 0, 1, 1)})
    assert path.read_text() == "previous" and len(list(tmp_path.iterdir())) == 1


def test_import_accepts_collection_feature_and_bare_array(tmp_path):
    features = [
        feature(square(0, 0), {"name": "Invasive carcinoma", "color": [1, 2, 3]}),
        feature(square(20, 0), "benign"),  # classification as a plain string
        feature(square(40, 0), {"names": ["Tumor", "In situ"], "color": [0, 0, 0]}),
        feature(square(60, 0)),  # no classification at all
        feature({"type": "Point", "coordinates": [5, 5]}),
        feature({"type": "LineString", "coordinates": [[0, 0], [9, 9]]}),
    ]
    as_collection = read_annotations(
        write_json(tmp_path / "a.geojson", {"type": "FeatureCollection", "features": features})
    )
    as_array = read_annotations(write_json(tmp_path / "b.json", features))
    as_feature = read_annotations(write_json(tmp_path / "c.geojson", features[0]))
    for read in (as_collection, as_array):
        assert [a.class_value for a in read.annotations] == [INVASIVE, BENIGN, IN_SITU, None]
        assert read.report.skipped == {"point": 1, "line": 1}
        assert read.report.unmatched == {"": 1}
    assert as_feature.shapes[0][1].equals(shapely.box(0, 0, 10, 10))


def test_unknown_class_names_are_reported_or_mapped(tmp_path):
    path = write_json(tmp_path / "t.geojson", [feature(square(0, 0), {"name": "Tumor"})])
    assert read_annotations(path).report.unmatched == {"Tumor": 1}
    mapped = read_annotations(path, class_map={"tumor": "Invasive carcinoma"})
    assert mapped.shapes[0][0] == INVASIVE and not mapped.report.unmatched
    with pytest.raises(AnnotationError, match="not a class name"):
        read_annotations(path, class_map={"Tumor": "Cancer"})


def test_a_self_intersecting_polygon_is_repaired_and_reported(tmp_path):
    bow_tie = {"type": "Polygon", "coordinates": [[[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]]]}
    annotations = read_annotations(
        write_json(tmp_path / "b.geojson", [feature(bow_tie, "benign")])
    )
    assert annotations.report.repaired == 1
    assert len(annotations.shapes) == 2 and all(g.is_valid for _, g in annotations.shapes)
    assert sum(g.area for _, g in annotations.shapes) == pytest.approx(50)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"type": "FeatureCollection", "features": [', "not valid JSON"),
        ('{"type": "FeatureCollection"}', "no 'features' list"),
        ('{"type": "FeatureCollection", "features": {}}', "no 'features' list"),
        ('{"type": "Topology"}', "expected a FeatureCollection"),
        (
            '[{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": '
            '[[["0", "0"], ["10", "0"], ["10", "10"], ["0", "0"]]]}}]',
            "number pairs",
        ),
        (
            '[{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": '
            "[[[0, 0], [10, NaN], [10, 10], [0, 0]]]}}]",
            "not valid JSON",
        ),
        (
            '[{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": '
            "[[[0, 0], [10], [10, 10], [0, 0]]]}}]",
            "number pairs",
        ),
        ('[{"type": "Feature", "geometry": {"type": "Curve"}}]', "unknown geometry type"),
        (
            '[{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], '
            '[1, 0], [1, 1]]]}, "properties": {"classification": 7}}]',
            "classification",
        ),
    ],
)
def test_malformed_geojson_is_refused_clearly(tmp_path, text, message):
    path = tmp_path / "bad.geojson"
    path.write_text(text)
    with pytest.raises(AnnotationError, match=message) as error:
        read_annotations(path)
    assert error.value.path == str(path)


def test_vectorised_regions_survive_a_trip_through_qupath_format(tmp_path):
    labels = np.zeros((50, 50), np.uint8)
    labels[5:45, 5:45] = INVASIVE
    labels[15:35, 15:35] = IN_SITU
    regions = vectorize(labels, 16)
    path = tmp_path / "out.geojson"
    write_geojson(path, regions)
    back = read_annotations(path).geometries_by_class()
    for value, geometry in regions.items():
        assert back[value].equals(geometry)


def test_real_qupath_exports_import(annotations_dir):
    tumor = read_annotations(annotations_dir / "qupath-export-tumor.geojson")
    assert len(tumor.annotations) == 3 and {a.source_class for a in tumor.annotations} == {"Tumor"}
    assert tumor.report.skipped == {"point": 3} and tumor.report.unmatched == {"Tumor": 3}
    assert all(a.geometry.is_valid and a.geometry.area > 1000 for a in tumor.annotations)
    small = read_annotations(
        annotations_dir / "qupath-export-small.geojson", class_map={"Tumor": 4, "Stroma": 1}
    )
    assert sorted(small.shapes, key=lambda s: s[0])[0][1].equals(shapely.box(30, 30, 40, 40))
    assert [v for v, _ in small.shapes] == [4, 1] and small.report.skipped == {"point": 3}


def test_the_set_says_which_class_text_matched_which_class(annotations_dir):
    small = read_annotations(
        annotations_dir / "qupath-export-small.geojson", class_map={"Tumor": 4}
    )
    assert small.class_matches() == [
        ClassMatch("Stroma", None, 1),
        ClassMatch("Tumor", INVASIVE, 1),
    ]
    lines = small.report.summary(len(small.annotations))
    assert "skipped 3 point object(s): not a polygon" in lines
    assert ImportReport.skip_reason("region type 9") == "a type RAZN does not read"
