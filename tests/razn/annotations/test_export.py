"""Whole label grids to QuPath files and back, and the decisions the plugin leaves to the core."""

from __future__ import annotations

import json

import numpy as np
import pytest

from razn.annotations import (
    annotation_format,
    annotation_label_grid,
    class_table,
    companion_slide,
    downsample_from_scales,
    export_label_grid,
    read_annotations,
)
from razn.classes import BENIGN, DEFAULT_CLASSES, IN_SITU, INVASIVE, NORMAL, TissueClass

REAL_FORMATS = {
    "qupath-export-small.geojson": "geojson",
    "qupath-export-tumor.geojson": "geojson",
    "imagescope-freehand.xml": "imagescope",
    "imagescope-all-region-types.xml": "imagescope",
    "camelyon16-tumor031-tissue.asap.xml": "asap",
}


def painted_grid() -> np.ndarray:
    """Downsample-8 grid: invasive at rows 10..19, cols 30..49; normal around it."""
    labels = np.zeros((40, 60), np.uint8)
    labels[0:5, :] = NORMAL
    labels[10:20, 30:50] = INVASIVE
    labels[25:30, 5:10] = IN_SITU
    return labels


def features_of(path) -> list[dict]:
    document = json.loads(path.read_text())
    assert document["type"] == "FeatureCollection"
    return document["features"]


def test_painted_square_lands_at_its_level0_place(tmp_path):
    labels = np.zeros((40, 60), np.uint8)
    labels[10:20, 30:50] = INVASIVE
    path = tmp_path / "square.geojson"
    assert export_label_grid(labels, 8, path) == 1
    (feature,) = features_of(path)
    assert feature["geometry"]["type"] == "Polygon"
    (shell,) = feature["geometry"]["coordinates"]
    assert shell[0] == shell[-1]
    # Label pixels 30..49 x 10..19 cover level-0 x 240..400, y 80..160; the
    # traced outline cuts each corner by half a label pixel (4 px).
    assert {tuple(xy) for xy in shell} == {
        (244, 80), (396, 80), (400, 84), (400, 156),
        (396, 160), (244, 160), (240, 156), (240, 84),
    }  # fmt: skip
    properties = feature["properties"]
    assert properties["objectType"] == "annotation"
    assert properties["classification"] == {"name": "Invasive carcinoma", "color": [211, 47, 47]}
    assert "measurements" not in properties  # no mpp, no area


def test_area_in_square_microns_when_mpp_known(tmp_path):
    labels = np.zeros((40, 60), np.uint8)
    labels[10:20, 30:50] = BENIGN
    path = tmp_path / "benign.geojson"
    export_label_grid(labels, 8, path, mpp=0.5)
    (feature,) = features_of(path)
    # 160 x 80 level-0 pixels less the four cut corners (8 px^2 each), at 0.25 um^2 a pixel.
    area = feature["properties"]["measurements"]["Area µm^2"]
    assert area == pytest.approx((160 * 80 - 4 * 8) * 0.25)


def test_normal_left_out_unless_asked(tmp_path):
    labels = painted_grid()
    default, everything = tmp_path / "lesions.geojson", tmp_path / "all.geojson"
    assert export_label_grid(labels, 8, default) == 2
    names = {f["properties"]["classification"]["name"] for f in features_of(default)}
    assert names == {"Invasive carcinoma", "In situ carcinoma"}
    assert export_label_grid(labels, 8, everything, include_normal=True) == 3
    names = {f["properties"]["classification"]["name"] for f in features_of(everything)}
    assert "Normal" in names and len(names) == 3


def test_values_outside_the_class_table_are_not_exported(tmp_path):
    labels = painted_grid()
    labels[30:35, 40:45] = 7  # painted with a value no class has
    table = (TissueClass(4, "Tumour", (1, 2, 3)),)
    path = tmp_path / "custom.geojson"
    assert export_label_grid(labels, 8, path, classes=table) == 1
    (feature,) = features_of(path)
    assert feature["properties"]["classification"] == {"name": "Tumour", "color": [1, 2, 3]}


def test_empty_grid_writes_an_empty_collection(tmp_path):
    path = tmp_path / "empty.geojson"
    assert export_label_grid(np.zeros((8, 8), np.uint8), 4, path) == 0
    assert features_of(path) == []


def test_export_then_import_gives_the_same_labels(tmp_path):
    labels = painted_grid()
    path = tmp_path / "round.geojson"
    export_label_grid(labels, 8, path, include_normal=True)
    grid = annotation_label_grid(read_annotations(path), level0_shape=(320, 480))
    assert grid.downsample == 8  # no mpp: the engine's default
    assert grid.labels.shape == labels.shape
    np.testing.assert_array_equal(grid.labels, labels)


