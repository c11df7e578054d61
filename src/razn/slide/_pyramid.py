"""The `Slide`: a pyramid of lazy RGB levels, read in level-0 coordinates at any mpp.

A slide is a pyramid of levels (largest first), so nothing is decoded
until someone looks at it, plus the facts the rest of the project needs
(downsamples, mpp, magnification). `Slide.read_region` is the one way the
core reads pixels: a box in level-0 pixels, returned at a target
resolution, read from the nearest finer stored level and resized when no
level matches. Each level is also a dask array (`Slide.levels`, built on
first use, so opening and reading regions never import dask) and an
array-like for napari (`Slide.level_views`); all three read through the
same stored-level reader. The openers (`razn.slide.open_slide`) build it.
"""

from __future__ import annotations

import functools
import math
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from razn.errors import SlideError
from razn.slide._levels import DerivedLevelReader, Level, LevelView

if TYPE_CHECKING:
    import dask.array as da
#: Value used outside the slide: white, as glass.
BACKGROUND = 255


class Slide:
    """A whole-slide image: a pyramid of lazy RGB levels and its metadata.

    Use `open_slide` to make one. Close it (or use it as a context manager)
    to release the file.

    Attributes
    ----------
    path : Path
    format : str
        "aperio-svs", "ome-tiff", "leica-scn", "hamamatsu-ndpi", "tiff" or "image".
    levels : list of dask.array.Array
        (height, width, 3) uint8 arrays, largest first.
    downsamples : list of float
        Level-0 pixels per pixel of each level.
    mpp : float or None
        Microns per level-0 pixel; None when the file does not say and the
        caller did not pass one.
    mpp_source : str or None
        Where the mpp came from ("Aperio MPP", "user", ...).
    magnification : float or None
        Objective power the slide was scanned at, when recorded.
    """

    def __init__(
        self,
        path: Path,
        format: str,
        levels: list[Level],
        *,
        mpp: float | None,
        mpp_source: str | None,
        magnification: float | None,
        tile_size: tuple[int, int] | None,
        compression: str | None,
        read_stored,
        halved_reader=None,
        close=None,
    ):
        self.path = path
        self.format = format
        self._levels = levels
        self.mpp = mpp
        self.mpp_source = mpp_source
        self.magnification = magnification
        self.tile_size = tile_size
        self.compression = compression
        self._read_stored = read_stored  # (level, y0, y1, x0, x1) -> ndarray
        # (level) -> read_halved(y0, y1, x0, x1, cache) of that stored level, or None
        self._halved_reader = halved_reader
        self._close = close

    # -- pyramid ---------------------------------------------------------
    @property
    def levels(self) -> list[da.Array]:
        return [level.array for level in self._levels]

    @cached_property
    def level_views(self) -> list[LevelView]:
        """The levels as array-likes that read through the tile reader.

        What napari shows: indexing decodes only the tiles in view (and
        keeps them in the slide's tile cache), with no dask graph; derived
        levels average their finer level's window 2 x 2, as `levels` does
        (small ones once, whole: `DerivedLevelReader`).
        """
        views: list[LevelView] = []
        for index, level in enumerate(self._levels):
            if level.stored:
                read = functools.partial(self._read_window, index)
            else:
                finer = self._levels[index - 1]
                halved = None
                if finer.stored and self._halved_reader is not None:
                    halved = self._halved_reader(index - 1)
                read = DerivedLevelReader(views[-1], level.shape, halved)
            views.append(LevelView(read, level.shape))
        return views

    @property
    def level_info(self) -> list[Level]:
        return list(self._levels)

    @property
    def downsamples(self) -> list[float]:
        return [level.downsample for level in self._levels]

    @property
    def dimensions(self) -> tuple[int, int]:
        """(width, height) of level 0 in pixels, as OpenSlide's `dimensions`.

        The same order as `read_region`'s location (x, y) and size (width,
        height), and as OpenSlide, tiffslide and fastslide; `shape` is the
        numpy order.
        """
        height, width = self._levels[0].shape
        return width, height

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of level 0 in pixels: numpy order, `levels[0].shape[:2]`."""
        return self._levels[0].shape

    def level_mpp(self, level: int) -> float | None:
        return None if self.mpp is None else self.mpp * self._levels[level].downsample

    def __repr__(self) -> str:
        h, w = self.shape
        mpp = f"{self.mpp:.4g} um/px" if self.mpp else "unknown mpp"
        return f"<Slide {self.path.name} {self.format} {w}x{h}, {len(self._levels)} levels, {mpp}>"

    def facts(self, *, tissue: bool = True) -> dict:
        """The slide's facts as JSON-ready values (what `razn info` prints).

        `tissue=False` leaves out the tissue fraction, which reads pixels.
        """
        facts = {
            "path": str(self.path),
            "format": self.format,
            "levels": [
                {
                    "shape": list(lv.shape),
                    "downsample": round(lv.downsample, 4),
                    "stored": lv.stored,
                }
                for lv in self._levels
            ],
            "mpp": self.mpp,
            "mpp_source": self.mpp_source,
            "magnification": self.magnification,
            "tile_size": list(self.tile_size) if self.tile_size else None,
            "compression": self.compression,
        }
        if tissue:
            facts["tissue_fraction"] = round(self.tissue_fraction, 4)
        return facts

    # -- reading ---------------------------------------------------------
    def _target_downsample(self, mpp: float | None, downsample: float | None) -> float:
        if mpp is not None and downsample is not None:
            raise ValueError("give mpp= or downsample=, not both")
        if mpp is None and downsample is None:
            return 1.0  # level 0 at full resolution, as OpenSlide's level 0
        if downsample is not None:
            if not downsample > 0:
                raise ValueError(f"downsample must be positive, not {downsample}")
            return float(downsample)
        if not mpp > 0:
            raise ValueError(f"mpp must be positive, not {mpp}")
        if self.mpp is None:
            raise SlideError(
                "the slide has no pixel size (mpp) in its metadata; open it with "
                "open_slide(path, mpp=...) or read by downsample=",
                self.path,
            )
        return mpp / self.mpp

    def best_level(self, downsample: float) -> int:
        """The stored level to read for a target downsample: the coarsest one
        that is not coarser than the target (reading finer and shrinking keeps
        detail; reading coarser and enlarging would invent it)."""
        best = 0
        for i, level in enumerate(self._levels):
            fits = level.stored and level.downsample <= downsample * (1 + 1e-3)
            if fits and level.downsample > self._levels[best].downsample:
                best = i
        return best

    def read_region(
        self,
        location: tuple[float, float],
        size: tuple[float, float],
        *,
        mpp: float | None = None,
        downsample: float | None = None,
    ) -> np.ndarray:
        """Pixels of a level-0 box at a target resolution.

        Parameters
        ----------
        location : (x, y)
            Top-left corner of the box in level-0 pixels.
        size : (width, height)
            Extent of the box in level-0 pixels.
        mpp, downsample : float, optional
            The resolution to return, in microns per pixel or in level-0
            pixels per output pixel; give at most one. Without either, level
            0 at full resolution: ``read_region((x, y), (w, h))`` gives the
            pixels of OpenSlide's ``read_region((x, y), 0, (w, h))``, as RGB.

        Returns
        -------
        ndarray (round(height / d), round(width / d), 3) uint8, where d is the
        target downsample. Parts of the box outside the slide are white.
        """
        x, y = (float(v) for v in location)
        w, h = (float(v) for v in size)
        if not (w > 0 and h > 0):
            raise ValueError(f"region size must be positive, not {size}")
        target = self._target_downsample(mpp, downsample)
        height0, width0 = self.shape
        if x >= width0 or y >= height0 or x + w <= 0 or y + h <= 0:
            raise SlideError(
                f"region at ({x:g}, {y:g}) of size {w:g}x{h:g} lies outside the "
                f"slide ({width0}x{height0} level-0 pixels)",
                self.path,
            )
        out_w, out_h = max(1, round(w / target)), max(1, round(h / target))
        index = self.best_level(target)
        level = self._levels[index]
        dx, dy = level.downsample_xy
        # The box in this level's pixel coordinates, possibly fractional.
        fx0, fy0, fx1, fy1 = x / dx, y / dy, (x + w) / dx, (y + h) / dy
        ix0, iy0 = math.floor(fx0 + 1e-6), math.floor(fy0 + 1e-6)
        ix1, iy1 = math.ceil(fx1 - 1e-6), math.ceil(fy1 - 1e-6)
        window = self._read_window(index, iy0, iy1, ix0, ix1)
        if (ix1 - ix0, iy1 - iy0) == (out_w, out_h) and _near_int(fx0, fy0, fx1, fy1):
            return window
        return _resize(window, (out_w, out_h), (fx0 - ix0, fy0 - iy0, fx1 - ix0, fy1 - iy0))

    def _read_window(self, index: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Integer window of a stored level, padded with white outside it."""
        lh, lw = self._levels[index].shape
        cy0, cy1, cx0, cx1 = max(y0, 0), min(y1, lh), max(x0, 0), min(x1, lw)
        inside = self._read_stored(index, cy0, cy1, cx0, cx1)
        if (cy0, cy1, cx0, cx1) == (y0, y1, x0, x1):
            return inside
        window = np.full((y1 - y0, x1 - x0, 3), BACKGROUND, np.uint8)
        window[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = inside
        return window

    def thumbnail(self, max_size: int = 1024) -> np.ndarray:
        """The whole slide, its longer side at most `max_size` pixels."""
        height0, width0 = self.shape
        target = max(height0, width0) / max_size
        if target <= 1:
            return self.read_region((0, 0), (width0, height0), downsample=1)
        # Read from the smallest level (stored or derived) that is still at
        # least max_size, so a single-level slide is not decoded whole twice.
        for level in reversed(self._levels):
            if max(level.shape) >= max_size or level is self._levels[0]:
                image = np.asarray(level.array.compute(scheduler="threads"))
                break
        from PIL import Image

        scale = max_size / max(image.shape[:2])
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        return np.array(Image.fromarray(image).resize(size, Image.Resampling.BOX))

    # -- tissue ----------------------------------------------------------
    @cached_property
    def tissue_mask(self):
        """Glass vs tissue on a coarse grid (`razn.tissue.TissueMask`), computed once."""
        from razn.tissue import compute_tissue_mask

        return compute_tissue_mask(self)

    @property
    def tissue_fraction(self) -> float:
        """Fraction of the slide's area that holds tissue (0..1)."""
        return self.tissue_mask.fraction

    # -- life cycle ------------------------------------------------------
    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _near_int(*values: float) -> bool:
    return all(abs(v - round(v)) < 1e-6 for v in values)


def _resize(window: np.ndarray, out_size: tuple[int, int], box) -> np.ndarray:
    from PIL import Image

    out_w, out_h = out_size
    shrinking = out_w <= (box[2] - box[0]) and out_h <= (box[3] - box[1])
    # BOX averages exactly the source pixels under each output pixel, which is
    # what a scanner's own coarser level approximates; enlarging uses bilinear.
    resample = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    return np.array(Image.fromarray(window).resize(out_size, resample, box=box))
