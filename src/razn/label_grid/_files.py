"""Label-grid files: a self-describing tiled TIFF, zarr arrays and segmentation stores.

A label grid (see `razn.annotations.label_grid`) is only meaningful with
its downsample, the level-0 shape of the slide it belongs to, the slide's
mpp and the class table. `write_label_grid` stores all four as JSON in the
first page's ImageDescription, next to the labels as a tiled, zlib-compressed
palette TIFF (the class colours, so any TIFF viewer shows the classes) with
a few nearest-neighbour subresolutions in SubIFDs. It writes tile by tile,
so a dask array is computed one band of tiles at a time and never whole,
and atomically. `read_label_grid` reads such a file back, a zarr array
whose attributes carry the same JSON (``razn_label_grid`` and friends), or
a segmentation store (`<slide>.razn.zarr`: the labels it shows). The
package docstring (`razn.label_grid`) shows a round trip.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from razn.atomic import atomic_path
from razn.classes import DEFAULT_CLASSES, TissueClass
from razn.errors import AnnotationError

__all__ = [
    "LabelGrid",
    "infer_downsample",
    "label_downsample",
    "label_grid_metadata",
    "read_label_grid",
    "write_label_grid",
]

# Version of the ImageDescription JSON; readers refuse newer ones.
FORMAT_VERSION = 1
_TILE = 256
_LAZY_CHUNK = (2048, 2048)
# Subresolutions stop once the grid fits in this many pixels per side.
_SMALLEST_SIDE = 512


@dataclass(frozen=True)
class LabelGrid:
    """A label grid and what it needs to be placed on its slide.

    Attributes
    ----------
    labels
        2-D uint8 class values (numpy, or dask when read lazily).
    downsample
        Integer downsample of the grid relative to level 0.
    level0_shape
        ``(height, width)`` of the slide's level 0.
    mpp
        Level-0 microns per pixel, if known.
    classes
        The class table the values refer to.
    """

    labels: object
    downsample: int
    level0_shape: tuple[int, int]
    mpp: float | None
    classes: tuple[TissueClass, ...]


def label_grid_metadata(
    downsample: int,
    level0_shape: tuple[int, int],
    mpp: float | None,
    classes: tuple[TissueClass, ...] = DEFAULT_CLASSES,
) -> dict:
    """The JSON-ready description of a label grid (TIFF description, zarr attributes)."""
    return {
        "razn_label_grid": FORMAT_VERSION,
        "downsample": int(downsample),
        "level0_shape": [int(n) for n in level0_shape],
        "mpp": None if mpp is None else float(mpp),
        "classes": [{"value": c.value, "name": c.name, "color": list(c.color)} for c in classes],
    }


def write_label_grid(
    path: str | os.PathLike,
    labels,
    downsample: int,
    *,
    mpp: float | None = None,
    classes: tuple[TissueClass, ...] = DEFAULT_CLASSES,
    level0_shape: tuple[int, int] | None = None,
    tile: int = _TILE,
) -> None:
    """Write a label grid as a tiled, compressed, pyramidal, self-describing TIFF.

    Parameters
    ----------
    path
        Output ``.tif``; replaced only once completely written.
    labels
        2-D numpy or dask array of class values 0..255.
    downsample
        Integer downsample of the grid relative to level 0.
    mpp
        Level-0 microns per pixel, recorded if known (and written as the
        TIFF resolution of the grid, ``mpp * downsample`` per pixel).
    classes
        Class table recorded with the grid, and used for the palette.
    level0_shape
        ``(height, width)`` of level 0; default ``labels.shape * downsample``.
        A grid covers level 0, so ``ceil(level0 / downsample)`` must equal
        the grid's shape.
    tile
        Tile side in pixels (a multiple of 16).
    """
    if labels.ndim != 2:
        raise ValueError(f"a label grid is 2-D, got shape {labels.shape}")
    if int(downsample) != downsample or downsample < 1:
        raise ValueError(f"downsample must be a positive integer, got {downsample!r}")
    height, width = labels.shape
    if level0_shape is None:
        level0_shape = (height * downsample, width * downsample)
    expected = tuple(-(-int(n) // int(downsample)) for n in level0_shape)
    if expected != (height, width):
        raise ValueError(
            f"a {height}x{width} grid at downsample {downsample} does not cover a level 0 of "
            f"{level0_shape[0]}x{level0_shape[1]} (expected {expected[0]}x{expected[1]})"
        )
    description = json.dumps(label_grid_metadata(downsample, level0_shape, mpp, classes))
    levels = [labels]
    while max(levels[-1].shape) > _SMALLEST_SIDE and len(levels) < 6:
        levels.append(levels[-1][::2, ::2])  # nearest: keeps values class labels
    options = {
        "photometric": "palette",
        "colormap": _palette(classes),
        "compression": "zlib",
        "tile": (tile, tile),
        "metadata": None,  # our JSON is the description, not tifffile's
    }
    with (
        atomic_path(path) as tmp,
        tifffile.TiffWriter(tmp, bigtiff=_needs_bigtiff(labels)) as tiff,
    ):
        for index, level in enumerate(levels):
            scale = downsample * 2**index
            extra = (
                {"resolution": (1e4 / (mpp * scale),) * 2, "resolutionunit": "CENTIMETER"}
                if mpp
                else {}
            )
            tiff.write(
                _tiles(level, tile),
                shape=level.shape,
                dtype=np.uint8,
                subifds=len(levels) - 1 if index == 0 else None,
                subfiletype=1 if index else 0,
                description=description if index == 0 else None,
                **extra,
                **options,
            )


def read_label_grid(
    path: str | os.PathLike,
    *,
    lazy: bool = False,
    downsample: int | None = None,
    level0_shape: tuple[int, int] | None = None,
) -> LabelGrid:
    """Read a label grid written by `write_label_grid`, or a zarr label array.

    Parameters
    ----------
    path
        A label-grid TIFF, a zarr array (folder) whose attributes hold
        the `label_grid_metadata` keys, or a segmentation store
        (``<slide>.razn.zarr``, new or old format: its labels, predictions
        with the pathologist's corrections).
    lazy
        Return ``labels`` as a dask array instead of reading it whole.
    downsample, level0_shape
        For a zarr array without label-grid attributes: what the caller
        knows about it (the CLI derives them from the slide).

    Raises
    ------
    AnnotationError
        The file does not exist, is not a TIFF, zarr array or store, or
        does not describe a label grid.
    """
    path = Path(path)
    if not path.exists():
        raise AnnotationError("no such file", path)
    if path.is_dir():
        return _read_zarr(path, lazy, downsample, level0_shape)
    try:
        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages.first
            metadata = _parse_description(page.description, path)
            if page.dtype != np.uint8 or len(page.shape) != 2:
                raise AnnotationError(
                    f"labels must be 2-D uint8, not {page.dtype} {page.shape}", path
                )
            if lazy:
                import dask.array as da

                labels = da.from_array(_TiffLevel0(path, page.shape), chunks=_LAZY_CHUNK)
            else:
                labels = page.asarray()
    except tifffile.TiffFileError as error:
        raise AnnotationError(f"not a TIFF file ({error})", path) from None
    return _grid(labels, metadata, path)


def infer_downsample(grid_shape: tuple[int, int], level0_shape: tuple[int, int]) -> int | None:
    """The integer downsample at which a grid of ``grid_shape`` covers level 0, if any."""
    downsample = max(1, round(level0_shape[1] / grid_shape[1]))
    covers = all(
        -(-int(n) // downsample) == g for n, g in zip(level0_shape, grid_shape, strict=True)
    )
    return downsample if covers else None


class _TiffLevel0:
    """Array-like over a label TIFF's level 0 that opens the file per read.

    Holding the file open for as long as a dask array lives would leak the
    handle; label grids are small enough that reopening per chunk is cheap.
    """

    def __init__(self, path: Path, shape: tuple[int, int]):
        self.path, self.shape, self.dtype, self.ndim = path, shape, np.dtype(np.uint8), 2

    def __getitem__(self, key):
        import zarr

        store = tifffile.imread(self.path, aszarr=True, level=0)
        try:
            return zarr.open_array(store, mode="r")[key]
        finally:
            store.close()


# --- helpers ---------------------------------------------------------------------------------


def _tiles(level, tile: int):
    """Yield a level's tiles row by row, computing one band of rows at a time."""
    height, width = level.shape
    for top in range(0, height, tile):
        band = np.asarray(level[top : top + tile], dtype=np.uint8)
        for left in range(0, width, tile):
            yield band[:, left : left + tile]


def _palette(classes) -> np.ndarray:
    colormap = np.zeros((3, 256), dtype=np.uint16)
    for c in classes:
        if 0 <= c.value < 256:
            colormap[:, c.value] = np.asarray(c.color, dtype=np.uint16) * 257
    return colormap


def _needs_bigtiff(labels) -> bool:
    return labels.size > 2**31  # compressed grids are far smaller; be safe


def _parse_description(description: str, path) -> dict:
    try:
        metadata = json.loads(description)
    except (json.JSONDecodeError, TypeError):
        metadata = None
    if not isinstance(metadata, dict) or "razn_label_grid" not in metadata:
        raise AnnotationError("not a label grid (no razn_label_grid description)", path)
    if metadata["razn_label_grid"] > FORMAT_VERSION:
        raise AnnotationError(
            f"label grid format {metadata['razn_label_grid']} is newer than this razn reads", path
        )
    return metadata


def _grid(labels, metadata: dict, path) -> LabelGrid:
    try:
        classes = (
            tuple(
                TissueClass(int(c["value"]), str(c["name"]), tuple(int(x) for x in c["color"]))
                for c in metadata.get("classes") or ()
            )
            or DEFAULT_CLASSES
        )
        downsample = int(metadata["downsample"])
        level0_shape = tuple(int(n) for n in metadata["level0_shape"])
        mpp = metadata.get("mpp")
        mpp = None if mpp is None else float(mpp)
    except (KeyError, TypeError, ValueError) as error:
        raise AnnotationError(f"label-grid description is incomplete ({error!r})", path) from None
    if len(level0_shape) != 2 or downsample < 1:
        raise AnnotationError("label-grid description has a bad downsample or shape", path)
    return LabelGrid(labels, downsample, level0_shape, mpp, classes)


def _read_zarr(path: Path, lazy: bool, downsample, level0_shape) -> LabelGrid:
    import zarr

    from razn.label_grid._ngff import CLASSES_PATH, LEGACY_FORMAT, STORE_FORMAT

    try:
        node = zarr.open(path, mode="r")
    except Exception as error:  # zarr raises several types for "neither array nor group"
        raise AnnotationError(f"not a zarr array or store ({error})", path) from None
    if isinstance(node, zarr.Group):
        return _read_store(node, path, lazy, STORE_FORMAT, LEGACY_FORMAT, CLASSES_PATH)
    array = node
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise AnnotationError(
            f"labels must be a 2-D integer array, not {array.dtype} {array.shape}", path
        )
    metadata = dict(array.attrs)
    if "razn_label_grid" not in metadata:
        if downsample is None and level0_shape is not None:
            downsample = infer_downsample(array.shape, level0_shape)
        if downsample is None:
            raise AnnotationError(
                "zarr array has no label-grid attributes; give its downsample", path
            )
        shape = level0_shape or tuple(n * downsample for n in array.shape)
        metadata = label_grid_metadata(downsample, shape, None)
    return _grid(_load(array, lazy), metadata, path)


def _read_store(group, path, lazy, store_format, legacy_format, classes_path) -> LabelGrid:
    """The label grid of a segmentation store: what it shows (predictions and corrections)."""
    razn = group.get("razn")
    attrs = dict(razn.attrs) if razn is not None else {}
    if attrs.get("format") == store_format:
        return _grid(_load(group[f"{classes_path}/0"], lazy), attrs["label_grid"], path)
    if group.attrs.get("format") == legacy_format and "labels" in group:
        array = group["labels"]
        return _grid(_load(array, lazy), dict(array.attrs), path)
    raise AnnotationError(
        "a zarr group, but not a RAZN segmentation store (no razn/ attributes)", path
    )


def _load(array, lazy: bool):
    if lazy:
        import dask.array as da

        return da.from_zarr(array)
    return array[...]


#: Target size of a label pixel, and the most label pixels a slide may have.
LABEL_MPP = 2.0
MAX_LABEL_PIXELS = 100_000_000
#: Without an mpp, a label pixel is this many level-0 pixels.
DEFAULT_DOWNSAMPLE = 8


def label_downsample(slide_shape: tuple[int, int], mpp: float | None) -> int:
    """Level-0 pixels per label pixel for a slide of `slide_shape` (height, width).

    The finer of `LABEL_MPP` (2 um: a quarter of the fine nets' 0.5 um
    output, so zoomed tiles show finer boundaries than coarse ones) and
    what keeps the whole grid under `MAX_LABEL_PIXELS` (an 80,000 x 60,000
    slide at 0.25 um/px: downsample 8, 75 MB); `DEFAULT_DOWNSAMPLE` without
    an mpp. Segmentation stores and painted annotations share this rule.
    """
    physical = max(1, round(LABEL_MPP / mpp)) if mpp else DEFAULT_DOWNSAMPLE
    h, w = slide_shape
    memory = math.ceil(math.sqrt(h * w / MAX_LABEL_PIXELS))
    return max(physical, memory)
