"""Glass vs tissue, from a coarse level, so later stages skip empty glass.

Most of a slide is glass, and glass is bright and colourless while H&E
tissue, however pale, is tinted pink or purple. The mask thresholds colour
saturation (max - min of RGB) at an Otsu threshold clamped to a sane range
(so an all-glass or all-tissue slide does not split at noise), then closes
small gaps, fills holes (fat and duct lumens inside tissue are tissue for
our purposes) and drops specks of dust. It reads one coarse level of about
8 um/px (or the smallest level), never level 0 of a pyramidal slide.

The image is small (a few hundred pixels a side), so the filters are
written here in numpy rather than imported from scipy.ndimage, whose
import alone (0.37 s) cost more than `razn info` did everything else; each
gives scipy's and scikit-image's result exactly (tests/razn/test_tissue.py
compares them on the real slides and images).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
    """Otsu's threshold of uint8 values, as scikit-image's `threshold_otsu`.

    The same arithmetic on the same histogram (float32 counts, empty bins
    at both ends trimmed), so the same threshold. With fewer than two
    distinct values there is nothing to split (and scikit-image raises): 0,
    so the clamp to `SATURATION_RANGE` decides.
    """
    hist = np.bincount(values.ravel(), minlength=256)
    if np.count_nonzero(hist) < 2:
        return 0.0
    present = np.flatnonzero(hist)
    counts = hist[present[0] : present[-1] + 1].astype(np.float32)
    levels = np.arange(present[0], present[-1] + 1)
    weight1 = np.cumsum(counts)
    weight2 = np.cumsum(counts[::-1])[::-1]
    mean1 = np.cumsum(counts * levels) / weight1
    mean2 = (np.cumsum((counts * levels)[::-1]) / weight2[::-1])[::-1]
    variance12 = weight1[:-1] * weight2[1:] * (mean1[:-1] - mean2[1:]) ** 2
    return float(levels[np.argmax(variance12)])


def glass_saturation(sat: np.ndarray) -> int | None:
    """The saturation of the slide's glass (its low mode), or None if there is little glass."""
    hist = np.bincount(sat.ravel(), minlength=256)[:GLASS_SEARCH]
    if hist.sum() < 0.1 * sat.size:
        return None
    return int(np.argmax(hist))


def tissue_mask_from_rgb(rgb: np.ndarray) -> np.ndarray:
    """The boolean tissue mask of a coarse RGB image."""
    sat = median3(saturation(rgb))
    low, high = SATURATION_RANGE
    threshold = min(max(otsu_threshold(sat), low), high)
    glass = glass_saturation(sat)
    if glass is not None:
        threshold = min(threshold, glass + GLASS_MARGIN)
    mask = sat > threshold
    mask = erode3(erode3(dilate3(dilate3(mask))))  # closing, 3 x 3, twice
    mask = fill_holes(mask)
    labels, count = label4(mask)
    if count:
        sizes = np.bincount(labels.ravel())
        keep = sizes >= max(4, MIN_BLOB_FRACTION * mask.size)
        keep[0] = False
        mask = keep[labels]
    return mask


# -- small-image morphology (scipy.ndimage's results, in numpy) -------------
def _neighbourhood3(image: np.ndarray, pad_mode: str, **pad) -> list[np.ndarray]:
    """The nine 3 x 3-shifted views of `image`, padded by one pixel."""
    padded = np.pad(image, 1, mode=pad_mode, **pad)
    h, w = image.shape
    return [padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)]


def median3(image: np.ndarray) -> np.ndarray:
    """3 x 3 median, edges mirrored: `ndimage.median_filter(image, size=3)`."""
    # scipy's default "reflect" repeats the edge pixel, numpy's "symmetric".
    p = [np.array(view) for view in _neighbourhood3(image, "symmetric")]
    # The 19 compare-exchanges of the classic median-of-9 network (Paeth):
    # after them p[4] holds the median, with no sort over the nine. In
    # place, trading buffers, so no fresh memory is touched per step.
    low = np.empty_like(p[0])
    for i, j in _MEDIAN9:
        np.minimum(p[i], p[j], out=low)
        np.maximum(p[i], p[j], out=p[j])
        p[i], low = low, p[i]
    return p[4]


_MEDIAN9 = (
    (1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3),
    (5, 8), (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2),
)  # fmt: skip


def dilate3(mask: np.ndarray) -> np.ndarray:
    """`ndimage.binary_dilation` by a 3 x 3 square (outside is False)."""
    return np.logical_or.reduce(_neighbourhood3(mask, "constant", constant_values=False))


def erode3(mask: np.ndarray) -> np.ndarray:
    """`ndimage.binary_erosion` by a 3 x 3 square (outside is False)."""
    return np.logical_and.reduce(_neighbourhood3(mask, "constant", constant_values=False))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """`ndimage.binary_fill_holes`: glass no 4-connected path links to the border."""
    outside = np.pad(~mask, 1, constant_values=True)
    labels, _ = label4(outside)
    return mask | (labels[1:-1, 1:-1] != labels[0, 0])


def label4(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components, as `ndimage.label`: (labels, count), 0 outside.

    Works on runs (row segments of the mask), not pixels: runs in
    neighbouring rows that share a column are linked, the links are merged
    by hooking each root under the smaller and halving paths until every
    link joins one root, and each component is numbered by its first run,
    which is its first pixel in row order, as scipy numbers them.
    """
    h, w = mask.shape
    labels = np.zeros((h, w), np.int32)
    if mask.size == 0 or not mask.any():
        return labels, 0
    edges = np.diff(np.pad(mask, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    row, start = np.nonzero(edges == 1)  # in row order: runs sorted as pixels are
    end = np.nonzero(edges == -1)[1]  # one past each run's last column
    # Runs of row r - 1 that overlap run (r, start, end): those ending after
    # `start` and starting before `end`. Keys that order runs by row, then
    # column, find that range in one searchsorted over all rows.
    stride = w + 1
    first = np.searchsorted(row * stride + end, (row - 1) * stride + start, side="right")
    last = np.searchsorted(row * stride + start, (row - 1) * stride + end, side="left")
    count = np.maximum(last - first, 0)
    a = np.repeat(np.arange(row.size), count)
    b = (
        np.arange(count.sum())
        - np.repeat(np.cumsum(count) - count, count)
        + np.repeat(first, count)
    )
    parent = np.arange(row.size)
    while True:
        ra, rb = parent[a], parent[b]
        if np.array_equal(ra, rb):
            break
        np.minimum.at(parent, np.maximum(ra, rb), np.minimum(ra, rb))
        while True:  # point every run at its root
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    roots, component = np.unique(parent, return_inverse=True)
    numbered = np.zeros(h * w, np.int32)
    inside = np.flatnonzero(mask.ravel())
    numbered[inside] = np.repeat(component.astype(np.int32) + 1, end - start)
    return numbered.reshape(h, w), len(roots)


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