def test_import_without_a_slide_spans_the_regions(tmp_path):
    labels = painted_grid()
    path = tmp_path / "lesions.geojson"
    export_label_grid(labels, 8, path)
    grid = annotation_label_grid(read_annotations(path))
    # The invasive square reaches x = 400, y = 160; the in situ one y = 240.
    assert grid.level0_shape == (240, 400)
    assert grid.labels.shape == (30, 50)
    expected = np.where(labels == NORMAL, 0, labels)[:30, :50]
    np.testing.assert_array_equal(grid.labels, expected)
    assert grid.mpp is None and grid.classes == DEFAULT_CLASSES


@pytest.mark.parametrize(("mpp", "downsample"), [(0.25, 8), (0.5, 4), (2.0, 1)])
def test_import_downsample_follows_the_mpp(tmp_path, mpp, downsample):
    labels = np.zeros((10, 10), np.uint8)
    labels[2:4, 2:4] = INVASIVE
    path = tmp_path / "lesion.geojson"
    export_label_grid(labels, 8, path)
    grid = annotation_label_grid(read_annotations(path), mpp=mpp)
    assert grid.downsample == downsample
    # The square covers level-0 16..32 whatever the grid.
    rows, cols = np.nonzero(grid.labels == INVASIVE)
    assert (rows.min() * downsample, (rows.max() + 1) * downsample) == (16, 32)
    assert (cols.min() * downsample, (cols.max() + 1) * downsample) == (16, 32)


def test_companion_slide_is_found_by_base_name(tmp_path):
    for name in ("A01.svs", "tumor_031.tif", "slide.svs", "x.ome.tif", "A01.png"):
        (tmp_path / name).write_bytes(b"II*\x00")
    assert companion_slide(tmp_path / "A01.xml") == tmp_path / "A01.svs"
    assert companion_slide(tmp_path / "tumor_031.asap.xml") == tmp_path / "tumor_031.tif"
    assert companion_slide(tmp_path / "slide.svs.geojson") == tmp_path / "slide.svs"
    assert companion_slide(tmp_path / "x.geojson") == tmp_path / "x.ome.tif"
    assert companion_slide(tmp_path / "B02.xml") is None
    # The base name is matched whole, not as a pattern or a prefix.
    assert companion_slide(tmp_path / "A0.xml") is None
    assert companion_slide(tmp_path / "A0?.xml") is None


def test_real_annotation_files_are_recognised(annotations_dir):
    found = {p.name: annotation_format(p) for p in annotations_dir.iterdir()}
    assert found == REAL_FORMATS


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("package.json", '{"name": "napari-razn", "version": "1.0", "type": "module"}'),
        ("data.json", "[1, 2, 3]"),
        ("tile.json", '{"type": "Topology", "objects": {}}'),
        ("layout.xml", '<?xml version="1.0"?>\n<!-- Annotations -->\n<svg><g/></svg>'),
        ("pom.xml", "<project><Annotations/></project>"),
        ("notes.xml", "plain text, not XML"),
        ("empty.json", ""),
    ],
)
def test_other_json_and_xml_files_are_not_annotations(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    assert annotation_format(path) is None


def test_annotation_roots_behind_a_prolog(tmp_path):
    path = tmp_path / "a.xml"
    path.write_text('\ufeff<?xml version="1.0"?>\n<!-- by hand -->\n<ASAP_Annotations/>')
    assert annotation_format(path) == "asap"
    path.write_text('[{"type": "Feature", "geometry": null}]')
    assert annotation_format(path) == "geojson"
    assert annotation_format(tmp_path / "missing.json") is None


def test_downsample_from_scales():
    assert downsample_from_scales(8 * 0.499, 0.499) == 8
    assert downsample_from_scales(16.0, 1.0) == 16
    with pytest.raises(ValueError, match="not a whole multiple"):
        downsample_from_scales(3.3, 1.0)
    with pytest.raises(ValueError, match="not a whole multiple"):
        downsample_from_scales(0.25, 1.0)
    with pytest.raises(ValueError, match="positive"):
        downsample_from_scales(0.0, 1.0)


def test_class_table_from_layer_metadata():
    records = [{"value": 2, "name": "Benign", "color": [255, 193, 7]}]
    assert class_table(records) == (TissueClass(BENIGN, "Benign", (255, 193, 7)),)
    assert class_table(None) == DEFAULT_CLASSES
    assert class_table([]) == DEFAULT_CLASSES
