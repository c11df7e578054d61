"""Pixels to network input: the one place RGB uint8 becomes a float tensor.

Training, evaluation, the inference engine and the plugin all feed the nets
through `to_views`/`normalise`, so a model is never run on pixels scaled
differently from those it learnt on. The scaling is ImageNet's per-channel
mean and standard deviation (the trunks keep torchvision's layer names so
ImageNet weights can be mapped in); it is fixed, not per slide, because
stain normalisation is a separate, deliberate step.
"""

from __future__ import annotations

import numpy as np
import torch

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def normalise(pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """RGB uint8, (H, W, 3) or (B, H, W, 3), to a float32 (B, 3, H, W) net input."""
    x = torch.as_tensor(np.asarray(pixels))
    if x.dtype != torch.uint8:
        raise TypeError(f"expected uint8 RGB pixels, got {x.dtype}")
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected (H, W, 3) or (B, H, W, 3) pixels, got {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def to_views(levels: list[np.ndarray]) -> list[torch.Tensor]:
    """Fields of view at zoom levels 0..m (uint8, (B, H_k, W_k, 3)) -> `predict` views."""
    return [normalise(level) for level in levels]
