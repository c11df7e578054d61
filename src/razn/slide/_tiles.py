"""Direct tile decoding: the one way pixels of a tiled TIFF level are read.

`Slide.read_region`, the dask levels and napari's layers all read tiled
levels here, never through tifffile's zarr store (which costs about as much
again as the decoding itself). A window is read in three steps:

1. the bytes of its tiles with one `os.pread` per run of tiles that lie
   back to back in the file (a row of tiles usually does), so no file
   position is shared and threads need no lock;
2. the tiles decoded on the calling thread and the decoder pool together,
   each thread taking the next tile from a shared queue, so there is one
   hand-off per thread, not one per tile; JPEG tiles (most slides) go
   straight to libjpeg-turbo through `imagecodecs.jpeg8_decode` with the
   colour spaces tifffile would pick, skipping tifffile's per-tile Python;
   every other codec goes through tifffile's `TiffPage.decode`. Both
   release the GIL;
3. each tile copied into its place in the output, or, for the level
   derived from this one (`read(..., halve=True)`), first averaged 2 x 2
   by the thread that decoded it, so the full-size window is never put
   together (napari's first frame of CMU: level 0 is 20 MB).

Tiles decode into buffers carved from slabs and recycled once the cache
drops them, so a long read faults in no fresh memory per tile: on this VM
a page fault costs 7-10 us, and the first touch of a megabyte (about 2 ms)
more than decoding it.

Decoded tiles go into an LRU cache when the caller asks (neighbouring
regions share tiles, and so do napari's views, which read through
`Slide.level_views`). The cache starts at 4 MB and grows towards 64 MB
only when reads come back to tiles it let go, so a pass that never
returns to a tile (random regions of a large slide, a whole-slide run)
recycles a few megabytes instead of filling 64 MB no one reads again.
Slides whose tiles are costly to decode (JPEG 2000, LZW, ...) get the
whole cache from the start (`TiledLevelReader.decodes_cheaply`). Chunk reads for dask skip it, since dask caches whole chunks and would
only evict the tiles regions share. Levels this module does not handle
(strips, planar storage) fall back to the zarr store in `_tiff.py`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from razn.slide._levels import halve_pixels

#: The most decoded tiles kept per slide; OpenSlide keeps 32 MB by default.
DEFAULT_CACHE_BYTES = 64 * 2**20
#: What a slide's tile cache keeps until reads come back to tiles it let go.
START_CACHE_BYTES = 4 * 2**20

# A run of adjacent tiles is read with one pread up to this many bytes.
_MAX_RUN_BYTES = 16 * 2**20


# Tile buffers come in slabs of this many tiles, under the 4 MB from which
# numpy asks for transparent huge pages: with the kernel's default "madvise"
# defrag those faults compact memory and cost more system time, not less.
_SLAB_TILES = 16


class TileBuffers:
    """Tile-sized uint8 buffers, carved from slabs and recycled.

    A buffer goes back to the free list when the cache evicts its tile or a
    read that does not cache is done with it, and only if nothing else still
    refers to it (checked under the GIL, after it left the cache, so no
    thread can pick it up again).
    """

    def __init__(self):
        self._free: dict[tuple, list] = {}
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, int, int]) -> np.ndarray:
        free = self._free.get(shape)
        if free:
            try:
                return free.pop()  # atomic under the GIL
            except IndexError:  # another thread took the last one
                pass
        slab = np.empty((_SLAB_TILES, *shape), np.uint8)
        with self._lock:
            self._free.setdefault(shape, []).extend(slab[1:])
        return slab[0]

    def give(self, tile: np.ndarray) -> None:
        # References: the caller's, this argument, getrefcount's own.
        if tile.base is not None and sys.getrefcount(tile) <= 3:
            free = self._free.get(tile.shape)
            if free is not None:
                free.append(tile)


class TileCache:
    """A thread-safe LRU of decoded tiles that grows only when reuse shows.

    It starts at `start_bytes` and grows towards `max_bytes` only when a
    tile it let go is asked for again: it keeps the keys (not the pixels)
    of the tiles it evicted, and a miss on one of those says a larger cache
    would have served it. Reads that never come back to a tile (random
    regions of a large slide, one pass of a whole-slide run) so keep a few
    megabytes that recycle their buffers, instead of faulting in 64 MB of
    fresh memory that nothing reads again: on this VM a first touch costs
    about 2 ms per MB, more than decoding the same tiles. Views that do come
    back (napari panning, overlapping regions) grow it within a few reads.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES, start_bytes: int = START_CACHE_BYTES):
        self.max_bytes = max_bytes
        self.capacity = min(start_bytes, max_bytes)  # the bytes it keeps now
        self.buffers = TileBuffers()
        self._tiles: OrderedDict = OrderedDict()
        self._bytes = 0
        # Keys of evicted tiles (most recent last) and the bytes they held:
        # as many as the cache could still grow by, so a miss on one is a
        # read that a cache of `max_bytes` would have served (a scan longer
        # than that gains nothing from growing, and does not grow it).
        self._evicted: OrderedDict = OrderedDict()
        self._evicted_bytes = 0
        self._lock = threading.Lock()

    def get(self, key):
        # OrderedDict's C methods are each atomic under the GIL, so a lookup
        # takes no lock; only `put` must keep the byte count consistent.
        tile = self._tiles.get(key)
        if tile is not None:
            with contextlib.suppress(KeyError):  # evicted meanwhile by another thread
                self._tiles.move_to_end(key)
        return tile

    def put(self, key, tile: np.ndarray) -> None:
        """Keep a tile just decoded (after a miss on `key`)."""
        nbytes = tile.nbytes
        if nbytes > self.max_bytes:
            return
        with self._lock:
            if key in self._tiles:
                return
            if self._evicted.pop(key, None) is not None:
                # Decoded twice: a larger cache would have kept it. Doubling
                # reaches the largest size after a handful of such misses.
                self._evicted_bytes -= nbytes
                self.capacity = min(self.max_bytes, 2 * self.capacity)
            self._tiles[key] = tile
            self._bytes += nbytes
            while self._bytes > self.capacity:
                old_key, old = self._tiles.popitem(last=False)
                self._bytes -= old.nbytes
                self._evicted[old_key] = old.nbytes
                self._evicted_bytes += old.nbytes
                self.buffers.give(old)
                del old
            while self._evicted_bytes > self.max_bytes - self.capacity:
                self._evicted_bytes -= self._evicted.popitem(last=False)[1]


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


