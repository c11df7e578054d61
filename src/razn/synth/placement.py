"""Where a synthetic slide's lesions and structures go: seeded dart throwing.

`Layout.build` calls `place_lesions`, then `place_structures`, with one
random generator, so the same `SlideSpec` always gives the same slide: the
order of every draw below is part of the slides' bytes (a test compares
them). Lesions are discs of one class each, packed apart on tissue; ducts,
acini and nests are packed inside them (dense for benign and in situ,
thinning towards the edge for invasive, sparse for the "scattered"
pattern), then normal ducts and lobules fill the normal tissue.
"""

from __future__ import annotations

import numpy as np

from razn.classes import BENIGN, IN_SITU, INVASIVE, NORMAL
from razn.synth.shapes import (
    KIND_OF_CLASS,
    N_HARMONICS,
    NORMAL_DUCT,
    Lesions,
    Shapes,
    Structures,
)

__all__ = ["place_lesions", "place_structures"]


def _random_shapes(rng, n, cx, cy, a, b, amp_scale, harmonics) -> Shapes:
    amps = np.zeros((n, N_HARMONICS))
    ks = np.arange(1, N_HARMONICS + 1)
    lo, hi = harmonics
    band = (ks >= lo) & (ks <= hi)
    amps[:, band] = rng.uniform(0, 1, (n, band.sum())) * amp_scale / ks[band] ** 0.5
    phases = rng.uniform(0, 2 * np.pi, (n, N_HARMONICS))
    theta = rng.uniform(0, np.pi, n)
    return Shapes(np.asarray(cx, float), np.asarray(cy, float), a, b, theta, amps, phases)


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


def place_lesions(layout, rng) -> Lesions:
    """Lesions of every class on the tissue of `layout` (a `Layout`), about
    `spec.lesion_fraction` of it, a third each, none touching another."""
    spec = layout.spec
    tissue_area = spec.width * spec.height * spec.tissue_fraction
    target = spec.lesion_fraction * tissue_area / 3.0
    area = {BENIGN: 0.0, IN_SITU: 0.0, INVASIVE: 0.0}
    packer = _DiscPacker(spec.um(2 * 520.0 * 1.4 + 60.0))
    chosen: list[Lesions] = []
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
                    rng, 1, [x], [y], np.array([r]), np.array([r]), 0.1, (2, 10)
                )
            else:
                shape = _random_shapes(
                    rng, 1, [x], [y], np.array([r]), np.array([r]), 0.18, (2, 5)
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
                chosen.append(Lesions(**shape.outlines(), class_value=np.array([c], np.uint8)))
                area[c] += np.pi * r * r
                placed = True
        failures = 0 if placed else failures + 1
    return Lesions.concat(chosen)


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


def place_structures(layout, rng) -> Structures:
    """Ducts and nests packed into each lesion of `layout`, then normal ducts
    and lobules in the rest of its tissue, none overlapping."""
    spec = layout.spec
    packer = _DiscPacker(spec.um(2 * 95.0 + 12.0))
    parts: list[Structures] = []
    les = layout.lesions
    for i in range(len(les)):
        c = int(les.class_value[i])
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
        outlines = _random_shapes(rng, k, x, y, r, r / asp, amp, harm).outlines()
        kinds, lesion = np.full(k, kind, np.int8), np.full(k, i, np.int32)
        parts.append(Structures(**outlines, kind=kinds, lumen=lumen, lesion=lesion))
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
            # The lumens are drawn before the outlines: the order the slides'
            # bytes have always depended on.
            lumen = rng.uniform(*lumen_range, k)
            outlines = _random_shapes(rng, k, x, y, r, r / asp, 0.08, (2, 3)).outlines()
            kinds, lesion = np.full(k, NORMAL_DUCT, np.int8), np.full(k, -1, np.int32)
            parts.append(Structures(**outlines, kind=kinds, lumen=lumen, lesion=lesion))
    return Structures.concat(parts)
