"""Checkpoints: weights in safetensors, configuration and provenance in JSON.

One `.safetensors` file holds the tensors and, in its JSON header's
metadata, the model configuration (`razn.config`), what it was trained on
and how (`razn.training`), and the code version that wrote it. safetensors
holds data only, so opening a checkpoint from someone else can never run
code; PyTorch pickles (`.pt`, `.pth`) are refused outright. A checkpoint
whose tensors do not fit its configuration is refused with the names of the
tensors that differ, from the header alone, before any model is built (a
configuration claiming width 10^6 would otherwise allocate terabytes); one
whose weights hold NaN or infinity is refused too (it would label every
pixel one class).
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from razn._version import __version__
from razn.atomic import atomic_path
from razn.errors import RaznError
from razn.models.config import ModelConfig

if TYPE_CHECKING:
    import torch

# torch, safetensors.torch and the model builders are imported where they
# are used: reading a header (`read_metadata`, `default_threshold`) must not
# import torch (the napari panel reads it while the user looks at a slide).

FORMAT = "razn-checkpoint/1"

#: Checkpoints shipped inside the package, loadable by name.
BUNDLED = {"demo": "demo.safetensors"}


class CheckpointError(RaznError):
    """A checkpoint file is unreadable, unsafe or does not fit its configuration."""


def save_checkpoint(
    model: torch.nn.Module, path: str | os.PathLike, training: dict | None = None
) -> Path:
    """Write `model` (with its `config`) to `path` atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    metadata = {
        "format": FORMAT,
        "razn.version": __version__,
        "razn.config": model.config.to_json(),
        "razn.training": json.dumps(training or {}),
    }
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def read_metadata(path: str | os.PathLike) -> dict:
    """The checkpoint's configuration, training record and version, no tensors."""
    path = _resolve(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
            size = int.from_bytes(head[:8], "little")
            # safetensors: an 8-byte header length, then the JSON header.
            if not (0 < size < 100 * 2**20 and head[8:9] == b"{"):
                _refuse_pickles(path, head)
                raise ValueError("no safetensors header")
            header = json.loads(head[8:] + fh.read(size - 1))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"not a safetensors checkpoint: {error}", path) from None
    metadata = header.get("__metadata__") or {}
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            "a safetensors file, but not a RAZN checkpoint (no razn configuration in it)", path
        )
    try:
        config = ModelConfig.from_dict(json.loads(metadata["razn.config"]))
        training = json.loads(metadata.get("razn.training", "{}"))
    except (KeyError, ValueError, TypeError, AttributeError, RecursionError) as error:
        raise CheckpointError(
            f"its model configuration is invalid: {str(error)[:200]}", path
        ) from None
    if not isinstance(training, dict):
        raise CheckpointError(
            f"its training record (razn.training) must be a JSON object, not "
            f"{type(training).__name__}",
            path,
        )
    shapes = {
        name: entry.get("shape")
        for name, entry in header.items()
        if name != "__metadata__" and isinstance(entry, dict)
    }
    return {
        "config": config,
        "training": training,
        "version": metadata.get("razn.version"),
        "shapes": shapes,
    }


def load_model(name_or_path: str | os.PathLike, device: str | torch.device = "cpu"):
    """A model from a bundled name ("demo") or a checkpoint file, in eval mode."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from razn.models.build import build_model

    path = _resolve(name_or_path)
    info = read_metadata(path)
    # The configuration's tensor shapes, on the meta device (no memory), are
    # checked against the header before the real model is built.
    try:
        with torch.device("meta"):
            skeleton = build_model(info["config"])
    except (ValueError, TypeError, RuntimeError) as error:
        raise CheckpointError(
            f"its model configuration cannot be built: {str(error)[:200]}", path
        ) from None
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    _check_fit(path, expected, info["shapes"], info["config"])
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"cannot read the weights: {error}", path) from None
    _check_finite(path, tensors)
    model = build_model(info["config"])
    model.load_state_dict(tensors)
    model.training_record = info["training"]
    model.checkpoint_path = path
    return model.to(device).eval()


#: Where a checkpoint names no operating point: zoom where p > 0.5.
FALLBACK_THRESHOLD = 0.5


def default_threshold(model) -> float:
    """The zoom threshold a checkpoint was tuned for, else 0.5.

    `model` is a loaded model, a bundled name ("demo") or a checkpoint path.

    A policy's p is not calibrated (training only ranks where zooming pays),
    so the useful threshold differs between models; a checkpoint may carry
    the one its trainer chose (`training["default_threshold"]`), and the
    CLI and the panel start from it.
    """
    if isinstance(model, (str, os.PathLike)):  # a name or file: read the header only
        record = read_metadata(_resolve(model))["training"] or {}
    else:
        record = getattr(model, "training_record", None) or {}
    value = record.get("default_threshold", FALLBACK_THRESHOLD)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return FALLBACK_THRESHOLD
    return value if 0.0 <= value <= 1.0 else FALLBACK_THRESHOLD


def _check_fit(path: Path, expected: dict, stored: dict, config: ModelConfig) -> None:
    """Refuse a file whose tensors (name -> shape, from its header) do not fit `config`."""

    def shape(value) -> tuple | None:
        return tuple(value) if isinstance(value, list) else None

    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    wrong = sorted(k for k in set(expected) & set(stored) if expected[k] != shape(stored[k]))
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} tensors have the wrong shape (e.g. {k}: "
                f"{shape(stored[k])} in the file, {expected[k]} expected)"
            )
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise CheckpointError(
            f"its weights do not fit its configuration ({config.name}, "
            f"{config.architecture}, width {config.width}): " + "; ".join(parts),
            path,
        )


def _check_finite(path: Path, tensors: dict) -> None:
    import torch

    bad = sorted(
        name
        for name, tensor in tensors.items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    )
    if bad:
        raise CheckpointError(
            f"{len(bad)} weight tensor(s) hold NaN or infinity (e.g. {bad[0]}); a model "
            "with them labels every pixel alike. The training run diverged: use an "
            "earlier checkpoint",
            path,
        )


def _resolve(name_or_path) -> Path:
    if isinstance(name_or_path, str) and name_or_path in BUNDLED:
        bundled = resources.files("razn") / "weights" / BUNDLED[name_or_path]
        path = Path(str(bundled))
        if not path.is_file():
            raise CheckpointError(f"the bundled model {name_or_path!r} is not installed", path)
        return path
    path = Path(name_or_path)
    if not path.is_file():
        names = ", ".join(BUNDLED)
        raise CheckpointError(f"no such checkpoint file (bundled models: {names})", path)
    return path


def _refuse_pickles(path: Path, head: bytes) -> None:
    # PyTorch's torch.save writes a zip archive (PK) or, in old versions, a
    # bare pickle (protocol marker 0x80). Unpickling can run any code.
    if head[:2] == b"PK" or head[:1] == b"\x80":
        raise CheckpointError(
            "a PyTorch pickle (torch.save); RAZN loads only safetensors checkpoints, "
            "because unpickling a file can run code",
            path,
        )
