"""From a configuration to a network."""

from __future__ import annotations

from torch import nn

from razn.models.baselines import AttentionToScale, MultiScale, SingleScale
from razn.models.config import ModelConfig
from razn.models.razn import RAZN
from razn.models.registry import get_config

_CLASSES = {
    "razn": RAZN,
    "single-scale": SingleScale,
    "multi-scale": MultiScale,
    "attention": AttentionToScale,
}


def build_model(config: ModelConfig | str) -> nn.Module:
    """A freshly initialised model for a configuration or a registered name."""
    if isinstance(config, str):
        config = get_config(config)
    return _CLASSES[config.architecture](config)
