"""TIFF-family slides (SVS, OME-TIFF, SCN, NDPI, pyramidal TIFF) through tifffile.

This module picks the series that is the slide (not the label, macro or
thumbnail image scanners store beside it), checks that it is 8-bit RGB
brightfield, and reads its levels: tiled levels through the direct tile
reader (`_tiles.py`), anything else (strips, planar storage) through
tifffile's zarr store, opened only when such a level is first read. The
dask levels (`Slide.levels`) are built on first use over the same reads,
so `Slide.read_region`, dask and napari all decode tiles the same way.
Every problem becomes a `SlideError` naming the file.
"""

from __future__ import annotations

import functools
import math
import os
import struct
import threading
import weakref
from pathlib import Path

import numpy as np
import tifffile

from razn.errors import SlideError
from razn.slide._levels import LevelView, chunk_shape, lazy_levels
from razn.slide._metadata import read_metadata
from razn.slide._pyramid import Slide
from razn.slide._tiles import TileCache, TiledLevelReader, can_read_directly, open_byte_reader

# Series that scanners store beside the slide itself.
_SIDE_IMAGES = {"label", "macro", "thumbnail", "overview"}

#: A level-0 image without a pyramid is read whole (chunk by chunk) for the
#: tissue mask and the overview; past this size that is hours of decoding,
#: so such a file is refused with the advice to make a pyramid.
MAX_UNPYRAMIDED_PIXELS = 50_000 * 50_000
#: The most pixels one stored byte of a large level may stand for. Real
#: JPEG, LZW, deflate and JPEG 2000 tiles of blank glass stay under ~1,000;
#: a level that claims more is a header lying about its size, and reading
#: it would decode (fill) billions of pixels from nothing. Small levels
#: (under 64 Mpx) cannot cost much and are not checked.
MAX_PIXELS_PER_STORED_BYTE = 20_000
_CHECKED_LEVEL_PIXELS = 64_000_000


def open_tiff_slide(path: Path) -> Slide:
    try:
        tif = tifffile.TiffFile(path)
    except (tifffile.TiffFileError, ValueError, OSError, struct.error, IndexError) as error:
        raise SlideError(f"not a readable TIFF (corrupt or truncated?): {error}", path) from None
    try:
        return _slide_from_tiff(path, tif)
    except BaseException:
        tif.close()
        raise


def _slide_from_tiff(path: Path, tif: tifffile.TiffFile) -> Slide:
    try:
        series = _main_series(tif)
    except Exception as error:  # tifffile parses lazily; a damaged IFD fails here
        raise SlideError(f"cannot read the TIFF structure (corrupt?): {error}", path) from None
    if series is None:
        raise SlideError("the TIFF holds no image", path)
    page = series.keyframe
    channel_axis = _check_pixels(path, series, page)
    _check_sizes(path, series)
    metadata = read_metadata(tif, page)
    tile = (page.tilelength, page.tilewidth) if page.is_tiled else None
    pixels = _TiffPixels(path, tif, series, channel_axis)
    shapes = [_level_shape(level, channel_axis) for level in series.levels]
    return Slide(
        path,
        metadata.format,
        lazy_levels(shapes, lambda index: pixels.dask_level(index, tile)),
        mpp=metadata.mpp,
        mpp_source=metadata.mpp_source,
        magnification=metadata.magnification,
        tile_size=tile,
        compression=_compression_name(page),
        read_stored=pixels.read,
        halved_reader=pixels.halved_reader,
        close=pixels.close,
    )


