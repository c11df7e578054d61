"""`razn export` and `razn convert` on the real CMU slide (2220 x 2967, 0.499 um/px)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from razn.annotations import read_annotations
from razn.classes import BENIGN, INVASIVE, NORMAL
from razn.cli import main
from razn.label_tiff import read_label_grid, write_label_grid

LEVEL0 = (2967, 2220)


def square_feature(x0, y0, side, name):
    ring = [[x0, y0], [x0 + side, y0], [x0 + side, y0 + side], [x0, y0 + side], [x0, y0]]
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"classification": {"name": name, "color": [0, 0, 0]}},
    }


def test_export_a_label_grid_as_qupath_annotations(tmp_path, cmu_svs, capsys):
    labels = np.zeros((371, 278), np.uint8)  # ceil(level 0 / 8)
    labels[100:150, 50:100] = INVASIVE
    labels[200:210, 200:210] = BENIGN  # 100 label px = 100 * (8 * 0.499)^2 um^2
    labels[300, 10] = BENIGN  # a speck
    grid_path, out = tmp_path / "labels.tif", tmp_path / "out.geojson"
    write_label_grid(grid_path, labels, 8, level0_shape=LEVEL0)
    argv = ["export", str(grid_path), "--slide", str(cmu_svs), "-o", str(out)]
    assert main([*argv, "--min-area", "20"]) == 0
    features = json.loads(out.read_text())["features"]
    assert sorted(f["properties"]["classification"]["name"] for f in features) == [
        "Benign",
        "Invasive carcinoma",
    ]
    invasive = next(f for f in features if f["properties"]["classification"]["name"][0] == "I")
    xy = np.asarray(invasive["geometry"]["coordinates"][0])
    assert (xy.min(axis=0) == [400, 800]).all() and (xy.max(axis=0) == [800, 1200]).all()
    assert invasive["properties"]["measurements"]["Area µm^2"] == pytest.approx(
        400 * 400 * 0.499**2, rel=0.01
    )
    assert "wrote 2 feature(s)" in capsys.readouterr().out
    assert main([*argv, "--per-class", "--classes", "benign"]) == 0
    assert len(json.loads(out.read_text())["features"]) == 1


def test_export_refuses_labels_made_for_another_slide(tmp_path, cmu_svs, capsys):
    grid_path, out = tmp_path / "labels.tif", tmp_path / "out.geojson"
    write_label_grid(grid_path, np.ones((100, 100), np.uint8), 8)
    assert main(["export", str(grid_path), "--slide", str(cmu_svs), "-o", str(out)]) == 2
    assert "not this slide's labels" in capsys.readouterr().err and not out.exists()


def test_convert_geojson_to_label_grid_and_back(tmp_path, cmu_svs, capsys):
    source = tmp_path / "in.geojson"
    features = [square_feature(400, 800, 400, "Tumor"), square_feature(1600, 0, 80, "Stroma")]
    source.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    grid_path = tmp_path / "labels.tif"
    argv = ["convert", str(source), "--slide", str(cmu_svs)]
    common = ["--class-map", "Tumor=invasive", "--class-map", "Stroma=1"]
    assert main([*argv, "-o", str(grid_path), "--downsample", "16", *common]) == 0
    err = capsys.readouterr().err  # the class mapping is shown
    assert "class 'Tumor' -> Invasive carcinoma: 1 region(s)" in err
    assert "class 'Stroma' -> Normal: 1 region(s)" in err
    grid = read_label_grid(grid_path)
    assert grid.downsample == 16 and grid.level0_shape == LEVEL0 and grid.mpp == 0.499
    assert (grid.labels[50:75, 25:50] == INVASIVE).all() and grid.labels[0, 101] == NORMAL
    assert np.count_nonzero(grid.labels == INVASIVE) == 25 * 25
    geojson = tmp_path / "out.geojson"
    assert main([*argv, "-o", str(geojson), *common]) == 0
    assert sorted(v for v, _ in read_annotations(geojson).shapes) == [NORMAL, INVASIVE]


def test_convert_real_imagescope_needs_a_class_map(tmp_path, annotations_dir, cmu_svs, capsys):
    # Regions without a class: a label grid cannot hold them and says which
    # flag gives them one; a GeoJSON keeps them as unclassified QuPath annotations.
    source = annotations_dir / "imagescope-all-region-types.xml"
    grid, out = tmp_path / "out.tif", tmp_path / "out.geojson"
    argv = ["convert", str(source), "--slide", str(cmu_svs)]
    assert main([*argv, "-o", str(grid)]) == 2
    err = capsys.readouterr().err
    assert "4 region(s) have no class" in err and "--class-map '=CLASS'" in err
    assert "nothing written" in err and not grid.exists()
    assert main([*argv, "-o", str(out)]) == 0
    assert "unclassified QuPath annotations" in capsys.readouterr().err
    features = json.loads(out.read_text())["features"]
    assert len(features) == 4 and not any("classification" in f["properties"] for f in features)
    assert main([*argv, "-o", str(out), "--class-map", "=benign"]) == 0
    assert len(json.loads(out.read_text())["features"]) == 4


@pytest.mark.parametrize(
    ("output", "message"), [("out.xml", "cannot write .xml"), ("nowhere/out.geojson", "folder")]
)
def test_convert_refuses_outputs_it_cannot_write(
    tmp_path, annotations_dir, cmu_svs, capsys, output, message
):
    source = annotations_dir / "qupath-export-tumor.geojson"
    argv = ["convert", str(source), "--slide", str(cmu_svs), "-o", str(tmp_path / output)]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
