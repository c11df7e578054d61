"""The napari reader contribution for annotation files: QuPath GeoJSON, ImageScope and ASAP XML.

With a slide open in napari, the layers are placed on it, as QuPath's
"Import objects" does: its level-0 size and its mpp, whatever mpp the file
states (the report says so). With none, they are placed by what the file
and its surroundings say: a slide file beside it with the same base name
(``A01.xml`` and ``A01.svs``) gives the level-0 size and the mpp, else the
file's own mpp (ImageScope) and the regions' extent. Regions whose
class matches the class table become a Labels layer on a label grid, placed
like the RAZN classes layer (scale ``d * mpp``, translate ``(d - 1) / 2 *
mpp``), so it can be painted and exported again; regions without a class
(most ImageScope and ASAP files outline regions without saying what they
are) become a Shapes layer of their outlines in level-0 pixels, scaled like
the slide. ``.json`` and ``.xml`` are generic extensions, so those files are
claimed only when their first bytes look like annotations.

After reading, the user is told what happened (a napari notification, a
warning when anything was left out): how many regions were read, which class
text of the file became which RAZN class, and what was skipped and why. The
same report is kept in each layer's ``metadata["import_report"]``.
"""

from __future__ import annotations

import os

import numpy as np

#: Extensions the manifest routes here; .geojson is claimed without a peek.
ANNOTATION_SUFFIXES = (".geojson", ".json", ".xml")
#: `ImportReport.format` as the user knows the format.
FORMAT_NAMES = {"geojson": "QuPath GeoJSON", "imagescope": "ImageScope XML", "asap": "ASAP XML"}


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
        layers = annotation_layer_data(path)
    except RaznError as error:
        # The core's message already names the file and the problem; the
        # traceback through the parser would only hide it.
        raise ValueError(str(error)) from None
    _notify(layers[0][1]["metadata"]["import_report"])
    return layers


def annotation_layer_data(path) -> list[tuple]:
    """The layers of `read_annotation_layers`, raising the core's `RaznError`."""
    from razn.annotations import annotation_label_grid, companion_slide, read_annotations
    from razn.errors import AnnotationError

    annotations = read_annotations(path)
    report = annotations.report
    if not annotations.annotations:
        summary = report.summary(len(annotations.annotations))
        raise AnnotationError("no regions to show: " + "; ".join(summary), path)
    open_slide = _slide_in_viewer()
    if open_slide is not None:
        # As QuPath's "Import objects": the regions go on the slide open in
        # the viewer, in its level-0 pixels and at its mpp, whatever mpp the
        # file states (ImageScope often writes 0 or a guess), so they line
        # up with it and share its units.
        placed_on, level0_shape, mpp = open_slide
    else:
        placed_on = None
        level0_shape, mpp = _slide_facts(companion_slide(path))
        mpp = mpp or report.mpp
    name = os.path.basename(path)
    labels_name = name if annotations.shapes else None
    shapes_name = None
    if annotations.unclassified:
        shapes_name = f"{name} (no class)" if labels_name else name
    imported = import_report(annotations, path, labels_name, shapes_name)
    imported["placed_on"] = placed_on
    if placed_on is not None:
        at = f"{mpp:g} um/px" if mpp else "no mpp: in pixels"
        imported["lines"].append(f"placed on the open slide {placed_on!r} ({at})")
    layers = []
    if annotations.shapes:
        grid = annotation_label_grid(annotations, level0_shape=level0_shape, mpp=mpp)
        layers.append(_labels_layer_data(grid, name, path, imported))
    if annotations.unclassified:
        layers.append(_shapes_layer_data(annotations.unclassified, shapes_name, mpp, imported))
    return layers


