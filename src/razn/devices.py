"""Which torch device to run on: one rule for inference, training and the panel."""

from __future__ import annotations

import torch

from razn.errors import RaznError

__all__ = ["available_devices", "pick_device"]


def available_devices() -> list[str]:
    """The torch devices this machine can run on, best first (CPU always last)."""
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return [*found, "cpu"]


def pick_device(device: str | torch.device | None = "auto") -> torch.device:
    """ "auto": CUDA, then Apple's MPS, then the CPU; else the device named, if present.

    A device that is not there (cuda on a machine without an NVIDIA GPU, a
    CUDA index past the last card, a misspelt name) is a RaznError naming
    the devices found, so the CLI and the plugin report it in one line
    instead of failing later inside torch.
    """
    found = available_devices()
    if device in (None, "auto"):
        return torch.device(found[0])
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise RaznError(f"unknown device {device!r} (found here: {', '.join(found)})") from None
    present = chosen.type in found and (
        chosen.type != "cuda" or chosen.index is None or chosen.index < torch.cuda.device_count()
    )
    if not present:
        raise RaznError(f"device {device} is not available here (found: {', '.join(found)})")
    return chosen
