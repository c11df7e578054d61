"""Rendering level-0 pixels of a synthetic H&E slide from its `Layout`.

`render_region` draws any box of level-0 pixels: glass, stroma with wavy
collagen fibres, fat (adipocyte membranes around empty cells), ducts and
acini (myoepithelial rim, luminal or proliferating epithelium, lumen),
invasive nests in paler desmoplastic stroma (filling the lesion outline,
or patchy and spilling past it: `Layout.reaction_grid`), and the nuclei of
each cell type (`nuclei`). Everything that crosses a box border is a function of
absolute position (`noise`), and the box is drawn with a margin wide enough
for the largest nucleus and the optical blur, so adjacent boxes rendered
separately join without a seam. Only the sensor noise is drawn per box,
from a generator keyed by the slide seed and the box origin.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from razn.classes import INVASIVE, NORMAL
from razn.synth import noise, nuclei
from razn.synth.layout import (
    BENIGN_DUCT,
    IN_SITU_DUCT,
    INVASIVE_NEST,
    NORMAL_DUCT,
    Layout,
)
from razn.synth.stain import stains_to_rgb

# Epithelium proper starts this far in from a duct's outline (normalised
# radius); the outer ring holds the myoepithelial layer.
_RIM = 0.86
_EPITHELIUM = {
    NORMAL_DUCT: nuclei.LUMINAL,
    BENIGN_DUCT: nuclei.BENIGN_EPITHELIUM,
    IN_SITU_DUCT: nuclei.IN_SITU_EPITHELIUM,
    INVASIVE_NEST: nuclei.INVASIVE_EPITHELIUM,
}
_STREAM_FIBRE_A, _STREAM_FIBRE_B, _STREAM_FIBRE_MIX, _STREAM_FIBRE_ANGLE = 301, 302, 303, 304
_STREAM_ADIPOCYTE = 305


def margin_px(mpp: float) -> int:
    """Margin drawn around a box: largest nucleus reach plus blur support."""
    return int(np.ceil(10.0 / mpp)) + 4


def render_region(
    layout: Layout, x0: int, y0: int, width: int, height: int, *, sensor_noise: bool = True
) -> np.ndarray:
    """RGB uint8 array (height, width, 3) of the level-0 box at (x0, y0).

    Deterministic in (layout, box): the same box always renders the same
    bytes. Without `sensor_noise`, any box is exactly the matching crop of
    any larger box (tiles join without a seam).
    """
    spec = layout.spec
    px = 1.0 / spec.mpp
    m = margin_px(spec.mpp)
    gx0, gy0, gw, gh = x0 - m, y0 - m, width + 2 * m, height + 2 * m
    xs = np.arange(gx0, gx0 + gw, dtype=np.float64)
    ys = np.arange(gy0, gy0 + gh, dtype=np.float64)
    rng = np.random.default_rng([spec.seed, 0xB10C, x0, y0]) if sensor_noise else None

    tissue = _on_coarse_lattice(layout.tissue_grid, xs, ys, px) > 0
    if not tissue.any():
        nothing = np.zeros((height, width), np.float32)
        return stains_to_rgb(nothing, nothing, rng)

    lesion = _on_coarse_lattice(layout.lesion_class_grid, xs, ys, px)
    kind, rho, lumen, centre = _structure_maps(layout, xs, ys)
    in_structure = (kind >= 0) & tissue
    in_lumen = in_structure & (rho < lumen)
    stroma = tissue & ~in_structure
    if spec.invasive == "scattered":
        # Scattered nests infiltrate stroma and fat without a stromal reaction.
        fatty = (lesion == NORMAL) | (lesion == INVASIVE)
        desmoplastic = np.zeros_like(stroma)
    elif spec.invasive == "spill":
        # The reaction is patchy and reaches past the outline; where it is
        # absent, the lesion's stroma and fat look like normal tissue's.
        reactive = _on_coarse_lattice(layout.reaction_grid, xs, ys, px)
        desmoplastic = stroma & reactive
        fatty = ((lesion == NORMAL) | (lesion == INVASIVE)) & ~reactive
    else:
        fatty = lesion == NORMAL
        desmoplastic = stroma & (lesion == INVASIVE)
    fat = stroma & fatty & (_on_coarse_lattice(layout.fat_grid, xs, ys, px) > 0)
    stroma &= ~fat

    eosin = np.zeros((gh, gw), np.float32)
    hema = np.zeros((gh, gw), np.float32)
    fibres, fibre_angle = _collagen(spec.seed, xs, ys, px)
    eosin[stroma] = (0.4 + 0.12 * fibres)[stroma]
    eosin[desmoplastic] = (0.27 + 0.08 * fibres)[desmoplastic]
    hema[desmoplastic] += 0.05
    if fat.any():
        membrane = _adipocyte_membranes(spec.seed, gx0, gy0, gw, gh, px)
        eosin[fat] = np.where(membrane, 0.45, 0.015)[fat]
    epithelium = in_structure & ~in_lumen
    # Cytoplasm is amphophilic: some eosin, a little hematoxylin.
    eosin[epithelium] = 0.24
    hema[epithelium] += 0.07
    eosin[in_lumen] = 0.03

    canvas = nuclei.NucleusCanvas(gx0, gy0, gw, gh, spec.mpp, spec.seed)
    canvas.draw(nuclei.FIBROBLAST, stroma & ~desmoplastic, fibre_angle)
    canvas.draw(nuclei.DESMOPLASTIC_FIBROBLAST, desmoplastic, fibre_angle)
    canvas.draw(nuclei.LYMPHOCYTE, stroma | desmoplastic)
    if in_structure.any():
        tangent = centre + np.pi / 2
        walled = in_structure & (kind != INVASIVE_NEST) & (rho >= _RIM)
        canvas.draw(nuclei.MYOEPITHELIAL, walled, tangent)
        inner = epithelium & ((rho < _RIM) | (kind == INVASIVE_NEST))
        # Hyperplastic cells stream: one direction per duct, from its outline.
        streaming = _duct_stream_angle(layout, xs, ys)
        for k, cell in _EPITHELIUM.items():
            canvas.draw(cell, inner & (kind == k), streaming)
    hema += canvas.hematoxylin()

    sigma = 0.15 * px  # optical blur of a 20x/40x scanner objective
    hema = gaussian_filter(hema, sigma)
    eosin = gaussian_filter(eosin, sigma)
    core = (slice(m, m + height), slice(m, m + width))
    return stains_to_rgb(hema[core], eosin[core], rng)


def _on_coarse_lattice(field, xs, ys, px):
    """Evaluate a smooth whole-slide field on the global 1-um lattice and
    spread it to the pixels (nearest): region outlines need no finer
    precision, and a global lattice keeps neighbouring boxes consistent."""
    step = max(1, int(round(px)))
    qx, qy = np.floor(xs / step).astype(np.int64), np.floor(ys / step).astype(np.int64)
    ux, ix = np.unique(qx, return_inverse=True)
    uy, iy = np.unique(qy, return_inverse=True)
    coarse = field(ux * float(step), uy * float(step))
    return coarse[iy][:, ix]


def _structure_maps(layout: Layout, xs: np.ndarray, ys: np.ndarray):
    """Per-pixel kind (-1 none), normalised radius, lumen radius and the
    angle from the structure's centre, for the structures meeting the grid."""
    shape = (len(ys), len(xs))
    kind = np.full(shape, -1, np.int8)
    rho = np.full(shape, np.inf, np.float32)
    lumen = np.zeros(shape, np.float32)
    centre = np.zeros(shape, np.float32)
    s = layout.structures
    for i in layout.structures_in_box(xs[0], ys[0], xs[-1], ys[-1]):
        e = layout.structure_extent[i]
        jx = np.nonzero((xs > s.cx[i] - e) & (xs < s.cx[i] + e))[0]
        jy = np.nonzero((ys > s.cy[i] - e) & (ys < s.cy[i] + e))[0]
        if not len(jx) or not len(jy):
            continue
        sx, sy = slice(jx[0], jx[-1] + 1), slice(jy[0], jy[-1] + 1)
        x, y = xs[sx][None, :], ys[sy][:, None]
        r = s.rho(i, x, y)
        win = (r < 1.0) & (r < rho[sy, sx])
        if not win.any():
            continue
        rho[sy, sx][win] = r[win]
        kind[sy, sx][win] = s.kind[i]
        lumen[sy, sx][win] = s.lumen[i]
        ang = np.arctan2(y - s.cy[i], x - s.cx[i]).astype(np.float32)
        centre[sy, sx][win] = ang[win]
    return kind, rho, lumen, centre


