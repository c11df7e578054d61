"""`razn segment`: outputs, resume after a kill, bad input, a dask cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import zarr

from razn.areas import class_areas_mm2
from razn.classes import DEFAULT_CLASSES
from razn.cli import main
from razn.inference.store import SegmentationStore


def segment_command(*args) -> list[str]:
    return [sys.executable, "-m", "razn.cli", "segment", *map(str, args)]


def run_segment(*args) -> None:
    done = subprocess.run(segment_command(*args), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_outputs_and_json_summary(slide_path, checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(["segment", str(slide_path), "--model", str(checkpoint), "--out", str(out), "--json"])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["tiles"] == 48 and 0 < summary["tissue_tiles"] < 48
    assert 0 <= summary["zoom_fraction"] <= 1 and summary["seconds"] > 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["ellipse.geojson", "ellipse.overview.png", "ellipse.razn.zarr"]
    store = SegmentationStore.open(out / "ellipse.razn.zarr")
    assert np.asarray(store.done[...]).all()
    # The store's labels read as a label grid (what `razn export` takes).
    from razn.label_tiff import read_label_grid

    grid = read_label_grid(out / "ellipse.razn.zarr")
    assert grid.downsample == 8 and grid.level0_shape == (1536, 2048)
    # Class areas: the labels' pixel counts through the one area formula, to 4 places.
    counts = np.bincount(np.asarray(store.labels[...]).ravel(), minlength=5)
    expected = class_areas_mm2(counts, DEFAULT_CLASSES, 8, 0.25)
    assert summary["class_area_mm2"] == {k: round(v, 4) for k, v in expected.items()}
    assert summary["class_area_mm2"]["Normal"] > 0
    geojson = json.loads((out / "ellipse.geojson").read_text())
    assert geojson["type"] == "FeatureCollection"


def test_resume_after_kill_gives_the_same_result(slide_path, checkpoint, tmp_path):
    reference = tmp_path / "reference"
    run_segment(slide_path, "--model", checkpoint, "--out", reference)
    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(
        segment_command(
            slide_path, "--model", checkpoint, "--out", interrupted, "--batch-size", "1"
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store_path = interrupted / "ellipse.razn.zarr" / "razn" / "done"
    deadline = time.monotonic() + 240
    killed = False
    while process.poll() is None and time.monotonic() < deadline:
        if store_path.exists():
            done = np.asarray(zarr.open_array(str(store_path), mode="r")[...])
            if 0 < done.sum() < done.size:
                os.kill(process.pid, signal.SIGKILL)
                killed = True
                break
        time.sleep(0.05)
    process.wait(30)
    if not killed:
        pytest.skip("the run finished before it could be interrupted")
    partial = np.asarray(zarr.open_array(str(store_path), mode="r")[...])
    assert 0 < partial.sum() < partial.size
    assert not (interrupted / "ellipse.geojson").exists()
    run_segment(slide_path, "--model", checkpoint, "--out", interrupted)
    a = zarr.open_group(str(reference / "ellipse.razn.zarr"), mode="r")
    b = zarr.open_group(str(interrupted / "ellipse.razn.zarr"), mode="r")
    for name in ("labels/classes/0", "labels/zoomed/0", "razn/tissue",
                 "razn/done"):  # fmt: skip
        np.testing.assert_array_equal(a[name][...], b[name][...])
    np.testing.assert_array_equal(a["zoom_p"][...], b["zoom_p"][...])


def test_bad_inputs_leave_nothing_behind(slide_path, checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    bad = tmp_path / "broken.svs"
    bad.write_text("not a slide")
    assert main(["segment", str(bad), "--model", str(checkpoint), "--out", str(out)]) == 1
    assert "broken.svs" in capsys.readouterr().err
    assert list(out.iterdir()) == []
    pickle = tmp_path / "model.pt"
    pickle.write_bytes(b"\x80\x04K\x01.")
    assert main(["segment", str(slide_path), "--model", str(pickle), "--out", str(out)]) == 2
    assert "pickle" in capsys.readouterr().err
    assert main(["segment", str(slide_path), "--out", str(out), "--threshold", "2"]) == 2
    assert list(out.iterdir()) == []


def test_a_missing_device_stops_before_any_slide(
    slide_path, checkpoint, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a GPU-less machine
    out = tmp_path / "out"
    args = ["segment", str(slide_path), "--model", str(checkpoint), "--out", str(out)]
    assert main([*args, "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("razn segment: error: device cuda is not available here (found: ")
    assert len(err.strip().splitlines()) == 1
    assert list(out.iterdir()) == []


def test_a_store_with_other_settings_is_not_mixed(slide_path, checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["segment", str(slide_path), "--model", str(checkpoint), "--out", str(out)]
    assert main([*args, "--threshold", "0.5"]) == 0
    assert main([*args, "--threshold", "0.2"]) == 1
    assert "other settings (threshold differs)" in capsys.readouterr().err


@pytest.mark.slow
def test_two_worker_local_cluster(slide_path, checkpoint, tmp_path, capsys):
    pytest.importorskip("distributed")
    bad = tmp_path / "broken.svs"
    bad.write_text("not a slide")
    out = tmp_path / "out"
    code = main(
        ["segment", str(slide_path), str(bad), "--model", str(checkpoint), "--out", str(out),
         "--workers", "2", "--json"]
    )  # fmt: skip
    assert code == 1  # one slide failed...
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_name = {os.path.basename(r["slide"]): r for r in lines}
    assert "error" in by_name["broken.svs"]
    assert by_name["ellipse.ome.tif"]["tiles"] == 48  # ...and the other finished
    assert (out / "ellipse.geojson").exists()


def test_large_grids_are_traced_in_bands(slide_path, checkpoint, tmp_path, capsys, monkeypatch):
    import razn.inference.job as job

    whole, banded = tmp_path / "whole", tmp_path / "banded"
    args = ["segment", str(slide_path), "--model", str(checkpoint), "--json"]
    assert main([*args, "--out", str(whole)]) == 0
    monkeypatch.setattr(job, "BAND_ROWS", 50)  # the 192-row grid in 4 bands
    assert main([*args, "--out", str(banded)]) == 0
    a, b = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert a["class_area_mm2"] == b["class_area_mm2"]
    features = [
        json.loads((o / "ellipse.geojson").read_text())["features"] for o in (whole, banded)
    ]
    assert len(features[0]) == len(features[1])


def test_the_threshold_defaults_to_the_models_own(slide_path, model, tmp_path, capsys):
    from razn.models import default_threshold, save_checkpoint

    tuned = save_checkpoint(model, tmp_path / "tuned.safetensors",
                            training={"default_threshold": 0.3})  # fmt: skip
    plain = save_checkpoint(model, tmp_path / "plain.safetensors")
    assert default_threshold(tuned) == 0.3 and default_threshold(plain) == 0.5
    for path, expected in ((tuned, 0.3), (plain, 0.5)):
        out = tmp_path / path.stem
        assert main(["segment", str(slide_path), "--model", str(path), "--out", str(out)]) == 0
        store = SegmentationStore.open(out / "ellipse.razn.zarr")
        assert store.settings["threshold"] == expected
    # An explicit --threshold wins.
    out = tmp_path / "explicit"
    args = ["segment", str(slide_path), "--model", str(tuned), "--out", str(out)]
    assert main([*args, "--threshold", "0.7"]) == 0
    assert SegmentationStore.open(out / "ellipse.razn.zarr").settings["threshold"] == 0.7
