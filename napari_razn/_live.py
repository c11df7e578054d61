"""Running the engine for napari: the view's tiles, in a worker, painted as they come.

`SegmentationRunner` owns one background worker at a time. Asking for new
tiles (the view moved) drops the old worker's remaining work: the engine
stops at its next tile, and tiles already done stay done in the session,
so nothing finished is lost or recomputed. Results reach the layers on the
GUI thread through the worker's `yielded` signal; applying one is a few
small array writes and a partial redraw, never a full one.

Results are applied in slices of at most `APPLY_BUDGET_S` of GUI time per
event-loop turn. The engine yields a slide's glass tiles all at once, at
the start of a run (tens of tiles on the sample, thousands on a large
slide), and applied as they came they held the GUI thread for the whole
burst, with no repaint in between.

A run can be held (`start(..., hold=True)`, then `release()`): it counts as
running, but its worker starts only when released, so that the GUI
thread's own work (adding the layers the results go to) neither competes
with the engine for the interpreter nor has results queue up behind it.
"""

from __future__ import annotations

import math
import time
from collections import deque

from napari.qt.threading import create_worker
from qtpy.QtCore import QTimer

#: Most GUI-thread time spent applying results in one event-loop turn (s).
APPLY_BUDGET_S = 0.015


def view_region(layer, downsamples) -> tuple[float, float, float, float] | None:
    """The level-0 box (x, y, w, h) the slide layer shows, from its corner pixels."""
    corners = layer.corner_pixels  # [[row0, col0], [row1, col1]] at the shown level
    level = getattr(layer, "data_level", 0)
    d = downsamples[min(level, len(downsamples) - 1)]
    (r0, c0), (r1, c1) = corners[0][-2:], corners[1][-2:]
    if r1 <= r0 or c1 <= c0:
        return None
    return (c0 * d, r0 * d, (c1 - c0 + 1) * d, (r1 - r0 + 1) * d)


def _segment_tiles(slide, model, tiles, threshold, device, torch_threads, stop):
    """Worker body: the engine over `tiles`, stopping when asked."""
    import torch

    from razn.inference import segment

    torch.set_num_threads(torch_threads)
    yield from segment(
        slide, model, tiles=tiles, threshold=threshold, device=device, batch_size=4,
        cancelled=stop,
    )  # fmt: skip


class SegmentationRunner:
    """One engine run at a time for the RAZN panel."""

    def __init__(self, on_result, on_done, on_error):
        self._on_result, self._on_done, self._on_error = on_result, on_done, on_error
        self.worker = None
        self._stop = None  # the running worker's own stop flag
        self._held = False  # the worker waits for `release`
        self._worker_done = False  # it finished; its last results may still be queued
        self._queue = deque()  # results received, not applied yet
        self._drain_timer = QTimer()
        self._drain_timer.setSingleShot(True)
        self._drain_timer.setInterval(0)
        self._drain_timer.timeout.connect(self._drain)
        self.total = 0
        self.finished = 0

    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self, slide, model, tiles, threshold, device, *, hold: bool = False) -> None:
        self.cancel()
        if not tiles:
            self._on_done()
            return
        from razn.devices import threads_beside_gui

        stop = self._stop = [False]
        self.total, self.finished = len(tiles), 0
        # Leave a core to the GUI thread, so the viewer stays responsive.
        threads = threads_beside_gui()
        worker = create_worker(
            _segment_tiles,
            slide,
            model,
            tiles,
            threshold,
            device,
            threads,
            lambda: stop[0],
            _start_thread=False,
        )
        worker.yielded.connect(self._yielded)
        worker.finished.connect(lambda w=worker: self._finished(w))
        worker.errored.connect(self._on_error)
        self.worker = worker
        self._held = hold
        if not hold:
            worker.start()

    def release(self) -> None:
        """Start the worker of a held run (nothing if none is held)."""
        if self.worker is not None and self._held:
            self._held = False
            self.worker.start()

    def _yielded(self, result) -> None:
        self._queue.append(result)
        if not self._drain_timer.isActive():
            self._drain_timer.start()

    def _drain(self) -> None:
        """Apply queued results for up to `APPLY_BUDGET_S`; the rest next turn."""
        end = time.perf_counter() + APPLY_BUDGET_S
        while self._queue and time.perf_counter() < end:
            self.finished += 1
            self._on_result(self._queue.popleft())
        if self._queue:
            self._drain_timer.start()
        elif self._worker_done:
            self._complete()

    def _finished(self, worker) -> None:
        if worker is self.worker:
            self._worker_done = True
            if not self._queue:  # else the last drain completes the run
                self._complete()

    def _complete(self) -> None:
        self.worker, self._worker_done = None, False
        self._on_done()

    def cancel(self) -> None:
        """Stop the running worker at its next tile; finished tiles stay.

        Results already received are still applied (they are finished tiles).
        """
        if self.worker is not None:
            self._stop[0] = True
            self.worker.quit()
            self.worker = None
            self._held = False  # a held worker is dropped, never started
            self._worker_done = False

    @property
    def progress(self) -> float:
        return self.finished / self.total if self.total else math.nan
