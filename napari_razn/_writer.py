"""The napari writer contribution: the RAZN classes layer as QuPath GeoJSON annotations.

The classes layer is a label grid coarser than level 0; QuPath wants
polygons in level-0 pixels. The layer's ``metadata["razn_labels"]`` says
how the two relate (downsample, mpp, class table); a Labels layer without
it (painted by hand, or from another plugin) is placed by comparing its
scale with the slide layer's. The work is `razn.annotations.export_label_grid`;
this module only finds its arguments on the layer.
"""

from __future__ import annotations

import os


def write_classes_geojson(path: str, data, attributes: dict) -> list[str]:
    """napari's single-layer writer for a Labels layer of class values.

    Parameters
    ----------
    path
        Output ``.geojson``.
    data
        The label grid (the layer's data).
    attributes
        The layer's attributes as napari passes them (``metadata``,
        ``scale``, ``name``, ...).

    Returns
    -------
    list[str]
        The path written.
    """
    slide_layer = _slide_layer_in_viewer() if "razn_labels" not in _metadata(attributes) else None
    _export(data, attributes, path, slide_layer)
    return [os.fspath(path)]


def export_layer_to_geojson(layer, path: str | os.PathLike, *, slide_layer=None) -> int:
    """Export a classes Labels layer to QuPath GeoJSON; the RAZN panel's "Export to QuPath".

    Parameters
    ----------
    layer
        napari Labels layer of class values on a label grid.
    path
        Output ``.geojson``.
    slide_layer
        The slide's Image layer, used only when ``layer`` lacks
        ``metadata["razn_labels"]``: the ratio of the two scales is then
        the downsample, and the slide's mpp gives areas.

    Returns
    -------
    int
        The number of features written.

    Raises
    ------
    ValueError
        The downsample cannot be found, or the output cannot be written;
        the message says which layer or file and why.
    """
    attributes = {"name": layer.name, "scale": tuple(layer.scale), "metadata": layer.metadata}
    return _export(layer.data, attributes, path, slide_layer)


def _export(data, attributes: dict, path, slide_layer) -> int:
    from razn.annotations import export_label_grid

    downsample, mpp, classes = _grid_facts(attributes, slide_layer)
    try:
        return export_label_grid(data, downsample, path, mpp=mpp, classes=classes)
    except OSError as error:
        raise ValueError(f"{path}: cannot write ({error.strerror or error})") from None


def _grid_facts(attributes: dict, slide_layer):
    """(downsample, mpp, class table) of a classes layer, from its metadata or the slide."""
    from razn.annotations import class_table, downsample_from_scales

    name = attributes.get("name", "the layer")
    facts = _metadata(attributes).get("razn_labels")
    if facts is not None:
        try:
            downsample = int(facts["downsample"])
            mpp = facts.get("mpp")
            classes = class_table(facts.get("classes"))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"layer {name!r}: metadata['razn_labels'] is incomplete ({error!r})"
            ) from None
        return downsample, (float(mpp) if mpp else None), classes
    if slide_layer is None:
        raise ValueError(
            f"layer {name!r} has no RAZN label-grid metadata and no slide is open to "
            "compare its scale with, so its level-0 downsample is unknown; open the "
            "slide, or export the RAZN classes layer"
        )
    slide_facts = getattr(slide_layer, "metadata", {}).get("razn_slide", {})
    try:
        downsample = downsample_from_scales(
            float(attributes["scale"][-1]), float(slide_layer.scale[-1])
        )
    except ValueError as error:
        raise ValueError(f"layer {name!r}: {error}") from None
    return downsample, slide_facts.get("mpp"), class_table(None)


def _slide_layer_in_viewer():
    """The one RAZN slide layer of the current viewer, if there is exactly one.

    npe2 writers are not given the viewer; the current one is where the
    layer being saved lives.
    """
    import napari

    viewer = napari.current_viewer()
    if viewer is None:
        return None
    slides = [layer for layer in viewer.layers if "razn_slide" in layer.metadata]
    return slides[0] if len(slides) == 1 else None


def _metadata(attributes: dict) -> dict:
    return attributes.get("metadata") or {}