class _TiffPixels:
    """The pixels of a slide's levels, read by window; owns the open file.

    The file stays open while anything can still read pixels: the Slide,
    or dask levels it handed out (say, to a napari layer), which hold this
    object. It closes when this object is collected, or earlier on
    `Slide.close()`.
    """

    def __init__(self, path: Path, tif: tifffile.TiffFile, series, channel_axis: int):
        self.path = path
        self._series = series
        self._channel_axis = channel_axis
        read_bytes, close_bytes = open_byte_reader(path)
        cache = TileCache()
        self._direct: dict[int, TiledLevelReader] = {}
        if channel_axis == -1:
            for index, level in enumerate(series.levels):
                level_page = level.pages[0] if len(level.pages) else None
                if level_page is not None and can_read_directly(level_page):
                    self._direct[index] = TiledLevelReader(read_bytes, level_page, index, cache)
        if any(not reader.decodes_cheaply for reader in self._direct.values()):
            # A tile that costs ten times its memory to decode again is
            # worth keeping from the first read: the whole cache at once.
            cache.capacity = cache.max_bytes
        self._zarr = None  # zarr arrays of the levels, opened on first need
        self._zarr_lock = threading.Lock()
        self._token = _file_token(path)
        self.close = weakref.finalize(self, _close_all, close_bytes, tif.close)

    def read(
        self, index: int, y0: int, y1: int, x0: int, x1: int, *, cache: bool = True
    ) -> np.ndarray:
        """(y1 - y0, x1 - x0, 3) uint8 window of stored level `index`."""
        try:
            if index in self._direct:
                pixels = self._direct[index].read(y0, y1, x0, x1, cache=cache)
                if pixels.shape[2] != 3:
                    pixels = pixels[..., :3]
            elif self._channel_axis == 0:
                pixels = np.moveaxis(self._zarr_level(index)[:3, y0:y1, x0:x1], 0, -1)
            else:
                pixels = self._zarr_level(index)[y0:y1, x0:x1, :3]
        except SlideError:
            raise
        except Exception as error:
            raise self._undecodable(index, error) from None
        return np.ascontiguousarray(pixels)

    def _undecodable(self, index: int, error: Exception) -> SlideError:
        return SlideError(
            f"cannot decode tiles of level {index} (corrupt or unsupported compression?): {error}",
            self.path,
        )

    def halved_reader(self, index: int):
        """`read_halved(y0, y1, x0, x1, cache)` for stored level `index`, or None.

        The window of the level averaged 2 x 2, each tile halved as it is
        decoded (`TiledLevelReader.read(halve=True)`): what the level
        derived from this one reads. None where the direct reader does not
        take the level, or its tiles have an odd side.
        """
        reader = self._direct.get(index)
        if reader is None or not reader.halves_tiles:
            return None

        def read_halved(y0: int, y1: int, x0: int, x1: int, *, cache: bool) -> np.ndarray:
            try:
                pixels = reader.read(y0, y1, x0, x1, cache=cache, halve=True)
            except Exception as error:
                raise self._undecodable(index, error) from None
            return pixels if pixels.shape[2] == 3 else np.ascontiguousarray(pixels[..., :3])

        return read_halved

    def _zarr_level(self, index: int):
        with self._zarr_lock:
            if self._zarr is None:
                import zarr

                try:
                    group = zarr.open(self._series.aszarr(), mode="r")
                except Exception as error:
                    raise SlideError(f"cannot index the image tiles: {error}", self.path) from None
                if isinstance(group, zarr.Array):
                    self._zarr = [group]
                else:
                    self._zarr = [group[str(i)] for i in range(len(self._series.levels))]
            return self._zarr[index]

    def dask_level(self, index: int, tile):
        """Stored level `index` as a dask array whose chunks are whole file tiles."""
        import dask.array as da

        shape = _level_shape(self._series.levels[index], self._channel_axis)
        # Chunk reads skip the tile cache: dask caches whole chunks.
        window = LevelView(functools.partial(self.read, index, cache=False), shape)
        return da.from_array(
            window,
            chunks=(*chunk_shape(tile, window.shape[:2]), 3),
            name=f"razn-slide-{self._token}-{index}",
            asarray=False,
            fancy=False,
            inline_array=True,
            meta=np.empty((0, 0, 0), np.uint8),
        )


def _level_shape(level, channel_axis: int) -> tuple[int, int]:
    shape = level.shape
    return (int(shape[1]), int(shape[2])) if channel_axis == 0 else (int(shape[0]), int(shape[1]))


def _file_token(path: Path) -> str:
    """Names the dask arrays of this file's levels: same file, same name."""
    import hashlib

    stat = os.stat(path)
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()
    return hashlib.sha1(key, usedforsecurity=False).hexdigest()[:16]


def _close_all(*closers) -> None:
    for close in closers:
        close()


