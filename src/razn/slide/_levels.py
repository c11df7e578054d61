"""A slide's pyramid levels: their shapes and downsamples, and two ways to read them.

A `Level` is one stored or derived level. Its dask array (`Level.array`) is
built on first use, so opening a slide and reading regions never import
dask; `LevelView` is an array-like napari can show, reading windows through
the same stored-level reader as `Slide.read_region`. Levels a file does not
store are derived by halving the one before (`lazy_levels`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import dask.array as da

# dask chunks are a whole number of file tiles near this edge: large enough
# that a 100k x 100k level is ~10k chunks (a cheap graph), small enough that
# a napari view decodes little more than it shows.
_CHUNK_EDGE = 1024

# A derived level up to this many pixels is computed whole on its first read
# and kept (12 MB at most): the coarsest levels, which a viewer shows whole.
_KEPT_DERIVED_PIXELS = 4_000_000
# Output rows a derived window is averaged by at a time.
_HALVE_BAND_ROWS = 256

# Single-level files get coarser levels computed lazily down to this size,
# so napari can show the whole slide without reading level 0 at once.
_SMALLEST_LEVEL_EDGE = 512


class Level:
    """One stored or derived pyramid level.

    Its shape and downsample are known at open time; its dask array is
    built on first use of `array`, so opening a slide and reading regions
    (`Slide.read_region`) never imports dask.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        downsample_xy: tuple[float, float],
        stored: bool,
        source: da.Array | Callable[[], da.Array],
    ):
        self.shape = (int(shape[0]), int(shape[1]))  # (height, width)
        self.downsample_xy = downsample_xy  # level-0 pixels per level pixel, x and y
        self.stored = stored  # False for levels derived lazily from a finer one
        self._source = source  # the array, or a function that builds it

    @cached_property
    def array(self) -> da.Array:
        """(height, width, 3) uint8 dask array of this level."""
        source = self._source
        return source() if callable(source) else source

    @property
    def downsample(self) -> float:
        return (self.downsample_xy[0] + self.downsample_xy[1]) / 2


class LevelView:
    """A pyramid level as a read-only array-like, decoded on demand.

    numpy-style indexing of (height, width, 3) uint8 pixels: a plain slice
    reads only the tiles under it (`read(y0, y1, x0, x1)`), anything else
    (steps, integers, index arrays) the window that covers it. napari takes
    a list of these as a multiscale layer, without dask in between, and
    `dask.array.from_array` takes one as a level.
    """

    dtype = np.dtype(np.uint8)
    ndim = 3

    def __init__(self, read: Callable[[int, int, int, int], np.ndarray], shape: tuple[int, int]):
        self._read = read
        self.shape = (int(shape[0]), int(shape[1]), 3)

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1] * 3

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[:, :]
        if dtype is not None and np.dtype(dtype) != whole.dtype:
            return whole.astype(dtype)
        # A level kept whole is handed out read-only; `np.array` asks for
        # a copy it can write to.
        return whole.copy() if copy else whole

    def __repr__(self) -> str:
        return f"<LevelView {self.shape[1]}x{self.shape[0]} RGB>"

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            at = next(i for i, k in enumerate(key) if k is Ellipsis)
            key = key[:at] + (slice(None),) * (4 - len(key)) + key[at + 1 :]
        key = key + (slice(None),) * (3 - len(key))
        rows, cols, channels = key
        if _is_plain(rows) and _is_plain(cols):
            y0, y1, _ = rows.indices(self.shape[0])
            x0, x1, _ = cols.indices(self.shape[1])
            if y1 <= y0 or x1 <= x0:
                window = np.empty((max(0, y1 - y0), max(0, x1 - x0), 3), np.uint8)
            else:
                window = self._read(y0, y1, x0, x1)
            return window if channels == slice(None) else window[:, :, channels]
        # Read the rows and columns that cover the selection, then index that.
        (y0, y1, rows), (x0, x1, cols) = _cover(rows, self.shape[0]), _cover(cols, self.shape[1])
        window = self[y0:y1, x0:x1]
        picked = window[rows][cols] if np.ndim(rows) == 0 else window[rows][:, cols]
        return picked[..., channels]


def _is_plain(key) -> bool:
    return isinstance(key, slice) and key.step in (None, 1)


def _cover(key, n: int):
    """(start, stop, index relative to start) of the rows or columns `key` picks."""
    index = np.arange(n)[key] if isinstance(key, slice) else np.asarray(key)
    index = np.where(index < 0, index + n, index)
    if index.size == 0:
        return 0, 0, index
    lo = int(index.min())
    return lo, int(index.max()) + 1, index - lo


