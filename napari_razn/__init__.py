"""napari-razn: the napari face of the RAZN core (`razn`).

Thin on purpose: each module owns one napari contribution and calls the
core for the work. Heavy imports happen inside the contributions.
"""

from razn._version import __version__

__all__ = ["__version__"]
