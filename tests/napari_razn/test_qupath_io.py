"""QuPath in and out of napari: the classes layer to GeoJSON, annotation files to layers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
import yaml

from napari_razn._annotation_reader import get_reader
from napari_razn._writer import export_layer_to_geojson, write_classes_geojson
from razn.annotations import read_annotations
from razn.classes import BENIGN, DEFAULT_CLASSES, INVASIVE, NORMAL
from tests.razn.slide_files import tissue_image, write_ome_pyramid

REAL_FILES = [
    "qupath-export-small.geojson",
    "qupath-export-tumor.geojson",
    "imagescope-freehand.xml",
    "imagescope-all-region-types.xml",
    "camelyon16-tumor031-tissue.asap.xml",
]

# What the lead adds to napari_razn/napari.yaml; validated below against a copy.
MANIFEST_SNIPPET = """
commands:
  - id: napari-razn.get_annotation_reader
    python_name: napari_razn._annotation_reader:get_reader
    title: Open QuPath, ImageScope or ASAP annotations
  - id: napari-razn.write_classes_geojson
    python_name: napari_razn._writer:write_classes_geojson
    title: Save classes as QuPath GeoJSON annotations
readers:
  - command: napari-razn.get_annotation_reader
    filename_patterns: ["*.geojson", "*.json", "*.xml"]
    accepts_directories: false
writers:
  - command: napari-razn.write_classes_geojson
    layer_types: ["labels"]
    filename_extensions: [".geojson"]
    display_name: QuPath GeoJSON annotations
