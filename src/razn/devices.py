"""Which torch device and how many CPU threads: one rule for inference, training, the panel."""

from __future__ import annotations

import os

import torch

from razn.errors import RaznError

__all__ = ["available_devices", "pick_device", "threads_beside_gui"]


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


def threads_beside_gui() -> int:
    """CPU threads for work that runs beside a GUI: every core but one.

    The core left over keeps the GUI thread (napari's event loop) responsive
    while torch segments or fine-tunes; on one core, one thread.
    """
    return max(1, (os.cpu_count() or 2) - 1)
