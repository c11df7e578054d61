"""Argument blocks shared by several commands, defined once.

`--mpp` (every command that opens a slide, range-checked), the labelled-slide
block of `train` and `evaluate`, the annotation-output block of `convert` and
`export`, and `--seed` / `--quiet` of `synth`, `train` and `evaluate`. Nothing
heavy is imported here: `razn --help` builds every parser.
"""

from __future__ import annotations

import argparse


def mpp_value(text: str) -> float:
    """An argparse type: microns per pixel within what any scanner or camera gives.

    A typo such as `--mpp 1000` would otherwise tile a slide into millions
    of one-pixel tiles and run for days.
    """
    from razn.slide._metadata import PLAUSIBLE_MPP

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    low, high = PLAUSIBLE_MPP
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(
            f"{text} um/px is outside {low:g}-{high:g} (a 40x scan is about 0.25, 20x about 0.5)"
        )
    return value


def add_mpp(parser, help: str = "microns per pixel, if the slide lacks it") -> None:
    parser.add_argument("--mpp", type=mpp_value, help=help)


def add_seed(parser, default: int | None = 0, help: str = "random seed") -> None:
    parser.add_argument("--seed", type=int, default=default, help=help)


def add_quiet(parser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_labelled_slides(parser, *, many: bool) -> None:
    """`--slide(s)`, `--labels`, `--unannotated` and `--mpp`: slides with known classes."""
    if many:
        parser.add_argument("--slides", nargs="+", required=True, help="slide files")
    else:
        parser.add_argument("--slide", required=True, help="slide file")
    parser.add_argument(
        "--labels",
        nargs="+" if many else None,
        required=True,
        help=("one per slide: " if many else "")
        + "label-grid TIFF, QuPath GeoJSON, ImageScope XML or ASAP XML",
    )
    parser.add_argument(
        "--unannotated",
        choices=("ignore", "normal"),
        default="ignore",
        help="pixels no polygon covers: ignored, or normal as in BACH",
    )
    add_mpp(parser, "microns per pixel, for slides that lack it")


def add_annotation_output(parser, *, output_help: str) -> None:
    """`--slide`, `-o/--output`, `--per-class` and `--mpp` of annotation writers."""
    parser.add_argument("--slide", required=True, help="the slide the annotations belong to")
    parser.add_argument("-o", "--output", required=True, help=output_help)
    parser.add_argument(
        "--per-class",
        action="store_true",
        help="GeoJSON: one MultiPolygon feature per class instead of one per region",
    )
    add_mpp(parser)


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other razn error.

    argparse prints the whole usage block before the error; in a log of a
    batch job that buries the one line that says what was wrong.
    """

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
