"""The panel's models: facts from the checkpoint's header, the model itself only to run.

Importing torch takes seconds, and done plainly it holds the interpreter,
so the GUI thread, whichever thread imports it: loading libtorch_cpu runs
its C++ initialisers inside `dlopen` (0.25-0.7 s in one piece), and the
few hundred thousand objects the import makes then set off a full garbage
collection of napari's heap (0.2-1.3 s). The panel therefore reads what it
needs before a run from the checkpoint's header (`model_facts`:
configuration, threshold, file hash; no torch), and the first run's worker
imports torch through `import_torch`, which loads the libraries with the
interpreter released and keeps that collection from happening.
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
# Workers that need torch (a run, the device probe) import it once, through `import_torch`.
_torch_lock = threading.Lock()


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
    import_torch()
    from razn.models import load_model

    return load_model(reference)


def import_torch() -> None:
    """Import torch and the engine once, without a full garbage collection after.

    The import makes a few hundred thousand Python objects, and Python's
    allocation counts then set off a full collection of napari's heap and
    torch's (0.2-1.3 s of stall on the GUI thread, whichever thread
    allocated), so it runs with the collector paused, and what is alive
    after is frozen (`_collector.collections_paused`).
    """
    import sys

    from napari_razn._collector import collections_paused

    with _torch_lock:  # a second caller waits for the first's import to end
        if "torch" in sys.modules:
            return
        with collections_paused():
            _import_engine()


def _import_engine() -> None:
    preload_torch()
    import torch  # noqa: F401

    import razn.devices  # noqa: F401  (what the run imports next)
    import razn.inference.engine  # noqa: F401
    import razn.models.checkpoint  # noqa: F401


def preload_torch() -> None:
    """Load torch's C++ libraries with the interpreter released, before `import torch`.

    `import torch` loads libtorch_cpu (hundreds of MB, whose static
    initialisers register thousands of operators) inside the import, and
    `ctypes.CDLL` as well holds the interpreter, so the GUI thread, while
    the loader works: 0.25-0.7 s in one piece. libc's own `dlopen`, called
    as a foreign function, runs with it released (ctypes releases it around
    every such call); the import then finds the libraries loaded. Only
    libtorch_python, whose initialisers may touch the interpreter, is
    loaded holding it (a few ms). Best effort: without them, the import
    loads them.
    """
    import importlib.util
    import sys

    if "torch" in sys.modules:
        return
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return
    folder = os.path.join(os.path.dirname(spec.origin), "lib")
    try:
        dlopen = ctypes.CDLL(None).dlopen  # glibc, macOS; not Windows
        dlopen.restype, dlopen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_int]
    except (AttributeError, OSError, TypeError):
        dlopen = None
    # The mode torch itself loads each with: only the first is global.
    for name, glob in (
        ("libtorch_global_deps.so", True), ("libc10.so", False), ("libtorch_cpu.so", False),
        ("libtorch.so", False), ("libtorch_python.so", False),
    ):  # fmt: skip
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        mode = ctypes.RTLD_GLOBAL if glob else ctypes.RTLD_LOCAL
        released = dlopen is not None and name != "libtorch_python.so"
        if released and dlopen(os.fsencode(path), mode | os.RTLD_NOW):
            continue  # else ctypes says what is wrong, or the import does
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
