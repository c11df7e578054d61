"""Scoring a model on a slide with known labels: Table 1's metrics and timing.

The slide is cut into a grid of fields of view (the model's coarse patch at
its base resolution) and fields that are mostly glass are skipped (the
tissue mask). Each field is predicted, its class probabilities are
averaged down to the label grid's pixels and the argmax is compared with
the truth there, unlabelled pixels (0) ignored, into one confusion matrix.
From it come the paper's Table 1 columns: IoU per class, mIoU over the
classes, weighted IoU (weights proportional to inverse class frequency in
the truth, normalised to sum to 1), and the IoU of the two groups
non-carcinoma (normal + benign) and carcinoma (in situ + invasive). The zoom
fraction is the share of fields read at the fine level (RAZN: zoomed into;
Scale 1: none; Scale 2, MS, Attention: all). Inference time is per field,
batch 1, relative to a Scale 1 net of the same width timed on the same
fields, interleaved so both see the same load: the paper's relative time.
For RAZN (m = 1) every threshold is scored from one pass: the coarse and
the fine predictions and the policy's p do not depend on it.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from razn.classes import CARCINOMA, NON_CARCINOMA
from razn.models import build_model
from razn.models.normalise import to_views

#: Fields with less tissue than this (by the tissue mask) are not scored.
MIN_TISSUE = 0.25


# -- metrics -------------------------------------------------------------------
def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) counts, rows truth, columns prediction; truth 0 (unlabelled) ignored."""
    truth, predicted = np.asarray(truth).ravel(), np.asarray(predicted).ravel()
    keep = (truth > 0) & (truth <= num_classes)
    index = (truth[keep].astype(np.int64) - 1) * num_classes + (predicted[keep] - 1)
    return np.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """IoU of each class; NaN for a class neither in the truth nor predicted."""
    tp = np.diag(confusion).astype(float)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def scores(confusion: np.ndarray, classes) -> dict:
    """Table 1's metrics from a confusion matrix over `classes` (values 1..C)."""
    iou = iou_per_class(confusion)
    frequency = confusion.sum(1).astype(float)
    present = frequency > 0
    weights = np.where(present, 1.0 / np.maximum(frequency, 1), 0.0)
    weights = weights / weights.sum() if weights.sum() else weights
    result = {
        "per_class_iou": {c.name: _num(v) for c, v in zip(classes, iou, strict=True)},
        "miou": _num(np.nanmean(iou[present])) if present.any() else None,
        "weighted_iou": _num(np.nansum(weights * np.nan_to_num(iou))),
        "pixels": int(confusion.sum()),
    }
    values = [c.value for c in classes]
    if set(NON_CARCINOMA + CARCINOMA) <= set(values):
        groups = [[values.index(v) for v in g] for g in (NON_CARCINOMA, CARCINOMA)]
        grouped = np.array([[confusion[np.ix_(a, b)].sum() for b in groups] for a in groups])
        non_carcinoma, carcinoma = iou_per_class(grouped)
        result["non_carcinoma_iou"] = _num(non_carcinoma)
        result["carcinoma_iou"] = _num(carcinoma)
    return result


