"""The panel's models: loaded once per reference, and the first run's work done ahead."""

from __future__ import annotations

import contextlib
import threading
from functools import lru_cache

# A click waits for a load the panel started ahead, rather than loading twice.
_model_lock = threading.Lock()


def cached_model(reference: str):
    """Models are loaded once per reference ("demo" or a checkpoint path)."""
    with _model_lock:
        return _load_model(reference)


@lru_cache(maxsize=4)
def _load_model(reference: str):
    from razn.models import load_model

    return load_model(reference)


def warm_up(reference: str) -> None:
    """Worker body: the first run's one-off work, done ahead off the GUI thread.

    The imports napari makes when the first Labels and Shapes layers are
    added (pandas, skimage's colour conversions, scipy), vispy's dash atlas,
    and loading and hashing the model. Errors are left for the run itself
    to meet and report.
    """
    with contextlib.suppress(Exception):
        import pandas  # noqa: F401
        from skimage.color import colorconv  # noqa: F401  (and scipy.linalg)
        from vispy.visuals.line.dash_atlas import DashAtlas

        DashAtlas()
    with contextlib.suppress(Exception):
        import razn.inference.engine  # noqa: F401  (the run's worker imports it)
        from razn.inference.store import model_identity

        model_identity(cached_model(reference))
