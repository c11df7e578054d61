"""Cell nuclei: the cell types a synthetic slide shows and how they are drawn.

This is where benign and in situ carcinoma differ, and only here. Both
have the same crowded, round-to-oval nuclei (same count, size, spread,
shape and hematoxylin per unit area, `hematoxylin_per_um2`), so at about
1 um/px the two look alike; usual ductal hyperplasia (benign) has fine,
even chromatin, ductal carcinoma in situ has clumped chromatin, a thick
membrane and nucleoli: sub-micron texture that only the zoomed view shows.

Nuclei sit on a global jittered grid per cell type (one candidate per grid
cell, keyed by the cell index, `noise.jittered_points`), and every random
property of a nucleus is hashed from that index, so tiles rendered
separately agree on every nucleus that crosses their border.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from razn.synth import noise


@dataclass(frozen=True)
class CellType:
    """How one population of nuclei looks; sizes in microns.

    Attributes
    ----------
    spacing_um : grid spacing (one candidate nucleus per cell).
    presence : chance that a candidate whose centre lies where the type
        lives is drawn.
    radius_um, radius_sd : geometric-mean radius sqrt(major * minor), and the
        log-normal spread of it (pleomorphism).
    aspect : range of major / minor axis ratios.
    irregularity : amplitude of the radial harmonics k = 2..4 of the outline.
    hematoxylin, hematoxylin_sd : mean stain and its spread between nuclei.
    fine_chromatin, coarse_chromatin : amplitude of 0.5 um grain and of 0.8 um
        clumps.
    membrane : extra stain on the rim (thick nuclear membrane).
    nucleolus : chance of one visible nucleolus.
    oriented : follow the given angle map (fibres, duct walls, streaming)
        instead of a random direction.
    """

    name: str
    stream: int
    spacing_um: float
    presence: float
    radius_um: float
    radius_sd: float
    aspect: tuple[float, float]
    irregularity: float
    hematoxylin: float
    hematoxylin_sd: float
    fine_chromatin: float
    coarse_chromatin: float
    membrane: float
    nucleolus: float
    oriented: bool

    def hematoxylin_per_um2(self) -> float:
        """Expected stain per unit area of a region full of this type."""
        mean_r2 = self.radius_um**2 * np.exp(2 * self.radius_sd**2)
        return self.presence * np.pi * mean_r2 * self.hematoxylin / self.spacing_um**2


FIBROBLAST = CellType(
    name="fibroblast",
    stream=101,
    spacing_um=12.0,
    presence=0.5,
    radius_um=2.3,
    radius_sd=0.12,
    aspect=(2.5, 4.0),
    irregularity=0.05,
    hematoxylin=0.95,
    hematoxylin_sd=0.1,
    fine_chromatin=0.1,
    coarse_chromatin=0.0,
    membrane=0.0,
    nucleolus=0.0,
    oriented=True,
)
DESMOPLASTIC_FIBROBLAST = CellType(
    name="desmoplastic fibroblast",
    stream=102,
    spacing_um=9.0,
    presence=0.6,
    radius_um=2.5,
    radius_sd=0.15,
    aspect=(2.0, 3.5),
    irregularity=0.05,
    hematoxylin=0.9,
    hematoxylin_sd=0.1,
    fine_chromatin=0.1,
    coarse_chromatin=0.0,
    membrane=0.0,
    nucleolus=0.0,
    oriented=True,
)
LYMPHOCYTE = CellType(
    name="lymphocyte",
    stream=103,
    spacing_um=22.0,
    presence=0.25,
    radius_um=2.2,
    radius_sd=0.06,
    aspect=(1.0, 1.15),
    irregularity=0.02,
    hematoxylin=1.35,
    hematoxylin_sd=0.1,
    fine_chromatin=0.05,
    coarse_chromatin=0.0,
    membrane=0.0,
    nucleolus=0.0,
    oriented=False,
)
MYOEPITHELIAL = CellType(
    name="myoepithelial",
    stream=104,
    spacing_um=5.5,
    presence=0.8,
    radius_um=1.9,
    radius_sd=0.1,
    aspect=(2.2, 3.2),
    irregularity=0.03,
    hematoxylin=0.95,
    hematoxylin_sd=0.1,
    fine_chromatin=0.1,
    coarse_chromatin=0.0,
    membrane=0.0,
    nucleolus=0.0,
    oriented=True,
)
LUMINAL = CellType(
    name="luminal",
    stream=105,
    spacing_um=6.0,
    presence=0.95,
    radius_um=2.4,
    radius_sd=0.08,
    aspect=(1.0, 1.3),
    irregularity=0.03,
    hematoxylin=0.85,
    hematoxylin_sd=0.08,
    fine_chromatin=0.12,
    coarse_chromatin=0.0,
    membrane=0.0,
    nucleolus=0.0,
    oriented=False,
)


def _matched(cell: CellType, reference: CellType) -> CellType:
    """`cell` with its stain set so a region of it holds as much hematoxylin
    per unit area as a region of `reference` (coarse colour and density
    match). The rim and nucleolus add stain too: the rim ramps over about
    30% of a nucleus's area and a nucleolus covers about 2% of it."""
    unit = replace(cell, hematoxylin=1.0).hematoxylin_per_um2() / cell.presence
    extra = cell.membrane * 0.3 + 0.8 * 0.02 * cell.nucleolus
    wanted = reference.hematoxylin_per_um2() / cell.presence
    return replace(cell, hematoxylin=wanted / unit - extra)


