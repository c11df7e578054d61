"""The layout of a synthetic slide: where glass, tissue, lesions and ducts are.

A `Layout` is the cheap, whole-slide description every tile is rendered
from: a tissue field (fractal value noise, thresholded so tissue covers the
requested fraction, pushed away from the slide edges), a fat field, lesion
outlines (one class each) and the epithelial structures inside them (ducts,
acini, invasive nests) as analytic shapes in level-0 pixels. It holds no
pixels, so a 100,000-pixel-square slide costs a few megabytes; any point's
class can be evaluated anywhere, which is also how the ground truth is made.

The design choices that make the RAZN question real live here:

* benign and in situ lesions are drawn from one distribution of size,
  outline and duct packing (they differ only in the cells `nuclei` draws);
* invasive lesions are spiculated and filled with many small irregular
  nests without a myoepithelial rim, so they differ at coarse scale;
* normal tissue is stroma, fat and sparse open ducts and lobules.

`SlideSpec.invasive` picks one of three invasive patterns. "desmoplastic"
is the above: crowded nests in pale reactive stroma, plain at any
magnification. Its reactive stroma fills the annotated outline exactly,
so the stroma's colour alone gives the label away (the built-in sample
and the demo model's training slides use it). "spill", the default,
keeps the crowded nests but lets the stromal reaction follow the tumour
as it does on glass: patchy inside the outline (about half of the lesion's
stroma looks normal, and fat survives in it) and reaching past it, up to
about 40% of the lesion's radius into tissue annotated normal.
"scattered" is the diffusely infiltrating pattern of lobular carcinoma:
small nests and cords about 100 um apart in stroma and fat that look
normal. The lesion is still annotated as one region (as BACH pathologists
outline it), so a 64 um patch of its stroma cannot tell it from normal
tissue, while a 128 um field nearly always holds a nest: the one class on
these slides that low magnification reads better.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from razn.classes import INVASIVE, NORMAL
from razn.synth import noise
from razn.synth.placement import place_lesions, place_structures
from razn.synth.shapes import (  # noqa: F401 (the structure kinds, re-exported for tissue)
    BENIGN_DUCT,
    IN_SITU_DUCT,
    INVASIVE_NEST,
    KIND_OF_CLASS,
    NORMAL_DUCT,
    Lesions,
    Structures,
)

_BUCKET_UM = 128.0

#: How invasive carcinoma may grow (`SlideSpec.invasive`; spill is the default). Slides
#: of the first keep the bytes they had before the option (`generate_slide`).
INVASIVE_PATTERNS = ("desmoplastic", "scattered", "spill")

# Noise streams (any distinct integers).
STREAM_TISSUE, STREAM_FAT, STREAM_LABEL_NOISE_X, STREAM_LABEL_NOISE_Y = 1, 2, 3, 4
STREAM_REACTION = 5

# "spill": the stromal reaction reaches this far out (normalised lesion
# radius; 1 is the outline) and covers the part of that halo where a patchy
# field (cells of about 120 um) exceeds the threshold, about half of it.
_REACTION_REACH = 1.4
_REACTION_CELL_UM = 120.0
_REACTION_THRESHOLD = 0.0


@dataclass(frozen=True)
class SlideSpec:
    """What the user asked for: size in level-0 pixels, seed and resolution.

    Parameters
    ----------
    width, height : int
        Level-0 size in pixels.
    seed : int
        Everything random derives from it; same spec, same slide.
    mpp : float
        Microns per level-0 pixel; tissue is modelled in microns, so a
        slide at 0.5 mpp shows the same tissue at half the pixels.
    tissue_fraction : float
        Fraction of the slide area covered by tissue (the rest is glass).
    lesion_fraction : float
        Fraction of the tissue that lies in benign, in situ or invasive
        lesions, shared equally among the three (as far as they fit).
    """

    width: int
    height: int
    seed: int
    mpp: float = 0.25
    tissue_fraction: float = 0.55
    lesion_fraction: float = 0.4
    #: One of INVASIVE_PATTERNS (see the module docstring).
    invasive: str = "spill"

    def um(self, microns: float) -> float:
        """Microns to level-0 pixels."""
        return microns / self.mpp


class Layout:
    """Whole-slide description a tile renderer and the ground truth share.

    Build it with `Layout.build(spec)`; it is deterministic in `spec`.
    """

    def __init__(self, spec: SlideSpec, tissue_threshold: float, fat_threshold: float):
        self.spec = spec
        self.tissue_threshold = tissue_threshold
        self.fat_threshold = fat_threshold
        self.tissue_cell = max(spec.width, spec.height) / 2.5
        self.lesions = Lesions.empty()
        self.structures = Structures.empty()
        self.structure_extent = np.zeros(0)
        self._bucket = spec.um(_BUCKET_UM)
        self._buckets: dict[tuple[int, int], np.ndarray] = {}
        # (x scale, y scale, field) of a 256 x 256 sample of the tissue field.
        self._probe: tuple[float, float, np.ndarray] | None = None

    # -- fields -------------------------------------------------------------
    def _edge_penalty(self, x, y):
        w, h = self.spec.width, self.spec.height
        margin = 0.1 * min(w, h)
        d = np.minimum(np.minimum(x, w - 1 - x), np.minimum(y, h - 1 - y))
        return 2.0 * np.clip(1.0 - d / margin, 0.0, 1.0) ** 2

    def tissue_grid(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Signed tissue field on a grid of level-0 coordinates: > 0 is tissue."""
        f = noise.fbm_grid(self.spec.seed, STREAM_TISSUE, xs, ys, self.tissue_cell, octaves=5)
        f -= self._edge_penalty(xs[None, :], ys[:, None]).astype(np.float32)
        return f - np.float32(self.tissue_threshold)

    def tissue_points(self, x, y) -> np.ndarray:
        f = noise.fbm_points(self.spec.seed, STREAM_TISSUE, x, y, self.tissue_cell, octaves=5)
        return f - self._edge_penalty(np.asarray(x), np.asarray(y)) - self.tissue_threshold

    def tissue_probe(self, x, y) -> np.ndarray:
        """Cheap approximation of `tissue_points` for placement decisions."""
        from scipy.ndimage import map_coordinates

        fx, fy, field_ = self._probe
        coords = np.stack([np.asarray(y) * fy, np.asarray(x) * fx])
        return map_coordinates(field_, coords, order=1, mode="nearest") - self.tissue_threshold

    def fat_grid(self, xs, ys) -> np.ndarray:
        """Signed fat field: > 0 where normal tissue is adipose."""
        cell = self.spec.um(600.0)
        f = noise.fbm_grid(self.spec.seed, STREAM_FAT, xs, ys, cell, octaves=3)
        return f - np.float32(self.fat_threshold)

    def reaction_grid(self, xs, ys) -> np.ndarray:
        """Where stroma is desmoplastic under the "spill" pattern (bool grid).

        Around and inside each invasive lesion out to `_REACTION_REACH`,
        and there only where a patchy noise field is high: the reaction
        neither stops at the annotated outline nor fills it.
        """
        near = np.zeros((len(ys), len(xs)), dtype=bool)
        if not len(self.lesions):
            return near
        invasive = np.nonzero(self.lesions.class_value == INVASIVE)[0]
        for _, sy, sx, inside in self._lesions_on_grid(invasive, xs, ys, _REACTION_REACH):
            near[sy, sx] |= inside
        if not near.any():
            return near
        cell = self.spec.um(_REACTION_CELL_UM)
        patchy = noise.fbm_grid(self.spec.seed, STREAM_REACTION, xs, ys, cell, octaves=3)
        return near & (patchy > _REACTION_THRESHOLD)

    # -- classes ------------------------------------------------------------
    def lesion_class_grid(self, xs, ys) -> np.ndarray:
        """Class of each grid point from the lesion outlines alone (no glass)."""
        out = np.full((len(ys), len(xs)), NORMAL, dtype=np.uint8)
        if not len(self.lesions):
            return out
        for i, sy, sx, inside in self._lesions_on_grid(range(len(self.lesions)), xs, ys, 1.0):
            out[sy, sx][inside] = self.lesions.class_value[i]
        return out

    def _lesions_on_grid(self, indices, xs, ys, reach: float):
        """(i, row slice, column slice, inside) for each lesion i of `indices`
        whose outline scaled by `reach` meets the grid; `inside` is the mask
        of that window's points within it (normalised radius < reach)."""
        ext = self.lesions.extent() * reach
        for i in indices:
            cx, cy, r = self.lesions.cx[i], self.lesions.cy[i], ext[i]
            jx = np.nonzero((xs > cx - r) & (xs < cx + r))[0]
            jy = np.nonzero((ys > cy - r) & (ys < cy + r))[0]
            if not len(jx) or not len(jy):
                continue
            sx, sy = slice(jx[0], jx[-1] + 1), slice(jy[0], jy[-1] + 1)
            yield i, sy, sx, self.lesions.rho(i, xs[sx][None, :], ys[sy][:, None]) < reach

    def lesion_class_points(self, x, y) -> np.ndarray:
        """Class of each point from the lesion outlines alone (no glass)."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        cls = np.full(x.shape, NORMAL, dtype=np.uint8)
        ext = self.lesions.extent()
        for i in range(len(self.lesions)):
            near = (np.abs(x - self.lesions.cx[i]) < ext[i]) & (
                np.abs(y - self.lesions.cy[i]) < ext[i]
            )
            if near.any():
                inside = self.lesions.rho(i, x[near], y[near]) < 1.0
                sub = cls[near]
                sub[inside] = self.lesions.class_value[i]
                cls[near] = sub
        return cls

    def class_grid(self, xs, ys, label_noise: float = 0.0) -> np.ndarray:
        """Ground-truth class (1..4) at grid points; glass counts as normal.

        `label_noise` (level-0 pixels) displaces the points by a smooth random
        field (at most that much along each axis) before evaluating, which
        moves region boundaries as a hand-drawn region annotation would.
        """
        xs = np.asarray(xs, dtype=np.float64)
        ys = np.asarray(ys, dtype=np.float64)
        if label_noise <= 0:
            cls = self.lesion_class_grid(xs, ys)
            cls[self.tissue_grid(xs, ys) <= 0] = NORMAL
            return cls
        # Displaced points are no longer a grid: evaluate pointwise.
        gx, gy = np.meshgrid(xs, ys)
        cell = max(4.0 * label_noise, self.spec.um(40.0))
        seed = self.spec.seed
        # Three octaves sum to at most 1.75: scale so |shift| <= label_noise per axis.
        amplitude = label_noise / 1.75
        px = gx + amplitude * noise.fbm_points(seed, STREAM_LABEL_NOISE_X, gx, gy, cell, 3)
        py = gy + amplitude * noise.fbm_points(seed, STREAM_LABEL_NOISE_Y, gx, gy, cell, 3)
        cls = self.lesion_class_points(px, py)
        cls[self.tissue_points(px, py) <= 0] = NORMAL
        return cls

    def label_grid(self, downsample: int, label_noise: float = 0.0, rows=None) -> np.ndarray:
        """Class map at `downsample` (each cell sampled at its level-0 centre).

        `rows` (start, stop) limits the output to a band of label-grid rows so
        callers can build a large grid strip by strip.
        """
        h = -(-self.spec.height // downsample)
        w = -(-self.spec.width // downsample)
        r0, r1 = rows if rows is not None else (0, h)
        xs = (np.arange(w) + 0.5) * downsample - 0.5
        ys = (np.arange(r0, r1) + 0.5) * downsample - 0.5
        return self.class_grid(xs, ys, label_noise)

    # -- structures -----------------------------------------------------------
    def structures_in_box(self, x0, y0, x1, y1) -> np.ndarray:
        """Indices of structures whose extent may meet the box (level-0 px)."""
        b = self._bucket
        found = [
            self._buckets[(bx, by)]
            for by in range(int(y0 // b) - 1, int(y1 // b) + 2)
            for bx in range(int(x0 // b) - 1, int(x1 // b) + 2)
            if (bx, by) in self._buckets
        ]
        if not found:
            return np.zeros(0, dtype=np.int64)
        idx = np.unique(np.concatenate(found))
        s, ext = self.structures, self.structure_extent
        keep = (
            (s.cx[idx] + ext[idx] > x0)
            & (s.cx[idx] - ext[idx] < x1)
            & (s.cy[idx] + ext[idx] > y0)
            & (s.cy[idx] - ext[idx] < y1)
        )
        return idx[keep]

    def _index_structures(self) -> None:
        self.structure_extent = self.structures.extent()
        b = self._bucket
        # Each structure goes in the bucket of its centre; lookups widen by
        # one bucket, so extents must stay below a bucket (checked here).
        assert (self.structure_extent < b).all(), "structure larger than an index bucket"
        keys = np.stack([self.structures.cx // b, self.structures.cy // b], axis=1).astype(int)
        buckets: dict[tuple[int, int], list[int]] = {}
        for i, (bx, by) in enumerate(keys):
            buckets.setdefault((bx, by), []).append(i)
        self._buckets = {k: np.asarray(v) for k, v in buckets.items()}

    # -- construction ---------------------------------------------------------
    @classmethod
    def build(cls, spec: SlideSpec) -> Layout:
        """Lay out tissue, fat, lesions and structures for `spec`."""
        if spec.width < 1 or spec.height < 1:
            raise ValueError("slide size must be positive")
        if not 0.0 < spec.tissue_fraction <= 1.0:
            raise ValueError("tissue fraction must be in (0, 1]")
        probe = cls(spec, 0.0, 0.0)
        n = 256
        xs = np.linspace(0, spec.width - 1, n)
        ys = np.linspace(0, spec.height - 1, n)
        field_ = probe.tissue_grid(xs, ys)
        tissue_threshold = float(np.quantile(field_, 1.0 - spec.tissue_fraction))
        fat = probe.fat_grid(xs, ys)
        # About a third of normal tissue is fat.
        fat_threshold = float(np.quantile(fat[field_ > tissue_threshold], 0.68))
        layout = cls(spec, tissue_threshold, fat_threshold)
        layout._probe = (n - 1) / max(spec.width - 1, 1), (n - 1) / max(spec.height - 1, 1), field_
        rng = np.random.default_rng([spec.seed, 0x5EED])
        layout.lesions = place_lesions(layout, rng)
        layout.structures = place_structures(layout, rng)
        layout._index_structures()
        return layout
