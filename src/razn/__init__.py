"""razn: the Reinforced Auto-Zoom Net core, without napari or Qt.

>>> import razn
>>> slide = razn.open_slide("CMU-1-Small-Region.svs")  # doctest: +SKIP
>>> slide.read_region((0, 0), (1024, 1024), mpp=1.0).shape  # doctest: +SKIP
(512, 512, 3)

The names below load on first use (PEP 562), so `import razn` (and every
`razn` command, whose package imports this one) costs no numpy, tifffile or
dask until a slide is opened.
"""

from razn._version import __version__
from razn.errors import AnnotationError, RaznError, SlideError

__all__ = ["__version__", "RaznError", "SlideError", "AnnotationError", "Slide", "open_slide"]

# name -> module that defines it, imported on first access.
_LAZY = {"Slide": "razn.slide", "open_slide": "razn.slide"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'razn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
