"""Direct tile decoding for `Slide.read_region`, the core's hot path.

The dask levels go through tifffile's zarr store, which is what napari and
dask want. For reading regions one at a time that store costs about as much
again as the JPEG decoding itself (measured in benchmarks/io.py), so tiled
levels are read here directly: the tile bytes with `os.pread` (no shared
file position, so threads need no lock), decoded by tifffile's own
`TiffPage.decode` (imagecodecs, which releases the GIL), and kept in a small
LRU cache because neighbouring regions share tiles. Levels this module does
not handle (strips, planar storage) fall back to the zarr store.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: Decoded tiles kept per slide; OpenSlide keeps 32 MB by default.
DEFAULT_CACHE_BYTES = 64 * 2**20


class TileCache:
    """A thread-safe LRU of decoded tiles, bounded in bytes."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES):
        self.max_bytes = max_bytes
        self._tiles: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            tile = self._tiles.get(key)
            if tile is not None:
                self._tiles.move_to_end(key)
            return tile

    def put(self, key, tile: np.ndarray) -> None:
        if tile.nbytes > self.max_bytes:
            return
        with self._lock:
            if key in self._tiles:
                return
            self._tiles[key] = tile
            self._bytes += tile.nbytes
            while self._bytes > self.max_bytes:
                _, old = self._tiles.popitem(last=False)
                self._bytes -= old.nbytes


def open_byte_reader(path):
    """(read(offset, count) -> bytes, close()) for a file, safe across threads.

    `os.pread` has no shared file position, so concurrent readers need no
    lock; where it is missing (Windows) a lock serialises seek and read.
    """
    if hasattr(os, "pread"):
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        return (lambda offset, count: os.pread(fd, count, offset)), (lambda: os.close(fd))
    fh = open(path, "rb")  # noqa: SIM115 - closed by the returned close()
    lock = threading.Lock()

    def read(offset: int, count: int) -> bytes:
        with lock:
            fh.seek(offset)
            return fh.read(count)

    return read, fh.close


def can_read_directly(page) -> bool:
    """Whether `TiledLevelReader` handles this page (tiled, chunky, 2-D)."""
    return bool(
        getattr(page, "is_tiled", False)
        and page.planarconfig == 1
        and page.imagedepth == 1
        and page.tiledepth == 1
        and getattr(page, "dataoffsets", None) is not None
        and len(page.dataoffsets) == int(np.prod(page.chunked))
    )


class TiledLevelReader:
    """Reads windows of one tiled TIFF page as (rows, cols, samples) arrays."""

    def __init__(self, read_bytes, page, level: int, cache: TileCache, fill: int = 255):
        self._read_bytes = read_bytes
        self._page = page
        self._level = level
        self._cache = cache
        self._fill = fill
        self._offsets = np.asarray(page.dataoffsets, dtype=np.int64)
        self._counts = np.asarray(page.databytecounts, dtype=np.int64)
        self.tile_rows, self.tile_cols = page.tilelength, page.tilewidth
        self.samples = page.samplesperpixel
        self._grid_cols = page.chunked[1]
        self._decode = page.decode
        self._jpegtables = page.jpegtables

    def _tile(self, row: int, col: int) -> np.ndarray:
        index = row * self._grid_cols + col
        key = (self._level, index)
        tile = self._cache.get(key)
        if tile is not None:
            return tile
        count = int(self._counts[index])
        if count == 0:  # a tile the scanner never wrote: glass
            tile = np.full((self.tile_rows, self.tile_cols, self.samples), self._fill, np.uint8)
        else:
            data = self._read_bytes(int(self._offsets[index]), count)
            decoded, _, _ = self._decode(data, index, jpegtables=self._jpegtables)
            tile = decoded.reshape(decoded.shape[-3:])
        self._cache.put(key, tile)
        return tile

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        out = np.empty((y1 - y0, x1 - x0, self.samples), np.uint8)
        th, tw = self.tile_rows, self.tile_cols
        cells = [
            (row, col)
            for row in range(y0 // th, (y1 - 1) // th + 1)
            for col in range(x0 // tw, (x1 - 1) // tw + 1)
        ]
        if len(cells) > 1:
            # Decoding dominates (JPEG 2000 above all) and imagecodecs releases
            # the GIL, so the tiles of one region decode on all cores.
            tiles = _decoder_pool().map(lambda cell: self._tile(*cell), cells)
        else:
            tiles = [self._tile(*cells[0])]
        for (row, col), tile in zip(cells, tiles, strict=True):
            ty0, tx0 = row * th, col * tw
            sy0, sy1 = max(y0, ty0), min(y1, ty0 + th)
            sx0, sx1 = max(x0, tx0), min(x1, tx0 + tw)
            out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = tile[
                sy0 - ty0 : sy1 - ty0, sx0 - tx0 : sx1 - tx0
            ]
        return out


_pool = None
_pool_lock = threading.Lock()


def _decoder_pool() -> ThreadPoolExecutor:
    """One process-wide pool of decoder threads, one per core (at most 8)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(min(8, os.cpu_count() or 1), "razn-decode")
        return _pool
