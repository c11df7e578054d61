"""`razn synth`: write a synthetic slide with its ground truth, or a real-tissue mosaic.

    razn synth OUT.tif --size WxH --seed N [--mpp 0.25] [--tissue-fraction F]
                       [--lesion-fraction F] [--invasive desmoplastic|scattered|spill]
                       [--label-noise PX] [--workers N]
    razn synth OUT.tif --mosaic DIR [DIR ...] [--split train|test|all] [--test-fraction F]
                       [--split-seed S] [--seed N] [--mpp 0.25]

Writes OUT.tif (pyramidal JPEG OME-TIFF), OUT.labels.tif (label grid) and
OUT.geojson (QuPath annotations); all three or none.
"""

from __future__ import annotations

import argparse
import re

from razn.errors import RaznError

HELP = "write a synthetic H&E slide with ground truth, or a real-tissue mosaic"


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(-?\d+)\s*[xX]\s*(-?\d+)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"size must be WxH in pixels, e.g. 20000x15000, got {text!r}"
        )
    return int(match[1]), int(match[2])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from razn.cli._arguments import add_seed

    parser.add_argument(
        "out",
        metavar="OUT.tif",
        help="slide to write (OUT.labels.tif and OUT.geojson go beside it)",
    )
    parser.add_argument(
        "--size", type=_size, metavar="WxH", help="level-0 size in pixels (synthetic slides)"
    )
    add_seed(parser, default=None, help="random seed: same arguments, same bytes")
    parser.add_argument(
        "--mpp", type=float, default=0.25, help="microns per level-0 pixel (default 0.25)"
    )
    parser.add_argument(
        "--tissue-fraction",
        type=float,
        default=0.55,
        metavar="F",
        help="fraction of the slide covered by tissue, at most 0.7 (default 0.55)",
    )
    parser.add_argument(
        "--lesion-fraction",
        type=float,
        default=0.4,
        metavar="F",
        help="fraction of the tissue in lesions (benign, in situ, invasive alike), "
        "0.05-0.6 (default 0.4)",
    )
    parser.add_argument(
        "--invasive",
        default="spill",
        metavar="spill|desmoplastic|scattered",
        help="invasive carcinoma as crowded nests whose pale stromal reaction is patchy and "
        "spills past the annotated outline (default); as crowded nests in pale stroma that "
        "fills the outline exactly (the stroma's colour then traces the label; the demo "
        "model and the built-in sample use it); or as small nests ~100 um apart in "
        "normal-looking stroma and fat (a 64 um patch of the lesion often shows no tumour, "
        "a 128 um field nearly always does)",
    )
    parser.add_argument(
        "--label-noise",
        type=float,
        default=0.0,
        metavar="PX",
        help="jitter ground-truth region boundaries by up to PX level-0 pixels",
    )
    parser.add_argument(
        "--label-downsample",
        type=int,
        default=None,
        metavar="D",
        help="downsample of the label grid (default 16, more for huge slides; 8 for a mosaic)",
    )
    parser.add_argument("--workers", type=int, default=1, help="rendering processes (default 1)")
    mosaic = parser.add_argument_group("real-tissue mosaic")
    mosaic.add_argument(
        "--mosaic",
        metavar="DIR",
        nargs="+",
        help="lay the BreakHis, BACH and BRACS photos in these folders on glass instead "
        "(each photo's class from its file name)",
    )
    mosaic.add_argument(
        "--split",
        choices=("all", "train", "test"),
        default="all",
        help="patient-disjoint subset to use (default all)",
    )
    mosaic.add_argument(
        "--test-fraction", type=float, default=0.3, help="share of patients in the test split"
    )
    mosaic.add_argument("--split-seed", type=int, default=0, help="seed of the patient split")
    mosaic.add_argument("--photo-mpp", type=float, default=0.49,
                        help="microns per pixel of the 700 px wide BreakHis originals (100X: about "
                             "0.49); a smaller copy is scaled by its width")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if args.mosaic:
        if args.size is not None:
            raise RaznError("--size is for synthetic slides; a mosaic's size follows its images")
        from razn.synth import generate_mosaic

        with _Progress("mosaic") as bar:
            result, photos = generate_mosaic(
                args.out,
                args.mosaic,
                seed=args.seed or 0,
                mpp=args.mpp,
                photo_mpp=args.photo_mpp,
                split=args.split,
                test_fraction=args.test_fraction,
                split_seed=args.split_seed,
                label_downsample=args.label_downsample or 8,
                on_progress=bar.update,
            )
        patients = sorted({p.patient for p in photos})
        print(f"{result.image}: mosaic of {len(photos)} images from {len(patients)} patients "
              f"({args.split}): {', '.join(patients)}")  # fmt: skip
        if args.split != "all":
            from razn.synth.photos import find_photos, patient_split, shared_patients

            shared = shared_patients(patient_split(find_photos(args.mosaic, breakhis_mpp=args.photo_mpp),
                                                   args.test_fraction, args.split_seed))  # fmt: skip
            if shared:
                print(f"note: {', '.join(sorted(shared))} is the only patient of its class; "
                      "its photo's pieces are split between train and test")  # fmt: skip
    else:
        if args.size is None or args.seed is None:
            raise RaznError("a synthetic slide needs --size WxH and --seed N (or --mosaic DIR)")
        if args.workers < 1:
            raise RaznError(f"--workers must be at least 1, got {args.workers}")
        from razn.synth import generate_slide

        width, height = args.size
        with _Progress("rendering") as bar:
            result = generate_slide(
                args.out,
                width,
                height,
                seed=args.seed,
                mpp=args.mpp,
                tissue_fraction=args.tissue_fraction,
                lesion_fraction=args.lesion_fraction,
                invasive=args.invasive,
                label_noise=args.label_noise,
                label_downsample=args.label_downsample,
                workers=args.workers,
                on_progress=bar.update,
            )
        print(f"{result.image}: {width}x{height} at {args.mpp} um/px, {len(result.levels)} levels")
    print(f"{result.labels}: label grid at downsample {result.label_downsample}")
    print(f"{result.geojson}: QuPath annotations")
    return 0


class _Progress:
    """A tqdm bar of level-0 rows, shown only once work has started (so a
    bad argument prints its error alone)."""

    def __init__(self, desc: str):
        self.desc = desc
        self.bar = None

    def update(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="row", desc=self.desc, leave=False)
        self.bar.n = done
        self.bar.refresh()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        return False
