"""The RAZN models: segmentation nets, zoom policies, baselines, checkpoints.

>>> from razn.models import build_model, load_model
>>> model = build_model("razn-small")          # a fresh model from the registry
>>> model = load_model("demo")                 # doctest: +SKIP  (the bundled checkpoint)
"""

from razn.models.build import build_model
from razn.models.checkpoint import (
    CheckpointError,
    default_threshold,
    load_model,
    read_metadata,
    save_checkpoint,
)
from razn.models.config import ModelConfig
from razn.models.policy import ZoomPolicy
from razn.models.razn import RAZN, Prediction
from razn.models.registry import get_config, list_configs, register
from razn.models.segmentation import SegmentationNet

__all__ = [
    "RAZN",
    "CheckpointError",
    "ModelConfig",
    "Prediction",
    "SegmentationNet",
    "ZoomPolicy",
    "build_model",
    "default_threshold",
    "get_config",
    "list_configs",
    "load_model",
    "read_metadata",
    "register",
    "save_checkpoint",
]
