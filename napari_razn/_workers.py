"""The panel's one thread mechanism: napari workers, each one stoppable and awaited.

Every background job of the panel (tissue mask, warm-up, device probe,
engine run, fine-tuning, autosave) starts here, as a napari
`create_worker`. Each sets an event as it ends, on its own thread,
whatever way it ends, which lets `shutdown` wait for exactly the panel's
own workers (not every job on Qt's pool). Each callback is wrapped
so that it does nothing once the panel is closed: a worker's last signals
arrive after napari has deleted the panel's Qt widgets, and touching one
then aborted the process.

A worker asked to start is handed to Qt's thread pool one timer tick
later (superqt's `WorkerBase.start`), on the GUI thread. `shutdown` runs
on that thread and blocks it, so a worker not begun by then never would
while it waits: waiting for it hung the close for the whole timeout and
then let it run after the panel was gone (an autosave started just
before closing was lost, or written late over the final save). Such a
worker is dropped instead: it does nothing when its tick comes, and
`never_ran` tells the panel, which then does that work itself.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import time

from qtpy.QtCore import Qt


class Workers:
    """Start, stop and await the panel's background workers."""

    def __init__(self) -> None:
        self.closed = False
        self._live: dict[object, threading.Event] = {}
        self._started: set = set()
        # Per worker: whether its body began, or was dropped before it could (under its lock).
        self._begin: dict[object, _Begin] = {}
        #: Workers `shutdown` dropped before they began: their work was never done.
        self.never_ran: set = set()

    def start(
        self, func, *args, returned=None, yielded=None, errored=None, finished=None,
        start=True, **kwargs,
    ):  # fmt: skip
        """`create_worker(func, *args, **kwargs)` with guarded callbacks; returns the worker."""
        from napari.qt.threading import create_worker

        ended = threading.Event()
        begin = _Begin()
        if inspect.isgeneratorfunction(func):

            def body():
                if not begin.begin():
                    return None
                return (yield from func(*args))
        else:

            def body():
                try:
                    return func(*args) if begin.begin() else None
                finally:
                    ended.set()

        worker = create_worker(body, _start_thread=False, **kwargs)
        for signal, callback in (
            ("returned", returned), ("yielded", yielded), ("errored", errored),
            ("finished", finished),
        ):  # fmt: skip
            if callback is not None:
                getattr(worker, signal).connect(self._guard(callback))
        # Set on the worker's own thread as it ends (a generator stopped by
        # `quit` never reaches its own `finally`), so `shutdown` can wait on it
        # while the GUI thread is blocked.
        worker.finished.connect(ended.set, Qt.ConnectionType.DirectConnection)
        worker.finished.connect(lambda: self._forget(worker))
        self._live[worker] = ended
        self._begin[worker] = begin
        if start:
            self.launch(worker)
        return worker

    def launch(self, worker) -> None:
        """Start a worker made with `start=False` (nothing once closed)."""
        if not self.closed and worker in self._live and worker not in self._started:
            self._started.add(worker)
            worker.start()

    def _forget(self, worker) -> None:
        self._live.pop(worker, None)
        self._started.discard(worker)
        self._begin.pop(worker, None)

    def _guard(self, callback):
        def guarded(*args):
            if not self.closed:
                callback(*args)

        return guarded

    def quit(self, worker) -> None:
        """Ask a generator worker to stop at its next step (nothing if it is gone)."""
        if worker is not None:
            with contextlib.suppress(RuntimeError, AttributeError):  # deleted by Qt
                worker.quit()

    def running(self) -> int:
        """How many started workers have not ended yet."""
        return sum(not self._live[w].is_set() for w in self._started if w in self._live)

    def shutdown(self, timeout_s: float = 60.0) -> bool:
        """Stop every worker and wait for those started; True if all ended in time.

        Callbacks stop here: nothing a worker sends afterwards reaches the panel.
        """
        self.closed = True
        live = list(self._live.items())
        for worker, _ended in live:
            self.quit(worker)
        deadline = time.monotonic() + timeout_s
        ok = True
        for worker, ended in live:
            if worker not in self._started:  # one never started (a held run) has no thread
                continue
            if self._begin[worker].drop():  # its start is still queued behind this call
                self.never_ran.add(worker)
                continue
            ok &= ended.wait(max(0.0, deadline - time.monotonic()))
        self._live.clear()
        self._started.clear()
        self._begin.clear()
        return ok


class _Begin:
    """Whether a worker's body began, or was dropped first: one or the other, never both."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = None  # "begun" or "dropped"

    def begin(self) -> bool:
        """On the worker's thread, first thing: True to go on, False if dropped."""
        with self._lock:
            if self._state is None:
                self._state = "begun"
            return self._state == "begun"

    def drop(self) -> bool:
        """On shutdown: True if the body had not begun (now it never will)."""
        with self._lock:
            if self._state is None:
                self._state = "dropped"
            return self._state == "dropped"