def _num(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


# -- evaluating a model on a slide ---------------------------------------------
@dataclass
class Evaluation:
    """A model's scores on one or more slides at one threshold."""

    threshold: float
    confusion: np.ndarray
    classes: tuple
    fields: int = 0
    zoomed: int = 0
    relative_times: list[float] = field(default_factory=list)

    @property
    def zoom_fraction(self) -> float:
        return self.zoomed / self.fields if self.fields else 0.0

    def to_dict(self) -> dict:
        t = np.array(self.relative_times)
        return {
            "threshold": self.threshold,
            **scores(self.confusion, self.classes),
            "zoom_fraction": self.zoom_fraction,
            "fields": self.fields,
            "relative_time": float(t.mean()) if t.size else None,
            "relative_time_sd": float(t.std(ddof=1)) if t.size > 1 else None,
            "timed_fields": int(t.size),
        }

    @classmethod
    def combine(cls, parts: Sequence[Evaluation]) -> Evaluation:
        """Pool evaluations of several slides (confusions summed, times pooled)."""
        return cls(
            parts[0].threshold,
            sum(p.confusion for p in parts),
            parts[0].classes,
            sum(p.fields for p in parts),
            sum(p.zoomed for p in parts),
            [t for p in parts for t in p.relative_times],
        )


@dataclass
class EvaluationProgress:
    """Yielded by `iter_evaluate`; the last one carries the results."""

    done: int
    total: int
    results: list[Evaluation] | None = None


def field_grid(labelled, config, min_tissue: float = MIN_TISSUE) -> list[tuple[float, float]]:
    """Top-left corners (level-0 px) of a grid of fields of view over the tissue."""
    slide = labelled.slide
    size = config.patch_size * config.base_mpp / slide.mpp
    h, w = slide.shape
    corners = []
    for y in np.arange(0, h, size):
        for x in np.arange(0, w, size):
            if slide.tissue_mask.fraction_in((x, y), (size, size)) >= min_tissue:
                corners.append((float(x), float(y)))
    return corners


def scale1_reference(config) -> torch.nn.Module:
    """A Scale 1 net as wide as `config`'s: the unit of relative inference time."""
    ref = config.with_(name=f"scale1-reference-{config.width}", architecture="single-scale")
    return build_model(ref.with_(scale=0)).eval()


def iter_evaluate(
    model,
    labelled,
    *,
    thresholds: Sequence[float] = (0.5,),
    batch_size: int = 8,
    timing_fields: int = 100,
    min_tissue: float = MIN_TISSUE,
) -> Iterator[EvaluationProgress]:
    """Score `model` on a labelled slide, yielding progress per batch of fields.

    Parameters
    ----------
    model : any razn model (with `.config` and `predict`).
    labelled : razn.fields.LabelledSlide (slide + label grid).
    thresholds : zoom thresholds to score (only RAZN depends on them).
    timing_fields : fields timed at batch 1 against a Scale 1 net, spread
        evenly over the grid (so RAZN zooms into as many of them as it does
        over the slide), cycled if the slide has fewer; 0 skips timing.
    """
    from razn.fields import labels_at, read_field

    config = model.config
    model.eval()
    corners = field_grid(labelled, config, min_tissue)
    size = config.patch_size * config.base_mpp / labelled.slide.mpp
    side = max(1, round(size / labelled.downsample))
    c = config.num_classes
    results = [Evaluation(t, np.zeros((c, c), np.int64), config.classes) for t in thresholds]
    total = len(corners) + (timing_fields if corners else 0)
    timing_views = []
    # Evenly spaced, not the first ones: a slide's top rows hold mostly
    # normal tissue, and RAZN's cost depends on what it zooms into.
    timed = set(
        np.linspace(0, len(corners) - 1, min(timing_fields, len(corners))).round().astype(int)
    )
    for start in range(0, len(corners), batch_size):
        chunk = corners[start : start + batch_size]
        fields_ = [read_field(labelled, xy, size, config)[0] for xy in chunk]
        images = [np.stack([f[k] for f in fields_]) for k in range(len(fields_[0]))]
        truth = np.stack([labels_at(labelled, xy, size, side) for xy in chunk])
        views = to_views(images)
        timing_views += [
            [v[i : i + 1] for v in views] for i in range(len(chunk)) if start + i in timed
        ]
        with torch.no_grad():
            for result, (probs, zoomed) in zip(
                results, _predict(model, views, thresholds), strict=True
            ):
                pooled = F.adaptive_avg_pool2d(probs, side)
                predicted = pooled.argmax(1).numpy() + 1
                result.confusion += confusion_matrix(truth, predicted, c)
                result.fields += len(chunk)
                result.zoomed += int(zoomed)
        yield EvaluationProgress(start + len(chunk), total)
    if timing_views and timing_fields:
        reference = scale1_reference(config)
        with torch.no_grad():  # first calls pay for allocation, not compute
            _timed(reference, timing_views[0], 0.5)
            _timed(model, timing_views[0], thresholds[0])
        for i in range(timing_fields):
            views = timing_views[i % len(timing_views)]
            with torch.no_grad():
                t_ref = _timed(reference, views, 0.5)
                for result in results:
                    result.relative_times.append(_timed(model, views, result.threshold) / t_ref)
            if (i + 1) % 10 == 0 or i + 1 == timing_fields:
                yield EvaluationProgress(len(corners) + i + 1, total)
    yield EvaluationProgress(total, total, results)


def evaluate(model, labelled, **kwargs) -> list[Evaluation]:
    """`iter_evaluate` run to the end: one Evaluation per threshold."""
    last = deque(iter_evaluate(model, labelled, **kwargs), maxlen=1)
    return last[0].results


def _predict(model, views, thresholds):
    """(probabilities at the finest level, fields zoomed) for each threshold."""
    config = model.config
    reads_fine = config.finest_level > 0
    if config.architecture == "razn" and config.zoom_levels == 1:
        coarse = model.predict(views, threshold=2.0)  # p never exceeds 2: f_0 only
        fine = model.predict(views, threshold=-1.0)  # always zooms: f_1 everywhere
        for t in thresholds:
            zoom = coarse.zoom_p > t
            yield torch.where(zoom[:, None, None, None], fine.probs, coarse.probs), zoom.sum()
        return
    for t in thresholds:
        prediction = model.predict(views, threshold=t)
        if prediction.zoomed is not None:
            yield prediction.probs, prediction.zoomed.sum()
        else:
            yield prediction.probs, len(views[0]) if reads_fine else 0


def time_in_batches(
    model,
    labelled,
    *,
    thresholds: Sequence[float] = (0.5,),
    batch: int = 8,
    fields: int = 104,
    min_tissue: float = MIN_TISSUE,
) -> dict[float, list[float]]:
    """Time per field relative to Scale 1, with fields run `batch` at a time.

    `iter_evaluate` times one field per call, as the paper timed patches;
    on a CPU that charges small nets (the policy) for per-call overhead
    that batches amortise. The whole-slide engine runs batches, so this is
    the cost a user sees. `fields` fields spread evenly over the slide's
    tissue grid, in consecutive groups of `batch`; returns, per threshold,
    one relative time per group (a group's time over Scale 1's on it).
    """
    from razn.fields import read_field

    config = model.config
    model.eval()
    corners = field_grid(labelled, config, min_tissue)
    if not corners:
        return {t: [] for t in thresholds}
    size = config.patch_size * config.base_mpp / labelled.slide.mpp
    picked = np.linspace(0, len(corners) - 1, fields).round().astype(int)
    reference = scale1_reference(config)
    times: dict[float, list[float]] = {t: [] for t in thresholds}
    for start in range(0, len(picked) - batch + 1, batch):
        chunk = [
            read_field(labelled, corners[i], size, config)[0]
            for i in picked[start : start + batch]
        ]
        views = to_views([np.stack([f[k] for f in chunk]) for k in range(len(chunk[0]))])
        with torch.no_grad():
            if start == 0:  # first calls pay for allocation, not compute
                _timed(reference, views, 0.5)
                _timed(model, views, thresholds[0])
            t_ref = _timed(reference, views, 0.5)
            for t in thresholds:
                times[t].append(_timed(model, views, t) / t_ref)
    return times


def _timed(model, views, threshold: float) -> float:
    start = time.perf_counter()
    model.predict(views, threshold=threshold)
    return time.perf_counter() - start
