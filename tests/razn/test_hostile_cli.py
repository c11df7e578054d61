"""Issue 15: hostile and clumsy input through the documented CLI, one test per row.

Every refusal is checked as a user meets it: `razn ...` in a subprocess,
the exit code of the convention in `razn --help`, one line on stderr, no
traceback, nothing half-written or falsely complete left behind. Inputs that
used to hang are timed: the whole command, Python's start-up included, must
end within `HANG_BOUND_S`.

Read-only folders: root ignores permission bits, so as root the command runs
as the unprivileged uid 65534 through `setpriv` (as any other user, a
chmod 0o555 folder is enough). A full disk is a real 1 MB tmpfs filled to
the brim when `mount` works (root), and otherwise skipped; the in-process
test beside it raises ENOSPC from inside the writer on every machine.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from razn.models import build_model, get_config, save_checkpoint
from tests.razn.hostile import (
    HANG_BOUND_S,
    assert_clean_error,
    blank_slide,
    extra_seconds,
    feature,
    nested_json,
    png_claiming,
    run_razn,
    tiff_claiming,
    write_features,
)
from tests.razn.slide_files import tissue_image, write_ome_pyramid

NOBODY = 65534


# --- fixtures: a world-readable folder, a small slide and a small model --------------------


@pytest.fixture(scope="module")
def world():
    """A folder every user can read (pytest's tmp_path is private to its owner)."""
    folder = Path(tempfile.mkdtemp(prefix="razn-hostile-"))
    os.chmod(folder, 0o755)
    yield folder
    for root, dirs, _ in os.walk(folder):
        for name in dirs:
            os.chmod(Path(root) / name, 0o755)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def slide(world) -> Path:
    path = world / "ellipse.ome.tif"
    write_ome_pyramid(path, tissue_image(512, 768, seed=3), mpp=0.5)
    os.chmod(path, 0o644)
    return path


def _small_model():
    torch.manual_seed(0)
    return build_model(get_config("razn-small").with_(patch_size=64)).eval()


@pytest.fixture(scope="module")
def checkpoint(world) -> Path:
    path = save_checkpoint(_small_model(), world / "small.safetensors")
    os.chmod(path, 0o644)
    return path


def _rewrite_checkpoint(source: Path, target: Path, *, tensors=None, metadata=None) -> Path:
    from safetensors import safe_open

    with safe_open(str(source), "pt") as fh:
        meta = dict(fh.metadata())
    meta.update(metadata or {})
    save_file(tensors if tensors is not None else load_file(str(source)), str(target), meta)
    return target


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- row 1: a PNG whose header claims 15k x 15k or 100k x 100k ----------------------------


@pytest.mark.parametrize("size", [15_000, 100_000])
def test_png_claiming_gigapixels_is_refused_fast(tmp_path, size):
    path = png_claiming(tmp_path / "bomb.png", size, size)
    run = run_razn("info", path)
    line = assert_clean_error(run, 1, str(path))
    assert "too large" in line or "decompression bomb" in line
    assert "DecompressionBombError" not in run.stderr
    assert extra_seconds(run, "info", tmp_path / "missing.png") < HANG_BOUND_S


# --- row 2: a small TIFF whose tags claim 10^6 x 10^6 pixels --------------------------------


@pytest.mark.parametrize("tiled", [False, True], ids=["strips", "tiles"])
@pytest.mark.parametrize("command", ["info", "segment"])
def test_tiff_claiming_a_terapixel_is_refused_fast(tmp_path, checkpoint, tiled, command):
    path = tiff_claiming(tmp_path / "huge.tif", 10**6, tiled=tiled)
    out = tmp_path / "out"
    extra = ["--model", checkpoint, "--out", out] if command == "segment" else []
    run = run_razn(command, path, *extra, timeout=60)
    assert_clean_error(run, 1, str(path), "1000000x1000000", "but the file lists 1")
    assert extra_seconds(run, command, tmp_path / "missing.tif", *extra) < HANG_BOUND_S
    if command == "segment":
        assert _listing(out) == []  # no store was begun for a slide that cannot be read


# --- row 3: razn segment --mpp 1000 --------------------------------------------------------


def test_absurd_mpp_is_refused_before_any_work(tmp_path, slide, checkpoint):
    out = tmp_path / "out"
    run = run_razn("segment", slide, "--model", checkpoint, "--out", out, "--mpp", "1000")
    assert_clean_error(run, 2, "--mpp", "1000", "0.05-20")
    assert run.seconds < HANG_BOUND_S, run.seconds
    assert not out.exists()


def test_tile_count_is_bounded_in_the_api_too(slide):
    # A script (or the plugin) that bypasses the CLI still cannot make millions of tiles.
    from razn.errors import SlideError
    from razn.inference.tiling import tile_grid
    from razn.slide import open_slide

    config = get_config("razn-small").with_(patch_size=64)
    with open_slide(slide) as opened:
        opened.mpp = 1000.0
        with pytest.raises(SlideError, match="outside 0.05-20"):
            tile_grid(opened, config)


# --- rows 4-8: annotation files -----------------------------------------------------------


def _convert(source: Path, output: Path, slide_path: Path, *extra):
    return run_razn("convert", source, "--slide", slide_path, "-o", output, *extra)


def test_geojson_nested_100000_deep(tmp_path, cmu_svs):
    source = nested_json(tmp_path / "deep.geojson", 100_000)
    out = tmp_path / "out.geojson"
    run = _convert(source, out, cmu_svs)
    assert_clean_error(run, 2, str(source), "nested too deeply")
    assert "RecursionError" not in run.stderr and not out.exists()


@pytest.mark.parametrize("suffix", [".geojson", ".tif"])
def test_annotations_all_outside_the_slide(tmp_path, cmu_svs, suffix):
    far = [[[50_000, 50_000], [51_000, 50_000], [51_000, 51_000], [50_000, 50_000]]]
    left = [[[-900, 10], [-100, 10], [-100, 900], [-900, 10]]]
    source = write_features(tmp_path / "far.geojson", [feature(far), feature(left)])
    out = tmp_path / f"out{suffix}"
    run = _convert(source, out, cmu_svs, "--class-map", "Tumor=invasive")
    assert_clean_error(run, 2, str(source), "every region lies outside the 2220x2967 slide")
    assert _listing(tmp_path) == ["far.geojson"]


def test_boolean_coordinates_are_refused(tmp_path, cmu_svs):
    ring = [[True, 10], [100, 10], [100, 100], [10, 100], [True, 10]]
    source = write_features(tmp_path / "bools.geojson", [feature([ring])])
    out = tmp_path / "out.geojson"
    run = _convert(source, out, cmu_svs, "--class-map", "Tumor=invasive")
    assert_clean_error(run, 2, str(source), "not true/false")
    assert not out.exists()


@pytest.mark.parametrize(
    ("features", "skipped"),
    [
        ([feature([[[10, 10], [10, 10], [10, 10], [10, 10]]])], "degenerate"),  # 1 vertex
        ([feature([[[10, 10], [90, 90], [10, 10]]])], "degenerate"),  # 2 vertices
        ([feature([10, 10], "Point"), feature([[1, 2], [3, 4]], "MultiPoint")], "point"),
        ([feature(None), feature(None, classification=None)], "empty"),
    ],
    ids=["1-vertex", "2-vertex", "points-only", "null-geometry-only"],
)
def test_files_without_polygons_say_so(tmp_path, cmu_svs, features, skipped):
    source = write_features(tmp_path / "nothing.geojson", features)
    out = tmp_path / "out.tif"
    run = _convert(source, out, cmu_svs)
    line = assert_clean_error(run, 2, str(source), "no polygon regions", skipped)
    assert "map the class" not in line and "--class-map" not in line
    assert not out.exists()


def test_a_50_mb_class_text_is_not_echoed(tmp_path, cmu_svs):
    text = "x" * 50_000_000
    source = tmp_path / "big.xml"
    source.write_text(
        f'<Annotations><Annotation Id="1"><Regions><Region Id="1" Type="0" Text="{text}">'
        '<Vertices><Vertex X="10" Y="10"/><Vertex X="90" Y="10"/><Vertex X="90" Y="90"/>'
        "</Vertices></Region></Regions></Annotation></Annotations>"
    )
    out = tmp_path / "out.tif"
    run = _convert(source, out, cmu_svs)
    line = assert_clean_error(run, 2, str(source), "50,000,000 characters")
    assert len(run.stderr) < 1000, len(run.stderr)
    assert "--class-map" in line and not out.exists()


# --- rows 9-10: checkpoints ----------------------------------------------------------------


def test_checkpoint_with_nan_weights_is_refused(tmp_path, slide, checkpoint):
    tensors = load_file(str(checkpoint))
    name = next(k for k, v in tensors.items() if v.is_floating_point() and v.ndim == 4)
    tensors[name][0, 0, 0, 0] = float("nan")
    bad = _rewrite_checkpoint(checkpoint, tmp_path / "nan.safetensors", tensors=tensors)
    out = tmp_path / "out"
    run = run_razn("segment", slide, "--model", bad, "--out", out)
    assert_clean_error(run, 2, str(bad), "NaN or infinity", name)
    assert _listing(out) == []


def test_checkpoint_claiming_width_a_million_is_refused_before_building(tmp_path, checkpoint):
    from safetensors import safe_open

    with safe_open(str(checkpoint), "pt") as fh:
        config = json.loads(fh.metadata()["razn.config"])
    config["width"] = 10**6
    bad = _rewrite_checkpoint(
        checkpoint, tmp_path / "wide.safetensors", metadata={"razn.config": json.dumps(config)}
    )
    run = run_razn("segment", checkpoint.parent / "ellipse.ome.tif", "--model", bad,
                   "--out", tmp_path / "out")  # fmt: skip
    assert_clean_error(run, 2, str(bad), "do not fit its configuration", "width 1000000")
    baseline = ["segment", tmp_path / "missing.tif", "--model", checkpoint, "--out", tmp_path]
    assert extra_seconds(run, *baseline) < HANG_BOUND_S


def test_checkpoint_training_record_that_is_a_list(tmp_path, slide, checkpoint):
    bad = _rewrite_checkpoint(
        checkpoint, tmp_path / "list.safetensors", metadata={"razn.training": "[1, 2]"}
    )
    run = run_razn("segment", slide, "--model", bad, "--out", tmp_path / "out")
    assert_clean_error(run, 2, str(bad), "training record", "not list")


# --- row 11: read-only folders and a full disk ---------------------------------------------


def _as_other_user() -> int | None:
    """The uid to run as so that permission bits count (None: already not root)."""
    if os.geteuid() != 0:
        return None
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permission bits would be ignored")
    return NOBODY


@pytest.fixture
def read_only(world):
    folder = Path(tempfile.mkdtemp(prefix="ro-", dir=world))
    (folder / "earlier.geojson").write_text("{}")
    os.chmod(folder / "earlier.geojson", 0o644)
    os.chmod(folder, 0o555)
    yield folder
    os.chmod(folder, 0o755)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def inside(world) -> Path:
    """A classified polygon inside the test slide."""
    ring = [[[100, 100], [300, 100], [300, 300], [100, 300], [100, 100]]]
    path = write_features(world / "inside.geojson", [feature(ring, classification="Invasive")])
    os.chmod(path, 0o644)
    return path


@pytest.mark.parametrize("command", ["segment", "convert", "info --overview"])
def test_read_only_output_folder(read_only, slide, checkpoint, inside, command, monkeypatch):
    user = _as_other_user()
    monkeypatch.setenv("HOME", str(read_only.parent))  # the other user cannot read root's
    if command == "segment":
        args = ["segment", slide, "--model", checkpoint, "--out", read_only]
    elif command == "convert":
        args = ["convert", inside, "--slide", slide, "-o", read_only / "out.geojson"]
    else:
        args = ["info", slide, "--overview", read_only / "overview.png"]
    run = run_razn(*args, user=user)
    assert_clean_error(run, 2, str(read_only), "Permission denied")
    assert _listing(read_only) == ["earlier.geojson"]


def _mount_tiny_disk(folder: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True
    )
    return done.returncode == 0


@pytest.fixture
def full_disk(tmp_path):
    folder = tmp_path / "disk"
    folder.mkdir()
    if not _mount_tiny_disk(folder):
        pytest.skip("cannot mount a tmpfs here (not root); see the in-process ENOSPC test")
    try:
        with open(folder / "filler", "wb") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
    except OSError as error:
        assert error.errno == errno.ENOSPC
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


@pytest.mark.parametrize("command", ["segment", "convert", "info --overview"])
def test_full_disk(full_disk, slide, checkpoint, inside, command):
    if command == "segment":
        args = ["segment", slide, "--model", checkpoint, "--out", full_disk]
    elif command == "convert":
        args = ["convert", inside, "--slide", slide, "-o", full_disk / "out.geojson"]
    else:
        args = ["info", slide, "--overview", full_disk / "overview.png"]
    run = run_razn(*args)
    assert_clean_error(run, 2, str(full_disk), "No space left on device")
    assert _listing(full_disk) == ["filler"]


def test_full_disk_inside_a_writer_in_process(tmp_path, slide, inside, monkeypatch, capsys):
    """The same without root: the GeoJSON writer meets ENOSPC half-way."""
    from razn.cli import main

    real_write_text = Path.write_text

    def write_half(self, data, *args, **kwargs):
        real_write_text(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", write_half)
    out = tmp_path / "out.geojson"
    code = main(["convert", str(inside), "--slide", str(slide), "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "No space left on device" in err[-1] and str(out) in err[-1]
    assert not any(p.name != "out.geojson" and p.name.startswith(".") for p in tmp_path.iterdir())
    assert not out.exists()


# --- row 12: a symlink loop as the slide ---------------------------------------------------


def test_symlink_loop_as_the_slide(tmp_path):
    (tmp_path / "a.svs").symlink_to(tmp_path / "b.svs")
    (tmp_path / "b.svs").symlink_to(tmp_path / "a.svs")
    run = run_razn("info", tmp_path / "a.svs")
    assert_clean_error(run, 1, "symbolic link loop")


# --- row 13: one exit-code convention, documented ------------------------------------------


def test_a_bad_slide_exits_1_in_info_and_segment(tmp_path, slide, checkpoint):
    bad = tmp_path / "bad.svs"
    bad.write_bytes(b"II*\0" + b"\xff" * 60)
    assert_clean_error(run_razn("info", bad), 1, str(bad))
    out = tmp_path / "out"
    run = run_razn("segment", bad, slide, "--model", checkpoint, "--out", out)
    assert_clean_error(run, 1, str(bad))
    assert "ellipse.ome.tif: " in run.stdout and " tiles " in run.stdout  # the good one was done
    assert (out / "ellipse.razn.zarr").is_dir() and not (out / "bad.razn.zarr").exists()


def test_exit_codes_are_in_help():
    run = run_razn("--help")
    assert run.returncode == 0
    for line in ("0    done", "1    a slide could not be read", "2    bad input or environment",
                 "130  interrupted"):  # fmt: skip
        assert line in run.stdout
    assert "130  interrupted" in run_razn("segment", "--help").stdout


def test_usage_errors_are_one_line_exit_2():
    assert_clean_error(run_razn("segment"), 2, "razn segment: error:", "--help")


# --- also: a PNG named .svs ----------------------------------------------------------------


def test_png_named_svs_reports_png_compression(tmp_path, shared_data):
    path = tmp_path / "photo.svs"
    shutil.copy(next((shared_data / "breakhis-100x").glob("*.png")), path)
    run = run_razn("info", path, "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["compression"] == "png"


def test_finite_checkpoints_still_load(checkpoint):
    from razn.models import load_model

    model = load_model(checkpoint)
    assert all(np.isfinite(v.numpy()).all() for v in model.state_dict().values()
               if v.is_floating_point())  # fmt: skip


# --- also: unclassified regions of a real ImageScope file ----------------------------------


def test_unclassified_imagescope_regions(tmp_path, annotations_dir, cmu_svs):
    source = annotations_dir / "imagescope-freehand.xml"  # every Region has Text=""
    grid = tmp_path / "labels.tif"
    line = assert_clean_error(_convert(source, grid, cmu_svs), 2, str(source))
    assert "have no class" in line and "--class-map '=CLASS'" in line
    assert "--class-map '=Invasive carcinoma'" in line and not grid.exists()
    # Its regions lie near (16000, 10000): a blank slide large enough to hold them.
    slide = blank_slide(tmp_path / "large.tif", 18_000, 12_000)
    out = tmp_path / "out.geojson"
    run = _convert(source, out, slide)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert "written as unclassified QuPath annotations" in run.stderr
    features = json.loads(out.read_text())["features"]
    assert features and all(
        f["properties"]["objectType"] == "annotation" and "classification" not in f["properties"]
        for f in features
    )
