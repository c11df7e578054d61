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

`SlideSpec.invasive` picks one of two invasive patterns. "desmoplastic"
(the default) is the above: crowded nests in pale reactive stroma, plain
at any magnification. "scattered" is the diffusely infiltrating pattern of
lobular carcinoma: small nests and cords about 100 um apart in stroma and
fat that look normal. The lesion is still annotated as one region (as BACH
pathologists outline it), so a 64 um patch of its stroma cannot tell it
from normal tissue, while a 128 um field nearly always holds a nest: the
one class on these slides that low magnification reads better.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from razn.classes import BENIGN, IN_SITU, INVASIVE, NORMAL
from razn.synth import noise

# Structure kinds (what is drawn), distinct from class values (what is true).
NORMAL_DUCT, BENIGN_DUCT, IN_SITU_DUCT, INVASIVE_NEST = 0, 1, 2, 3
KIND_OF_CLASS = {BENIGN: BENIGN_DUCT, IN_SITU: IN_SITU_DUCT, INVASIVE: INVASIVE_NEST}

N_HARMONICS = 10
_BUCKET_UM = 128.0

#: How invasive carcinoma may grow (`SlideSpec.invasive`); the first is the default.
INVASIVE_PATTERNS = ("desmoplastic", "scattered")

# Noise streams (any distinct integers).
STREAM_TISSUE, STREAM_FAT, STREAM_LABEL_NOISE_X, STREAM_LABEL_NOISE_Y = 1, 2, 3, 4


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
    invasive: str = INVASIVE_PATTERNS[0]

    def um(self, microns: float) -> float:
        """Microns to level-0 pixels."""
        return microns / self.mpp