def _jpeg_decoder(page):
    """A fast decode(data, out) for the page's JPEG tiles, or None.

    Only plain 8-bit, 3-sample JPEG is taken (what scanners write); the
    colour spaces are the ones tifffile passes for the same page, so the
    pixels are identical to `TiffPage.decode`'s.
    """
    if page.compression != 7 or page.bitspersample != 8 or page.samplesperpixel != 3:
        return None
    if page.extrasamples:
        return None
    try:
        import imagecodecs
        from tifffile.tifffile import jpeg_decode_colorspace
    except ImportError:  # pragma: no cover - both ship with tifffile's codecs
        return None
    decode = getattr(imagecodecs, "jpeg8_decode", None)
    if decode is None:  # pragma: no cover
        return None
    colorspace, outcolorspace = jpeg_decode_colorspace(
        page.photometric, page.planarconfig, page.extrasamples, page.is_jfif
    )
    tables = page.jpegtables

    def decode_jpeg(data, out: np.ndarray) -> np.ndarray:
        return decode(
            data, tables=tables, colorspace=colorspace, outcolorspace=outcolorspace, out=out
        )

    return decode_jpeg


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
        self._decode_page = page.decode
        self._jpegtables = page.jpegtables
        self._decode_jpeg = _jpeg_decoder(page)

    @property
    def decodes_cheaply(self) -> bool:
        """Whether a tile costs about as little to decode again as to keep.

        JPEG through libjpeg-turbo: 0.2-0.3 ms a tile, about what faulting
        in the memory to keep it costs. JPEG 2000 and the codecs tifffile
        decodes cost 10-50 times that, so keeping their tiles always pays.
        """
        return self._decode_jpeg is not None

    # -- bytes -------------------------------------------------------------
    def _tile_bytes(self, indices: list[int]) -> dict[int, bytes | memoryview]:
        """The encoded bytes of tiles, adjacent ones read with one pread."""
        offsets, counts = self._offsets, self._counts
        found: dict[int, bytes | memoryview] = {}
        run: list[int] = []

        def flush() -> None:
            start = int(offsets[run[0]])
            end = int(offsets[run[-1]] + counts[run[-1]])
            if len(run) == 1:
                found[run[0]] = self._read_bytes(start, end - start)
            else:
                view = memoryview(self._read_bytes(start, end - start))
                for i in run:
                    o = int(offsets[i]) - start
                    found[i] = view[o : o + int(counts[i])]

        for i in sorted(indices):
            if counts[i] == 0:
                continue  # a tile the scanner never wrote: glass
            if run:
                last = run[-1]
                adjacent = offsets[last] + counts[last] == offsets[i]
                if adjacent and offsets[i] + counts[i] - offsets[run[0]] <= _MAX_RUN_BYTES:
                    run.append(i)
                    continue
                flush()
            run = [i]
        if run:
            flush()
        return found

    # -- decoding ----------------------------------------------------------
    def _decode(self, index: int, data) -> np.ndarray:
        if self._decode_jpeg is not None:
            tile = self._cache.buffers.take((self.tile_rows, self.tile_cols, self.samples))
            try:
                return self._decode_jpeg(data, tile)
            except Exception:  # noqa: S110 - tifffile's decoder below names the fault
                pass
        decoded, _, _ = self._decode_page(bytes(data), index, jpegtables=self._jpegtables)
        return decoded.reshape(decoded.shape[-3:])

    def _blank(self) -> np.ndarray:
        return np.full((self.tile_rows, self.tile_cols, self.samples), self._fill, np.uint8)

    # -- windows -----------------------------------------------------------
    @property
    def halves_tiles(self) -> bool:
        """Whether `read(..., halve=True)` works here: even tile sides."""
        return self.tile_rows % 2 == 0 and self.tile_cols % 2 == 0

    def read(
        self, y0: int, y1: int, x0: int, x1: int, *, cache: bool = True, halve: bool = False
    ) -> np.ndarray:
        """The window [y0:y1, x0:x1] of this level (inside it), decoded.

        `cache=False` neither consults nor fills the tile cache (chunk reads
        for dask and napari, which cache whole chunks themselves).
        `halve=True` returns the window averaged 2 x 2 (`halve_pixels`; y0
        and x0 even, an odd last row or column left out, `halves_tiles`
        true): each tile is halved by the thread that decoded it, and the
        full-size window is never put together.
        """
        th, tw, grid_cols, level = self.tile_rows, self.tile_cols, self._grid_cols, self._level
        if halve:
            if y0 % 2 or x0 % 2 or not self.halves_tiles:
                raise ValueError("a halved read needs an even origin and even tile sides")
            y1, x1 = y0 + (y1 - y0) // 2 * 2, x0 + (x1 - x0) // 2 * 2
            # The output and the tiles in its coordinates: everything halved.
            oy0, oy1, ox0, ox1, oth, otw = y0 // 2, y1 // 2, x0 // 2, x1 // 2, th // 2, tw // 2
        else:
            oy0, oy1, ox0, ox1, oth, otw = y0, y1, x0, x1, th, tw
        out = np.empty((oy1 - oy0, ox1 - ox0, self.samples), np.uint8)
        if oy1 <= oy0 or ox1 <= ox0:
            return out

        def place(tile: np.ndarray, row: int, col: int) -> None:
            if halve:
                tile = halve_pixels(tile)
            _place(out, tile, row * oth, col * otw, oy0, oy1, ox0, ox1)

        todo = []  # (index, row, col) of tiles to decode
        for row in range(y0 // th, (y1 - 1) // th + 1):
            for col in range(x0 // tw, (x1 - 1) // tw + 1):
                index = row * grid_cols + col
                tile = self._cache.get((level, index)) if cache else None
                if tile is None:
                    todo.append((index, row, col))
                else:
                    place(tile, row, col)
        if not todo:
            return out
        data = self._tile_bytes([index for index, _, _ in todo])
        queue = iter(todo)

        def work() -> None:
            # Threads share one iterator: each takes the next tile when done
            # with its last, so a slow tile (JPEG 2000) does not hold a batch.
            for index, row, col in queue:
                encoded = data.get(index)
                tile = self._blank() if encoded is None else self._decode(index, encoded)
                place(tile, row, col)
                if cache:
                    self._cache.put((level, index), tile)
                else:
                    self._cache.buffers.give(tile)
                del tile

        helpers = min(len(todo), _POOL_SIZE) - 1
        if helpers <= 0:
            work()
            return out
        pool = _decoder_pool()
        futures = [pool.submit(work) for _ in range(helpers)]
        try:
            work()
        finally:
            for future in futures:
                # A helper still queued behind other reads has nothing left
                # to do: cancel it rather than wait for it to start.
                if not future.cancel():
                    future.result()  # re-raises a helper's error here
        return out


def _place(out, tile, ty0: int, tx0: int, y0: int, y1: int, x0: int, x1: int) -> None:
    """Copy the part of a tile at (ty0, tx0) that falls in the window."""
    th, tw = tile.shape[:2]
    sy0, sy1 = max(y0, ty0), min(y1, ty0 + th)
    sx0, sx1 = max(x0, tx0), min(x1, tx0 + tw)
    out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = tile[
        sy0 - ty0 : sy1 - ty0, sx0 - tx0 : sx1 - tx0
    ]


# One decoder thread per core (at most 8), and the calling thread decodes
# too: one thread more than cores. A thread waiting for the GIL or to be
# woken leaves its core idle, and the spare thread fills it: on the 2-core
# VM at load 3, 20-40% more MP/s at 512 and 1024 px than one thread per
# core (interleaved pairs; no difference at load 10).
_POOL_SIZE = min(8, os.cpu_count() or 1) + 1
_pool = None
_pool_lock = threading.Lock()


def _decoder_pool() -> ThreadPoolExecutor:
    """One process-wide pool of decoder threads, started on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(1, _POOL_SIZE - 1), "razn-decode")
        return _pool
