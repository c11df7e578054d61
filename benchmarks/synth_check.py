"""Does zooming pay on the synthetic slides? Measure it.

Trains two small fully convolutional nets for the same number of steps on
CPU, one on coarse patches (1 um/px) and one on fine patches (0.5 um/px) of
the SAME field of view (128 um), on synthetic training slides, and reports
per-class IoU on held-out seeds. The generator is meant to make benign and
in situ carcinoma differ only in nuclear detail, so the fine net should win
on those two classes, while normal vs invasive is separable at both scales.
Neither should be near perfect: region-level truth includes stroma between
ducts, as BACH's does.

Also prints the coarse-scale colour statistics per class (mean RGB and
hematoxylin optical density at 1 um/px), which should be close for benign
and in situ, and writes sample crops of each class at both scales to
docs/images/synth_*.png.

Usage: python benchmarks/synth_check.py [--steps 500] [--cache DIR] [--crops DIR]
    [--json FILE]
Took 24 minutes on a 2-core VM shared with other jobs (load 6-8): 5 to
generate the seven slides (cached in --cache for later runs), 11 and 8 to
train. Expect about half on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
from torch import nn

from razn.classes import DEFAULT_CLASSES
from razn.label_tiff import read_label_grid
from razn.synth import generate_slide

TRAIN_SEEDS = (101, 102, 103, 104, 105)
TEST_SEEDS = (201, 202)
SIZE = 6144  # level-0 pixels at 0.25 um/px: 1.5 mm square
FOV_UM = 128
LABEL_DS = 16  # label grid at 4 um/px
# name -> (pyramid level, um/px, stem stride)
SCALES = {"coarse": (2, 1.0, 1), "fine": (1, 0.5, 2)}
NAMES = [c.name for c in DEFAULT_CLASSES]


def make_slides(cache: Path) -> dict[int, tuple[dict, np.ndarray]]:
    cache.mkdir(parents=True, exist_ok=True)
    slides = {}
    for seed in TRAIN_SEEDS + TEST_SEEDS:
        path = cache / f"synth-{seed}.tif"
        if not path.exists():
            t = time.time()
            # desmoplastic: the pattern its recorded figures were made on
            generate_slide(path, SIZE, SIZE, seed=seed, tissue_fraction=0.65,
                           label_downsample=LABEL_DS, workers=2,
                           invasive="desmoplastic")  # fmt: skip
            print(f"generated seed {seed} in {time.time() - t:.1f} s", flush=True)
        levels = {name: tifffile.imread(path, level=lv) for name, (lv, _, _) in SCALES.items()}
        labels = read_label_grid(path.with_name(f"synth-{seed}.labels.tif")).labels
        slides[seed] = (levels, np.asarray(labels))
    return slides


class TinyFCN(nn.Module):
    """Same trunk for both scales; only the stem stride differs, so both see
    the same field of view and do the same work after the stem."""

    def __init__(self, stem_stride: int, classes: int = 4):
        super().__init__()

        def block(cin, cout, stride=1, dilation=1):
            return [
                nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]

        self.body = nn.Sequential(
            *block(3, 24, stem_stride),
            *block(24, 32, 2),
            *block(32, 64, 2),
            *block(64, 64, 1, 2),
            *block(64, 64, 1, 4),
            nn.Conv2d(64, classes, 1),
        )

    def forward(self, x):
        return self.body(x)


def patch(levels, labels, scale, cy, cx):
    """Image patch (3, n, n) float and label patch (m, m) at label cell (cy, cx)."""
    _, um, _ = SCALES[scale]
    n = int(FOV_UM / um)
    m = FOV_UM // 4
    image = levels[scale]
    f = 4 / um  # image pixels per label cell
    y0, x0 = int(cy * f), int(cx * f)
    img = image[y0 : y0 + n, x0 : x0 + n]
    lab = labels[cy : cy + m, cx : cx + m]
    return img, lab


def batches(slides, seeds, scale, rng, size):
    m = FOV_UM // 4
    while True:
        xs, ys = [], []
        while len(xs) < size:
            seed = seeds[rng.integers(len(seeds))]
            levels, labels = slides[seed]
            want = rng.integers(1, 5)  # class-balanced centres
            cells = np.argwhere(labels[:-m, :-m] == want)
            if not len(cells):
                continue
            cy, cx = cells[rng.integers(len(cells))] - m // 2
            cy, cx = max(cy, 0), max(cx, 0)
            img, lab = patch(levels, labels, scale, cy, cx)
            if lab.shape != (m, m) or img.shape[0] != img.shape[1]:
                continue
            if rng.random() < 0.5:
                img, lab = img[:, ::-1], lab[:, ::-1]
            if rng.random() < 0.5:
                img, lab = img[::-1], lab[::-1]
            xs.append(np.ascontiguousarray(img))
            ys.append(np.ascontiguousarray(lab))
        x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 127.5 - 1
        y = torch.from_numpy(np.stack(ys).astype(np.int64) - 1)
        yield x, y


def train(slides, scale, steps, seed=0):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = TinyFCN(SCALES[scale][2])
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    loss_fn = nn.CrossEntropyLoss()
    data = batches(slides, TRAIN_SEEDS, scale, rng, 16)
    t = time.time()
    for step in range(steps):
        x, y = next(data)
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0:
            print(f"  {scale} step {step} loss {loss.item():.3f}", flush=True)
    return net, time.time() - t


@torch.no_grad()
def evaluate(net, slides, scale):
    net.eval()
    m = FOV_UM // 4
    confusion = np.zeros((4, 4), np.int64)
    for seed in TEST_SEEDS:
        levels, labels = slides[seed]
        for cy in range(0, labels.shape[0] - m + 1, m):
            xs, ys = [], []
            for cx in range(0, labels.shape[1] - m + 1, m):
                img, lab = patch(levels, labels, scale, cy, cx)
                xs.append(img)
                ys.append(lab)
            x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 127.5 - 1
            pred = net(x).argmax(1).numpy() + 1
            truth = np.stack(ys)
            confusion += np.bincount(
                (truth.ravel() - 1) * 4 + (pred.ravel() - 1), minlength=16
            ).reshape(4, 4)
    tp = np.diag(confusion)
    iou = tp / np.maximum(confusion.sum(0) + confusion.sum(1) - tp, 1)
    return iou, confusion


def coarse_stats(slides):
    """Mean RGB and hematoxylin OD per class at 1 um/px (tissue pixels)."""
    from razn.synth.stain import EOSIN, GLASS_RGB, HEMATOXYLIN

    unmix = np.linalg.pinv(np.stack([HEMATOXYLIN, EOSIN]))  # (3, 2)
    stats = {}
    for value in range(1, 5):
        rgb, hema = [], []
        for seed in TRAIN_SEEDS:
            levels, labels = slides[seed]
            image = levels["coarse"].astype(np.float32)
            lab = np.kron(labels, np.ones((4, 4), np.uint8))[: image.shape[0], : image.shape[1]]
            mask = lab == value
            od = -np.log(np.maximum(image[mask], 1) / GLASS_RGB)
            tissue = od.sum(1) > 0.15
            rgb.append(image[mask][tissue])
            hema.append((od[tissue] @ unmix)[:, 0])
        rgb, hema = np.concatenate(rgb), np.concatenate(hema)
        stats[NAMES[value - 1]] = {
            "mean_rgb": [round(float(v), 1) for v in rgb.mean(0)],
            "hematoxylin_od": round(float(hema.mean()), 3),
        }
    return stats


def save_crops(slides, out: Path):
    """One 128-um crop per class, coarse and fine side by side, as PNG."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    levels, labels = slides[TEST_SEEDS[0]]
    m = FOV_UM // 4
    rng = np.random.default_rng(5)
    for value in range(2, 5):
        inner = labels[m:-m, m:-m] == value
        # a cell whose whole field of view is of this class
        from scipy.ndimage import minimum_filter

        pure = minimum_filter(inner.astype(np.uint8), size=m) > 0
        cells = np.argwhere(pure) + m - m // 2
        # Of a few candidates, show the one with most cells (darkest), since
        # region-level truth also covers the stroma between ducts.
        picks = cells[rng.choice(len(cells), min(40, len(cells)), replace=False)]
        cy, cx = min(picks, key=lambda c: patch(levels, labels, "coarse", *c)[0].mean())
        coarse, _ = patch(levels, labels, "coarse", cy, cx)
        fine, _ = patch(levels, labels, "fine", cy, cx)
        big_coarse = np.kron(coarse, np.ones((2, 2, 1), np.uint8))
        pair = np.concatenate([big_coarse, np.full((fine.shape[0], 8, 3), 255, np.uint8), fine], 1)
        name = ("benign", "in_situ", "invasive")[value - 2]
        Image.fromarray(pair).save(out / f"synth_{name}.png", optimize=True)
    thumb = tifffile.imread(Path(CACHE_DEFAULT) / f"synth-{TEST_SEEDS[0]}.tif", level=3)
    Image.fromarray(thumb).save(out / "synth_overview.png", optimize=True)


CACHE_DEFAULT = "/tmp/razn-synth-check"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--cache", default=CACHE_DEFAULT)
    parser.add_argument("--crops", default=None, help="folder for sample crops (docs/images)")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    t0 = time.time()
    slides = make_slides(Path(args.cache))
    print(f"slides ready in {time.time() - t0:.0f} s")
    stats = coarse_stats(slides)
    print(json.dumps(stats, indent=1))
    results = {"coarse_stats": stats}
    for scale in ("coarse", "fine"):
        net, seconds = train(slides, scale, args.steps)
        iou, confusion = evaluate(net, slides, scale)
        results[scale] = {
            "iou": {n: round(float(v), 3) for n, v in zip(NAMES, iou, strict=True)},
            "miou": round(float(iou.mean()), 3),
            "train_seconds": round(seconds, 1),
            "confusion": confusion.tolist(),
        }
        print(scale, json.dumps(results[scale]["iou"]), "mIoU", results[scale]["miou"])
    if args.crops:
        save_crops(slides, Path(args.crops))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
