"""Where tiles and label pixels fall on a slide, for a given model.

A tile is one coarse field of view: `patch_size` pixels at the model's
`base_mpp`, which is `tile_size` level-0 pixels. Tiles sit on one global
grid anchored at the slide's origin, so the same tile means the same pixels
whichever region or view asked for it (the plugin reuses finished tiles).

The label grid has one resolution per slide
(`razn.label_grid.label_downsample`): `downsample` level-0
pixels a label pixel, the finer of 2 um (a quarter of the fine nets' 0.5 um
output, so zoomed tiles show finer boundaries than coarse ones, whose
logits are at 8 um) and what keeps the whole grid under 100 MB (an 80,000 x
60,000 slide at 0.25 um/px: downsample 8, 75 MB). Tiles are a whole number
of label pixels, so stitching is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# The label grid's resolution rule lives with the label-grid files, below
# both razn.annotations and razn.inference; imported here for the tile grid.
from razn.label_grid import (  # noqa: F401 (re-exported)
    DEFAULT_DOWNSAMPLE,
    LABEL_MPP,
    MAX_LABEL_PIXELS,
    label_downsample,
)

#: The most tiles one slide may have: a 200k x 200k slide at 0.25 um/px is
#: ~40,000 tiles for the demo model. More means a wrong mpp (a typo such as
#: 1000 um/px made 6.6 million one-pixel tiles), not a real slide.
MAX_TILES = 1_000_000


@dataclass(frozen=True)
class TileGrid:
    """The tiling of one slide for one model configuration.

    Attributes
    ----------
    slide_shape : (height, width) of level 0.
    tile_size : level-0 pixels per tile side (a multiple of downsample).
    downsample : level-0 pixels per label pixel.
    patch_size : pixels per tile side at zoom level 0 (the coarse patch).
    """

    slide_shape: tuple[int, int]
    tile_size: int
    downsample: int
    patch_size: int

    @property
    def rows(self) -> int:
        return math.ceil(self.slide_shape[0] / self.tile_size)

    @property
    def cols(self) -> int:
        return math.ceil(self.slide_shape[1] / self.tile_size)

    @property
    def label_shape(self) -> tuple[int, int]:
        h, w = self.slide_shape
        return math.ceil(h / self.downsample), math.ceil(w / self.downsample)

    @property
    def tile_labels(self) -> int:
        """Label pixels per tile side."""
        return self.tile_size // self.downsample

    def box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """Level-0 (x, y, width, height) of a tile (it may reach past the slide)."""
        return (col * self.tile_size, row * self.tile_size, self.tile_size, self.tile_size)

    def label_slices(self, row: int, col: int) -> tuple[slice, slice, int, int]:
        """Where a tile's labels go in the label grid, clipped to the grid,
        and how many rows and columns of the tile's own labels that keeps."""
        n = self.tile_labels
        gh, gw = self.label_shape
        r0, c0 = row * n, col * n
        r1, c1 = min(r0 + n, gh), min(c0 + n, gw)
        return slice(r0, r1), slice(c0, c1), r1 - r0, c1 - c0

    def tiles_in(self, region: tuple[float, float, float, float] | None = None):
        """(row, col) of every tile touching a level-0 region (x, y, w, h)."""
        if region is None:
            rows, cols = range(self.rows), range(self.cols)
        else:
            x, y, w, h = region
            t = self.tile_size
            rows = range(max(0, math.floor(y / t)), min(self.rows, math.ceil((y + h) / t)))
            cols = range(max(0, math.floor(x / t)), min(self.cols, math.ceil((x + w) / t)))
        return [(r, c) for r in rows for c in cols]


def tile_grid(slide, config) -> TileGrid:
    """The tile grid of `slide` for a model configuration.

    The tile is the coarse patch's field of view in level-0 pixels, rounded
    to whole label pixels; reading it back to `patch_size` pixels then
    differs from `base_mpp` by under half a label pixel per tile (none at
    all on 0.25 um/px slides).
    """
    from razn.errors import SlideError

    if slide.mpp is None:
        raise SlideError(
            "the slide has no pixel size (mpp), and the model works at "
            f"{config.base_mpp} um/px; give the slide's mpp (--mpp)",
            slide.path,
        )
    from razn.slide._metadata import PLAUSIBLE_MPP

    low, high = PLAUSIBLE_MPP
    if not low <= slide.mpp <= high:
        raise SlideError(
            f"a pixel size of {slide.mpp:g} um/px is outside {low:g}-{high:g}, what scanners "
            "give (a 40x scan is about 0.25); check --mpp",
            slide.path,
        )
    d = label_downsample(slide.shape, slide.mpp)
    fov = config.patch_size * config.base_mpp / slide.mpp
    tile = max(d, round(fov / d) * d)
    grid = TileGrid(slide.shape, tile, d, config.patch_size)
    if grid.rows * grid.cols > MAX_TILES:
        raise SlideError(
            f"{grid.rows * grid.cols:,} tiles of {tile} px at {slide.mpp:g} um/px is more than "
            f"{MAX_TILES:,}; check the pixel size (--mpp)",
            slide.path,
        )
    return grid


def on_tissue(tissue, downsample: int, rows: slice, cols: slice) -> np.ndarray:
    """Whether each label pixel of a label-grid region has its centre on tissue.

    tissue : a `razn.tissue.TissueMask` (its `mask` and `downsample_xy`).
    Pixels past the mask's edge (past the slide's) are not tissue.
    """
    dx, dy = tissue.downsample_xy
    ys = ((np.arange(rows.start, rows.stop) + 0.5) * downsample / dy).astype(int)
    xs = ((np.arange(cols.start, cols.stop) + 0.5) * downsample / dx).astype(int)
    mask = tissue.mask
    inside_r = (ys >= 0) & (ys < mask.shape[0])
    inside_c = (xs >= 0) & (xs < mask.shape[1])
    on = mask[np.ix_(np.clip(ys, 0, mask.shape[0] - 1), np.clip(xs, 0, mask.shape[1] - 1))]
    return on & inside_r[:, None] & inside_c[None, :]
