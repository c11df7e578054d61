"""The panel's models: facts from the checkpoint's header, the model itself only to run.

Importing torch takes seconds, and parts of it (loading and initialising
its C++ libraries) hold the interpreter, so the GUI thread, in one piece
for 0.3-0.6 s whichever thread imports it. The panel therefore reads what
it needs before a run from the checkpoint's header (`model_facts`:
configuration, threshold, file hash; no torch), and the model itself is
loaded by the first run's worker (`cached_model`), when the user has
asked for work.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import threading
from dataclasses import dataclass
from functools import lru_cache

# A click waits for a load the panel started ahead, rather than loading twice.
_model_lock = threading.Lock()


@dataclass(frozen=True)
class ModelFacts:
    """What the panel knows of a model before loading it (from its header)."""

    reference: str
    config: object  # razn.models.ModelConfig
    threshold: float  # the checkpoint's own default zoom threshold
    sha256: str  # of the checkpoint file, as `razn.inference.store.model_identity`


def model_facts(reference: str) -> ModelFacts:
    """Worker body: configuration, threshold and hash of "demo" or a checkpoint path.

    Raises RaznError (CheckpointError) for a file that is not a checkpoint.
    """
    from razn.models.checkpoint import _resolve

    path = _resolve(reference)
    stat = path.stat()
    return _facts(reference, str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _facts(reference: str, path: str, _mtime_ns: int, _size: int) -> ModelFacts:
    from razn.models.checkpoint import default_threshold, read_metadata

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            h.update(block)
    return ModelFacts(
        reference, read_metadata(path)["config"], default_threshold(path), h.hexdigest()
    )


def cached_model(reference: str):
    """Worker body: the model, loaded once per reference ("demo" or a checkpoint path)."""
    with _model_lock:
        return _load_model(reference)


@lru_cache(maxsize=4)
def _load_model(reference: str):
    preload_torch()
    from razn.models import load_model

    return load_model(reference)


def preload_torch() -> None:
    """Load torch's C++ libraries with the interpreter released, before `import torch`.

    `import torch` loads and relocates libtorch_cpu (hundreds of MB) inside
    the import, holding the interpreter, so the GUI thread, for 0.2-0.4 s.
    `ctypes.CDLL` releases it while the loader works; the import then finds
    the libraries loaded. Best effort: without them, the import loads them.
    """
    import importlib.util
    import sys

    if "torch" in sys.modules:
        return
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return
    folder = os.path.join(os.path.dirname(spec.origin), "lib")
    # The mode torch itself loads each with: only the first is global.
    for name, mode in (
        ("libtorch_global_deps.so", ctypes.RTLD_GLOBAL), ("libc10.so", ctypes.DEFAULT_MODE),
        ("libtorch_cpu.so", ctypes.DEFAULT_MODE), ("libtorch.so", ctypes.DEFAULT_MODE),
        ("libtorch_python.so", ctypes.DEFAULT_MODE),
    ):  # fmt: skip
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            try:
                ctypes.CDLL(path, mode=mode)
            except OSError:
                return  # the import itself will say what is missing


def warm_up(reference: str) -> ModelFacts | None:
    """Worker body: the first run's one-off work that does not need torch, done ahead.

    The imports napari makes when the first Labels and Shapes layers are
    added (pandas, skimage's colour conversions, scipy), vispy's dash atlas,
    and the model's facts (its header, its file's hash). Errors are left
    for the run itself to meet and report (None).
    """
    import contextlib

    with contextlib.suppress(Exception):
        import pandas  # noqa: F401
        from skimage.color import colorconv  # noqa: F401  (and scipy.linalg)
        from vispy.visuals.line.dash_atlas import DashAtlas

        DashAtlas()
    try:
        return model_facts(reference)
    except Exception:
        return None