# Benign (usual ductal hyperplasia) and in situ carcinoma share every
# property that survives at 1 um/px: spacing, size, pleomorphism, shape,
# orientation and hematoxylin per unit area. An earlier generator let them
# differ in count, size, pleomorphism and streaming too, and a net at 1 um/px
# learnt those (benign / in situ IoU 0.61 / 0.62 after 1,200 steps): nothing
# was left that only zooming could see. What differs now is sub-micron.
_DUCTAL_EPITHELIUM = CellType(
    name="ductal epithelium",
    stream=106,
    spacing_um=7.0,
    presence=0.97,
    radius_um=3.0,
    radius_sd=0.1,
    aspect=(1.0, 1.4),
    irregularity=0.04,
    hematoxylin=0.85,
    hematoxylin_sd=0.08,
    fine_chromatin=0.0,
    coarse_chromatin=0.0,
    membrane=0.0,
    nucleolus=0.0,
    oriented=False,
)
# Benign: fine, even chromatin (0.5 um grain), no nucleoli.
BENIGN_EPITHELIUM = replace(_DUCTAL_EPITHELIUM, name="benign epithelium", fine_chromatin=0.15)
# In situ: chromatin in clumps under a micron, a thick membrane and a
# nucleolus in most nuclei; the stain is matched to the benign epithelium
# (see the module docstring), so at 1 um/px both are the same purple blobs.
IN_SITU_EPITHELIUM = _matched(
    replace(
        _DUCTAL_EPITHELIUM,
        name="in situ carcinoma",
        stream=107,
        fine_chromatin=0.03,
        coarse_chromatin=0.6,
        membrane=0.35,
        nucleolus=0.9,
    ),
    BENIGN_EPITHELIUM,
)
INVASIVE_EPITHELIUM = CellType(
    name="invasive carcinoma",
    stream=108,
    spacing_um=7.6,
    presence=1.0,
    radius_um=3.4,
    radius_sd=0.22,
    aspect=(1.0, 1.6),
    irregularity=0.08,
    hematoxylin=0.9,
    hematoxylin_sd=0.12,
    fine_chromatin=0.05,
    coarse_chromatin=0.45,
    membrane=0.3,
    nucleolus=0.7,
    oriented=False,
)


def _normal(u1, u2):
    """Standard normal deviates from two uniforms (Box-Muller)."""
    return np.sqrt(-2.0 * np.log(np.maximum(u1, 1e-12))) * np.cos(2 * np.pi * u2)


