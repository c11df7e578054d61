"""The napari reader of segmentation stores: `napari results/slide.razn.zarr`.

A store (`razn.inference.store`, written by `razn segment` or the panel)
names its slide. The reader opens that slide (the path as recorded, then
relative to the store's folder, then the same file name beside the
store, then it asks in a file dialog; a slide of another size than the
store's is refused) with the slide reader's own layer, and adds the store's results
as layers in microns: the classes (Labels, level 0 of the NGFF label
image), the zoom heatmap and the zoomed tiles (hidden). It also tells
`razn.session` that this slide's session lives in the store, so the RAZN
panel, docked now or later, restores it from there (and replaces these
layers with its own editable ones): review, correct, export, fine-tune,
or resume the run.
"""

from __future__ import annotations

from pathlib import Path

STORE_SUFFIX = ".razn.zarr"


def get_reader(path):
    """napari's `get_reader` hook: a reader for `*.razn.zarr` folders, else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    text = str(path).rstrip("/\\")
    if not text.lower().endswith(STORE_SUFFIX) or not Path(text).is_dir():
        return None
    return read_store


def read_store(path):
    from razn.errors import RaznError
    from razn.session import SegmentationSession, use_store
    from razn.session_store import find_slide
    from razn.slide import open_slide

    if isinstance(path, list):
        path = path[0]
    store = Path(str(path).rstrip("/\\"))
    try:
        session = SegmentationSession.load(store)
        try:
            slide_path = find_slide(store, session.slide_path)
        except RaznError:
            slide_path = ask_for_slide(store, session.slide_path)
            if slide_path is None:
                raise
        slide = open_slide(slide_path, mpp=session.mpp)
        check_same_slide(slide, session.grid.slide_shape, store)
    except RaznError as error:
        raise ValueError(str(error)) from None
    from napari_razn._reader import slide_layer_data

    session.slide_path = str(slide_path)
    use_store(slide_path, store)
    return [slide_layer_data(slide), *result_layers(session, store)]


def ask_for_slide(store: Path, recorded: str) -> Path | None:
    """The slide the user picks in a file dialog, or None (cancelled, or no window).

    A slide moved since the store was written (a results folder copied from
    the cluster, a share mounted elsewhere) is found by the user, as
    QuPath asks for a project's moved images. Without a napari window on a
    display (a script, a headless viewer) nobody could answer, so nothing
    is asked.
    """
    import napari
    from qtpy.QtWidgets import QApplication, QFileDialog

    from razn.slide import SLIDE_SUFFIXES

    app = QApplication.instance()
    if (
        app is None
        or app.platformName() in ("offscreen", "minimal")
        or napari.current_viewer() is None
    ):
        return None
    name = Path(recorded).name
    patterns = " ".join(f"*{suffix}" for suffix in SLIDE_SUFFIXES)
    dialog = QFileDialog(
        app.activeWindow(),
        f"Where is {name}, the slide of {store.name}?",
        str(store.parent),
        f"Slides ({patterns});;All files (*)",
    )
    dialog.setObjectName("razn-find-slide")
    dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    # Qt's own dialog, not the desktop's: the same on every platform, and
    # one a test can answer.
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    if not dialog.exec() or not dialog.selectedFiles():
        return None
    return Path(dialog.selectedFiles()[0]).resolve()


def check_same_slide(slide, slide_shape, store: Path) -> None:
    """Refuse a slide whose size is not the one the store was made on."""
    from razn.errors import RaznError

    if tuple(slide.shape) != tuple(slide_shape):
        (h, w), (sh, sw) = slide.shape, slide_shape
        raise RaznError(
            f"{slide.path.name} is {w} x {h} px, but the store was made on a {sw} x {sh} px "
            "slide; open the store with its own slide",
            store,
        )


def result_layers(session, store: Path) -> list[tuple]:
    """LayerData of a session's classes, zoom heatmap and zoomed tiles, in microns."""
    from napari_razn._layers import (
        CLASSES_LAYER,
        ZOOM_LAYER,
        ZOOMED_LAYER,
        class_colormap,
        placement,
        zoomed_rectangles,
    )
    from razn.classes import DEFAULT_CLASSES

    grid, mpp = session.grid, session.mpp
    units = ("um", "um") if mpp else ("pixel", "pixel")
    meta = {"razn_store": str(store)}
    classes = (
        session.labels,
        {
            "name": CLASSES_LAYER,
            "colormap": class_colormap(DEFAULT_CLASSES),
            "opacity": 0.6,
            "units": units,
            "metadata": {
                **meta,
                "razn_labels": {
                    "downsample": grid.downsample,
                    "level0_shape": list(grid.slide_shape),
                    "mpp": mpp,
                    "classes": [
                        {"value": c.value, "name": c.name, "color": list(c.color)}
                        for c in DEFAULT_CLASSES
                    ],
                    "slide": session.slide_path,
                },
            },
            **placement(grid.downsample, mpp),
        },
        "labels",
    )
    heatmap = (
        session.zoom_p,
        {
            "name": ZOOM_LAYER, "colormap": "inferno", "contrast_limits": (0.0, 1.0),
            "opacity": 0.45, "visible": False, "units": units, "metadata": meta,
            **placement(grid.tile_size, mpp),
        },
        "image",
    )  # fmt: skip
    zoomed = (
        zoomed_rectangles(session),
        {
            "name": ZOOMED_LAYER, "shape_type": "rectangle", "edge_color": "white",
            "face_color": "transparent", "edge_width": 2 * grid.downsample * (mpp or 1.0),
            "visible": False, "units": units, "metadata": meta,
        },
        "shapes",
    )  # fmt: skip
    return [classes, heatmap, zoomed]
