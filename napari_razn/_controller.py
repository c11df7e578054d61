"""The panel's state, without Qt: which slide and session it shows, which run is current.

One rule decides whether a segmentation result may touch what is shown
(`PanelController.owns`): the run that made it must be the current one, for
the session shown now, of the same slide, with the settings that session
holds, and the panel must not be closed. Results that fail it are dropped,
never applied: a run for slide A whose results arrive after the user
switched to slide B (or removed A's layer, or closed napari) cannot write
A's labels into B's session, nor raise on B's other-sized grid.

States: `idle` (nothing running), `running`, `cancelling` (the engine was
asked to stop and its last results are still arriving; they are finished
tiles of the shown session, so they are kept), `closed` (napari closed the
panel: nothing is applied any more). The work the panel does ahead of a
first run (`SegmentationPanel.warming`) is no state of its own: it
touches nothing shown. Qt-free, so it is tested without a display.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from enum import Enum


class State(Enum):
    IDLE = "idle"
    RUNNING = "running"
    CANCELLING = "cancelling"
    CLOSED = "closed"


@dataclass(frozen=True)
class Run:
    """One engine run: its id, the slide and session it was started for, its settings."""

    id: int
    slide: str
    session: object = field(compare=False, repr=False)
    settings: dict = field(compare=False)
    tiles: int = 0


class PanelController:
    """Slide, session and run of the RAZN panel, as explicit states."""

    def __init__(self) -> None:
        self.state = State.IDLE
        self.session = None
        self.run: Run | None = None
        self._ids = itertools.count(1)
        self.applied = 0  # results of the current run applied so far
        self.dropped = 0  # results dropped as stale, over the panel's life

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    def show(self, session) -> None:
        """A new session (or None) is shown: any run of the previous one is over."""
        if self.closed:
            return
        self.session, self.run = session, None
        self.state = State.IDLE

    def begin_run(self, tiles: int) -> Run:
        """A run for the shown session with its current settings becomes the current one."""
        if self.closed or self.session is None:
            raise RuntimeError("no session to run on")
        self.run = Run(
            next(self._ids),
            self.session.slide_path,
            self.session,
            dict(self.session.settings),
            tiles,
        )
        self.applied = 0
        self.state = State.RUNNING
        return self.run

    def owns(self, run: Run | None) -> bool:
        """Whether results of `run` may be applied to what is shown now."""
        session = self.session
        return (
            not self.closed
            and run is not None
            and self.run is not None
            and run.id == self.run.id
            and session is run.session
            and session.slide_path == run.slide
            and session.settings == run.settings
        )

    def apply(self, run: Run, result, tissue=None):
        """Apply one result if `run` owns the view; returns the region changed, or None.

        tissue : the slide's tissue mask, to leave glass pixels of a tissue tile 0.
        """
        if not self.owns(run):
            self.dropped += 1
            return None
        self.applied += 1
        return self.session.apply(result, tissue)

    def cancel(self) -> None:
        """The engine was asked to stop: results already on their way still count."""
        if self.state is State.RUNNING:
            self.state = State.CANCELLING

    def finished(self, run: Run) -> bool:
        """The run's worker is done; True if it was the current run."""
        if self.run is None or run.id != self.run.id:
            return False
        if not self.closed:
            self.state = State.IDLE
        return True

    def close(self) -> None:
        """napari closed the panel: from now on nothing is applied."""
        self.state = State.CLOSED
        self.run = None


class SaveThrottle:
    """When to autosave: at most every `interval_s`, and never later than that after a change.

    A debounce (save once changes stop) never saves during a run, whose
    results keep coming; a throttle saves while they do, so a killed napari
    loses at most the last `interval_s` (plus one save's time).
    """

    def __init__(self, interval_s: float, clock=time.monotonic):
        self.interval_s = interval_s
        self._clock = clock
        self.dirty = False
        self._last_save = -float("inf")

    def changed(self) -> float:
        """Something to save: returns seconds to wait before saving (0: now)."""
        self.dirty = True
        return max(0.0, self._last_save + self.interval_s - self._clock())

    def saved(self) -> None:
        self.dirty = False
        self._last_save = self._clock()
