"""The segmentation runner applies results in slices, each with the run that made it."""

from __future__ import annotations

import time

from napari_razn import _live
from napari_razn._live import SegmentationRunner
from napari_razn._workers import Workers


def test_a_burst_of_results_is_applied_over_several_turns(qtbot, monkeypatch):
    monkeypatch.setattr(_live, "APPLY_BUDGET_S", 0.02)
    applied, done = [], []

    def slow_apply(run, result):
        time.sleep(0.005)  # a tile's repaint
        applied.append((run, result))

    runner = SegmentationRunner(Workers(), slow_apply, done.append, print)
    runner.worker, runner.run = object(), "run 1"  # stand for a started worker and its run
    for tile in range(40):  # a slide's glass tiles arrive at once
        runner._yielded("run 1", tile)
    runner._finished("run 1")  # the worker ends with its results still queued
    assert runner.running and not applied
    runner._drain()  # one event-loop turn's worth
    assert 0 < len(applied) <= 5 and not done
    qtbot.waitUntil(lambda: bool(done), timeout=5000)
    assert applied == [("run 1", t) for t in range(40)] and runner.finished == 40
    assert done == ["run 1"] and not runner.running


def test_queued_results_keep_their_run(qtbot):
    """After a cancel and a new run, the old run's queued results still say which run they are."""
    applied = []
    runner = SegmentationRunner(Workers(), lambda run, r: applied.append((run, r)), print, print)
    runner.worker, runner.run, runner._stop = object(), "old", [False]
    runner._workers.quit = lambda worker: None
    runner._yielded("old", "a finished tile")
    runner.cancel()
    assert not runner.running
    runner.run = "new"  # another run started meanwhile
    runner._yielded("new", "its tile")
    qtbot.waitUntil(lambda: len(applied) == 2, timeout=5000)
    assert applied == [("old", "a finished tile"), ("new", "its tile")]
    assert runner.finished == 1  # only the current run's result counts in its progress


def test_a_worker_whose_start_is_still_queued_is_dropped_by_shutdown_not_waited_for(qtbot):
    """superqt hands a started worker to Qt's pool one timer tick later, on the GUI thread.

    `shutdown` blocks that thread: waiting for such a worker hung the close
    for the whole timeout, and the worker then ran after the panel was gone.
    """
    workers = Workers()
    ran = []
    worker = workers.start(ran.append, 1)
    begun = time.monotonic()
    assert workers.shutdown(timeout_s=10)
    assert time.monotonic() - begun < 5  # not the timeout
    assert worker in workers.never_ran
    qtbot.wait(200)  # its tick comes: it does nothing
    assert ran == []
    # One that began is waited for, and its work is done.
    workers = Workers()
    worker = workers.start(ran.append, 2)
    qtbot.waitUntil(lambda: ran == [2], timeout=5000)
    assert workers.shutdown(timeout_s=10) and worker not in workers.never_ran
