"""Closing napari while the panel works, and killing it: the process survives, work is kept.

Each case runs napari in its own process (`napari_session`), with its own
event loop, as a user's session runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def napari_process(scenario, slide, checkpoint, sessions):
    env = dict(os.environ, NAPARI_RAZN_SESSIONS=str(sessions))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "tests.napari_razn.napari_session", scenario, str(slide),
               str(checkpoint)]  # fmt: skip
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def saved_session(sessions):
    from razn.session import SegmentationSession

    (path,) = Path(sessions).glob("*.razn.zarr")
    return SegmentationSession.load(path)


@pytest.mark.parametrize("scenario", ["docked", "mid-run", "mid-finetune"])
def test_closing_napari_while_the_panel_works(scenario, small_slide, small_checkpoint, tmp_path):
    process = napari_process(scenario, small_slide, small_checkpoint, tmp_path / "sessions")
    output, _ = process.communicate(timeout=240)
    assert process.returncode == 0, output[-3000:]
    assert "closing with" in output and "event loop over" in output, output[-3000:]
    assert "has been deleted" not in output and "Traceback" not in output, output[-3000:]
    if scenario == "mid-run":
        # What was applied before closing is saved on close.
        applied = int(output.split("closing with ")[1].split()[0])
        assert saved_session(tmp_path / "sessions").done.sum() >= applied >= 3


def test_a_killed_napari_loses_at_most_five_seconds(small_slide, small_checkpoint, tmp_path):
    sessions = tmp_path / "sessions"
    process = napari_process("progress", small_slide, small_checkpoint, sessions)
    applied = []  # (count, time) as the panel applied them

    def read():
        for line in process.stdout:
            if line.startswith("applied "):
                count, at = line.split()[1:3]
                applied.append((int(count), float(at)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.time() + 180
    while not applied and time.time() < deadline and process.poll() is None:
        time.sleep(0.1)
    start = applied[0][1] if applied else None
    while start and time.time() < start + 7 and process.poll() is None:
        time.sleep(0.1)
    assert start, "no result was applied"
    process.send_signal(signal.SIGKILL)
    killed = time.time()
    process.wait(timeout=30)
    reader.join(timeout=10)
    process.stdout.close()
    kept = int(saved_session(sessions).done.sum())
    # Every result applied more than 5 s before the kill is on disk.
    due = max((count for count, at in applied if at <= killed - 5.0), default=0)
    assert due > 0 and kept >= due, (kept, due, applied[-1])
    assert kept < int(np.prod(saved_session(sessions).done.shape)), "the run ended before the kill"
