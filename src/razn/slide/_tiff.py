"""TIFF-family slides (SVS, OME-TIFF, SCN, NDPI, pyramidal TIFF) through tifffile.

This module picks the series that is the slide (not the label, macro or
thumbnail image scanners store beside it), checks that it is 8-bit RGB
brightfield, and exposes its levels as dask arrays over tifffile's zarr
store. Every problem becomes a `SlideError` naming the file.
"""

from __future__ import annotations

import math
import struct
import weakref
from pathlib import Path

import dask.array as da
import numpy as np
import tifffile
import zarr

from razn.errors import SlideError
from razn.slide._metadata import read_metadata
from razn.slide._pyramid import Slide, build_levels, chunk_shape
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

    try:
        store = series.aszarr()
        group = zarr.open(store, mode="r")
    except Exception as error:
        raise SlideError(f"cannot index the image tiles: {error}", path) from None
    if isinstance(group, zarr.Array):
        arrays = [group]
    else:
        arrays = [group[str(i)] for i in range(len(series.levels))]

    tile = (page.tilelength, page.tilewidth) if page.is_tiled else None
    dask_levels = []
    for arr in arrays:
        lazy = da.from_zarr(arr, chunks=_zarr_chunks(arr, tile, channel_axis))
        dask_levels.append(_as_rgb(lazy, channel_axis))

    read_bytes, close_bytes = open_byte_reader(path)
    cache = TileCache()
    direct = {}
    if channel_axis == -1:
        for index, level in enumerate(series.levels):
            level_page = level.pages[0] if len(level.pages) else None
            if level_page is not None and can_read_directly(level_page):
                direct[index] = TiledLevelReader(read_bytes, level_page, index, cache)

    def read_stored(index: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        arr = arrays[index]
        try:
            if index in direct:
                pixels = direct[index].read(y0, y1, x0, x1)[..., :3]
            elif channel_axis == 0:
                pixels = np.moveaxis(arr[:3, y0:y1, x0:x1], 0, -1)
            else:
                pixels = arr[y0:y1, x0:x1, :3]
        except Exception as error:
            raise SlideError(
                f"cannot decode tiles of level {index} (corrupt or unsupported "
                f"compression?): {error}",
                path,
            ) from None
        return np.ascontiguousarray(pixels)

    # The file stays open while anything can still read its pixels: the dask
    # levels (say, in a napari layer) hold the zarr store, so the files close
    # when the store is collected, or earlier by Slide.close().
    return Slide(
        path,
        metadata.format,
        build_levels(dask_levels),
        mpp=metadata.mpp,
        mpp_source=metadata.mpp_source,
        magnification=metadata.magnification,
        tile_size=tile,
        compression=_compression_name(page),
        read_stored=read_stored,
        close=weakref.finalize(store, _close_all, close_bytes, tif.close),
    )


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
                stored_bytes = sum(int(n) for n in page.databytecounts)
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


def _zarr_chunks(arr, tile, channel_axis: int):
    if arr.ndim != 3:
        raise SlideError(f"unexpected level shape {arr.shape}")
    if channel_axis == 0:
        h, w = arr.shape[1:]
        rows, cols = chunk_shape(tile, (h, w))
        return (arr.shape[0], rows, cols)
    h, w = arr.shape[:2]
    rows, cols = chunk_shape(tile, (h, w))
    return (rows, cols, arr.shape[2])


def _as_rgb(lazy: da.Array, channel_axis: int) -> da.Array:
    if channel_axis == 0:
        lazy = da.moveaxis(lazy[:3], 0, -1)
    elif lazy.shape[-1] != 3:
        lazy = lazy[..., :3]
    return lazy


def _compression_name(page) -> str:
    try:
        return tifffile.COMPRESSION(page.compression).name.lower()
    except ValueError:
        return str(page.compression)
