"""`razn convert ANNOTATIONS --slide SLIDE -o OUT`: between annotation formats.

Reads QuPath GeoJSON, ImageScope XML or ASAP XML (detected by content) and
writes QuPath GeoJSON (``.geojson``/``.json``) or a label-grid TIFF
(``.tif``/``.tiff``) at ``--downsample``. Regions whose class text matches
no class are listed and left out; ``--class-map TEXT=CLASS`` maps them. If
no region has a class, nothing is written.
"""

from __future__ import annotations

import sys
from pathlib import Path

HELP = "Convert GeoJSON / ImageScope / ASAP annotations to QuPath GeoJSON or a label grid."

_GEOJSON = {".geojson", ".json"}
_TIFF = {".tif", ".tiff"}


def add_arguments(parser) -> None:
    parser.add_argument("annotations", help="QuPath GeoJSON, ImageScope XML or ASAP XML")
    parser.add_argument("--slide", required=True, help="the slide the annotations belong to")
    parser.add_argument("-o", "--output", required=True, help="output .geojson or .tif")
    parser.add_argument(
        "--class-map",
        action="append",
        default=[],
        metavar="TEXT=CLASS",
        help="map a class text of the file to a class name or value (repeatable; "
        "TEXT may be empty for regions without a class)",
    )
    parser.add_argument(
        "--downsample",
        type=int,
        default=8,
        help="label-grid downsample relative to level 0 (TIFF output; default 8)",
    )
    parser.add_argument(
        "--fill",
        default="0",
        metavar="CLASS",
        help="class of pixels no region covers (TIFF output; default 0, not segmented; "
        "BACH ground truth uses Normal)",
    )
    parser.add_argument(
        "--per-class",
        action="store_true",
        help="GeoJSON: one MultiPolygon feature per class instead of one per region",
    )
    parser.add_argument("--mpp", type=float, help="microns per pixel, if the slide lacks it")


def run(args) -> int:
    from razn.annotations import ClassMatcher, rasterize, read_annotations, write_geojson
    from razn.classes import DEFAULT_CLASSES
    from razn.cli.export import check_output_folder, slide_facts
    from razn.errors import AnnotationError, RaznError
    from razn.label_tiff import write_label_grid

    suffix = Path(args.output).suffix.lower()
    if suffix not in _GEOJSON | _TIFF:
        raise RaznError(
            f"cannot write {suffix or 'files without a suffix'}: the output must be .geojson "
            "(QuPath) or .tif (label grid); QuPath does not read ImageScope or ASAP XML",
            args.output,
        )
    class_map = _parse_class_map(args.class_map)
    level0_shape, mpp = slide_facts(args.slide, args.mpp)
    check_output_folder(args.output)
    annotations = read_annotations(args.annotations, class_map=class_map)
    report = annotations.report
    for line in report.summary(len(annotations.annotations)):
        print(f"  {line}", file=sys.stderr)
    for line in _match_lines(annotations.class_matches(), DEFAULT_CLASSES):
        print(f"  {line}", file=sys.stderr)
    if report.mpp and mpp and abs(report.mpp / mpp - 1) > 0.01:
        print(
            f"note: the file states {report.mpp:g} um/px, the slide {mpp:g} um/px",
            file=sys.stderr,
        )
    shapes = annotations.shapes
    if not shapes:
        raise AnnotationError(
            "no region has a class, nothing written; map the class texts listed above "
            "with --class-map TEXT=CLASS",
            args.annotations,
        )
    _note_outside(shapes, level0_shape)
    if suffix in _GEOJSON:
        count = write_geojson(
            args.output,
            annotations.geometries_by_class(),
            mpp=mpp or report.mpp,
            per_region=not args.per_class,
        )
        print(f"wrote {count} feature(s) to {args.output}")
        return 0
    if args.downsample < 1:
        raise RaznError("--downsample must be a positive integer")
    fill = ClassMatcher(DEFAULT_CLASSES).value_of(args.fill, "--fill") if args.fill != "0" else 0
    height, width = (-(-n // args.downsample) for n in level0_shape)
    labels = rasterize(shapes, (height, width), args.downsample, fill=fill)
    write_label_grid(args.output, labels, args.downsample, mpp=mpp, level0_shape=level0_shape)
    print(f"wrote a {width}x{height} label grid (downsample {args.downsample}) to {args.output}")
    return 0


def _match_lines(matches, classes) -> list[str]:
    """One line per class text that became a class (the unmatched ones are in the summary)."""
    names = {c.value: c.name for c in classes}
    return [
        f"class {repr(m.text) if m.text else '(no class)'} -> {names.get(m.value, m.value)}: "
        f"{m.regions} region(s)"
        for m in matches
        if m.value is not None
    ]


def _parse_class_map(items: list[str]) -> dict[str, str]:
    from razn.errors import RaznError

    table = {}
    for item in items:
        text, sep, target = item.rpartition("=")
        if not sep or not target.strip():
            raise RaznError(f"--class-map {item!r}: expected TEXT=CLASS")
        table[text.strip()] = target.strip()
    return table


def _note_outside(shapes, level0_shape) -> None:
    height, width = level0_shape
    outside = 0
    for _, geometry in shapes:
        x0, y0, x1, y1 = geometry.bounds
        outside += x0 < 0 or y0 < 0 or x1 > width or y1 > height
    if outside:
        print(
            f"note: {outside} region(s) reach beyond the {width}x{height} slide; "
            "are these the slide's annotations?",
            file=sys.stderr,
        )
