"""Named model configurations, timm style: a name -> a validated ModelConfig.

"-small" configurations are for CPUs (ResNet width 16, 128-pixel patches);
the others are the paper's setting (ResNet18, 256-pixel patches). Every
configuration reads its coarse patch at 1 um/px and zooms by 2, to 0.5 um/px.
"""

from __future__ import annotations

from razn.models.config import ModelConfig

_REGISTRY: dict[str, ModelConfig] = {}


def register(config: ModelConfig) -> ModelConfig:
    if config.name in _REGISTRY:
        raise ValueError(f"model configuration {config.name!r} is already registered")
    _REGISTRY[config.name] = config
    return config


def list_configs() -> list[str]:
    return sorted(_REGISTRY)


def get_config(name: str) -> ModelConfig:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"no model configuration named {name!r}; known: {', '.join(list_configs())}"
        ) from None


_PAPER = {"width": 64, "policy_width": 64, "patch_size": 256}
_SMALL = {"width": 16, "policy_width": 8, "patch_size": 128}

for _suffix, _size in (("", _PAPER), ("-small", _SMALL)):
    register(ModelConfig(f"razn{_suffix}", "razn", **_size))
    register(ModelConfig(f"razn-m2{_suffix}", "razn", zoom_levels=2, **_size))
    register(ModelConfig(f"scale1{_suffix}", "single-scale", scale=0, **_size))
    register(ModelConfig(f"scale2{_suffix}", "single-scale", scale=1, **_size))
    register(ModelConfig(f"ms{_suffix}", "multi-scale", **_size))
    register(ModelConfig(f"attention{_suffix}", "attention", **_size))
register(ModelConfig("razn-literal", "razn", stride_reading="literal", **_PAPER))