def _duct_stream_angle(layout: Layout, xs, ys) -> np.ndarray:
    """A slowly turning direction field for streaming hyperplastic cells."""
    cell = layout.spec.um(60.0)
    return np.pi * noise.value_noise_grid(layout.spec.seed, 306, xs, ys, cell)


def _collagen(seed, xs, ys, px):
    """Wavy collagen texture in [-1, 1] and its local fibre direction.

    Two families of stretched value noise (fibres along x and along y)
    blended by a slow field; the direction map follows the dominant family,
    so fibroblasts lie along the fibres.
    """
    along_x = noise.value_noise_grid_aniso(seed, _STREAM_FIBRE_A, xs, ys, 25 * px, 3.5 * px)
    along_y = noise.value_noise_grid_aniso(seed, _STREAM_FIBRE_B, xs, ys, 3.5 * px, 25 * px)
    mix = 0.5 + 0.5 * noise.value_noise_grid(seed, _STREAM_FIBRE_MIX, xs, ys, 150 * px)
    mix = np.clip((mix - 0.5) * 3 + 0.5, 0, 1)
    texture = mix * along_x + (1 - mix) * along_y
    angle = np.where(mix > 0.5, 0.0, np.pi / 2).astype(np.float32)
    angle += 0.4 * noise.value_noise_grid(seed, _STREAM_FIBRE_ANGLE, xs, ys, 60 * px)
    return texture, angle


