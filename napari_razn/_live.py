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

from qtpy.QtCore import QTimer

#: Most GUI-thread time spent applying results in one event-loop turn (s).
APPLY_BUDGET_S = 0.015


def view_region(layer, viewer) -> tuple[float, float, float, float] | None:
    """The level-0 box (x, y, w, h) of the slide the canvas shows (None if off the slide).

    From the camera (centre, zoom) and the canvas size, not the layer's
    corner pixels: napari widens those to its chunk boundaries and keeps
    them while the view stays inside, so they can hold several times what
    is visible.
    """
    scene = getattr(viewer, "scene", None)
    camera = getattr(scene, "camera", None) or viewer.camera
    h, w = viewer.canvas.size
    cy, cx = camera.center[-2:]
    half_h, half_w = h / 2 / camera.zoom, w / 2 / camera.zoom
    r0, c0 = layer.world_to_data((cy - half_h, cx - half_w))[-2:]
    r1, c1 = layer.world_to_data((cy + half_h, cx + half_w))[-2:]
    level0 = layer.level_shapes[0][-2:] if layer.multiscale else layer.data.shape[-2:]
    r0, c0 = max(r0, 0.0), max(c0, 0.0)
    r1, c1 = min(r1, float(level0[0])), min(c1, float(level0[1]))
    if r1 <= r0 or c1 <= c0:
        return None
    return (c0, r0, c1 - c0, r1 - r0)


def _segment_tiles(slide, model, tiles, threshold, device, stop):
    """Worker body: the engine over `tiles`, stopping when asked.

    model : a loaded model, or its reference ("demo", a checkpoint path),
        loaded here on the first run (it imports torch: never on the GUI thread).
    """
    if isinstance(model, str):
        from napari_razn._models import cached_model

        model = cached_model(model)
    import torch

    from razn.devices import threads_beside_gui
    from razn.inference import segment

    # Leave a core to the GUI thread, so the viewer stays responsive.
    torch.set_num_threads(threads_beside_gui())
    yield from segment(
        slide, model, tiles=tiles, threshold=threshold, device=device, batch_size=4,
        cancelled=stop,
    )  # fmt: skip


class SegmentationRunner:
    """One engine run at a time for the RAZN panel.

    Each run carries its `Run` (`_controller`): results are queued with it
    and handed back with it, so the panel applies only those of the run
    that owns the view. A new run or a cancel drops the queued results of
    a run that no longer owns it without counting them.
    """

    def __init__(self, workers, on_result, on_done, on_error, *, parent=None):
        self._workers = workers
        self._on_result, self._on_done, self._on_error = on_result, on_done, on_error
        self.worker = None
        self.run = None  # the current run (`_controller.Run`)
        self._stop = None  # the running worker's own stop flag
        self._held = False  # the worker waits for `release`
        self._worker_done = False  # it finished; its last results may still be queued
        self._queue = deque()  # (run, result) received, not applied yet
        self._drain_timer = QTimer(parent)
        self._drain_timer.setSingleShot(True)
        self._drain_timer.setInterval(0)
        self._drain_timer.timeout.connect(self._drain)
        self.total = 0
        self.finished = 0

    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self, run, slide, model, tiles, threshold, device, *, hold: bool = False) -> None:
        self.cancel()
        self.run = run
        self.total, self.finished = len(tiles), 0
        if not tiles:
            self._on_done(run)
            return
        stop = self._stop = [False]
        worker = self._workers.start(
            _segment_tiles, slide, model, tiles, threshold, device,
            lambda: stop[0],
            yielded=lambda result, run=run: self._yielded(run, result),
            finished=lambda w=None, run=run: self._finished(run),
            errored=lambda error, run=run: self._errored(run, error),
            start=False,
        )  # fmt: skip
        self.worker = worker
        self._held = hold
        if not hold:
            self._workers.launch(worker)

    def release(self) -> None:
        """Start the worker of a held run (nothing if none is held)."""
        if self.worker is not None and self._held:
            self._held = False
            self._workers.launch(self.worker)

    def _yielded(self, run, result) -> None:
        self._queue.append((run, result))
        if not self._drain_timer.isActive():
            self._drain_timer.start()

    def _drain(self) -> None:
        """Apply queued results for up to `APPLY_BUDGET_S`; the rest next turn."""
        end = time.perf_counter() + APPLY_BUDGET_S
        while self._queue and time.perf_counter() < end:
            run, result = self._queue.popleft()
            if run is self.run:
                self.finished += 1
            self._on_result(run, result)  # the panel decides whether it still counts
        if self._queue:
            self._drain_timer.start()
        elif self._worker_done:
            self._complete()

    def _errored(self, run, error) -> None:
        if run is self.run:
            self._on_error(error)

    def _finished(self, run) -> None:
        if run is self.run:  # a cancelled run ends too, once its last results are in
            self._worker_done = True
            if not self._queue:  # else the last drain completes the run
                self._complete()

    def _complete(self) -> None:
        run = self.run
        self.worker, self._worker_done = None, False
        self._on_done(run)

    def cancel(self) -> None:
        """Stop the running worker at its next tile; finished tiles stay.

        Results already received are still offered to the panel, which keeps
        them if their run still owns the view (they are finished tiles).
        """
        if self.worker is not None:
            self._stop[0] = True
            self._workers.quit(self.worker)
            self.worker = None
            self._held = False  # a held worker is dropped, never started
            self._worker_done = False

    def shutdown(self) -> None:
        """Stop for good: the engine stops, nothing queued is applied."""
        self.cancel()
        self.run = None
        self._queue.clear()
        self._drain_timer.stop()

    @property
    def progress(self) -> float:
        return self.finished / self.total if self.total else math.nan