"""


def razn_labels(downsample=8, level0_shape=(320, 480), mpp=None) -> dict:
    return {
        "downsample": downsample,
        "level0_shape": list(level0_shape),
        "mpp": mpp,
        "classes": [
            {"value": c.value, "name": c.name, "color": list(c.color)} for c in DEFAULT_CLASSES
        ],
    }


def classes_layer(labels, downsample=8, mpp=None, metadata=True):
    from napari.layers import Labels

    um = mpp or 1.0
    return Labels(
        labels,
        name="RAZN classes",
        scale=(downsample * um, downsample * um),
        translate=((downsample - 1) / 2 * um,) * 2,
        metadata={"razn_labels": razn_labels(downsample, mpp=mpp)} if metadata else {},
    )


def painted_grid(shape=(40, 60)) -> np.ndarray:
    labels = np.zeros(shape, np.uint8)
    labels[0:4, :] = NORMAL  # glass and normal tissue: not exported by default
    labels[10:20, 30:50] = INVASIVE
    labels[24:30, 4:12] = BENIGN
    return labels


def only_feature(path) -> dict:
    (feature,) = json.loads(path.read_text())["features"]
    return feature


def invasive_feature(path) -> dict:
    features = json.loads(path.read_text())["features"]
    (feature,) = [
        f for f in features if f["properties"]["classification"]["name"] == "Invasive carcinoma"
    ]
    return feature


# --- writer --------------------------------------------------------------------------------


def test_export_puts_the_square_at_level0(tmp_path):
    labels = np.zeros((40, 60), np.uint8)
    labels[10:20, 30:50] = INVASIVE
    path = tmp_path / "square.geojson"
    assert export_layer_to_geojson(classes_layer(labels, mpp=0.5), path) == 1
    feature = only_feature(path)
    assert shapely.geometry.shape(feature["geometry"]).bounds == (240, 80, 400, 160)
    properties = feature["properties"]
    assert properties["objectType"] == "annotation"
    assert properties["classification"] == {"name": "Invasive carcinoma", "color": [211, 47, 47]}
    assert properties["measurements"]["Area µm^2"] > 0.9 * 160 * 80 * 0.25


def test_writer_contribution_leaves_normal_out(tmp_path):
    path = tmp_path / "lesions.geojson"
    attributes = {
        "name": "RAZN classes",
        "scale": (8, 8),
        "metadata": {"razn_labels": razn_labels()},
    }
    assert write_classes_geojson(str(path), painted_grid(), attributes) == [str(path)]
    features = json.loads(path.read_text())["features"]
    names = sorted(f["properties"]["classification"]["name"] for f in features)
    assert names == ["Benign", "Invasive carcinoma"]


def test_layer_without_metadata_takes_its_downsample_from_the_slide(tmp_path):
    from napari.layers import Image

    slide = Image(np.zeros((320, 480), np.uint8), scale=(0.25, 0.25))
    slide.metadata["razn_slide"] = {"mpp": 0.25}
    layer = classes_layer(painted_grid(), mpp=0.25, metadata=False)
    path = tmp_path / "derived.geojson"
    assert export_layer_to_geojson(layer, path, slide_layer=slide) == 2
    feature = invasive_feature(path)
    assert shapely.geometry.shape(feature["geometry"]).bounds == (240, 80, 400, 160)
    assert "measurements" in feature["properties"]  # the slide's mpp reached the export


def test_layer_without_metadata_or_slide_is_refused(tmp_path):
    layer = classes_layer(painted_grid(), metadata=False)
    with pytest.raises(ValueError, match="'RAZN classes'.*downsample is unknown"):
        export_layer_to_geojson(layer, tmp_path / "x.geojson")
    assert not (tmp_path / "x.geojson").exists()


def test_layer_whose_scale_is_no_multiple_of_the_slide_is_refused(tmp_path):
    from napari.layers import Image

    slide = Image(np.zeros((8, 8), np.uint8), scale=(0.3, 0.3))
    layer = classes_layer(painted_grid(), mpp=0.25, metadata=False)
    with pytest.raises(ValueError, match="not a whole multiple"):
        export_layer_to_geojson(layer, tmp_path / "x.geojson", slide_layer=slide)


def test_export_to_a_missing_folder_names_it(tmp_path):
    path = tmp_path / "no such folder" / "x.geojson"
    with pytest.raises(ValueError, match="no such folder"):
        export_layer_to_geojson(classes_layer(painted_grid()), path)


# --- reader --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REAL_FILES)
def test_every_real_annotation_file_opens(annotations_dir, name):
    path = str(annotations_dir / name)
    reader = get_reader(path)
    assert reader is not None
    expected = read_annotations(path)
    # None of these files uses the BACH classes: their regions come as outlines.
    assert expected.unclassified and not expected.shapes
    ((outlines, kwargs, kind),) = reader(path)
    assert kind == "shapes" and kwargs["name"] == name
    assert kwargs["shape_type"] == "polygon"
    assert len(outlines) == len(kwargs["features"]["class"]) >= len(expected.unclassified)
    # Outlines are (row, col) level-0 pixels: their box is the regions' box.
    vertices = np.concatenate(outlines)
    x0, y0, x1, y1 = shapely.total_bounds([a.geometry for a in expected.unclassified])
    np.testing.assert_allclose([*vertices.min(0), *vertices.max(0)], [y0, x0, y1, x1])
    um = expected.report.mpp or 1.0
    assert kwargs["scale"] == (um, um)
    assert kwargs["translate"] == (-um / 2, -um / 2)


@pytest.fixture
def notices(monkeypatch):
    """The napari notifications the reader shows, as (level, message)."""
    import napari.utils.notifications as notifications

    shown = []
    for level in ("info", "warning"):
        monkeypatch.setattr(
            notifications, f"show_{level}", lambda m, level=level: shown.append((level, m))
        )
    return shown


@pytest.mark.parametrize(
    ("name", "regions", "unmatched", "skipped"),
    [
        ("qupath-export-small.geojson", 2, {"Stroma": 1, "Tumor": 1}, {"point": 3}),
        ("qupath-export-tumor.geojson", 3, {"Tumor": 3}, {"point": 3}),
        ("imagescope-freehand.xml", 4, {"": 4}, {}),
        ("imagescope-all-region-types.xml", 4, {"": 4}, {"arrow": 3}),
        ("camelyon16-tumor031-tissue.asap.xml", 10, {"negative": 4, "tissue": 6}, {}),
    ],
)
def test_import_report_says_what_was_read_and_left_out(
    annotations_dir, notices, name, regions, unmatched, skipped
):
    path = str(annotations_dir / name)
    ((_, kwargs, _),) = get_reader(path)(path)
    report = kwargs["metadata"]["import_report"]
    assert report["file"] == path and report["regions"] == regions
    assert {c["source"]: c["regions"] for c in report["classes"]} == unmatched
    assert all(c["razn_class"] is None for c in report["classes"])  # none is a RAZN class
    assert {k: s["objects"] for k, s in report["skipped"].items()} == skipped
    assert all(s["reason"] == "not a polygon" for s in report["skipped"].values())
    # One warning (regions left out of the classes) that says it all.
    ((level, message),) = notices
    assert level == "warning" and message.startswith(f"RAZN: {regions} region(s) read from {name}")
    for text, n in unmatched.items():
        said = f"{text!r} matches no RAZN class: {n}" if text else f"{n} region(s) without a class"
        assert said in message
    for kind, n in skipped.items():
        assert f"skipped {n} {kind} object(s): not a polygon" in message


def _renamed(annotations_dir, tmp_path, name, classes, keep_points=True):
    """A real QuPath export with its class names replaced, written to tmp_path."""
    document = json.loads((annotations_dir / name).read_text())
    features = []
    for f in document["features"]:
        if f["geometry"]["type"] == "Point" and not keep_points:
            continue
        given = (f["properties"].get("classification") or {}).get("name")
        if given in classes:
            f["properties"]["classification"]["name"] = classes[given]
        features.append(f)
    path = tmp_path / name
    path.write_text(json.dumps({**document, "features": features}))
    return str(path)


def test_import_report_names_the_razn_class_of_each_source_class(
    annotations_dir, tmp_path, notices
):
    path = _renamed(annotations_dir, tmp_path, "qupath-export-small.geojson",
                    {"Tumor": "Invasive ductal carcinoma"})  # fmt: skip
    labels, shapes = get_reader(path)(path)
    report = labels[1]["metadata"]["import_report"]
    assert shapes[1]["metadata"]["import_report"] == report
    assert report["classes"] == [
        {"source": "Invasive ductal carcinoma", "razn_class": "Invasive carcinoma",
         "value": INVASIVE, "regions": 1},
        {"source": "Stroma", "razn_class": None, "value": None, "regions": 1},
    ]  # fmt: skip
    assert report["layers"] == {"labels": labels[1]["name"], "shapes": shapes[1]["name"]}
    ((level, message),) = notices
    assert level == "warning"
    assert "'Invasive ductal carcinoma' -> Invasive carcinoma: 1 region(s)" in message
    assert "'Stroma' matches no RAZN class: 1 region(s) shown as outlines in " in message
    assert "'qupath-export-small.geojson (no class)'" in message


def test_a_clean_import_is_information_not_a_warning(annotations_dir, tmp_path, notices):
    path = _renamed(annotations_dir, tmp_path, "qupath-export-tumor.geojson",
                    {"Tumor": "In situ carcinoma"}, keep_points=False)  # fmt: skip
    ((_, kwargs, kind),) = get_reader(path)(path)
    assert kind == "labels"
    assert kwargs["metadata"]["import_report"]["skipped"] == {}
    assert notices == [
        (
            "info",
            "RAZN: 3 region(s) read from qupath-export-tumor.geojson (QuPath GeoJSON); "
            "'In situ carcinoma' -> In situ carcinoma: 3 region(s)",
        )
    ]


def test_imagescope_mpp_scales_the_outlines(annotations_dir):
    path = str(annotations_dir / "imagescope-freehand.xml")
    ((_, kwargs, _),) = get_reader(path)(path)
    assert kwargs["scale"] == pytest.approx((0.499, 0.499))
    assert kwargs["units"] == ("um", "um")


def test_written_classes_read_back_as_the_same_labels(tmp_path):
    labels = painted_grid()
    path = tmp_path / "classes.geojson"
    export_layer_to_geojson(classes_layer(labels), path)
    ((data, kwargs, kind),) = get_reader(str(path))(str(path))
    assert kind == "labels" and kwargs["name"] == "classes.geojson"
    facts = kwargs["metadata"]["razn_labels"]
    assert facts["downsample"] == 8 and facts["mpp"] is None
    assert facts["source"] == str(path)
    # Without a slide the grid ends at the regions' far corner.
    lesions = np.where(labels == NORMAL, 0, labels)
    h, w = data.shape
    np.testing.assert_array_equal(data, lesions[:h, :w])
    assert not lesions[h:].any() and not lesions[:, w:].any()
    assert kwargs["scale"] == (8.0, 8.0) and kwargs["translate"] == (3.5, 3.5)
    colour = kwargs["colormap"].color_dict[INVASIVE]
    np.testing.assert_allclose(colour[:3], np.array([0xD3, 0x2F, 0x2F]) / 255, atol=1e-6)
    assert list(kwargs["features"]["class"])[INVASIVE] == "Invasive carcinoma"


def test_companion_slide_gives_the_grid_and_the_microns(tmp_path):
    height, width = 256, 384
    write_ome_pyramid(tmp_path / "case.ome.tif", tissue_image(height, width), mpp=0.5)
    labels = np.zeros((height // 4, width // 4), np.uint8)  # 2 um label pixels at 0.5 um/px
    labels[10:20, 30:50] = INVASIVE
    labels[40:60, 70:90] = BENIGN
    path = tmp_path / "case.geojson"
    export_layer_to_geojson(classes_layer(labels, downsample=4, mpp=0.5), path)
    ((data, kwargs, _),) = get_reader(str(path))(str(path))
    np.testing.assert_array_equal(data, labels)
    facts = kwargs["metadata"]["razn_labels"]
    assert facts["level0_shape"] == [height, width] and facts["mpp"] == 0.5
    assert kwargs["scale"] == (2.0, 2.0) and kwargs["translate"] == (0.75, 0.75)


def test_classified_and_unclassified_regions_come_as_two_layers(tmp_path):
    def feature(box, classification):
        geometry = shapely.geometry.mapping(shapely.box(*box))
        properties = {"objectType": "annotation", "classification": classification}
        return {"type": "Feature", "geometry": geometry, "properties": properties}

    path = tmp_path / "mixed.json"
    features = [
        feature((0, 0, 80, 40), {"name": "Invasive carcinoma", "color": [211, 47, 47]}),
        feature((100, 100, 140, 160), None),
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    labels, shapes = get_reader(str(path))(str(path))
    assert labels[2] == "labels" and (labels[0] == INVASIVE).sum() == 10 * 5
    assert shapes[2] == "shapes" and shapes[1]["name"] == "mixed.json (no class)"
    np.testing.assert_allclose(shapes[0][0].min(0), [100, 100])


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"type": "FeatureCollection", "features": [', "not valid JSON"),
        ('{"type": "FeatureCollection"}', "no 'features' list"),
        ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": '
         '{"type": "Point", "coordinates": [1, 2]}}]}', "no regions"),
    ],
)  # fmt: skip
def test_malformed_geojson_names_the_file(tmp_path, content, problem):
    path = tmp_path / "broken.geojson"
    path.write_text(content)
    reader = get_reader(str(path))
    assert reader is not None  # the extension claims it, so the error is ours to give
    with pytest.raises(ValueError, match=problem) as caught:
        reader(str(path))
    assert str(path) in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("package.json", '{"name": "napari-razn", "dependencies": {}}'),
        ("settings.json", "[]"),
        ("layout.xml", '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>'),
        ("broken.xml", "<Annotations"),  # a peek cannot tell; reading it would say why
        ("notes.txt", "Annotations"),
    ],
)
def test_other_files_are_not_claimed(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    expected_claim = name == "broken.xml"
    assert (get_reader(str(path)) is not None) == expected_claim


def test_several_files_are_not_claimed(annotations_dir):
    paths = [str(annotations_dir / name) for name in REAL_FILES[:2]]
    assert get_reader(paths) is None
    assert get_reader(paths[:1]) is not None


# --- napari --------------------------------------------------------------------------------


def test_layers_line_up_with_the_slide_in_the_viewer(make_napari_viewer, tmp_path):
    from napari.layers import Layer

    from napari_razn._reader import get_reader as get_slide_reader

    slide_path = tmp_path / "case.ome.tif"
    write_ome_pyramid(slide_path, tissue_image(256, 384), mpp=0.5)
    labels = np.zeros((64, 96), np.uint8)  # the engine's grid: 2 um, downsample 4
    labels[10:20, 30:50] = INVASIVE
    path = tmp_path / "case.geojson"
    export_layer_to_geojson(classes_layer(labels, downsample=4, mpp=0.5), path)
    viewer = make_napari_viewer()
    (slide_data,) = get_slide_reader(str(slide_path))(str(slide_path))
    slide = viewer.add_layer(Layer.create(*slide_data))
    (layer_data,) = get_reader(str(path))(str(path))
    layer = viewer.add_layer(Layer.create(*layer_data))
    # Label pixel (10, 30) covers level-0 pixels 40..43 x 120..123; its centre
    # lies between slide pixels 41 and 42, and 121 and 122.
    np.testing.assert_allclose(layer.data_to_world((10, 30)), slide.data_to_world((41.5, 121.5)))
    np.testing.assert_array_equal(layer.data, labels)
    # The layer in the viewer exports again, as the panel's button does.
    again = tmp_path / "again.geojson"
    assert export_layer_to_geojson(layer, again) == 1
    assert shapely.geometry.shape(only_feature(again)["geometry"]).bounds == (120, 40, 200, 80)


def test_outlines_line_up_with_the_slide_in_the_viewer(make_napari_viewer, annotations_dir):
    from napari.layers import Image, Layer

    path = str(annotations_dir / "imagescope-freehand.xml")
    viewer = make_napari_viewer()
    slide = viewer.add_layer(Image(np.zeros((16, 16), np.uint8), scale=(0.499, 0.499), units="um"))
    (layer_data,) = get_reader(path)(path)
    layer = viewer.add_layer(Layer.create(*layer_data))
    # A vertex at level-0 (x, y) is the corner of slide pixel (y, x): half a
    # pixel before that pixel's centre.
    row, col = layer.data[0][0]
    np.testing.assert_allclose(
        layer.data_to_world((row, col)), slide.data_to_world((row - 0.5, col - 0.5))
    )


def test_manifest_snippet_validates(tmp_path):
    from npe2 import PluginManifest

    from tests.napari_razn.test_manifest import ROOT

    manifest = yaml.safe_load((ROOT / "napari_razn" / "napari.yaml").read_text())
    contributions = manifest["contributions"]
    snippet = yaml.safe_load(MANIFEST_SNIPPET)
    for key, entries in snippet.items():
        present = contributions.setdefault(key, [])
        # Once the lead has merged the snippet, it must be there unchanged.
        present.extend(e for e in entries if e not in present)
    copy = tmp_path / "napari.yaml"
    copy.write_text(yaml.safe_dump(manifest))
    validated = PluginManifest.from_file(copy)
    for command in validated.contributions.commands:
        module, _, attr = command.python_name.partition(":")
        assert hasattr(__import__(module, fromlist=[attr]), attr), command.python_name
    assert [w.filename_extensions for w in validated.contributions.writers] == [[".geojson"]]
