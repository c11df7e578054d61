"""Fields of view and their labels, sampled from slides for training.

A training sample is one field of view read at every zoom level with its
labels (`razn.fields`, shared with evaluation). Centres are drawn from
labelled tissue (the tissue mask skips glass), uniformly or class-balanced
(a class first, then a pixel of it). Augmentation (flips, 90-degree turns, colour) is drawn once per field
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
from razn.fields import (  # noqa: F401 (LabelledSlide, open_labelled: part of razn.training)
    ANNOTATION_DOWNSAMPLE,
    LabelledSlide,
    labels_at,
    open_labelled,
    read_field,
)
from razn.models.config import ModelConfig
from razn.slide import Slide

#: Candidate centres kept per slide; larger grids are strided down to this.
MAX_CANDIDATES = 2_000_000


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
        h, w = labelled.slide.shape
        x = float(np.clip(round(cx - size / 2), 0, max(w - size, 0)))
        y = float(np.clip(round(cy - size / 2), 0, max(h - size, 0)))
        return read_field(labelled, (x, y), size, self.config)


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
