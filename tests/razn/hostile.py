"""Hostile and clumsy inputs for the CLI tests, and how a clean failure looks.

Each builder writes one small file that lies about itself (a header that
claims gigapixels, JSON nested past Python's recursion limit, ...). `run_razn`
runs the documented CLI in a subprocess, as a user would, and
`assert_clean_error` checks what every refusal must look like: the expected
exit code, one line on stderr naming the problem, no traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

#: What a hang must turn into an error within (the issue's bound, 2 cores),
#: beyond what the same command takes to start and refuse a missing file.
HANG_BOUND_S = 5.0


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def run_razn(*args, timeout: float = 120, user: int | None = None, cwd=None) -> Run:
    """`razn ARGS...` in a subprocess; `user` runs it under that uid (needs root).

    `seconds` is the whole wall time, Python's start-up and imports included,
    so a bound on it is what a user waits.
    """
    command = [sys.executable, "-m", "razn.cli", *map(str, args)]
    if user is not None:
        command = [_setpriv(), f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    start = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=_env()
    )
    return Run(done.returncode, done.stdout, done.stderr, time.perf_counter() - start)


def extra_seconds(run: Run, *args) -> float:
    """`run`'s time beyond the same command refusing a missing slide at once.

    `razn segment` imports torch and loads the model before it opens a
    slide: seconds on a busy 2-core machine that no input can shorten. What
    an input costs is the difference; the baseline is measured, not assumed.
    """
    key = tuple(str(a) for a in args if not str(a).startswith("/tmp/pytest"))
    if key not in _BASELINES:
        baseline = run_razn(*args)
        assert baseline.returncode != 0 and "no such file" in baseline.stderr, baseline.stderr
        _BASELINES[key] = baseline.seconds
    return run.seconds - _BASELINES[key]


_BASELINES: dict[tuple, float] = {}


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", os.pathsep.join(sys.path))
    env["PYTHONWARNINGS"] = "ignore"  # a user sees warnings only if they ask
    return env


def _setpriv() -> str:
    found = shutil.which("setpriv")
    if found is None:
        raise RuntimeError("setpriv is not installed")
    return found


def assert_clean_error(run: Run, code: int, *needles: str) -> str:
    """The run failed with `code`, one stderr line, no traceback; return the line."""
    lines = run.stderr.strip().splitlines()
    assert run.returncode == code, (run.returncode, run.stderr[-2000:])
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    assert len(lines) == 1, run.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# --- plain images -------------------------------------------------------------------------


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A 68-byte PNG whose header claims width x height RGB pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )
    return path


# --- TIFF ---------------------------------------------------------------------------------


def tiff_claiming(path: Path, size: int, *, tiled: bool) -> Path:
    """A 200 kB TIFF (one 256x256 strip or tile) whose tags claim size x size pixels."""
    data = np.full((256, 256, 3), 200, np.uint8)
    layout = {"tile": (256, 256)} if tiled else {"rowsperstrip": 256}
    tifffile.imwrite(path, data, photometric="rgb", **layout)
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tags = tif.pages[0].tags
        tags["ImageWidth"].overwrite(size)
        tags["ImageLength"].overwrite(size)
    return path


# --- annotations --------------------------------------------------------------------------


def feature(coordinates, kind: str = "Polygon", classification="Tumor") -> dict:
    properties = {"objectType": "annotation"}
    if classification is not None:
        properties["classification"] = {"name": classification, "color": [200, 0, 0]}
    geometry = None if coordinates is None else {"type": kind, "coordinates": coordinates}
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def write_features(path: Path, features: list[dict]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def nested_json(path: Path, depth: int) -> Path:
    """GeoJSON whose coordinates nest `depth` lists deep."""
    path.write_text(
        '{"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", '
        '"coordinates": ' + "[" * depth + "]" * depth + "}}"
    )
    return path


def blank_slide(path: Path, width: int, height: int, mpp: float = 0.5) -> Path:
    """A large, white, tiled TIFF written tile by tile (a few MB, never whole in memory)."""
    tile = np.full((256, 256, 3), 240, np.uint8)
    count = -(-height // 256) * -(-width // 256)
    tifffile.imwrite(
        path,
        (tile for _ in range(count)),
        shape=(height, width, 3),
        dtype=np.uint8,
        tile=(256, 256),
        photometric="rgb",
        compression="zlib",
        resolution=(1e4 / mpp, 1e4 / mpp),
        resolutionunit="CENTIMETER",
    )
    return path
