"""The RAZN layers: classes (Labels), zoom heatmap (Image), zoomed tiles (Shapes).

Every layer is placed in microns like the slide: a grid at downsample d of
level 0 has scale d * mpp and translate (d - 1) / 2 * mpp (napari puts data
coordinates at pixel centres). The classes layer is single-scale, because
napari cannot paint a multiscale Labels layer, and its data is the
session's own `labels` array, so painting edits the session directly.
"""

from __future__ import annotations

import numpy as np

from razn.classes import DEFAULT_CLASSES, NORMAL

CLASSES_LAYER = "RAZN classes"
ZOOM_LAYER = "RAZN zoom"
ZOOMED_LAYER = "RAZN zoomed tiles"

#: Normal tissue (and glass) is drawn faint so the lesions stand out.
NORMAL_ALPHA = 0.25


def placement(downsample: float, mpp: float | None) -> dict:
    um = mpp or 1.0
    return {
        "scale": (downsample * um, downsample * um),
        "translate": ((downsample - 1) / 2 * um, (downsample - 1) / 2 * um),
    }


def class_colormap(classes=DEFAULT_CLASSES):
    from napari.utils.colormaps import DirectLabelColormap

    colors = {None: (0, 0, 0, 0), 0: (0, 0, 0, 0)}
    for c in classes:
        alpha = NORMAL_ALPHA if c.value == NORMAL else 1.0
        colors[c.value] = (*(v / 255 for v in c.color), alpha)
    return DirectLabelColormap(color_dict=colors)


def add_classes_layer(viewer, session, classes=DEFAULT_CLASSES):
    import pandas as pd

    grid = session.grid
    _drop_store_layer(viewer, CLASSES_LAYER)
    features = pd.DataFrame(
        {"class": ["not segmented"] + [c.name for c in classes]},
        index=range(len(classes) + 1),
    )
    layer = viewer.add_labels(
        session.labels,
        name=CLASSES_LAYER,
        colormap=class_colormap(classes),
        opacity=0.6,
        features=features,
        units=_units(session),
        metadata={
            "razn_labels": {
                "downsample": grid.downsample,
                "level0_shape": list(grid.slide_shape),
                "mpp": session.mpp,
                "classes": [
                    {"value": c.value, "name": c.name, "color": list(c.color)} for c in classes
                ],
                "slide": session.slide_path,
            }
        },
        **placement(grid.downsample, session.mpp),
    )
    return layer


def add_zoom_heatmap(viewer, session):
    """The policy's p per tile (hidden until asked for)."""
    _drop_store_layer(viewer, ZOOM_LAYER)
    return viewer.add_image(
        session.zoom_p,
        name=ZOOM_LAYER,
        colormap="inferno",
        contrast_limits=(0.0, 1.0),
        opacity=0.45,
        visible=False,
        units=_units(session),
        **placement(session.grid.tile_size, session.mpp),
    )


def add_zoomed_outlines(viewer, session):
    """An outline around each zoomed tile (hidden until asked for)."""
    _drop_store_layer(viewer, ZOOMED_LAYER)
    return viewer.add_shapes(
        zoomed_rectangles(session),
        shape_type="rectangle",
        name=ZOOMED_LAYER,
        edge_color="white",
        face_color="transparent",
        edge_width=2 * session.grid.downsample * (session.mpp or 1.0),
        visible=False,
        units=_units(session),
    )


def _drop_store_layer(viewer, name: str) -> None:
    """Remove a read-only layer of that name a store opened in napari brought
    (`napari_razn._store_reader`): the panel adds its editable one in its place."""
    for layer in list(viewer.layers):
        if layer.name == name and "razn_store" in layer.metadata:
            viewer.layers.remove(layer)


def _units(session) -> tuple[str, str]:
    # The same units as the slide layer, or napari stops drawing units at all.
    return ("um", "um") if session.mpp else ("pixel", "pixel")


def zoomed_rectangles(session) -> list[np.ndarray]:
    """Rectangles (world coordinates) around each zoomed tile."""
    um = session.mpp or 1.0
    t = session.grid.tile_size * um
    return [
        np.array([[r * t, c * t], [(r + 1) * t, (c + 1) * t]])
        for r, c in zip(*np.nonzero(session.zoomed), strict=True)
    ]


def refresh_region(layer, rows: slice, cols: slice) -> None:
    """Redraw part of a Labels layer whose data changed in place.

    A full refresh recolours the whole label grid (tens of megapixels on a
    large slide) for every tile; napari's partial update, which its own
    painting uses, recolours only the tile. It is private API, so fall back
    to a full refresh if it moves.
    """
    try:
        values = layer.data[rows, cols]
        layer._slice.image.view[rows, cols] = layer.colormap._data_to_texture(values)
        layer._accumulate_updated_slice((rows, cols))
        layer._partial_labels_refresh()
    except (AttributeError, TypeError, IndexError):
        layer.refresh()