def _check_sizes(path: Path, series) -> None:
    """Refuse levels whose declared size the stored tiles or strips cannot fill.

    tifffile only warns when a page's offset table is shorter than its
    declared size needs, then serves the missing chunks as blank: a 200 kB
    file claiming 10^6 x 10^6 pixels opened, and the tissue mask then
    decoded 10^12 blank pixels. Checking the tables is cheap (no pixels).
    """
    for index, level in enumerate(series.levels):
        for page in level.pages:
            if page is None:
                continue
            page = page.keyframe if hasattr(page, "keyframe") else page
            try:
                height, width = int(page.imagelength), int(page.imagewidth)
                expected = math.prod(page.chunked)
                stored = len(page.dataoffsets)
                stored_bytes = int(np.sum(page.databytecounts, dtype=np.int64))
            except Exception as error:  # a zero tile size, a missing table, ...
                raise SlideError(
                    f"level {index} has a damaged tile or strip layout: {error}", path
                ) from None
            kind = "tiles" if page.is_tiled else "strips"
            if stored != expected:
                raise SlideError(
                    f"level {index} declares {width}x{height} pixels, which needs {expected:,} "
                    f"{kind}, but the file lists {stored:,}: corrupt or not a real slide",
                    path,
                )
            pixels = height * width
            if (
                pixels > _CHECKED_LEVEL_PIXELS
                and pixels > MAX_PIXELS_PER_STORED_BYTE * stored_bytes
            ):
                raise SlideError(
                    f"level {index} declares {width}x{height} pixels but stores only "
                    f"{stored_bytes:,} bytes of {kind}: corrupt or not a real slide",
                    path,
                )
    height, width = (int(n) for n in series.levels[0].shape[:2])
    if series.axes.startswith(("S", "C")):
        height, width = (int(n) for n in series.levels[0].shape[1:3])
    if len(series.levels) == 1 and height * width > MAX_UNPYRAMIDED_PIXELS:
        raise SlideError(
            f"{width}x{height} pixels in one level without a pyramid is too large to read "
            "whole; save it as a pyramidal (tiled, multi-resolution) TIFF",
            path,
        )


def _main_series(tif: tifffile.TiffFile):
    """The series that is the slide: the largest that is not a side image.

    tifffile's first series is usually it, but not always (a Leica SCN can
    list the macro overview first), so take the largest by area.
    """
    candidates = [s for s in tif.series if (s.name or "").lower() not in _SIDE_IMAGES]
    if not candidates:
        candidates = list(tif.series)
    if not candidates:
        return None

    def area(series) -> int:
        shape = dict(zip(series.axes, series.shape, strict=True))
        return shape.get("Y", 0) * shape.get("X", 0)

    return max(candidates, key=area)


def _check_pixels(path: Path, series, page) -> int:
    """Refuse anything but 8-bit RGB(A); return the channel axis (0 or -1)."""
    axes, shape = series.axes, series.shape
    sizes = dict(zip(axes, shape, strict=True))
    extra = {a: n for a, n in sizes.items() if a not in "YXSC" and n > 1}
    if extra:
        what = ", ".join(f"{n} {_AXIS_NAMES.get(a, a)}" for a, n in extra.items())
        raise SlideError(f"holds a stack ({what}); RAZN reads one 8-bit RGB image", path)
    if series.dtype != np.uint8:
        raise SlideError(
            f"holds {np.dtype(series.dtype).itemsize * 8}-bit pixels ({series.dtype}); "
            "RAZN reads 8-bit RGB brightfield slides",
            path,
        )
    channels = sizes.get("S", sizes.get("C", 1))
    if channels == 1:
        raise SlideError(
            "holds grayscale (single-channel) pixels; RAZN reads RGB brightfield slides", path
        )
    photometric = tifffile.PHOTOMETRIC(page.photometric).name
    colour = photometric in ("RGB", "YCBCR")
    if channels == 3 and colour:
        pass
    elif channels == 4 and colour and page.extrasamples:
        pass  # RGBA: the alpha channel is dropped
    else:
        kind = "fluorescence or multispectral" if channels > 4 or not colour else "non-RGB"
        raise SlideError(
            f"holds {channels} channels ({photometric.lower()}, {kind}); RAZN reads RGB "
            "brightfield slides. Export an RGB rendering first.",
            path,
        )
    squeezed = [a for a, n in zip(axes, shape, strict=True) if n > 1 or a in "YX"]
    if squeezed not in (["Y", "X", "S"], ["S", "Y", "X"], ["C", "Y", "X"], ["Y", "X", "C"]):
        raise SlideError(f"unexpected pixel layout {axes} {shape}", path)
    return 0 if squeezed[0] in "SC" else -1


_AXIS_NAMES = {"Z": "z-planes", "T": "time points", "Q": "planes", "I": "images", "R": "tiles"}


def _compression_name(page) -> str:
    try:
        return tifffile.COMPRESSION(page.compression).name.lower()
    except ValueError:
        return str(page.compression)
