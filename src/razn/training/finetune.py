"""A short fine-tuning of a model on a pathologist's corrections of one slide.

`finetune_from_corrections` trains a copy of the model (the original is
never touched) on the pathologist's corrections and, so that it does not
forget the rest, on its own predictions. Corrections alone teach nothing
but their own classes: a correction of one class then turns the whole
slide into it. The rule:

- every pixel the pathologist left alone keeps the model's prediction as a
  pseudo-label of loss weight `PSEUDO_LABEL_WEIGHT` (0.3), against 1 for a
  corrected pixel; pixels not segmented yet are ignored;
- half the fields of each batch are centred on corrections (their
  surroundings are pseudo-labelled), the other half on predictions
  anywhere on the slide, class-balanced, so every class the model predicts
  keeps being shown, not only those next to the corrections.

A corrected pixel outweighs about three uncorrected ones, not any number:
where a small correction contradicts a large area of the same-looking
tissue that was left as predicted (a corner of a lesion corrected, the rest
not), the uncorrected area wins. Correct a lesion whole.

It reuses the training package throughout: `FieldSampler` (class-balanced
centres on tissue), `augment`, and Algorithm 1's `training_step` (with
per-pixel weights), so the segmentation nets and the zoom policy both learn.
Two choices suit a few dozen steps on one region rather than a training
run: a low, constant learning rate, and frozen batch normalisation (its
running statistics are used and kept, so a handful of fields from one
corner of one slide cannot shift how the model normalises everywhere
else). It is a generator of `FinetuneProgress`, like `train`, so the
plugin runs it in a worker; the last item carries the fine-tuned model.

`save_finetuned` writes it as `<parent stem>.finetuned-<N>.safetensors`
beside its parent checkpoint, or beside the slide, or in the user's data
folder (the first that is writable), with the parent, the slide and the
settings in the checkpoint's training record. It is an adaptation to one
slide, not a validated model.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from razn.devices import pick_device
from razn.errors import RaznError
from razn.models import save_checkpoint
from razn.models.normalise import to_views
from razn.training.algorithm import targets_from_labels, training_step
from razn.training.patches import FieldBatch, FieldSampler, LabelledSlide
from razn.training.trainer import SlideFields

#: Fewest corrected label pixels worth fine-tuning on (a 4 x 4 block).
MIN_CORRECTED_PIXELS = 16
#: Loss weight of an uncorrected pixel's predicted class, against 1 for a correction.
PSEUDO_LABEL_WEIGHT = 0.3
#: In the fine-tuning label grid a pseudo-label of class c is stored as
#: c | PSEUDO_FLAG: the flag travels with the value through the
#: nearest-neighbour resampling and the augmentation, which copy values, and
#: becomes the pixel's weight in `_targets_and_weights`.
PSEUDO_FLAG = 0x80
_FINETUNED = re.compile(r"^(?P<stem>.*)\.finetuned-(?P<n>\d+)$")


@dataclass
class FinetuneProgress:
    """What `finetune_from_corrections` yields after each step.

    `model` is None until the last step, which carries the fine-tuned copy
    (in eval mode, its `training_record` describing the fine-tuning).
    """

    iteration: int
    iterations: int
    metrics: dict
    model: torch.nn.Module | None = None


def finetune_from_corrections(
    model,
    slide,
    labels: np.ndarray,
    corrected: np.ndarray,
    downsample: int,
    *,
    iterations: int = 60,
    batch_size: int = 8,
    lr: float = 1e-4,
    seed: int = 0,
    alpha: float = 0.8,
    augment: bool = True,
    pseudo_label_weight: float = PSEUDO_LABEL_WEIGHT,
    device: str | torch.device | None = "cpu",
) -> Iterator[FinetuneProgress]:
    """Fine-tune a copy of `model` on the corrected pixels of one slide.

    Parameters
    ----------
    model : a loaded model (RAZN or a baseline); it is copied, never changed.
    slide : razn.Slide with an mpp (or a path to open).
    labels : uint8 label grid (0 unlabelled, 1.. classes), e.g. `session.labels`:
        the corrections where `corrected`, the model's predictions elsewhere.
    corrected : bool mask of the same shape: the pixels the pathologist painted.
    downsample : level-0 pixels per label pixel (`session.grid.downsample`).
    iterations, batch_size, lr, seed : the optimiser's steps, fields per
        step, Adam's (constant) learning rate, and the seed of every random
        draw (the same seed gives the same model on CPU).
    alpha : the zoom policy's sampling bound, as in training.
    pseudo_label_weight : loss weight of the model's predictions on the
        uncorrected pixels (0: learn from the corrections alone, and only
        fields centred on them, as before pseudo-labels).
    device : where to train ("cpu" by default: the same seed then gives the
        same model; "auto", "cuda", ... as `razn.devices.pick_device`). The
        tuned model comes back on the CPU, as a loaded model is.

    Raises RaznError before any training when nothing, or too little, is
    corrected on tissue.
    """
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "config"):
        raise TypeError("model must be a RAZN model (razn.models.load_model)")
    labels = np.asarray(labels)
    corrected = np.asarray(corrected, bool)
    if labels.shape != corrected.shape:
        raise RaznError(f"labels {labels.shape} and corrections {corrected.shape} differ in shape")
    if labels.max(initial=0) >= PSEUDO_FLAG:
        raise RaznError(f"label values must be below {PSEUDO_FLAG}, not {labels.max()}")
    if iterations < 1 or batch_size < 1:
        raise ValueError("iterations and batch_size must be at least 1")
    if isinstance(slide, (str, os.PathLike)):
        slide = _open(slide)
    if slide.mpp is None:
        raise RaznError("fine-tuning needs the slide's pixel size; set its mpp", slide.path)
    target = np.where(corrected, labels, 0).astype(np.uint8)
    count = int((target > 0).sum())
    if count == 0:
        raise RaznError("nothing is corrected yet: paint on the classes first")
    if count < MIN_CORRECTED_PIXELS:
        raise RaznError(
            f"only {count} corrected pixels: correct at least {MIN_CORRECTED_PIXELS} "
            "to improve the model from them"
        )
    source = CorrectionFields(
        slide, labels, corrected, int(downsample), model.config,
        rehearse=pseudo_label_weight > 0, augment=augment,
    )  # fmt: skip

    device = pick_device(device)
    tuned = copy.deepcopy(model).to(device)
    torch.manual_seed(seed)  # dropout
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(tuned.parameters(), lr=lr)
    frozen = _freeze_batchnorm(tuned)
    try:
        for iteration in range(iterations):
            batch = source.batch(batch_size, rng)
            views = [view.to(device) for view in to_views(batch.images)]
            targets, weights = zip(
                *(_targets_and_weights(t, pseudo_label_weight) for t in batch.labels),
                strict=True,
            )
            metrics = training_step(
                tuned, optimizer, views, [t.to(device) for t in targets], alpha=alpha,
                generator=generator, weights=[w.to(device) for w in weights],
            )  # fmt: skip
            if iteration + 1 < iterations:
                yield FinetuneProgress(iteration + 1, iterations, metrics)
    finally:
        for handle in frozen:
            handle.remove()
    tuned = tuned.cpu().eval()
    parent = getattr(model, "checkpoint_path", None)
    tuned.checkpoint_path = None  # not saved yet
    tuned.training_record = {
        "finetune": {
            "parent": None if parent is None else str(parent),
            "slide": str(getattr(slide, "path", "")),
            "corrected_pixels": count,
            "class_pixels": {
                str(v): int(n) for v, n in enumerate(np.bincount(target.ravel())) if v and n
            },
            "label_downsample": int(downsample),
            "iterations": iterations,
            "batch_size": batch_size,
            "lr": lr,
            "seed": seed,
            "alpha": alpha,
            "augment": augment,
            "pseudo_label_weight": pseudo_label_weight,
            "fields_on_predictions": source.rehearsal_share(batch_size),
            "batchnorm": "frozen",
            "device": str(device),
        },
        "parent_training": dict(getattr(model, "training_record", None) or {}),
    }
    yield FinetuneProgress(iterations, iterations, metrics, tuned)


class CorrectionFields:
    """Batches for fine-tuning: fields around the corrections, and on the predictions.

    Both kinds read the same labels (corrections, and flagged predictions);
    they differ in where their centres are drawn. Without predictions on
    tissue (nothing segmented yet), or with `rehearse` False, every field
    is centred on a correction.
    """

    def __init__(self, slide, labels, corrected, downsample, config, *, rehearse, augment):
        grid = with_pseudo_labels(labels, corrected)
        corrections = np.where(corrected, labels, 0)
        predictions = np.where(corrected, 0, labels)

        def fields(centres):
            labelled = LabelledSlide(slide, grid, downsample, centres=centres)
            return SlideFields(FieldSampler([labelled], config, balanced=True), augment)

        try:
            self.around = fields(corrections)
        except RaznError:
            raise RaznError(
                "the corrections are not on tissue: there is nothing to learn from"
            ) from None
        self.elsewhere = None
        if rehearse and predictions.any():
            with contextlib.suppress(RaznError):  # the predictions are all on glass
                self.elsewhere = fields(predictions)

    def rehearsal_share(self, size: int) -> int:
        """Fields of a batch of `size` centred on predictions (the rest: on corrections)."""
        return size // 2 if self.elsewhere is not None else 0

    def batch(self, size: int, rng: np.random.Generator) -> FieldBatch:
        elsewhere = self.rehearsal_share(size)
        parts = [self.around.batch(size - elsewhere, rng)]
        if elsewhere:
            parts.append(self.elsewhere.batch(elsewhere, rng))
        return FieldBatch.concatenate(parts)


def with_pseudo_labels(labels: np.ndarray, corrected: np.ndarray) -> np.ndarray:
    """The fine-tuning label grid: corrections as they are, other predictions flagged."""
    labels = np.asarray(labels, np.uint8)
    predicted = np.where(labels > 0, labels | PSEUDO_FLAG, 0)  # 0: not segmented yet
    return np.where(corrected, labels, predicted).astype(np.uint8)


def _targets_and_weights(values: np.ndarray, pseudo_weight: float):
    """One level's label values to CE targets and per-pixel loss weights (see PSEUDO_FLAG)."""
    values = torch.as_tensor(np.ascontiguousarray(values))
    pseudo = values >= PSEUDO_FLAG
    targets = targets_from_labels(torch.where(pseudo, values - PSEUDO_FLAG, values))
    return targets, torch.where(pseudo, pseudo_weight, 1.0)


