"""The napari reader contribution: a slide file becomes one multiscale RGB layer.

Opening only parses the file (`razn.open_slide`); pixels are decoded when
napari draws them. The layer's levels are `Slide.level_views`: array-likes
that read through the same direct tile reader (and tile cache) as
`Slide.read_region` and the segmentation engine, so napari decodes only
the tiles in view, with no zarr store and no dask graph in between. The
layer's `scale` is in microns (napari's scale bar is then true) and its
metadata carries the slide's facts under "razn_slide", which the RAZN
panel reads.
"""

from __future__ import annotations

import os

from razn.slide import TIFF_SUFFIXES

#: Whole-slide formats that napari's builtin reader also claims (it would
#: decode all of level 0 into memory). Once napari-razn has opened a slide,
#: it becomes napari's reader for these, so napari stops asking "Choose
#: reader" every time. Generic TIFF endings (.tif, .tiff, .btf, .qptiff)
#: are left to the user's choice: they hold much more than brightfield slides.
SLIDE_ONLY_PATTERNS = ("*.svs", "*.ndpi", "*.scn")


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
    layer = slide_layer_data(slide)
    _prefer_in_running_napari()
    return [layer]


def prefer_for_slides(settings=None) -> list[str]:
    """Make napari-razn napari's reader for whole-slide files, where the user has not chosen.

    npe2 has no reader priority, and napari's builtins claim `*.svs`,
    `*.ndpi` and `*.scn` too, so napari asks which reader to use until a
    preference (`settings.plugins.extension2reader`, what the dialog's
    "remember" box writes) says. This sets that preference for
    `SLIDE_ONLY_PATTERNS` that have none; a choice the user made is kept.

    Returns the patterns it set.
    """
    if settings is None:
        from napari.settings import get_settings

        settings = get_settings()
    current = dict(settings.plugins.extension2reader)
    added = [pattern for pattern in SLIDE_ONLY_PATTERNS if pattern not in current]
    if added:
        settings.plugins.extension2reader = {**current, **dict.fromkeys(added, "napari-razn")}
    return added


def _prefer_in_running_napari() -> None:
    """After the user opened a slide with napari-razn in a viewer, stop the
    "Choose reader" question for slide files (not from scripts or tests
    that call the reader without a viewer)."""
    try:
        import napari

        if napari.current_viewer() is None:
            return
        added = prefer_for_slides()
    except Exception:  # noqa: BLE001 - a preference must never fail the open
        return
    if added:
        from napari.utils.notifications import show_info

        show_info(
            f"napari-razn now opens {', '.join(added)} files without asking; "
            "change it under Preferences > Plugins."
        )


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
    return (slide.level_views, kwargs, "image")
