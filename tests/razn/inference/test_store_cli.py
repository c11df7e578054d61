"""The store through the documented commands: `razn export` and `razn train --labels` take it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from razn.inference.job import segment_slide
from razn.label_grid import read_label_grid
from tests.razn.hostile import run_razn


def razn(*args, cwd=None):
    return run_razn(*args, timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def results(slide_path, model, tmp_path_factory):
    """`results/` as `razn segment` leaves it, beside a copy of the slide's name."""
    out = tmp_path_factory.mktemp("run") / "results"
    out.mkdir()
    segment_slide(slide_path, model, out, device="cpu")
    return out


def test_the_documented_export_command_reads_a_store(results, slide_path):
    # README / user guide: razn export results/x.razn.zarr --slide x.svs -o x.geojson
    cwd = results.parent
    done = razn("export", "results/ellipse.razn.zarr", "--slide", slide_path,
                "-o", "ellipse.geojson", cwd=cwd)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    collection = json.loads((cwd / "ellipse.geojson").read_text())
    names = {f["properties"]["classification"]["name"] for f in collection["features"]}
    labels = np.asarray(read_label_grid(results / "ellipse.razn.zarr").labels)
    present = {int(v) for v in np.unique(labels)} - {0}
    from razn.classes import DEFAULT_CLASSES

    assert names == {c.name for c in DEFAULT_CLASSES if c.value in present}


def test_export_names_a_store_of_another_slide(results, tmp_path):
    from tests.razn.slide_files import tissue_image, write_ome_pyramid

    other = tmp_path / "other.ome.tif"
    write_ome_pyramid(other, tissue_image(512, 512, seed=1), mpp=0.25)
    done = razn(
        "export", results / "ellipse.razn.zarr", "--slide", other, "-o", tmp_path / "x.geojson"
    )
    assert done.returncode == 2
    assert "not this slide's labels" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_train_takes_a_store_as_labels(results, slide_path, tmp_path):
    out = tmp_path / "model"
    done = razn("train", "--config", "scale1-small", "--slides", slide_path,
                "--labels", results / "ellipse.razn.zarr", "--out", out,
                "--iterations", "2", "--batch-size", "2", "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (out / "model.safetensors").is_file()
    assert (out / "metrics.jsonl").read_text().strip()
