"""Fields of view and their labels, sampled from slides for training.

A training sample is one field of view of the model's coarse patch size at
its base resolution, read from the slide at every zoom level k (base mpp /
r**k): the fine views are read from the slide's own pixels, never upsampled
from the coarse one, because the detail a zoom is for is exactly what
upsampling cannot invent. Labels come from a label grid (a `razn synth`
labels TIFF) or from polygons (QuPath GeoJSON, ImageScope or ASAP XML)
painted onto one; each level gets the grid resampled to its pixels by
nearest neighbour. Centres are drawn from labelled tissue (the tissue mask
skips glass), uniformly or class-balanced (a class first, then a pixel of
it). Augmentation (flips, 90-degree turns, colour) is drawn once per field
and applied alike to every level, so the levels keep showing the same
tissue. A `FieldBatch` can be saved and reloaded (safetensors, no pickle)
so several models can be trained on one identical set of fields.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from razn.atomic import atomic_path
from razn.errors import RaznError
from razn.models.config import ModelConfig
from razn.slide import Slide, open_slide

#: Label-grid downsample used to paint polygon annotations (4 um at 0.25 mpp).
ANNOTATION_DOWNSAMPLE = 16
#: Candidate centres kept per slide; larger grids are strided down to this.
MAX_CANDIDATES = 2_000_000
_LABEL_SUFFIXES = (".tif", ".tiff")


@dataclass
class LabelledSlide:
    """An open slide and its label grid (values 0 = unlabelled, 1.. classes).

    `centres`, a grid like `labels`, says where fields may be centred (and on
    which class, for balanced draws) when that is not everywhere `labels`
    is: fine-tuning centres fields on the corrections, or on the model's
    predictions, while reading the labels of both.
    """

    slide: Slide
    labels: np.ndarray
    downsample: int
    centres: np.ndarray | None = None


def open_labelled(
    slide_path: str | os.PathLike,
    labels_path: str | os.PathLike,
    *,
    mpp: float | None = None,
    unannotated: int = 0,
) -> LabelledSlide:
    """Open a slide and its labels (label-grid TIFF, GeoJSON, ImageScope or ASAP XML).

    Parameters
    ----------
    unannotated : int
        Class value for pixels no polygon covers when labels are polygons:
        0 ignores them in the loss; 1 (normal) is BACH's convention.
    """
    slide = open_slide(slide_path, mpp=mpp)
    if slide.mpp is None:
        raise RaznError("training needs the slide's pixel size; pass its mpp", slide_path)
    labels_path = Path(labels_path)
    if labels_path.suffix.lower() in _LABEL_SUFFIXES:
        from razn.label_tiff import read_label_grid

        grid = read_label_grid(labels_path)
        if tuple(grid.level0_shape) != tuple(slide.dimensions):
            raise RaznError(
                f"label grid is for a {grid.level0_shape} slide, this slide is {slide.dimensions}",
                labels_path,
            )
        return LabelledSlide(slide, np.asarray(grid.labels), int(grid.downsample))
    from razn.annotations import rasterize, read_annotations

    shapes = read_annotations(labels_path).shapes
    d = ANNOTATION_DOWNSAMPLE
    h, w = slide.dimensions
    grid = rasterize(shapes, (-(-h // d), -(-w // d)), d, fill=unannotated)
    return LabelledSlide(slide, grid, d)


@dataclass
class FieldBatch:
    """Fields of view at every zoom level and their labels.

    images[k] : (N, S_k, S_k, 3) uint8 with S_k = P * r**k.
    labels[k] : (N, S_k, S_k) uint8 class values (0 = ignore).
    """

    images: list[np.ndarray]
    labels: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.images[0])

    def take(self, index) -> FieldBatch:
        return FieldBatch([a[index] for a in self.images], [a[index] for a in self.labels])

    @classmethod
    def concatenate(cls, batches: list[FieldBatch]) -> FieldBatch:
        levels = len(batches[0].images)
        return cls(
            [np.concatenate([b.images[k] for b in batches]) for k in range(levels)],
            [np.concatenate([b.labels[k] for b in batches]) for k in range(levels)],
        )

    def class_counts(self, num_classes: int) -> np.ndarray:
        """Labelled pixels per class (values 1..num_classes) at the finest level."""
        return np.bincount(self.labels[-1].ravel(), minlength=num_classes + 1)[1:]

    def save(self, path: str | os.PathLike, metadata: dict | None = None) -> Path:
        from safetensors.numpy import save_file

        tensors = {f"images.{k}": a for k, a in enumerate(self.images)}
        tensors |= {f"labels.{k}": a for k, a in enumerate(self.labels)}
        tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"razn.fields": json.dumps(metadata or {})})
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FieldBatch:
        from safetensors.numpy import load_file

        tensors = load_file(str(path))
        levels = sum(1 for k in tensors if k.startswith("images."))
        return cls(
            [tensors[f"images.{k}"] for k in range(levels)],
            [tensors[f"labels.{k}"] for k in range(levels)],
        )


class FieldSampler:
    """Draws fields of view for a model's resolution, patch size and zoom levels.

    Parameters
    ----------
    slides : the labelled slides to draw from.
    config : the model configuration (patch size, base mpp, zoom rate, levels).
    balanced : draw a class uniformly first, then a field centred on it; else
        fields are drawn uniformly over labelled tissue.
    """

    def __init__(self, slides: list[LabelledSlide], config: ModelConfig, balanced: bool = False):
        if not slides:
            raise RaznError("training needs at least one slide")
        self.slides = slides
        self.config = config
        self.balanced = balanced
        self._candidates = [_candidates(s, config.num_classes) for s in slides]
        self.classes = sorted({c for cands in self._candidates for c in cands})
        # Every candidate of a slide in one array, for uniform (unbalanced) draws;
        # a slide without labelled tissue keeps an empty one and is never drawn.
        self._pooled = [
            np.concatenate(list(c.values())) if c else np.empty((0, 2), np.int64)
            for c in self._candidates
        ]
        if not self.classes:
            raise RaznError("no labelled tissue in the training slides")

    def field_size(self, slide: Slide) -> float:
        """Edge of a field of view in level-0 pixels."""
        return self.config.patch_size * self.config.base_mpp / slide.mpp

    def sample(self, count: int, rng: np.random.Generator) -> FieldBatch:
        """`count` fields of view with labels at zoom levels 0..m (no augmentation)."""
        fields = [self._one(rng) for _ in range(count)]
        levels = len(fields[0][0])
        return FieldBatch(
            [np.stack([f[0][k] for f in fields]) for k in range(levels)],
            [np.stack([f[1][k] for f in fields]) for k in range(levels)],
        )

    def _one(self, rng):
        if self.balanced:
            value = self.classes[rng.integers(len(self.classes))]
            owners = [i for i, c in enumerate(self._candidates) if value in c]
            sizes = np.array([len(self._candidates[i][value]) for i in owners], float)
            index = owners[rng.choice(len(owners), p=sizes / sizes.sum())]
            pool = self._candidates[index][value]
        else:
            sizes = np.array([sum(len(v) for v in c.values()) for c in self._candidates], float)
            index = rng.choice(len(self.slides), p=sizes / sizes.sum())
            pool = self._pooled[index]
        labelled = self.slides[index]
        row, col = pool[rng.integers(len(pool))]
        size = self.field_size(labelled.slide)
        d = labelled.downsample
        # Centre on the chosen label pixel, jittered so a class is not always
        # in the middle of its fields.
        cx = (col + rng.random()) * d + rng.uniform(-size / 4, size / 4)
        cy = (row + rng.random()) * d + rng.uniform(-size / 4, size / 4)
        h, w = labelled.slide.dimensions
        x = float(np.clip(round(cx - size / 2), 0, max(w - size, 0)))
        y = float(np.clip(round(cy - size / 2), 0, max(h - size, 0)))
        return read_field(labelled, (x, y), size, self.config)


def read_field(labelled: LabelledSlide, location, size: float, config: ModelConfig):
    """Images and labels of one field of view at every zoom level 0..m."""
    images, labels = [], []
    for k in range(config.zoom_levels + 1):
        side = config.patch_size * config.zoom_rate**k
        image = labelled.slide.read_region(location, (size, size), mpp=config.level_mpp(k))
        if image.shape[:2] != (side, side):  # rounding at odd slide mpps
            from PIL import Image

            image = np.asarray(Image.fromarray(image).resize((side, side), Image.BILINEAR))
        images.append(image)
        labels.append(labels_at(labelled, location, size, side))
    return images, labels


def labels_at(labelled: LabelledSlide, location, size: float, side: int) -> np.ndarray:
    """The label grid under a level-0 box, resampled to side x side (nearest)."""
    x, y = location
    centres = (np.arange(side) + 0.5) * (size / side)
    rows = np.floor((y + centres) / labelled.downsample).astype(np.int64)
    cols = np.floor((x + centres) / labelled.downsample).astype(np.int64)
    gh, gw = labelled.labels.shape
    out = np.zeros((side, side), np.uint8)
    r_ok, c_ok = (rows >= 0) & (rows < gh), (cols >= 0) & (cols < gw)
    out[np.ix_(r_ok, c_ok)] = labelled.labels[np.ix_(rows[r_ok], cols[c_ok])]
    return out


def augment(batch: FieldBatch, rng: np.random.Generator, colour: bool = True) -> FieldBatch:
    """Flips, 90-degree turns and colour jitter, drawn per field, alike at every level."""
    images = [a.copy() for a in batch.images]
    labels = [a.copy() for a in batch.labels]
    for i in range(len(batch)):
        turns, flip = int(rng.integers(4)), bool(rng.integers(2))
        # Stain intensity and hue vary between labs and scanners: per-channel
        # gain, a brightness shift and a saturation change, the same at
        # every level because they are the same tissue on the same glass.
        gain = rng.uniform(0.9, 1.1, 3)
        shift = rng.uniform(-12, 12)
        saturation = rng.uniform(0.8, 1.2)
        for k in range(len(images)):
            image, label = np.rot90(images[k][i], turns), np.rot90(labels[k][i], turns)
            if flip:
                image, label = image[:, ::-1], label[:, ::-1]
            if colour:
                image = image.astype(np.float32)
                grey = image.mean(axis=-1, keepdims=True)
                image = (grey + saturation * (image - grey)) * gain + shift
                image = np.clip(image, 0, 255).astype(np.uint8)
            images[k][i], labels[k][i] = image, label
    return FieldBatch(images, labels)


def _candidates(labelled: LabelledSlide, num_classes: int) -> dict[int, np.ndarray]:
    """Label-grid pixels (row, col) of each class that lie on tissue."""
    grid = labelled.labels if labelled.centres is None else labelled.centres
    stride = max(1, int(np.ceil(np.sqrt(grid.size / MAX_CANDIDATES))))
    sub = grid[::stride, ::stride]
    rows, cols = np.mgrid[0 : grid.shape[0] : stride, 0 : grid.shape[1] : stride]
    mask = labelled.slide.tissue_mask
    dx, dy = mask.downsample_xy
    d = labelled.downsample
    mr = np.clip(((rows + 0.5) * d / dy).astype(np.int64), 0, mask.mask.shape[0] - 1)
    mc = np.clip(((cols + 0.5) * d / dx).astype(np.int64), 0, mask.mask.shape[1] - 1)
    on_tissue = mask.mask[mr, mc]
    out = {}
    for value in range(1, num_classes + 1):
        hit = (sub == value) & on_tissue
        if hit.any():
            out[value] = np.stack([rows[hit], cols[hit]], axis=1)
    return out