@dataclass
class Shapes:
    """Star-shaped outlines: ellipse (cx, cy, a, b, theta) times a radial
    Fourier series 1 + sum_k amp_k cos(k phi + phase_k), k = 1..N_HARMONICS."""

    cx: np.ndarray
    cy: np.ndarray
    a: np.ndarray
    b: np.ndarray
    theta: np.ndarray
    amps: np.ndarray  # (n, N_HARMONICS)
    phases: np.ndarray  # (n, N_HARMONICS)
    extra: dict = field(default_factory=dict)  # per-shape attributes (kind, lumen, class)

    def __len__(self) -> int:
        return len(self.cx)

    def extent(self) -> np.ndarray:
        """Radius of a circle around each centre that contains the shape."""
        return np.maximum(self.a, self.b) * (1.0 + np.abs(self.amps).sum(axis=1))

    def rho(self, i: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Normalised radius of points (broadcast x, y) in shape i: < 1 inside."""
        dx, dy = x - self.cx[i], y - self.cy[i]
        c, s = np.cos(self.theta[i]), np.sin(self.theta[i])
        u = (dx * c + dy * s) / self.a[i]
        v = (-dx * s + dy * c) / self.b[i]
        r = np.sqrt(u * u + v * v)
        phi = np.arctan2(v, u)
        radius = np.ones_like(phi)
        for k in range(N_HARMONICS):
            if self.amps[i, k]:
                radius += self.amps[i, k] * np.cos((k + 1) * phi + self.phases[i, k])
        return (r / np.maximum(radius, 0.2)).astype(np.float32)

    def subset(self, index: np.ndarray) -> Shapes:
        return Shapes(
            self.cx[index],
            self.cy[index],
            self.a[index],
            self.b[index],
            self.theta[index],
            self.amps[index],
            self.phases[index],
            {k: v[index] for k, v in self.extra.items()},
        )


def _concat(parts: list[Shapes]) -> Shapes:
    parts = [p for p in parts if len(p)]
    if not parts:
        empty = np.zeros(0)
        return Shapes(
            empty,
            empty,
            empty,
            empty,
            empty,
            np.zeros((0, N_HARMONICS)),
            np.zeros((0, N_HARMONICS)),
            {"kind": np.zeros(0, np.int8), "lumen": empty, "lesion": np.zeros(0, np.int32)},
        )
    keys = parts[0].extra.keys()
    return Shapes(
        *(np.concatenate([getattr(p, n) for p in parts]) for n in ("cx", "cy", "a", "b", "theta")),
        np.concatenate([p.amps for p in parts]),
        np.concatenate([p.phases for p in parts]),
        {k: np.concatenate([p.extra[k] for p in parts]) for k in keys},
    )


class Layout:
    """Whole-slide description a tile renderer and the ground truth share.

    Build it with `Layout.build(spec)`; it is deterministic in `spec`.
    """

    def __init__(self, spec: SlideSpec, tissue_threshold: float, fat_threshold: float):
        self.spec = spec
        self.tissue_threshold = tissue_threshold
        self.fat_threshold = fat_threshold
        self.tissue_cell = max(spec.width, spec.height) / 2.5
        self.lesions: Shapes = _concat([])
        self.structures: Shapes = _concat([])
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

    # -- classes ------------------------------------------------------------
    def lesion_class_grid(self, xs, ys) -> np.ndarray:
        """Class of each grid point from the lesion outlines alone (no glass)."""
        out = np.full((len(ys), len(xs)), NORMAL, dtype=np.uint8)
        if not len(self.lesions):
            return out
        ext = self.lesions.extent()
        for i in range(len(self.lesions)):
            cx, cy, r = self.lesions.cx[i], self.lesions.cy[i], ext[i]
            jx = np.nonzero((xs > cx - r) & (xs < cx + r))[0]
            jy = np.nonzero((ys > cy - r) & (ys < cy + r))[0]
            if not len(jx) or not len(jy):
                continue
            sx, sy = slice(jx[0], jx[-1] + 1), slice(jy[0], jy[-1] + 1)
            inside = self.lesions.rho(i, xs[sx][None, :], ys[sy][:, None]) < 1.0
            out[sy, sx][inside] = self.lesions.extra["cls"][i]
        return out

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
                sub[inside] = self.lesions.extra["cls"][i]
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
        layout.lesions = _place_lesions(layout, rng)
        layout.structures = _place_structures(layout, rng)
        layout._index_structures()
        return layout


# -- placement ----------------------------------------------------------------
def _random_shapes(rng, n, cx, cy, a, b, amp_scale, harmonics, extra) -> Shapes:
    amps = np.zeros((n, N_HARMONICS))
    ks = np.arange(1, N_HARMONICS + 1)
    lo, hi = harmonics
    band = (ks >= lo) & (ks <= hi)
    amps[:, band] = rng.uniform(0, 1, (n, band.sum())) * amp_scale / ks[band] ** 0.5
    phases = rng.uniform(0, 2 * np.pi, (n, N_HARMONICS))
    theta = rng.uniform(0, np.pi, n)
    return Shapes(np.asarray(cx, float), np.asarray(cy, float), a, b, theta, amps, phases, extra)


class _DiscPacker:
    """Greedy non-overlapping discs with a bucket grid for neighbour checks."""

    def __init__(self, cell: float):
        self.cell = cell
        self.grid: dict[tuple[int, int], list[tuple[float, float, float]]] = {}

    def fits(self, x, y, r, gap) -> bool:
        c = self.cell
        bx, by = int(x // c), int(y // c)
        for ny in range(by - 1, by + 2):
            for nx in range(bx - 1, bx + 2):
                for ox, oy, orad in self.grid.get((nx, ny), ()):
                    if (x - ox) ** 2 + (y - oy) ** 2 < (r + orad + gap) ** 2:
                        return False
        return True

    def add(self, x, y, r) -> None:
        self.grid.setdefault((int(x // self.cell), int(y // self.cell)), []).append((x, y, r))


# Lesion radius ranges (um) per class: benign and in situ share one on purpose.
_LESION_RADIUS_UM = {BENIGN: (160.0, 420.0), IN_SITU: (160.0, 420.0), INVASIVE: (180.0, 460.0)}


def _place_lesions(layout: Layout, rng) -> Shapes:
    spec = layout.spec
    tissue_area = spec.width * spec.height * spec.tissue_fraction
    target = spec.lesion_fraction * tissue_area / 3.0
    area = {BENIGN: 0.0, IN_SITU: 0.0, INVASIVE: 0.0}
    packer = _DiscPacker(spec.um(2 * 520.0 * 1.4 + 60.0))
    chosen: list[Shapes] = []
    order = [BENIGN, IN_SITU, INVASIVE]
    failures = 0
    while failures < 2000 and min(area.values()) < target:
        rng.shuffle(order)
        placed = False
        for c in order:
            if area[c] >= target:
                continue
            lo, hi = _LESION_RADIUS_UM[c]
            # Shrink lesions on small slides rather than give up on a class.
            scale = min(1.0, 0.22 * min(spec.width, spec.height) / spec.um(hi))
            r = spec.um(rng.uniform(lo, hi)) * scale
            x, y = rng.uniform(0, spec.width), rng.uniform(0, spec.height)
            if c == INVASIVE:
                shape = _random_shapes(
                    rng, 1, [x], [y], np.array([r]), np.array([r]), 0.1, (2, 10), {}
                )
            else:
                shape = _random_shapes(
                    rng, 1, [x], [y], np.array([r]), np.array([r]), 0.18, (2, 5), {}
                )
            ext = float(shape.extent()[0])
            ang = np.linspace(0, 2 * np.pi, 16, endpoint=False)
            ring_x = np.r_[x, x + 1.05 * ext * np.cos(ang)]
            ring_y = np.r_[y, y + 1.05 * ext * np.sin(ang)]
            inside = layout.tissue_probe(ring_x, ring_y) > 0.0
            # A lesion may reach the tissue edge (its glass part is normal),
            # but most of it must lie on tissue.
            if inside[0] and inside.mean() > 0.8 and packer.fits(x, y, ext, spec.um(60.0)):
                packer.add(x, y, ext)
                shape.extra = {"cls": np.array([c], np.uint8)}
                chosen.append(shape)
                area[c] += np.pi * r * r
                placed = True
        failures = 0 if placed else failures + 1
    if not chosen:
        return _lesions_empty()
    parts = chosen
    return Shapes(
        *(np.concatenate([getattr(p, n) for p in parts]) for n in ("cx", "cy", "a", "b", "theta")),
        np.concatenate([p.amps for p in parts]),
        np.concatenate([p.phases for p in parts]),
        {"cls": np.concatenate([p.extra["cls"] for p in parts])},
    )


def _lesions_empty() -> Shapes:
    s = _concat([])
    s.extra = {"cls": np.zeros(0, np.uint8)}
    return s


def _pack(layout, rng, packer, candidates, radius_um, aspect, gap_um, accept, largest_first=False):
    """Dart-throw structures inside one lesion (or the normal tissue).

    largest_first tries the candidates in order of decreasing radius, so the
    small ones fill the gaps the large ones leave: a denser packing.
    """
    spec = layout.spec
    x, y = candidates
    n = len(x)
    r = spec.um(rng.uniform(*radius_um, n))
    asp = rng.uniform(*aspect, n)
    keep_x, keep_y, keep_r, keep_asp = [], [], [], []
    ok = accept(x, y, r)
    order = np.nonzero(ok)[0]
    if largest_first:
        order = order[np.argsort(-r[order], kind="stable")]
    for i in order:
        if packer.fits(x[i], y[i], r[i], spec.um(gap_um)):
            packer.add(x[i], y[i], r[i])
            keep_x.append(x[i])
            keep_y.append(y[i])
            keep_r.append(r[i])
            keep_asp.append(asp[i])
    return np.array(keep_x), np.array(keep_y), np.array(keep_r), np.array(keep_asp)


def _place_structures(layout: Layout, rng) -> Shapes:
    spec = layout.spec
    packer = _DiscPacker(spec.um(2 * 95.0 + 12.0))
    parts: list[Shapes] = []
    les = layout.lesions
    for i in range(len(les)):
        c = int(les.extra["cls"][i])
        ext = les.extent()[i]
        area = np.pi * les.a[i] ** 2
        scattered = c == INVASIVE and spec.invasive == "scattered"
        if scattered:
            # One small nest or cord per ~(100 um)^2, spaced by the gap, so
            # most 64 um patches of the lesion hold none and most 128 um
            # fields hold one or more.
            radius, aspect, gap, amp, harm = (8.0, 20.0), (1.0, 2.6), 45.0, 0.3, (2, 6)
            mean_area = spec.um(100.0) ** 2
        elif c == INVASIVE:
            radius, aspect, gap, amp, harm = (10.0, 34.0), (1.0, 2.6), 7.0, 0.3, (2, 6)
            mean_area = np.pi * spec.um(22.0) ** 2 / 1.8
        else:
            # Ducts crowd benign and in situ lesions (stroma is a thin share),
            # so a zoomed patch of 64 um inside a lesion nearly always shows
            # epithelium, whose nuclei tell the two apart.
            radius, aspect, gap, amp, harm = (10.0, 55.0), (1.0, 1.15), 3.0, 0.08, (2, 4)
            mean_area = np.pi * spec.um(30.0) ** 2
        tries = 2 if scattered else 12 if c == INVASIVE else 60
        n = int(min(200_000, tries * area / mean_area)) + 20
        cand = (
            les.cx[i] + rng.uniform(-ext, ext, n),
            les.cy[i] + rng.uniform(-ext, ext, n),
        )

        def accept(x, y, r, i=i, c=c, scattered=scattered):
            rho = les.rho(i, x, y)
            if scattered:
                return rho < 1.0
            if c == INVASIVE:
                # Infiltrative: nests thin out towards the edge, a few beyond.
                return rng.uniform(0, 1, len(x)) < np.clip(1.15 - rho, 0, 1) ** 0.7
            return rho + 0.5 * r / les.a[i] < 0.97

        dense = c != INVASIVE
        x, y, r, asp = _pack(layout, rng, packer, cand, radius, aspect, gap, accept, dense)
        if not len(x):
            continue
        kind = KIND_OF_CLASS[c]
        k = len(x)
        if c == INVASIVE:
            lumen = np.where(rng.uniform(0, 1, k) < 0.15, rng.uniform(0.15, 0.3, k), 0.0)
        else:
            # Benign (usual ductal hyperplasia) and in situ ducts are both
            # mostly filled, with the same chance of a residual lumen.
            lumen = np.where(rng.uniform(0, 1, k) < 0.4, rng.uniform(0.12, 0.3, k), 0.0)
        parts.append(
            _random_shapes(
                rng,
                k,
                x,
                y,
                r,
                r / asp,
                amp,
                harm,
                {
                    "kind": np.full(k, kind, np.int8),
                    "lumen": lumen,
                    "lesion": np.full(k, i, np.int32),
                },
            )
        )
    # Normal ducts and lobules (clusters of acini) in the remaining tissue.
    area = spec.width * spec.height * spec.tissue_fraction
    n_ducts = int(area / spec.um(260.0) ** 2) + 1
    n_lobules = int(area / spec.um(700.0) ** 2) + 1
    lob_x = rng.uniform(0, spec.width, n_lobules)
    lob_y = rng.uniform(0, spec.height, n_lobules)
    spread = spec.um(70.0)
    acini = (
        np.repeat(lob_x, 14) + rng.normal(0, spread, 14 * n_lobules),
        np.repeat(lob_y, 14) + rng.normal(0, spread, 14 * n_lobules),
    )
    ducts = (rng.uniform(0, spec.width, n_ducts), rng.uniform(0, spec.height, n_ducts))

    def accept_normal(x, y, r):
        inside_tissue = layout.tissue_probe(x, y) > 0.02
        return inside_tissue & (layout.lesion_class_points(x, y) == NORMAL)

    for cand, radius, lumen_range in (
        (ducts, (20.0, 45.0), (0.45, 0.7)),
        (acini, (10.0, 18.0), (0.35, 0.55)),
    ):
        x, y, r, asp = _pack(layout, rng, packer, cand, radius, (1.0, 1.4), 6.0, accept_normal)
        k = len(x)
        if k:
            parts.append(
                _random_shapes(
                    rng,
                    k,
                    x,
                    y,
                    r,
                    r / asp,
                    0.08,
                    (2, 3),
                    {
                        "kind": np.full(k, NORMAL_DUCT, np.int8),
                        "lumen": rng.uniform(*lumen_range, k),
                        "lesion": np.full(k, -1, np.int32),
                    },
                )
            )
    return _concat(parts)
