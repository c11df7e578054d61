"""`razn info SLIDE`: what a slide file holds, for people and for scripts."""

from __future__ import annotations

import json
import sys

HELP = "Show a slide's format, pyramid levels, pixel size and tissue fraction."


def add_arguments(parser) -> None:
    from razn.cli._arguments import add_mpp

    parser.add_argument("slide", help="slide file (SVS, TIFF, OME-TIFF, NDPI, SCN, PNG, JPEG)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_mpp(parser, "microns per pixel, if the file lacks it")
    parser.add_argument("--overview", metavar="PNG", help="also write an overview picture")


def format_facts(facts: dict) -> str:
    h, w = facts["levels"][0]["shape"]
    lines = [
        f"{facts['path']}",
        f"  format          {facts['format']}",
        f"  size            {w} x {h} pixels (level 0)",
    ]
    if facts["mpp"]:
        lines.append(f"  mpp             {facts['mpp']:.4f} um/px ({facts['mpp_source']})")
        lines.append(
            f"  physical size   {w * facts['mpp'] / 1000:.2f} x {h * facts['mpp'] / 1000:.2f} mm"
        )
    else:
        lines.append("  mpp             unknown: the file does not record it (pass --mpp)")
    mag = facts["magnification"]
    lines.append(f"  magnification   {f'{mag:g}x' if mag else 'unknown'}")
    tile = facts["tile_size"]
    lines.append(
        f"  tiles           {f'{tile[1]} x {tile[0]}' if tile else 'none (strips or image)'}"
    )
    lines.append(f"  compression     {facts['compression']}")
    lines.append(f"  tissue          {facts['tissue_fraction']:.1%} of the slide")
    lines.append("  levels")
    for i, level in enumerate(facts["levels"]):
        lh, lw = level["shape"]
        note = "" if level["stored"] else "  (derived on demand)"
        lines.append(f"    {i}  {lw:>7} x {lh:<7} downsample {level['downsample']:g}{note}")
    return "\n".join(lines)


def run(args) -> int:
    from razn.slide import open_slide

    if args.overview:
        from pathlib import Path

        from razn.atomic import writable_folder

        writable_folder(Path(args.overview).parent)
    with open_slide(args.slide, mpp=args.mpp) as slide:
        facts = slide.facts()
        if args.overview:
            from razn.overview import write_overview

            write_overview(slide, args.overview)
            facts["overview"] = args.overview
    if facts["mpp"] is None and args.json:
        print(
            f"razn info: note: {args.slide} records no pixel size (mpp); pass --mpp",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(facts))
    else:
        print(format_facts(facts))
        if args.overview:
            print(f"  overview        {args.overview}")
    return 0
