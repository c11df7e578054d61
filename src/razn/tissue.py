"""Glass vs tissue, from a coarse level, so later stages skip empty glass.

Most of a slide is glass, and glass is bright and colourless while H&E
tissue, however pale, is tinted pink or purple. The mask thresholds colour
saturation (max - min of RGB) at an Otsu threshold clamped to a sane range
(so an all-glass or all-tissue slide does not split at noise), then closes
small gaps, fills holes (fat and duct lumens inside tissue are tissue for
our purposes) and drops specks of dust. It reads one coarse level of about
8 um/px (or the smallest level), never level 0 of a pyramidal slide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: The mask's target resolution; coarser than any structure RAZN segments.
MASK_MPP = 8.0
#: Without an mpp, aim for this many level-0 pixels per mask pixel.
MASK_DOWNSAMPLE = 32.0
#: Saturation thresholds (0..255) outside which Otsu's choice is not trusted:
#: glass stays below ~10, the palest stained tissue above ~20.
SATURATION_RANGE = (12, 40)
#: Glass is the slide's one colourless mode: where a tenth of the pixels or
#: more sit below GLASS_SEARCH, tissue is anything GLASS_MARGIN above that
#: mode, if Otsu's threshold is higher. Otsu splits the two largest
#: populations, and on a slide with both pale and strongly stained tissue
#: those are pale vs strong, not glass vs tissue: a mosaic of BreakHis photos
#: lost its pale benign islands (saturation 8-21 at 8 um/px, glass 5) to a
#: threshold of 40.
GLASS_SEARCH = 20
GLASS_MARGIN = 6
#: Blobs smaller than this fraction of the slide are dust, not tissue.
MIN_BLOB_FRACTION = 1e-4


@dataclass(frozen=True)
class TissueMask:
    """A boolean tissue mask and the level-0 pixels each of its pixels covers."""

    mask: np.ndarray  # (rows, cols) bool
    downsample_xy: tuple[float, float]

    @property
    def fraction(self) -> float:
        return float(self.mask.mean()) if self.mask.size else 0.0

    def fraction_in(self, location: tuple[float, float], size: tuple[float, float]) -> float:
        """Fraction of a level-0 box that is tissue (0 outside the slide)."""
        (x, y), (w, h) = location, size
        dx, dy = self.downsample_xy
        c0, r0 = int(np.floor(x / dx)), int(np.floor(y / dy))
        c1, r1 = int(np.ceil((x + w) / dx)), int(np.ceil((y + h) / dy))
        rows, cols = self.mask.shape
        inside = self.mask[max(r0, 0) : max(min(r1, rows), 0), max(c0, 0) : max(min(c1, cols), 0)]
        area = max(r1 - r0, 1) * max(c1 - c0, 1)
        return float(inside.sum()) / area


def saturation(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int16)
    return (rgb.max(axis=-1) - rgb.min(axis=-1)).astype(np.uint8)


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of uint8 values (scikit-image's, from their histogram).

    With fewer than two distinct values there is nothing to split (and
    scikit-image raises): 0, so the clamp to `SATURATION_RANGE` decides.
    """
    from skimage.filters import threshold_otsu

    hist = np.bincount(values.ravel(), minlength=256)
    if np.count_nonzero(hist) < 2:
        return 0.0
    return float(threshold_otsu(hist=(hist, np.arange(hist.size))))


def glass_saturation(sat: np.ndarray) -> int | None:
    """The saturation of the slide's glass (its low mode), or None if there is little glass."""
    hist = np.bincount(sat.ravel(), minlength=256)[:GLASS_SEARCH]
    if hist.sum() < 0.1 * sat.size:
        return None
    return int(np.argmax(hist))


def tissue_mask_from_rgb(rgb: np.ndarray) -> np.ndarray:
    """The boolean tissue mask of a coarse RGB image."""
    sat = ndimage.median_filter(saturation(rgb), size=3)
    low, high = SATURATION_RANGE
    threshold = min(max(otsu_threshold(sat), low), high)
    glass = glass_saturation(sat)
    if glass is not None:
        threshold = min(threshold, glass + GLASS_MARGIN)
    mask = sat > threshold
    mask = ndimage.binary_closing(mask, structure=np.ones((3, 3)), iterations=2)
    mask = ndimage.binary_fill_holes(mask)
    labels, count = ndimage.label(mask)
    if count:
        sizes = np.bincount(labels.ravel())
        keep = sizes >= max(4, MIN_BLOB_FRACTION * mask.size)
        keep[0] = False
        mask = keep[labels]
    return mask


#: A stored level up to this many pixels is read whole through read_region.
MAX_DIRECT_PIXELS = 64_000_000


def compute_tissue_mask(slide) -> TissueMask:
    """Tissue mask of a `razn.Slide` at about 8 um/px (or downsample 32)."""
    wanted = MASK_MPP / slide.mpp if slide.mpp else MASK_DOWNSAMPLE
    height0, width0 = slide.shape
    stored = slide.level_info[slide.best_level(wanted)]
    if stored.shape[0] * stored.shape[1] <= MAX_DIRECT_PIXELS:
        # Tile decoding and the box filter run in C without the GIL, so a
        # viewer's GUI thread keeps running while this reads.
        rgb = slide.read_region((0, 0), (width0, height0), downsample=max(wanted, 1.0))
    else:
        rgb = _from_derived_level(slide, wanted)
    return TissueMask(
        tissue_mask_from_rgb(rgb),
        (width0 / rgb.shape[1], height0 / rgb.shape[0]),
    )


def _from_derived_level(slide, wanted: float) -> np.ndarray:
    """A single-level (or shallow) pyramid: dask's derived levels, chunk by chunk."""
    index = 0
    for i, ds in enumerate(slide.downsamples):
        if ds <= wanted * 1.01:
            index = i
    level = slide.level_info[index]
    # Local threads even inside a dask worker, where the default scheduler would
    # try to ship this graph (and its open file) to the cluster.
    rgb = np.asarray(level.array.compute(scheduler="threads"))
    step = max(1, int(wanted // level.downsample))
    if step > 1:  # shrink by an integer factor, averaging
        h, w = rgb.shape[0] // step * step, rgb.shape[1] // step * step
        if h and w:
            rgb = rgb[:h, :w].reshape(h // step, step, w // step, step, 3).mean(axis=(1, 3))
            rgb = rgb.astype(np.uint8)
    return rgb