class DerivedLevelReader:
    """Reads windows of a level derived from `finer` by 2 x 2 averaging.

    A small derived level (the coarsest ones, which a viewer shows whole:
    napari's thumbnail and first frame) is computed whole on its first read
    and kept, so the next read, or the level derived from it, does not
    average its finer level again; a large one is averaged window by window.

    `read_halved(y0, y1, x0, x1, cache)`, where the finer level is a stored
    tiled one, reads a window of it already halved: each tile is averaged
    on the decoder thread that decoded it, while it is hot in the CPU's
    cache, and the finer window is never put together (CMU's level 0, for
    napari's first frame: 20 MB of fresh memory and a second pass over it).
    """

    def __init__(
        self,
        finer: LevelView,
        shape: tuple[int, int],
        read_halved: Callable[..., np.ndarray] | None = None,
    ):
        self._finer = finer
        self._shape = shape
        self._read_halved = read_halved
        self._whole: np.ndarray | None = None
        self._lock = threading.Lock()

    def __call__(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        height, width = self._shape
        if height * width > _KEPT_DERIVED_PIXELS:
            return self._halve(y0, y1, x0, x1)
        with self._lock:  # napari may slice from several threads
            if self._whole is None:
                self._whole = self._halve(0, height, 0, width)
                # Handed out as read-only views, not copies (napari's first
                # frame shows CMU's 5 MB level 1 from here): a caller that
                # tries to write into one gets an error, not a changed level.
                self._whole.flags.writeable = False
        return self._whole[y0:y1, x0:x1]

    def _halve(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        if self._read_halved is not None:
            # The finer tiles go through the tile cache: napari often shows
            # the stored level under its thumbnail next (the 100k slide in a
            # large window), and reads some of them back from there.
            return self._read_halved(2 * y0, 2 * y1, 2 * x0, 2 * x1, cache=True)
        return _halve_window(self._finer, y0, y1, x0, x1)


def halve_pixels(pixels: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(h // 2, w // 2, c) uint8: 2 x 2 blocks of `pixels` averaged.

    The mean rounded half up, (a + b + c + d + 2) // 4: what PIL's
    `reduce(2)` computes, and the dask levels (`_halve`). An odd last row
    or column is left out. numpy releases the GIL for these loops, so
    decoder threads halve their tiles in parallel.
    """
    h, w = pixels.shape[0] // 2, pixels.shape[1] // 2
    # Row pairs first: two contiguous rows summed in uint16.
    rows = np.add(pixels[0 : 2 * h : 2, : 2 * w], pixels[1 : 2 * h : 2, : 2 * w], dtype=np.uint16)
    pairs = rows.reshape(h, w, 2 * pixels.shape[2])
    channels = pixels.shape[2]
    total = pairs[..., :channels] + pairs[..., channels:]
    total += 2
    total >>= 2
    if out is None:
        return total.astype(np.uint8)
    np.copyto(out, total, casting="unsafe")
    return out


def _halve_window(finer: LevelView, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """Window of the level derived from `finer` by 2 x 2 averaging.

    The same pixels as `_halve`'s dask level (`halve_pixels`). The finer
    window is read and averaged in bands of rows (2 x 2 blocks never
    straddle one), so halving a large window touches a few MB of fresh
    memory at a time instead of the whole finer window at once.
    """
    out = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
    for top in range(y0, y1, _HALVE_BAND_ROWS):
        bottom = min(top + _HALVE_BAND_ROWS, y1)
        block = finer[2 * top : 2 * bottom, 2 * x0 : 2 * x1]
        halve_pixels(block, out[top - y0 : bottom - y0])
    return out


def build_levels(stored: list[da.Array]) -> list[Level]:
    """Pyramid levels from stored arrays, adding lazily derived coarser ones.

    A file with one level (or a pyramid that stops early) gets 2x coarser
    levels computed by dask on demand, down to about 512 pixels, so a viewer
    can show the whole slide without decoding all of level 0 at once.
    """
    return lazy_levels([arr.shape[:2] for arr in stored], lambda index: stored[index])


def lazy_levels(
    shapes: list[tuple[int, int]], make_array: Callable[[int], da.Array]
) -> list[Level]:
    """Pyramid levels from the stored levels' shapes; arrays built on first use.

    `make_array(index)` returns stored level `index` as a dask array. Derived
    levels (see `build_levels`) halve the level before them when their array
    is first asked for.
    """
    height0, width0 = shapes[0]

    def level(shape, stored, source) -> Level:
        return Level(shape, (width0 / shape[1], height0 / shape[0]), stored, source)

    levels = [
        level(shape, True, lambda index=index: make_array(index))
        for index, shape in enumerate(shapes)
    ]
    last = levels[-1]
    while max(last.shape) > 2 * _SMALLEST_LEVEL_EDGE and min(last.shape) >= 4:
        # _halve trims an odd row or column, then averages 2 x 2 blocks.
        shape = (last.shape[0] // 2, last.shape[1] // 2)
        last = level(shape, False, lambda finer=last: _halve(finer.array))
        levels.append(last)
    return levels


def _halve(array: da.Array) -> da.Array:
    import dask.array as da

    even = array[: array.shape[0] // 2 * 2, : array.shape[1] // 2 * 2]
    # coarsen needs every chunk divisible by 2.
    chunks = tuple(max(2, c // 2 * 2) for c in (even.chunksize[0], even.chunksize[1]))
    even = even.rechunk((chunks[0], chunks[1], 3))
    mean = da.coarsen(np.mean, even, {0: 2, 1: 2}, trim_excess=True, dtype=np.float32)
    half = (mean + 0.5).astype(np.uint8)
    if max(half.chunksize[:2]) < _CHUNK_EDGE:
        # Keep chunks at 1024: a quarter as many tasks at each coarser level.
        half = half.rechunk((_CHUNK_EDGE, _CHUNK_EDGE, 3))
    return half


def chunk_shape(tile: tuple[int, int] | None, shape: tuple[int, int]) -> tuple[int, int]:
    """dask chunk (rows, cols): whole file tiles, about 1024 pixels a side."""
    if not tile or min(tile) <= 0:
        return (min(shape[0], _CHUNK_EDGE), min(shape[1], _CHUNK_EDGE))
    th, tw = tile
    return (
        min(shape[0], th * max(1, round(_CHUNK_EDGE / th))),
        min(shape[1], tw * max(1, round(_CHUNK_EDGE / tw))),
    )
