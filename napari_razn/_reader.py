"""The napari reader contribution: a slide file becomes one multiscale RGB layer.

Only tiles in view are decoded, because the levels are lazy dask arrays
from `razn.open_slide`. The layer's `scale` is in microns (napari's scale
bar is then true) and its metadata carries the slide's facts under
"razn_slide", which the RAZN panel reads.
"""

from __future__ import annotations

import os

from razn.slide import TIFF_SUFFIXES


def get_reader(path):
    """napari's `get_reader` hook: a reader function for slide files, else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if not str(path).lower().endswith(TIFF_SUFFIXES):
        return None
    return read_slide


def read_slide(path):
    from razn.errors import RaznError
    from razn.slide import open_slide

    if isinstance(path, list):
        path = path[0]
    try:
        slide = open_slide(path)
    except RaznError as error:
        # napari shows a reader's exception as a notification; ours already
        # names the file and the problem, so keep only the message.
        raise ValueError(str(error)) from None
    return [slide_layer_data(slide)]


def slide_layer_data(slide) -> tuple:
    """napari LayerData for a `razn.Slide`: levels, kwargs, "image".

    The tissue fraction is left out of the metadata: it reads pixels, and
    the panel computes it in the background instead.
    """
    um = slide.mpp or 1.0  # without an mpp the layer is in pixels
    kwargs = {
        "name": os.path.basename(slide.path),
        "rgb": True,
        "multiscale": True,
        "scale": (um, um),
        "contrast_limits": (0, 255),
        "units": ("um", "um") if slide.mpp else ("pixel", "pixel"),
        "metadata": {"razn_slide": slide.facts(tissue=False)},
    }
    return (slide.levels, kwargs, "image")
