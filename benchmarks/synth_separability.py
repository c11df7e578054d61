"""How much of the invasive label a patch's colour alone gives away, per invasive pattern.

A methods review found that nine colour statistics of 32 um patches
separate normal from invasive tissue on the desmoplastic synthetic slides with
99% accuracy (linear discriminant): the desmoplastic stroma is drawn
exactly inside the invasive outline. This script repeats that check for
each invasive pattern (`razn synth --invasive ...`): it renders 32 um
patches lying wholly inside normal or wholly inside invasive tissue of a
4 mm slide, takes the mean, standard deviation and median of R, G and B,
fits Fisher's linear discriminant on half of the patches and reports the
accuracy on the other half (balanced classes, several slide seeds).

Usage: python benchmarks/synth_separability.py [--seeds 5 6] [--patches 300]
"""

from __future__ import annotations

import argparse

import numpy as np

from razn.classes import INVASIVE, NORMAL
from razn.synth.layout import INVASIVE_PATTERNS, Layout, SlideSpec
from razn.synth.tissue import render_region

SIZE = 16384  # 4 mm at 0.25 um/px
PATCH_UM = 32.0


def patches_inside(layout: Layout, cls: int, count: int, rng) -> list[tuple[int, int]]:
    """Corners of up to `count` random patches lying wholly in tissue of class `cls`."""
    side = layout.spec.um(PATCH_UM)
    corners = []
    for _ in range(200):
        x = rng.uniform(0, SIZE - side, 4000)
        y = rng.uniform(0, SIZE - side, 4000)
        inside = np.ones(x.shape, bool)
        for dx in (0, side / 2, side - 1):
            for dy in (0, side / 2, side - 1):
                inside &= layout.lesion_class_points(x + dx, y + dy) == cls
                inside &= layout.tissue_points(x + dx, y + dy) > 0
        corners += list(zip(x[inside].astype(int), y[inside].astype(int), strict=True))
        if len(corners) >= count:
            return corners[:count]
    return corners


def colour_statistics(layout: Layout, corners) -> np.ndarray:
    side = int(layout.spec.um(PATCH_UM))
    rows = []
    for x0, y0 in corners:
        rgb = render_region(layout, x0, y0, side, side).reshape(-1, 3).astype(np.float32)
        rows.append(np.concatenate([rgb.mean(0), rgb.std(0), np.median(rgb, 0)]))
    return np.array(rows)


def lda_accuracy(a: np.ndarray, b: np.ndarray, rng) -> float:
    """Held-out accuracy of Fisher's discriminant fitted on a random half of each class."""
    n = min(len(a), len(b))
    a, b = a[rng.permutation(len(a))[:n]], b[rng.permutation(len(b))[:n]]
    half = n // 2
    ta, tb, va, vb = a[:half], b[:half], a[half:], b[half:]
    mean_a, mean_b = ta.mean(0), tb.mean(0)
    scatter = np.cov(ta, rowvar=False) + np.cov(tb, rowvar=False)
    w = np.linalg.solve(scatter + 1e-6 * np.eye(len(scatter)), mean_a - mean_b)
    cut = w @ (mean_a + mean_b) / 2
    correct = (va @ w > cut).sum() + (vb @ w <= cut).sum()
    return correct / (len(va) + len(vb))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[5, 6])
    parser.add_argument("--patches", type=int, default=300, help="per class and slide")
    args = parser.parse_args()
    print("| invasive pattern | slides | patches per class | LDA accuracy, normal vs invasive |")
    print("|---|---|---|---|")
    for pattern in INVASIVE_PATTERNS:
        rng = np.random.default_rng(0)
        normal, invasive = [], []
        for seed in args.seeds:
            layout = Layout.build(SlideSpec(SIZE, SIZE, seed, lesion_fraction=0.4,
                                            invasive=pattern))  # fmt: skip
            normal.append(colour_statistics(layout, patches_inside(layout, NORMAL, args.patches,
                                                                   rng)))  # fmt: skip
            invasive.append(colour_statistics(layout, patches_inside(layout, INVASIVE,
                                                                     args.patches, rng)))  # fmt: skip
        a, b = np.concatenate(normal), np.concatenate(invasive)
        print(f"| {pattern} | {len(args.seeds)} | {min(len(a), len(b))} | "
              f"{lda_accuracy(a, b, rng):.3f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