def finetuned_path(
    parent: str | os.PathLike | None,
    slide_path: str | os.PathLike | None = None,
    *,
    name: str = "model",
    data_folder: str | os.PathLike | None = None,
) -> Path:
    """Where a fine-tuned checkpoint goes: `<parent stem>.finetuned-<N>.safetensors`.

    Beside the parent checkpoint if that folder is writable, else beside the
    slide, else in `data_folder` (default: the user's napari-razn data
    folder, `models/`). N is one more than the highest already there, so
    nothing is overwritten; fine-tuning a fine-tuned model counts on
    (`small.finetuned-1` gives `small.finetuned-2`).
    """
    stem = Path(parent).name if parent is not None else name
    stem = stem.removesuffix(".safetensors")
    match = _FINETUNED.match(stem)
    if match:
        stem = match["stem"]
    folders = []
    if parent is not None and not _bundled(parent):
        # Never write into the installed package (the bundled demo model).
        folders.append(Path(parent).resolve().parent)
    if slide_path:
        folders.append(Path(slide_path).resolve().parent)
    if data_folder is None:
        from platformdirs import user_data_dir

        data_folder = Path(user_data_dir("napari-razn", appauthor=False)) / "models"
    for folder in folders:
        if folder.is_dir() and os.access(folder, os.W_OK):
            break
    else:
        folder = Path(data_folder)
        folder.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(re.escape(stem) + r"\.finetuned-(\d+)\.safetensors$")
    taken = [int(m[1]) for p in folder.iterdir() if (m := pattern.match(p.name))]
    return folder / f"{stem}.finetuned-{max(taken, default=0) + 1}.safetensors"


def _bundled(path) -> bool:
    from importlib import resources

    package = Path(str(resources.files("razn"))).resolve()
    return package in Path(path).resolve().parents


def save_finetuned(model, path: str | os.PathLike | None = None, **where) -> Path:
    """Save a model from `finetune_from_corrections` beside its parent.

    `path` None picks one with `finetuned_path` (keywords go to it). The
    model's training record (parent, slide, corrected pixels, settings) is
    written into the checkpoint, and `model.checkpoint_path` set to it.
    """
    record = getattr(model, "training_record", None) or {}
    info = record.get("finetune")
    if info is None:
        raise ValueError("not a fine-tuned model: no 'finetune' in its training record")
    if path is None:
        where.setdefault("name", model.config.name)
        path = finetuned_path(info["parent"], info["slide"] or None, **where)
    saved = save_checkpoint(model, path, training=record)
    model.checkpoint_path = saved
    return saved


def _open(slide):
    from razn.slide import open_slide

    return open_slide(slide)


def _freeze_batchnorm(model) -> list:
    """Batch norm uses and keeps its running statistics while the rest trains."""

    def to_eval(module, _inputs):
        module.training = False

    return [
        m.register_forward_pre_hook(to_eval)
        for m in model.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    ]
