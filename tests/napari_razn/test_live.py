"""The segmentation runner applies results in slices, so a burst never freezes the GUI."""

from __future__ import annotations

import time

from napari_razn import _live
from napari_razn._live import SegmentationRunner


def test_a_burst_of_results_is_applied_over_several_turns(qtbot, monkeypatch):
    monkeypatch.setattr(_live, "APPLY_BUDGET_S", 0.02)
    applied, done = [], []

    def slow_apply(result):
        time.sleep(0.005)  # a tile's repaint
        applied.append(result)

    runner = SegmentationRunner(slow_apply, lambda: done.append(True), print)
    worker = runner.worker = object()  # stands for a started worker
    for tile in range(40):  # a slide's glass tiles arrive at once
        runner._yielded(tile)
    runner._finished(worker)  # the worker ends with its results still queued
    assert runner.running and not applied
    runner._drain()  # one event-loop turn's worth
    assert 0 < len(applied) <= 5 and not done
    qtbot.waitUntil(lambda: bool(done), timeout=5000)
    assert applied == list(range(40)) and runner.finished == 40
    assert done == [True] and not runner.running


def test_results_received_before_a_cancel_are_still_applied(qtbot):
    applied, done = [], []
    runner = SegmentationRunner(applied.append, lambda: done.append(True), print)
    worker = runner.worker = type("Worker", (), {"quit": lambda self: None})()
    runner._stop = [False]
    runner._yielded("a finished tile")
    runner.cancel()
    assert not runner.running
    runner._finished(worker)  # the cancelled worker's end is not the run's
    qtbot.waitUntil(lambda: applied == ["a finished tile"], timeout=5000)
    assert not done