class NucleusCanvas:
    """Hematoxylin accumulators for one block (level-0 grid with margin).

    Overlapping nuclei add stain, as Beer-Lambert says they should. Three
    planes keep the chromatin texture separate until the texture fields,
    which are shared by all nuclei, are multiplied in at the end.
    """

    def __init__(self, x0: int, y0: int, width: int, height: int, mpp: float, seed: int):
        self.x0, self.y0, self.width, self.height = x0, y0, width, height
        self.mpp, self.seed = mpp, seed
        n = width * height
        self.base = np.zeros(n, np.float64)
        self.fine = np.zeros(n, np.float64)
        self.coarse = np.zeros(n, np.float64)

    def draw(self, cell: CellType, lives_here: np.ndarray, angle: np.ndarray | None = None):
        """Draw every nucleus of `cell` whose centre falls where `lives_here`.

        Parameters
        ----------
        lives_here : bool array (height, width)
            Where this cell type lives, on the canvas grid.
        angle : float array (height, width), optional
            Preferred major-axis direction (radians) for oriented types.
        """
        if not lives_here.any():
            return
        px = 1.0 / self.mpp
        spacing = cell.spacing_um * px
        box = (self.x0, self.y0, self.x0 + self.width - 1, self.y0 + self.height - 1)
        cx, cy, gx, gy = noise.jittered_points(self.seed, cell.stream, box, spacing)
        jx = np.rint(cx - self.x0).astype(np.int64)
        jy = np.rint(cy - self.y0).astype(np.int64)
        ok = (jx >= 0) & (jx < self.width) & (jy >= 0) & (jy < self.height)
        cx, cy, gx, gy, jx, jy = (v[ok] for v in (cx, cy, gx, gy, jx, jy))
        u = [noise.hash2d(self.seed, cell.stream, gx, gy, k) for k in range(2, 16)]
        keep = lives_here[jy, jx] & (u[0] < cell.presence)
        if not keep.any():
            return
        cx, cy, jx, jy = cx[keep], cy[keep], jx[keep], jy[keep]
        u = [v[keep] for v in u]

        radius = cell.radius_um * px * np.exp(cell.radius_sd * np.clip(_normal(u[1], u[2]), -2, 2))
        aspect = cell.aspect[0] + (cell.aspect[1] - cell.aspect[0]) * u[3]
        major, minor = radius * np.sqrt(aspect), radius / np.sqrt(aspect)
        if cell.oriented and angle is not None:
            theta = angle[jy, jx] + 0.25 * (u[4] - 0.5)
        else:
            theta = np.pi * u[4]
        stain = cell.hematoxylin * (1 + cell.hematoxylin_sd * np.clip(_normal(u[5], u[6]), -2, 2))
        amps = cell.irregularity * np.stack([u[7], u[8], u[9]], axis=1)
        phases = 2 * np.pi * np.stack([u[10], u[11], u[12]], axis=1)
        has_nucleolus = u[13] < cell.nucleolus

        reach = major * (1 + amps.sum(axis=1)) + 1.5
        half = int(np.ceil(reach.max()))
        offs = np.arange(-half, half + 1, dtype=np.float32)
        # Stamp windows centred on the nearest canvas pixel of each nucleus.
        dx = (jx + self.x0 - cx)[:, None, None].astype(np.float32) + offs[None, None, :]
        dy = (jy + self.y0 - cy)[:, None, None].astype(np.float32) + offs[None, :, None]
        c = np.cos(theta).astype(np.float32)[:, None, None]
        s = np.sin(theta).astype(np.float32)[:, None, None]
        a = major.astype(np.float32)[:, None, None]
        b = minor.astype(np.float32)[:, None, None]
        uu = (dx * c + dy * s) / a
        vv = (-dx * s + dy * c) / b
        r = np.sqrt(uu * uu + vv * vv)
        if cell.irregularity > 0:
            phi = np.arctan2(vv, uu)
            outline = np.ones_like(r)
            for k in range(3):
                outline += amps[:, k, None, None].astype(np.float32) * np.cos(
                    (k + 2) * phi + phases[:, k, None, None].astype(np.float32)
                )
            r = r / outline
        # Anti-aliased edge about one pixel wide, measured along the minor axis.
        coverage = np.clip((1.0 - r) * b + 0.5, 0.0, 1.0)
        value = coverage * stain.astype(np.float32)[:, None, None]
        if cell.membrane:
            rim = np.clip((r - 0.78) / 0.1, 0.0, 1.0) * coverage
            value += cell.membrane * rim
        if cell.nucleolus and has_nucleolus.any():
            nx = (0.35 * (u[7] - 0.5) * major).astype(np.float32)[:, None, None]
            ny = (0.35 * (u[8] - 0.5) * minor).astype(np.float32)[:, None, None]
            nr = np.float32(0.55 * px)
            dn = np.sqrt((dx - nx) ** 2 + (dy - ny) ** 2)
            dot = np.clip(nr + 0.5 - dn, 0.0, 1.0) * has_nucleolus[:, None, None]
            value += 0.8 * dot * coverage

        ix = jx[:, None, None] + offs.astype(np.int64)[None, None, :]
        iy = jy[:, None, None] + offs.astype(np.int64)[None, :, None]
        inside = (ix >= 0) & (ix < self.width) & (iy >= 0) & (iy < self.height) & (value > 0)
        flat = (iy * self.width + ix)[inside]
        v = value[inside].astype(np.float64)
        size = self.width * self.height
        self.base += np.bincount(flat, weights=v, minlength=size)
        if cell.fine_chromatin:
            self.fine += np.bincount(flat, weights=v * cell.fine_chromatin, minlength=size)
        if cell.coarse_chromatin:
            self.coarse += np.bincount(flat, weights=v * cell.coarse_chromatin, minlength=size)

    def hematoxylin(self) -> np.ndarray:
        """Total nuclear stain on the canvas grid, chromatin texture applied."""
        shape = (self.height, self.width)
        xs = np.arange(self.x0, self.x0 + self.width, dtype=np.float64)
        ys = np.arange(self.y0, self.y0 + self.height, dtype=np.float64)
        out = self.base.reshape(shape).astype(np.float32)
        px = 1.0 / self.mpp
        if self.fine.any():
            grain = noise.value_noise_grid(self.seed, 201, xs, ys, 0.5 * px)
            out += self.fine.reshape(shape).astype(np.float32) * grain
        if self.coarse.any():
            # Clumps under a micron: resolved at 0.5 um/px, averaged away at 1 um/px.
            clumps = noise.fbm_grid(self.seed, 202, xs, ys, 0.7 * px, octaves=2)
            out += self.coarse.reshape(shape).astype(np.float32) * np.clip(clumps * 1.4, -1, 1)
        return np.maximum(out, 0.0)
