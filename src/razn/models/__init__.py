"""The RAZN models: segmentation nets, zoom policies, baselines, checkpoints.

>>> from razn.models import build_model, load_model
>>> model = build_model("razn-small")          # a fresh model from the registry
>>> model = load_model("demo")                 # doctest: +SKIP  (the bundled checkpoint)

Names load on first use (PEP 562), so reading a checkpoint's header
(`read_metadata`, `default_threshold`) or a configuration does not pull in
torch: the napari panel reads them without the seconds (some of them
holding the interpreter) that importing torch takes.
"""

import importlib

_NAMES = {
    "RAZN": "razn.models.razn",
    "CheckpointError": "razn.models.checkpoint",
    "ModelConfig": "razn.models.config",
    "Prediction": "razn.models.razn",
    "SegmentationNet": "razn.models.segmentation",
    "ZoomPolicy": "razn.models.policy",
    "build_model": "razn.models.build",
    "default_threshold": "razn.models.checkpoint",
    "get_config": "razn.models.registry",
    "list_configs": "razn.models.registry",
    "load_model": "razn.models.checkpoint",
    "read_metadata": "razn.models.checkpoint",
    "register": "razn.models.registry",
    "save_checkpoint": "razn.models.checkpoint",
}

__all__ = sorted(_NAMES)


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'razn.models' has no attribute {name!r}")
