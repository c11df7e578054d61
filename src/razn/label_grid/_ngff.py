"""The label grid as an OME-NGFF 0.5 label image, and the segmentation store's layout.

A segmentation store (`<slide>.razn.zarr`, written by `razn.inference.store`)
is a zarr v3 group laid out as OME-NGFF 0.5, so ome-zarr-py,
napari-ome-zarr and vizarr read it:

- the root is an NGFF image: the policy's zoom probability per tile
  (`zoom_p`, float32, NaN for glass and tiles not done), scaled to microns;
- `labels/classes` is an NGFF label image: the label grid (0 not yet
  segmented or glass, 1-4 the classes) as a pyramid `0, 1, ...` of
  nearest-neighbour halvings, `image-label.colors` and `properties` from
  the class table;
- `labels/zoomed` is an NGFF label image on the tile grid: 1 where the
  policy zoomed in;
- `razn/` holds RAZN's bookkeeping (its attributes: format, model and its
  hash, threshold, mpp and its source, code version; its arrays `done`,
  `tissue`, `corrected` and `predictions`).

NGFF 0.5 and not 0.4: 0.5 is the version for zarr v3, which the project
pins (tifffile's zarr store needs it), and ome-zarr-py reads it.
Coordinates follow napari's placement of RAZN layers: scale
``d * mpp`` and translation ``(d - 1) / 2 * mpp`` for a grid at
downsample ``d``, so a viewer lines the store up with the slide's level 0.
"""

from __future__ import annotations

import numpy as np

NGFF_VERSION = "0.5"
#: Format of the `razn/` group's attributes; 1 was the flat pre-NGFF store.
STORE_FORMAT = "razn-segmentation/2"
LEGACY_FORMAT = "razn-segmentation/1"
CLASSES_PATH = "labels/classes"
ZOOMED_PATH = "labels/zoomed"
ZOOM_P_PATH = "zoom_p"
#: A pyramid stops once its smallest level fits in this many pixels a side.
SMALLEST_SIDE = 512
MAX_LEVELS = 6
#: Colour of a zoomed tile in `labels/zoomed` (the panel's outline colour).
ZOOMED_RGBA = [0, 229, 255, 160]


def pyramid_shapes(shape: tuple[int, int]) -> list[tuple[int, int]]:
    """Shapes of a label pyramid's levels: each half the previous, rounded up."""
    shapes = [tuple(int(n) for n in shape)]
    while max(shapes[-1]) > SMALLEST_SIDE and len(shapes) < MAX_LEVELS:
        shapes.append(tuple(-(-n // 2) for n in shapes[-1]))
    return shapes


def _axes(mpp: float | None) -> list[dict]:
    unit = {"unit": "micrometer"} if mpp else {}
    return [{"name": "y", "type": "space", **unit}, {"name": "x", "type": "space", **unit}]


def _transforms(downsample: float, mpp: float | None) -> list[dict]:
    um = mpp or 1.0  # without an mpp, level-0 pixels
    return [
        {"type": "scale", "scale": [downsample * um] * 2},
        {"type": "translation", "translation": [(downsample - 1) / 2 * um] * 2},
    ]


def multiscales(name: str, downsamples: list[float], mpp: float | None) -> list[dict]:
    """NGFF `multiscales` for levels at these level-0 downsamples (paths "0", "1", ...)."""
    return [
        {
            "name": name,
            "axes": _axes(mpp),
            "datasets": [
                {"path": str(i), "coordinateTransformations": _transforms(d, mpp)}
                for i, d in enumerate(downsamples)
            ],
        }
    ]


def image_label(classes, *, zoomed: bool = False) -> dict:
    """NGFF `image-label`: colours and names of the values; 0 transparent."""
    if zoomed:
        colors = [
            {"label-value": 0, "rgba": [0, 0, 0, 0]},
            {"label-value": 1, "rgba": ZOOMED_RGBA},
        ]
        names = [{"label-value": 0, "name": "not zoomed"}, {"label-value": 1, "name": "zoomed"}]
    else:
        colors = [{"label-value": 0, "rgba": [0, 0, 0, 0]}]
        colors += [{"label-value": c.value, "rgba": [*c.color, 255]} for c in classes]
        names = [{"label-value": 0, "name": "not segmented or glass"}]
        names += [{"label-value": c.value, "name": c.name} for c in classes]
    return {"colors": colors, "properties": names, "source": {"image": "../../"}}


def ome(**fields) -> dict:
    """An attribute dict with NGFF metadata under its "ome" key."""
    return {"ome": {"version": NGFF_VERSION, **fields}}


def create_layout(group, *, label_shape, tiles, downsample, tile_size, mpp, classes, chunk):
    """Create a store's NGFF arrays and groups (empty) in a new zarr v3 group."""
    group.attrs.update(ome(multiscales=_single("zoom_p", tile_size, mpp, ZOOM_P_PATH)))
    group.create_array(ZOOM_P_PATH, shape=tiles, dtype="float32", fill_value=np.nan)
    labels = group.create_group("labels")
    labels.attrs.update(ome(labels=["classes", "zoomed"]))
    shapes = pyramid_shapes(label_shape)
    image = labels.create_group("classes")
    image.attrs.update(
        ome(
            multiscales=multiscales(
                "classes", [downsample * 2**i for i in range(len(shapes))], mpp
            ),
            **{"image-label": image_label(classes)},
        )
    )
    for i, shape in enumerate(shapes):
        image.create_array(
            str(i), shape=shape, dtype="uint8", fill_value=0,
            chunks=tuple(min(chunk, n) for n in shape),
        )  # fmt: skip
    zoomed = labels.create_group("zoomed")
    zoomed.attrs.update(
        ome(
            multiscales=multiscales("zoomed", [tile_size], mpp),
            **{"image-label": image_label(classes, zoomed=True)},
        )
    )
    zoomed.create_array("0", shape=tiles, dtype="uint8", fill_value=0)


def _single(name, downsample, mpp, path):
    meta = multiscales(name, [downsample], mpp)
    meta[0]["datasets"][0]["path"] = path
    return meta


def update_pyramid(image_group, band_rows: int = 2048) -> None:
    """Rewrite levels 1.. of a label image from level 0, a band of rows at a time.

    Nearest neighbour (every other pixel), so values stay class labels.
    """
    level = 1
    while str(level) in image_group:
        source, target = image_group[str(level - 1)], image_group[str(level)]
        step = band_rows - band_rows % 2
        for r0 in range(0, source.shape[0], step):
            band = np.asarray(source[r0 : r0 + step, ::2])[::2]
            target[r0 // 2 : r0 // 2 + band.shape[0]] = band
        level += 1
