"""Training RAZN and its baselines: fields of view from slides, Algorithm 1, the loop.

- `patches`: fields of view drawn from labelled slides (read at every
  zoom level by `razn.fields`), augmented, and saved as batches.
- `algorithm`: one step, Algorithm 1 of Dong et al. (with docs/design.md's
  reward sign) for RAZN, supervised for the baselines.
- `trainer`: the loop as a generator of progress, with JSON-lines metrics,
  checkpoints and exact resume.
- `finetune`: a short fine-tuning of a copy of a model on a pathologist's
  corrections, saved beside its parent checkpoint.
"""

from razn.training.algorithm import razn_losses, supervised_loss, training_step, zoom_reward
from razn.training.finetune import (
    FinetuneProgress,
    finetune_from_corrections,
    finetuned_path,
    save_finetuned,
)
from razn.training.patches import FieldBatch, FieldSampler, LabelledSlide, augment, open_labelled
from razn.training.trainer import (
    FieldPool,
    SlideFields,
    TrainingConfig,
    TrainingProgress,
    train,
)

__all__ = [
    "FieldBatch",
    "FieldPool",
    "FieldSampler",
    "FinetuneProgress",
    "LabelledSlide",
    "SlideFields",
    "TrainingConfig",
    "TrainingProgress",
    "augment",
    "finetune_from_corrections",
    "finetuned_path",
    "open_labelled",
    "razn_losses",
    "save_finetuned",
    "supervised_loss",
    "train",
    "training_step",
    "zoom_reward",
]
