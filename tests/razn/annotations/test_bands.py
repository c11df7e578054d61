"""Tracing in bands gives what tracing the whole grid gives."""

from __future__ import annotations

import numpy as np
import shapely
from scipy import ndimage

from razn.annotations import rasterize, vectorize, vectorize_in_bands


def blobby_grid(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.random((300, 220)), 6)
    grid = np.digitize(field, np.quantile(field, [0.3, 0.55, 0.8])).astype(np.uint8) + 1
    grid[100:140, 50:90] = 0  # a hole of "not segmented" straddling a seam
    return grid


def test_bands_rasterise_back_to_the_grid_like_the_whole():
    grid = blobby_grid()
    d = 8
    whole = vectorize(grid, d, classes=[1, 2, 3, 4])
    banded = vectorize_in_bands(
        lambda r0, r1: grid[r0:r1], grid.shape, d, [1, 2, 3, 4], band_rows=64
    )
    for value in (1, 2, 3, 4):
        assert banded[value].is_valid
        shapes = [(value, banded[value])]
        back = rasterize(shapes, grid.shape, d)
        np.testing.assert_array_equal(back == value, grid == value)
        # Regions cut by the seams are joined again: as many parts as whole.
        assert len(shapely.get_parts(banded[value])) == len(shapely.get_parts(whole[value]))