def _adipocyte_membranes(seed, gx0, gy0, gw, gh, px) -> np.ndarray:
    """Thin membranes between adipocytes: Voronoi edges of a jittered grid."""
    spacing = 60.0 * px
    box = (gx0 - spacing, gy0 - spacing, gx0 + gw + spacing, gy0 + gh + spacing)
    cx, cy, _, _ = noise.jittered_points(seed, _STREAM_ADIPOCYTE, box, spacing)
    d1 = np.full((gh, gw), np.inf, np.float32)
    d2 = np.full((gh, gw), np.inf, np.float32)
    # The two nearest points of a jittered grid lie within about two cells,
    # so each point only updates a window around itself.
    reach = 2.2 * spacing
    for x, y in zip(cx, cy, strict=True):
        j0, j1 = max(0, int(x - reach) - gx0), min(gw, int(x + reach) - gx0 + 1)
        i0, i1 = max(0, int(y - reach) - gy0), min(gh, int(y + reach) - gy0 + 1)
        if j0 >= j1 or i0 >= i1:
            continue
        wx = np.arange(gx0 + j0, gx0 + j1, dtype=np.float32)[None, :] - np.float32(x)
        wy = np.arange(gy0 + i0, gy0 + i1, dtype=np.float32)[:, None] - np.float32(y)
        d = np.sqrt(wx * wx + wy * wy)
        a, b = d1[i0:i1, j0:j1], d2[i0:i1, j0:j1]
        b[...] = np.minimum(b, np.maximum(a, d))
        a[...] = np.minimum(a, d)
    return (d2 - d1) < 1.6 * px
