"""Random numbers that are functions of position, not of drawing order.

A synthetic slide is rendered tile by tile, in any order and on any worker,
yet a nucleus straddling two tiles must be drawn the same on both sides.
So every random quantity that spans tiles is a pure function of (seed,
stream, absolute level-0 position): an integer hash of lattice coordinates
(splitmix64 finaliser), value noise interpolated between hashed lattice
values, and jittered grids whose points are keyed by their cell index.
Streams keep independent quantities (tissue, fat, chromatin, ...) apart.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_PRIME_X = np.uint64(0x8CB92BA72F3D8DD7)
_PRIME_Y = np.uint64(0xD6E8FEB86659FD93)
_PRIME_S = np.uint64(0xA0761D6478BD642F)


def _splitmix(h: np.ndarray) -> np.ndarray:
    h = h + _GOLDEN
    h = (h ^ (h >> np.uint64(30))) * _MIX1
    h = (h ^ (h >> np.uint64(27))) * _MIX2
    return h ^ (h >> np.uint64(31))


def hash2d(seed: int, stream: int, ix, iy, k: int = 0) -> np.ndarray:
    """Uniform floats in [0, 1) keyed by integer lattice coordinates.

    Parameters
    ----------
    seed, stream : int
        Slide seed and the name of the quantity (any integer).
    ix, iy : array_like of int
        Lattice coordinates; broadcast against each other.
    k : int
        Index of the value at that lattice point (several per point).
    """
    # Integer arithmetic wraps modulo 2**64 on purpose; signed inputs are
    # reinterpreted, so negative coordinates hash as well as positive ones.
    x = np.asarray(ix, dtype=np.int64).astype(np.uint64)
    y = np.asarray(iy, dtype=np.int64).astype(np.uint64)
    key = np.uint64(
        (seed * 0x100000001B3 + stream * 0x1F1F1F1F + k * 0x51ED27) * int(_PRIME_S) % 2**64
    )
    h = _splitmix(x * _PRIME_X ^ _splitmix(y * _PRIME_Y ^ key))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


def _smooth(t: np.ndarray) -> np.ndarray:
    return t * t * (3.0 - 2.0 * t)


def value_noise_grid(seed: int, stream: int, xs: np.ndarray, ys: np.ndarray, cell: float):
    """Value noise in [-1, 1] on the grid `ys` x `xs` (level-0 pixel centres).

    Separable evaluation: lattice values are hashed once for the few lattice
    points the grid spans, then interpolated with a smoothstep.
    """
    return value_noise_grid_aniso(seed, stream, xs, ys, cell, cell)


def value_noise_grid_aniso(seed, stream, xs, ys, cell_x: float, cell_y: float):
    """`value_noise_grid` with different lattice spacings along x and y."""
    fx = np.asarray(xs, dtype=np.float64) / cell_x
    fy = np.asarray(ys, dtype=np.float64) / cell_y
    ix = np.floor(fx).astype(np.int64)
    iy = np.floor(fy).astype(np.int64)
    x0, y0 = ix.min(), iy.min()
    lattice = hash2d(
        seed, stream, np.arange(x0, ix.max() + 2)[None, :], np.arange(y0, iy.max() + 2)[:, None]
    ).astype(np.float32)
    lattice = lattice * 2.0 - 1.0
    tx = _smooth(fx - ix).astype(np.float32)[None, :]
    ty = _smooth(fy - iy).astype(np.float32)[:, None]
    jx, jy = ix - x0, iy - y0
    # Interpolate along x on the few lattice rows, then gather whole rows.
    rows = lattice[:, jx] * (1 - tx) + lattice[:, jx + 1] * tx
    return rows[jy] * (1 - ty) + rows[jy + 1] * ty


def value_noise_points(seed: int, stream: int, x, y, cell: float) -> np.ndarray:
    """Value noise in [-1, 1] at arbitrary points (same field as the grid form)."""
    fx = np.asarray(x, dtype=np.float64) / cell
    fy = np.asarray(y, dtype=np.float64) / cell
    ix, iy = np.floor(fx).astype(np.int64), np.floor(fy).astype(np.int64)
    tx, ty = _smooth(fx - ix), _smooth(fy - iy)
    v00 = hash2d(seed, stream, ix, iy)
    v10 = hash2d(seed, stream, ix + 1, iy)
    v01 = hash2d(seed, stream, ix, iy + 1)
    v11 = hash2d(seed, stream, ix + 1, iy + 1)
    top = v00 * (1 - tx) + v10 * tx
    bottom = v01 * (1 - tx) + v11 * tx
    return ((top * (1 - ty) + bottom * ty) * 2.0 - 1.0).astype(np.float32)


def fbm_grid(seed, stream, xs, ys, cell, octaves=4, gain=0.5):
    """Fractal sum of value noise on a grid; roughly unit-variance-free, in [-2, 2]."""
    total = np.zeros((len(ys), len(xs)), dtype=np.float32)
    amplitude = 1.0
    for octave in range(octaves):
        total += amplitude * value_noise_grid(seed, stream * 16 + octave, xs, ys, cell)
        cell, amplitude = cell / 2.0, amplitude * gain
    return total


def fbm_points(seed, stream, x, y, cell, octaves=4, gain=0.5):
    """The `fbm_grid` field at arbitrary points."""
    total = np.zeros(np.broadcast(np.asarray(x), np.asarray(y)).shape, dtype=np.float32)
    amplitude = 1.0
    for octave in range(octaves):
        total += amplitude * value_noise_points(seed, stream * 16 + octave, x, y, cell)
        cell, amplitude = cell / 2.0, amplitude * gain
    return total


def jittered_points(seed: int, stream: int, box, spacing: float):
    """Points of a global jittered grid whose cells meet `box` = (x0, y0, x1, y1).

    One point per grid cell, uniformly placed inside it and keyed by the cell
    index, so neighbouring tiles that ask for overlapping boxes get the same
    points. Returns (x, y, cell_ix, cell_iy) as flat arrays.
    """
    x0, y0, x1, y1 = box
    cx = np.arange(int(np.floor(x0 / spacing)), int(np.floor(x1 / spacing)) + 1)
    cy = np.arange(int(np.floor(y0 / spacing)), int(np.floor(y1 / spacing)) + 1)
    gx, gy = np.meshgrid(cx, cy)
    gx, gy = gx.ravel(), gy.ravel()
    x = (gx + hash2d(seed, stream, gx, gy, 0)) * spacing
    y = (gy + hash2d(seed, stream, gx, gy, 1)) * spacing
    return x, y, gx, gy
