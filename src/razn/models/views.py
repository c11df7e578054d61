"""Fields of view at several zoom levels, and cutting them into patches.

A view at zoom level k of a field of view is a (batch, 3, P*r**k, P*r**k)
tensor: the same tissue read at r**k times the coarse magnification. Nets
only ever see P x P patches, so a level-k view is cut into r**k x r**k
patches (row-major), segmented, and the results put back in place.
"""

from __future__ import annotations

import torch


def split_patches(x: torch.Tensor, rate: int) -> torch.Tensor:
    """(B, C, r*H, r*W) -> (B*r*r, C, H, W), patches in row-major order."""
    b, c, h, w = x.shape
    ph, pw = h // rate, w // rate
    x = x.reshape(b, c, rate, ph, rate, pw).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b * rate * rate, c, ph, pw)


def merge_patches(x: torch.Tensor, rate: int) -> torch.Tensor:
    """Inverse of `split_patches`: (B*r*r, C, H, W) -> (B, C, r*H, r*W)."""
    n, c, h, w = x.shape
    b = n // (rate * rate)
    x = x.reshape(b, rate, rate, c, h, w).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, rate * h, rate * w)


def split_levels(x: torch.Tensor, rate: int, levels: int) -> torch.Tensor:
    """Cut a view into patches `levels` times: (B, C, r^k P, ..) -> (B r^2k, C, P, P)."""
    for _ in range(levels):
        x = split_patches(x, rate)
    return x


def merge_levels(x: torch.Tensor, rate: int, levels: int) -> torch.Tensor:
    for _ in range(levels):
        x = merge_patches(x, rate)
    return x
