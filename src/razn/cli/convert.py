"""`razn convert ANNOTATIONS --slide SLIDE -o OUT`: between annotation formats.

Reads QuPath GeoJSON, ImageScope XML or ASAP XML (detected by content) and
writes QuPath GeoJSON (``.geojson``/``.json``) or a label-grid TIFF
(``.tif``/``.tiff``) at ``--downsample``. Regions whose class text matches
no class are listed and left out; ``--class-map TEXT=CLASS`` maps them.
Regions without any class (ImageScope ``Text=""``, QuPath features with no
classification) go into a GeoJSON output as unclassified QuPath annotations,
with a note; a label grid needs ``--class-map '=CLASS'`` for them. A file
without polygons, or whose regions all lie outside the slide, is refused
and nothing is written.
"""

from __future__ import annotations

import sys
from pathlib import Path

HELP = "Convert GeoJSON / ImageScope / ASAP annotations to QuPath GeoJSON or a label grid."

_GEOJSON = {".geojson", ".json"}
_TIFF = {".tif", ".tiff"}


def add_arguments(parser) -> None:
    from razn.cli._arguments import add_annotation_output

    parser.add_argument("annotations", help="QuPath GeoJSON, ImageScope XML or ASAP XML")
    add_annotation_output(parser, output_help="output .geojson or .tif")
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


def run(args) -> int:
    from razn.annotations import ClassMatcher, rasterize, read_annotations, write_geojson
    from razn.atomic import writable_folder
    from razn.classes import DEFAULT_CLASSES
    from razn.cli.export import slide_facts
    from razn.errors import RaznError
    from razn.label_tiff import write_label_grid

    suffix = Path(args.output).suffix.lower()
    if suffix not in _GEOJSON | _TIFF:
        raise RaznError(
            f"cannot write {suffix or 'files without a suffix'}: the output must be .geojson "
            "(QuPath) or .tif (label grid); QuPath does not read ImageScope or ASAP XML",
            args.output,
        )
    if suffix in _TIFF and args.downsample < 1:
        raise RaznError("--downsample must be a positive integer")
    class_map = _parse_class_map(args.class_map)
    level0_shape, mpp = slide_facts(args.slide, args.mpp)
    writable_folder(Path(args.output).parent)
    annotations = read_annotations(args.annotations, class_map=class_map)
    report = annotations.report
    # Keep regions without any class for a GeoJSON output, as QuPath's own
    # unclassified annotations; a label grid has no value for them.
    keep_unclassified = suffix in _GEOJSON and "" not in class_map
    unclassified = [a.geometry for a in annotations.without_class] if keep_unclassified else []
    shapes = annotations.shapes
    # Every refusal comes before the summary, so it is the one line printed.
    _refuse_nothing_to_write(annotations, shapes, unclassified, suffix, args.annotations)
    _refuse_all_outside([g for _, g in shapes] + unclassified, level0_shape, args.annotations)
    # What was read and how it matched is printed once the output is written,
    # so a failed write (a full disk) prints its one error line alone.
    notes = [f"  {line}" for line in report.summary(len(annotations.annotations))]
    notes += [f"  {line}" for line in _match_lines(annotations.class_matches(), DEFAULT_CLASSES)]
    if report.mpp and mpp and abs(report.mpp / mpp - 1) > 0.01:
        notes.append(f"note: the file states {report.mpp:g} um/px, the slide {mpp:g} um/px")
    notes += _note_outside([g for _, g in shapes] + unclassified, level0_shape)
    if suffix in _GEOJSON:
        if unclassified:
            notes.append(
                f"note: {len(unclassified)} region(s) without a class are written as "
                "unclassified QuPath annotations (give them a class with "
                "--class-map '=CLASS', e.g. --class-map '=Invasive carcinoma')"
            )
        count = write_geojson(
            args.output,
            annotations.geometries_by_class(),
            mpp=mpp or report.mpp,
            per_region=not args.per_class,
            unclassified=unclassified,
        )
        done = f"wrote {count} feature(s) to {args.output}"
    else:
        fill = (
            ClassMatcher(DEFAULT_CLASSES).value_of(args.fill, "--fill") if args.fill != "0" else 0
        )
        height, width = (-(-n // args.downsample) for n in level0_shape)
        labels = rasterize(shapes, (height, width), args.downsample, fill=fill)
        write_label_grid(args.output, labels, args.downsample, mpp=mpp, level0_shape=level0_shape)
        done = (
            f"wrote a {width}x{height} label grid (downsample {args.downsample}) to {args.output}"
        )
    if notes:
        print("\n".join(notes), file=sys.stderr)
    print(done)
    return 0


def _refuse_nothing_to_write(annotations, shapes, unclassified, suffix, path) -> None:
    """One line saying why nothing would be written, and the flag that fixes it."""
    from razn.annotations.model import shown
    from razn.errors import AnnotationError

    report = annotations.report
    if not annotations.annotations:
        skipped = ", ".join(f"{n} {kind}" for kind, n in sorted(report.skipped.items()))
        raise AnnotationError(
            "no polygon regions, nothing written"
            + (
                f" (skipped: {skipped}; RAZN converts areas, not points or lines)"
                if skipped
                else ""
            ),
            path,
        )
    if shapes or unclassified:
        return
    texts = sorted(report.unmatched)
    if texts == [""]:
        count = report.unmatched[""]
        hint = (
            f"{count} region(s) have no class; give them one with --class-map '=CLASS', "
            "e.g. --class-map '=Invasive carcinoma'"
        )
        if suffix in _TIFF:
            hint += " (a label grid needs a class for every region)"
    else:
        named = ", ".join(shown(t, 30) if t else "(no class)" for t in texts[:5])
        more = f" and {len(texts) - 5} more" if len(texts) > 5 else ""
        example = texts[0] or texts[-1]
        hint = (
            f"no region's class matches a class: {named}{more}; map them with "
            f"--class-map TEXT=CLASS, e.g. --class-map '{example[:30]}=Invasive carcinoma'"
            + (" or --class-map '=CLASS' for regions without one" if "" in texts else "")
        )
    raise AnnotationError(hint + "; nothing written", path)


def _refuse_all_outside(geometries, level0_shape, path) -> None:
    import shapely

    from razn.errors import AnnotationError

    height, width = level0_shape
    slide_box = shapely.box(0, 0, width, height)
    if geometries and not any(g.intersects(slide_box) for g in geometries):
        x0, y0, x1, y1 = shapely.union_all(geometries).bounds
        raise AnnotationError(
            f"every region lies outside the {width}x{height} slide (they span x {x0:g}-{x1:g}, "
            f"y {y0:g}-{y1:g}): are these this slide's annotations? Nothing written",
            path,
        )


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


def _note_outside(geometries, level0_shape) -> list[str]:
    height, width = level0_shape
    outside = 0
    for geometry in geometries:
        x0, y0, x1, y1 = geometry.bounds
        outside += x0 < 0 or y0 < 0 or x1 > width or y1 > height
    if not outside:
        return []
    return [
        f"note: {outside} region(s) reach beyond the {width}x{height} slide; "
        "are these the slide's annotations?"
    ]