def import_report(annotations, path, labels_layer: str | None, shapes_layer: str | None) -> dict:
    """What the import did, as plain data (layer metadata) with its lines for the user.

    ``classes`` lists each class text of the file (``""``: regions without
    one) with the RAZN class it became, or None when it matched none; those
    regions are shown as outlines in the shapes layer, not as classes.
    ``skipped`` counts the objects left out, by kind, with the reason.
    """
    from razn.classes import DEFAULT_CLASSES

    report = annotations.report
    names = {c.value: c.name for c in DEFAULT_CLASSES}  # the table read_annotations used
    imported = {
        "file": os.fspath(path),
        "format": report.format,
        "regions": len(annotations.annotations),
        "classes": [
            {
                "source": m.text,
                "razn_class": names.get(m.value),
                "value": m.value,
                "regions": m.regions,
            }
            for m in annotations.class_matches()
        ],
        "skipped": {
            kind: {"objects": n, "reason": report.skip_reason(kind)}
            for kind, n in sorted(report.skipped.items())
        },
        "repaired": report.repaired,
        "file_mpp": report.mpp,
        "layers": {"labels": labels_layer, "shapes": shapes_layer},
    }
    imported["lines"] = _report_lines(imported)
    return imported


def _report_lines(imported: dict) -> list[str]:
    fmt = FORMAT_NAMES.get(imported["format"], imported["format"])
    name = os.path.basename(imported["file"])
    lines = [f"{imported['regions']} region(s) read from {name} ({fmt})"]
    outlines = f"shown as outlines in {imported['layers']['shapes']!r}, not as classes"
    for row in imported["classes"]:
        text, n = row["source"], row["regions"]
        if row["razn_class"] is not None:
            lines.append(f"{text!r} -> {row['razn_class']}: {n} region(s)")
        elif text:
            lines.append(f"{text!r} matches no RAZN class: {n} region(s) {outlines}")
        else:
            lines.append(f"{n} region(s) without a class: {outlines}")
    for kind, skip in imported["skipped"].items():
        lines.append(f"skipped {skip['objects']} {kind} object(s): {skip['reason']}")
    if imported["repaired"]:
        lines.append(f"repaired {imported['repaired']} self-intersecting polygon(s)")
    if imported["file_mpp"]:
        lines.append(f"the file states {imported['file_mpp']:g} microns per pixel")
    return lines


def _notify(report: dict) -> None:
    """Tell the user what the import did: a warning if anything was left out of the classes."""
    from napari.utils.notifications import show_info, show_warning

    left_out = report["skipped"] or any(c["razn_class"] is None for c in report["classes"])
    message = "RAZN: " + "; ".join(report["lines"])
    (show_warning if left_out else show_info)(message)


def _slide_in_viewer() -> tuple[str, tuple[int, int], float | None] | None:
    """(name, level-0 (height, width), mpp) of the slide open in napari, if one is.

    The active layer if it is a slide, else the slide opened last.
    """
    try:
        from napari import current_viewer

        viewer = current_viewer()
    except Exception:  # no Qt, no viewer: place by the file alone
        return None
    if viewer is None:
        return None
    slides = [layer for layer in viewer.layers if "razn_slide" in layer.metadata]
    if not slides:
        return None
    active = viewer.layers.selection.active
    names = [layer.name for layer in slides]
    layer = (
        slides[names.index(active.name)]
        if active is not None and active.name in names
        else slides[-1]
    )
    facts = layer.metadata["razn_slide"]
    return layer.name, tuple(facts["levels"][0]["shape"]), facts.get("mpp")


def _slide_facts(slide_path) -> tuple[tuple[int, int] | None, float | None]:
    """Level-0 (height, width) and mpp of the companion slide, if it opens."""
    from razn.errors import SlideError
    from razn.slide import open_slide

    if slide_path is None:
        return None, None
    try:
        with open_slide(slide_path) as slide:
            return tuple(slide.shape), slide.mpp
    except SlideError:
        # A broken file beside the annotations is not the annotations'
        # fault: place them by their own extent instead.
        return None, None


def _labels_layer_data(grid, name: str, path, imported: dict) -> tuple:
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
        "import_report": imported,
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


def _shapes_layer_data(annotations, name: str, mpp: float | None, imported: dict) -> tuple:
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
        "metadata": {"import_report": imported},
    }
    return (outlines, kwargs, "shapes")


def _units(mpp: float | None) -> tuple[str, str]:
    return ("um", "um") if mpp else ("pixel", "pixel")
