"""The napari reader contribution for annotation files: QuPath GeoJSON, ImageScope and ASAP XML.

napari readers do not see the viewer, so the layers are placed by what the
file and its surroundings say: a slide file beside it with the same base
name (``A01.xml`` and ``A01.svs``) gives the level-0 size and the mpp, else
the file's own mpp (ImageScope) and the regions' extent. Regions whose
class matches the class table become a Labels layer on a label grid, placed
like the RAZN classes layer (scale ``d * mpp``, translate ``(d - 1) / 2 *
mpp``), so it can be painted and exported again; regions without a class
(most ImageScope and ASAP files outline regions without saying what they
are) become a Shapes layer of their outlines in level-0 pixels, scaled like
the slide. ``.json`` and ``.xml`` are generic extensions, so those files are
claimed only when their first bytes look like annotations.
"""

from __future__ import annotations

import os

import numpy as np

#: Extensions the manifest routes here; .geojson is claimed without a peek.
ANNOTATION_SUFFIXES = (".geojson", ".json", ".xml")


def get_reader(path):
    """napari's `get_reader` hook: a reader for annotation files, else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    name = str(path).lower()
    if not name.endswith(ANNOTATION_SUFFIXES):
        return None
    if name.endswith(".geojson"):
        # The extension says what it is: a broken one should say why it is
        # broken rather than fall through to another reader.
        return read_annotation_layers
    from razn.annotations import annotation_format

    return read_annotation_layers if annotation_format(path) else None


def read_annotation_layers(path) -> list[tuple]:
    """napari LayerData for an annotation file: a Labels layer, a Shapes layer, or both.

    Raises
    ------
    ValueError
        The file is missing, malformed or holds no regions; the message
        names the file (napari shows it as a notification).
    """
    from razn.errors import RaznError

    if isinstance(path, list):
        path = path[0]
    try:
        return annotation_layer_data(path)
    except RaznError as error:
        # The core's message already names the file and the problem; the
        # traceback through the parser would only hide it.
        raise ValueError(str(error)) from None


def annotation_layer_data(path) -> list[tuple]:
    """The layers of `read_annotation_layers`, raising the core's `RaznError`."""
    from razn.annotations import annotation_label_grid, companion_slide, read_annotations
    from razn.errors import AnnotationError

    annotations = read_annotations(path)
    report = annotations.report
    summary = report.summary(len(annotations.annotations))
    if not annotations.annotations:
        raise AnnotationError("no regions to show: " + "; ".join(summary), path)
    level0_shape, mpp = _slide_facts(companion_slide(path))
    mpp = mpp or report.mpp
    name = os.path.basename(path)
    layers = []
    if annotations.shapes:
        grid = annotation_label_grid(annotations, level0_shape=level0_shape, mpp=mpp)
        layers.append(_labels_layer_data(grid, name, path, summary))
    if annotations.unclassified:
        shapes_name = f"{name} (no class)" if layers else name
        layers.append(_shapes_layer_data(annotations.unclassified, shapes_name, mpp, summary))
    return layers


def _slide_facts(slide_path) -> tuple[tuple[int, int] | None, float | None]:
    """Level-0 (height, width) and mpp of the companion slide, if it opens."""
    from razn.errors import SlideError
    from razn.slide import open_slide

    if slide_path is None:
        return None, None
    try:
        with open_slide(slide_path) as slide:
            return tuple(slide.dimensions), slide.mpp
    except SlideError:
        # A broken file beside the annotations is not the annotations'
        # fault: place them by their own extent instead.
        return None, None


def _labels_layer_data(grid, name: str, path, summary: list[str]) -> tuple:
    import pandas as pd

    from napari_razn._layers import class_colormap, placement

    names = {c.value: c.name for c in grid.classes}
    top = max(names, default=0)
    # napari's Labels features: row i describes label value i.
    features = pd.DataFrame(
        {"class": ["not segmented"] + [names.get(v, "") for v in range(1, top + 1)]}
    )
    metadata = {
        "razn_labels": {
            "downsample": grid.downsample,
            "level0_shape": list(grid.level0_shape),
            "mpp": grid.mpp,
            "classes": [
                {"value": c.value, "name": c.name, "color": list(c.color)} for c in grid.classes
            ],
            "source": os.fspath(path),
        },
        "razn_import": summary,
    }
    kwargs = {
        "name": name,
        "colormap": class_colormap(grid.classes),
        "opacity": 0.6,
        "features": features,
        "metadata": metadata,
        "units": _units(grid.mpp),
        **placement(grid.downsample, grid.mpp),
    }
    return (grid.labels, kwargs, "labels")


def _shapes_layer_data(annotations, name: str, mpp: float | None, summary: list[str]) -> tuple:
    from razn.annotations import polygonal_parts

    outlines, classes, holes = [], [], []
    for annotation in annotations:
        for polygon in polygonal_parts(annotation.geometry):
            # napari polygons have no holes; with transparent faces, drawing
            # each hole as its own outline shows the region as drawn.
            rings = [(polygon.exterior, False), *((r, True) for r in polygon.interiors)]
            for ring, is_hole in rings:
                xy = np.asarray(ring.coords)[:-1, :2]  # napari closes rings itself
                outlines.append(xy[:, ::-1])  # (x, y) -> napari's (row, col)
                classes.append(annotation.source_class)
                holes.append(is_hole)
    um = mpp or 1.0
    extent = max((float(np.ptp(o, axis=0).max()) for o in outlines), default=1.0)
    kwargs = {
        "name": name,
        "shape_type": "polygon",
        "scale": (um, um),
        # Level-0 vertices sit on pixel corners; napari puts a slide pixel's
        # centre at its integer coordinate, so corners are half a pixel off.
        "translate": (-0.5 * um, -0.5 * um),
        "units": _units(mpp),
        "edge_color": "yellow",
        "face_color": "transparent",
        # In data units (level-0 pixels): thin enough for detail, thick
        # enough to see when the whole region is in view.
        "edge_width": max(2.0, extent / 300),
        "features": {"class": classes, "hole": holes},
        "metadata": {"razn_import": summary},
    }
    return (outlines, kwargs, "shapes")


def _units(mpp: float | None) -> tuple[str, str]:
    return ("um", "um") if mpp else ("pixel", "pixel")
