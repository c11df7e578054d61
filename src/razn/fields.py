"""Labelled slides and the fields of view read from them, for training and evaluation.

A field of view is the model's coarse patch size at its base resolution,
read from the slide at every zoom level k (base mpp / r**k): the fine views
are read from the slide's own pixels, never upsampled from the coarse one,
because the detail a zoom is for is exactly what upsampling cannot invent.
Labels come from a label grid (a `razn synth` labels TIFF) or from polygons
(QuPath GeoJSON, ImageScope or ASAP XML) painted onto one; each level gets
the grid resampled to its pixels by nearest neighbour.

This module sits below `razn.training` (which draws fields) and
`razn.evaluation` (which scores models on a grid of them), so neither
reaches into the other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from razn.errors import RaznError
from razn.models.config import ModelConfig
from razn.slide import Slide, open_slide

__all__ = ["LabelledSlide", "labels_at", "open_labelled", "read_field"]

#: Label-grid downsample used to paint polygon annotations (4 um at 0.25 mpp).
ANNOTATION_DOWNSAMPLE = 16
_LABEL_SUFFIXES = (".tif", ".tiff", ".zarr")


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
        from razn.label_grid import read_label_grid

        grid = read_label_grid(labels_path)
        if tuple(grid.level0_shape) != tuple(slide.shape):
            raise RaznError(
                f"label grid is for a {grid.level0_shape} slide, this slide is {slide.shape}",
                labels_path,
            )
        return LabelledSlide(slide, np.asarray(grid.labels), int(grid.downsample))
    from razn.annotations import rasterize, read_annotations

    shapes = read_annotations(labels_path).shapes
    d = ANNOTATION_DOWNSAMPLE
    h, w = slide.shape
    grid = rasterize(shapes, (-(-h // d), -(-w // d)), d, fill=unannotated)
    return LabelledSlide(slide, grid, d)


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
