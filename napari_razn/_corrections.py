"""Which painted pixels are corrections, kept in step with napari's undo and redo.

Qt-free: it reads napari's paint events by their fields, never by position,
so it is tested without a display.

napari announces one paint event per undoable step (a brush stroke, a fill,
a polygon, a `data_setitem`) whose value is a list of history atoms. Since
napari 0.9 the brush, fill and polygon tools store a `_MaskedPaintAtom`
(`slice_key`, `mask`, `old_values`, `new_value`: a bounding box and the
changed pixels in it, `mask` None when all of them changed);
`data_setitem` still stores a 3-tuple `(indices, old_values, new_values)`.

Undo and redo send no event at all, so the panel wraps the layer's own
`undo` and `redo` (which napari's Ctrl+Z and Ctrl+Shift+Z call) and
replays the matching step here: undo gives the pixels back the corrected
state they had before the step, redo marks them again.
"""

from __future__ import annotations

from collections import deque

import numpy as np

#: napari keeps this many undo steps on a Labels layer (`Labels._history_limit`).
HISTORY_LIMIT = 100


def edited_pixels(item, shape: tuple[int, ...]) -> np.ndarray:
    """Flat indices (into an array of `shape`) of the pixels one paint step changed.

    item : the value of a Labels layer's `paint` event: a list of history
        atoms, masked or fancy-index ones, in any mix.
    """
    pieces = []
    for atom in item:
        slice_key = getattr(atom, "slice_key", None)
        if slice_key is not None:
            pieces.append(_masked_atom_pixels(slice_key, getattr(atom, "mask", None), shape))
            continue
        indices = atom[0]  # the legacy (indices, old, new) 3-tuple
        if isinstance(indices, np.ndarray) and indices.dtype == bool:
            indices = np.nonzero(indices)
        arrays = [np.asarray(i, dtype=np.intp).ravel() for i in indices]
        if arrays and arrays[0].size:
            pieces.append(np.ravel_multi_index(tuple(arrays), shape))
    if not pieces:
        return np.zeros(0, np.intp)
    return np.unique(np.concatenate(pieces))


def _masked_atom_pixels(slice_key, mask, shape) -> np.ndarray:
    ranges = []
    for axis, s in enumerate(slice_key):
        start, stop, step = s.indices(shape[axis])
        ranges.append(np.arange(start, stop, step))
    grids = np.meshgrid(*ranges, indexing="ij")
    if mask is not None:
        mask = np.asarray(mask, bool)
        grids = [g[mask] for g in grids]
    return np.ravel_multi_index(tuple(g.ravel() for g in grids), shape)


class CorrectionLog:
    """The corrected mask, with one undo/redo record per napari paint step.

    corrected : the session's boolean mask, edited in place.
    """

    def __init__(self, corrected: np.ndarray):
        self.corrected = corrected
        self._undo = deque(maxlen=HISTORY_LIMIT)
        self._redo = deque(maxlen=HISTORY_LIMIT)

    def painted(self, item) -> int:
        """Record one paint step; returns how many pixels it touched."""
        pixels = edited_pixels(item, self.corrected.shape)
        before = self.corrected.flat[pixels].copy()
        self.corrected.flat[pixels] = True
        self._undo.append((pixels, before))
        self._redo.clear()  # napari clears its redo history on a new edit
        return int(pixels.size)

    def undone(self) -> None:
        """napari undid its last step: its pixels get their earlier state back."""
        if self._undo:
            pixels, before = self._undo.pop()
            self.corrected.flat[pixels] = before
            self._redo.append((pixels, before))

    def redone(self) -> None:
        """napari redid the last undone step: its pixels are corrections again."""
        if self._redo:
            pixels, before = self._redo.pop()
            self.corrected.flat[pixels] = True
            self._undo.append((pixels, before))
