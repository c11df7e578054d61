"""The invasive patterns: spill (the default), desmoplastic and scattered.

Scattered invasive carcinoma is the one class on synthetic slides that a
128 um field reads better than a 64 um patch: its nests lie about 100 um
apart in stroma that looks normal, so many zoomed patches of the lesion
show no tumour at all. "spill" keeps the crowded nests but decouples the
stromal reaction from the annotated outline: patchy inside, reaching past.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from razn.classes import INVASIVE, NORMAL
from razn.errors import RaznError
from razn.synth import generate_slide
from razn.synth.layout import INVASIVE_NEST, Layout, SlideSpec
from razn.synth.stain import GLASS_RGB
from razn.synth.tissue import _structure_maps, render_region

SIZE = 16384  # 4 mm at 0.25 um/px: a few invasive lesions
SEED = 5


@pytest.fixture(scope="module", params=["desmoplastic", "scattered", "spill"])
def layout(request):
    return Layout.build(SlideSpec(SIZE, SIZE, SEED, lesion_fraction=0.4, invasive=request.param))


def _windows_inside(layout, cls, um):
    """Top-left corners (level-0 px) of a grid of um-sized windows wholly in `cls` lesions."""
    side = layout.spec.um(um)
    corners = np.arange(0, SIZE - side, side)
    x, y = np.meshgrid(corners, corners)
    x, y = x.ravel(), y.ravel()
    inside = np.ones(x.shape, bool)
    for dx in (0, side / 2, side - 1):
        for dy in (0, side / 2, side - 1):
            inside &= layout.lesion_class_points(x + dx, y + dy) == cls
            inside &= layout.tissue_points(x + dx, y + dy) > 0
    return x[inside], y[inside], side


def _share_without_nests(layout, um) -> tuple[float, int]:
    x, y, side = _windows_inside(layout, INVASIVE, um)
    step = layout.spec.um(2.0)  # sample the structures every 2 um
    empty = 0
    for x0, y0 in zip(x, y, strict=True):
        xs = np.arange(x0, x0 + side, step)
        ys = np.arange(y0, y0 + side, step)
        kind = _structure_maps(layout, xs, ys)[0]
        empty += not (kind == INVASIVE_NEST).any()
    return empty / len(x), len(x)


def test_scattered_nests_hide_from_zoomed_patches_not_from_coarse_fields(layout):
    fine, n_fine = _share_without_nests(layout, 64.0)
    coarse, n_coarse = _share_without_nests(layout, 128.0)
    assert n_fine > 100 and n_coarse > 20
    if layout.spec.invasive == "scattered":
        assert fine > 0.35  # a zoomed patch often sees only stroma or fat
        assert coarse < 0.15  # the field it was cut from nearly always holds a nest
    else:
        assert fine < 0.05  # crowded nests: every patch shows tumour


def _stroma_colour(layout, cls) -> np.ndarray:
    """Mean RGB of stroma (no structure, fat or glass) in 64 um boxes inside `cls` regions."""
    x, y, side = _windows_inside(layout, cls, 64.0)
    side = int(side)
    colours = []
    for x0, y0 in zip(x.astype(int)[::3], y.astype(int)[::3], strict=True):
        rgb = render_region(layout, x0, y0, side, side, sensor_noise=False).astype(np.float32)
        kind = _structure_maps(layout, np.arange(x0, x0 + side), np.arange(y0, y0 + side))[0]
        # Fat and glass are near white; structures keep a 3 um rim for the blur.
        stroma = (np.abs(rgb - GLASS_RGB).max(axis=2) > 40) & ~ndimage.binary_dilation(
            kind >= 0, iterations=int(layout.spec.um(3.0))
        )
        if stroma.mean() > 0.3:
            colours.append(rgb[stroma].mean(axis=0))
        if len(colours) == 12:
            break
    assert len(colours) >= 6, "too few stroma boxes to compare"
    return np.mean(colours, axis=0)


def test_only_desmoplastic_stroma_gives_invasion_away(layout):
    difference = np.abs(_stroma_colour(layout, INVASIVE) - _stroma_colour(layout, NORMAL)).max()
    if layout.spec.invasive == "scattered":
        assert difference < 3  # measured 0.3
    elif layout.spec.invasive == "spill":
        print(f"spill: stroma colour difference {difference:.1f}")
        assert 1 < difference < 8  # a patchy reaction: part of the lesion's stroma is normal
    else:
        assert difference > 8  # pale reactive stroma (measured 11)


def test_the_spill_reaction_is_patchy_and_crosses_the_outline(layout):
    """Under "spill" the reactive stroma no longer traces the invasive label."""
    if layout.spec.invasive != "spill":
        pytest.skip("only the spill pattern decouples stroma from the outline")
    xs = np.arange(0, SIZE, 8.0)
    tissue = layout.tissue_grid(xs, xs) > 0
    invasive = (layout.lesion_class_grid(xs, xs) == INVASIVE) & tissue
    reaction = layout.reaction_grid(xs, xs) & tissue
    inside = (reaction & invasive).sum() / invasive.sum()
    outside = (reaction & ~invasive).sum() / reaction.sum()
    assert 0.35 < inside < 0.75  # measured 0.54: about half the lesion looks reactive
    assert outside > 0.3  # measured 0.46: the reaction reaches into tissue labelled normal
    # And the pixels follow: stroma labelled normal near the lesion renders
    # otherwise than under the default pattern (same structures, same seed).
    ys, xs_ = np.nonzero(reaction & ~invasive)
    y0, x0 = int(ys[len(ys) // 2] * 8), int(xs_[len(xs_) // 2] * 8)
    plain = copy.copy(layout)
    plain.spec = replace(layout.spec, invasive="desmoplastic")
    spilled = render_region(layout, x0, y0, 64, 64, sensor_noise=False)
    assert not np.array_equal(spilled, render_region(plain, x0, y0, 64, 64, sensor_noise=False))


def test_an_unknown_pattern_is_refused(tmp_path):
    with pytest.raises(
        RaznError, match="invasive pattern must be one of desmoplastic, scattered, spill"
    ):
        generate_slide(tmp_path / "s.tif", 512, 512, seed=3, invasive="lobular")
    assert list(tmp_path.iterdir()) == []
