"""When Python's garbage collector may stall napari's window, and when not.

A full collection walks every object of the process with the interpreter
held, whichever thread's allocations set it off: in a napari window with a
slide that is 70-135 ms on this project's CPUs, and after torch's import
0.2-1.3 s, all of it a stall of the GUI thread. The panel therefore
freezes (`gc.freeze`: left out of later collections, as the CPython docs
advise for objects made at start-up and kept) what is alive at three
moments: when it docks (napari's window and the slide's layer), after a
large import done with the collector paused (`collections_paused`: torch
for the first run, the sample's libraries), and nothing else. Nothing
that reference counting frees is kept; only cycles among frozen objects
wait, until `thaw`, which the panel calls before napari removes a layer
(napari runs a full collection of its own then, at its own cost, so a
removed layer's cycles are never kept).
"""

from __future__ import annotations

import contextlib
import gc

# Whether anything is frozen that `thaw` should give back to the collector.
_frozen = False


def freeze_heap() -> None:
    """Leave every object alive now out of later collections, until `thaw`.

    Only moves the collector's lists: cheap whatever the heap's size.
    """
    global _frozen
    gc.freeze()
    _frozen = True


@contextlib.contextmanager
def collections_paused():
    """Run a block (a large import) with the collector paused; freeze what is alive after.

    Without the pause, the block's few hundred thousand new objects set off
    a full collection of the whole heap; without the freeze, the next
    allocations would.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        freeze_heap()
        if enabled:
            gc.enable()


def thaw(_event=None) -> None:
    """Give frozen objects back to the collector: a napari layer is about to be removed."""
    global _frozen
    if _frozen:
        _frozen = False
        gc.unfreeze()
