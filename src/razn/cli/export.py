"""`razn export LABELS --slide SLIDE -o OUT.geojson`: a label grid as QuPath annotations.

LABELS is a segmentation store (`<slide>.razn.zarr` from `razn segment` or
the napari panel: the labels it shows, corrections included), a label-grid
TIFF (`razn.label_grid`) or a zarr array. The slide
supplies the level-0 size the grid must cover, so a grid made for another
slide is refused rather than exported misaligned, and the mpp that turns
``--min-area`` into label pixels and areas into um^2 for QuPath. The grid
is read and traced a band of rows at a time (`razn.annotations.export.export_geojson`,
the export `razn segment` and the panel use too).
"""

from __future__ import annotations

import sys
from pathlib import Path

HELP = "Write a segmentation store or label grid (TIFF, zarr) as QuPath GeoJSON annotations."


def add_arguments(parser) -> None:
    from razn.cli._arguments import add_annotation_output

    parser.add_argument(
        "labels", help="segmentation store (.razn.zarr), label-grid TIFF or zarr array"
    )
    add_annotation_output(parser, output_help="output .geojson")
    parser.add_argument(
        "--simplify",
        type=float,
        default=0.3,
        metavar="PX",
        help="outline tolerance in label pixels (default 0.3, under the 0.35 at which "
        "a pixel could change class; 0 keeps every vertex)",
    )
    parser.add_argument(
        "--min-area",
        type=float,
        default=0.0,
        metavar="UM2",
        help="drop regions and fill holes smaller than this many um^2 (needs the mpp)",
    )
    parser.add_argument(
        "--classes",
        metavar="NAMES",
        help="comma-separated class names or values to export (default: all but 0)",
    )
    parser.add_argument(
        "--downsample", type=int, help="downsample of a zarr grid that does not record it"
    )


def run(args) -> int:
    from razn.annotations.export import export_geojson
    from razn.atomic import writable_folder
    from razn.errors import RaznError
    from razn.label_grid import read_label_grid

    level0_shape, mpp = slide_facts(args.slide, args.mpp)
    writable_folder(Path(args.output).parent)
    grid = read_label_grid(
        args.labels, lazy=True, downsample=args.downsample, level0_shape=level0_shape
    )
    if tuple(grid.level0_shape) != tuple(level0_shape):
        raise RaznError(
            f"label grid covers a {_size(grid.level0_shape)} level 0, "
            f"but {args.slide} is {_size(level0_shape)}: not this slide's labels",
            args.labels,
        )
    mpp = mpp or grid.mpp
    if args.min_area and not mpp:
        raise RaznError("--min-area is in um^2 but the slide has no pixel size; pass --mpp")
    label_pixel_um2 = (mpp * grid.downsample) ** 2 if mpp else 1.0
    values = _class_values(args.classes, grid.classes)
    if values is None:  # every class of the table
        values = [c.value for c in grid.classes if c.value != 0]
    count, regions = export_geojson(
        grid.labels, grid.downsample, args.output, mpp=mpp, classes=grid.classes, values=values,
        simplify=args.simplify, min_area=args.min_area / label_pixel_um2,
        per_region=not args.per_class,
    )  # fmt: skip
    names = {c.value: c.name for c in grid.classes}
    for value, geometry in sorted(regions.items()):
        print(f"  {names.get(value, value)}: {len(geometry.geoms)} region(s)")
    print(f"wrote {count} feature(s) to {args.output}")
    return 0


def slide_facts(slide_path: str, mpp: float | None) -> tuple[tuple[int, int], float | None]:
    """Level-0 (height, width) and mpp of a slide, closing it straight away."""
    from razn.slide import open_slide

    with open_slide(slide_path, mpp=mpp) as slide:
        if slide.mpp is None:
            print(f"note: {slide_path} records no pixel size (mpp); pass --mpp", file=sys.stderr)
        return tuple(slide.shape), slide.mpp


def _class_values(text: str | None, classes) -> list[int] | None:
    from razn.errors import RaznError

    if not text:
        return None
    by_name = {c.name.lower(): c.value for c in classes}
    values = []
    for item in (t.strip() for t in text.split(",")):
        if item.isdigit() and int(item) in by_name.values():
            values.append(int(item))
        elif item.lower() in by_name:
            values.append(by_name[item.lower()])
        else:
            known = ", ".join(c.name for c in classes)
            raise RaznError(f"--classes: {item!r} is not a class (one of {known})")
    return values


def _size(shape) -> str:
    return f"{shape[1]}x{shape[0]}"
