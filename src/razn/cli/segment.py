"""`razn segment SLIDE... --out DIR`: whole-slide segmentation with RAZN.

For each slide it writes `<stem>.razn.zarr` (labels, zoom heatmap, zoom
decisions; an interrupted run resumes), `<stem>.geojson` (QuPath
annotations of the lesions) and `<stem>.overview.png`, and prints a
one-line summary (or, with --json, one JSON object per slide). Many slides
can go to a dask cluster: `--workers N` starts a local one, `--scheduler`
joins an existing one.
"""

from __future__ import annotations

import json
import sys

HELP = "Segment whole slides with RAZN: labels store, QuPath GeoJSON, overview picture."


def add_arguments(parser) -> None:
    from razn.cli._arguments import add_mpp

    parser.add_argument("slides", nargs="+", metavar="SLIDE", help="slide files")
    parser.add_argument("--model", default="demo", help="'demo' or a checkpoint file")
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument(
        "--threshold",
        type=float,
        help="zoom in where p > T: 1 never zooms (fastest), 0 always (default: the "
        "threshold the model was tuned for, else 0.5)",
    )
    parser.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, ...")
    parser.add_argument("--batch-size", type=int, default=8, help="tiles per model call")
    add_mpp(parser, "microns per pixel, if a slide lacks it")
    parser.add_argument("--json", action="store_true", help="one JSON object per slide")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="run slides on a local dask cluster of N")
    where.add_argument("--scheduler", help="address of a running dask scheduler (tcp://...)")


def run(args) -> int:
    from razn.atomic import writable_folder
    from razn.errors import RaznError

    if args.threshold is None:
        from razn.models import default_threshold

        args.threshold = default_threshold(args.model)
    if not 0 <= args.threshold <= 1:
        raise RaznError(f"--threshold must be between 0 and 1, not {args.threshold}")
    if args.batch_size < 1:
        raise RaznError("--batch-size must be at least 1")
    out = writable_folder(args.out, create=True)
    settings = {
        "threshold": args.threshold,
        "mpp": args.mpp,
        "batch_size": args.batch_size,
        "device": args.device,
    }
    if args.workers or args.scheduler:
        from razn.inference.cluster import segment_on_cluster

        if args.workers is not None and args.workers < 1:
            raise RaznError("--workers must be at least 1")
        results = segment_on_cluster(
            args.slides, args.model, out, settings, workers=args.workers, scheduler=args.scheduler
        )
        failed = 0
        for result in results:
            failed += "error" in result
            _report(result, args.json)
        return 1 if failed else 0
    return _run_here(args, out, settings)


def _run_here(args, out, settings) -> int:
    from tqdm import tqdm

    from razn.atomic import WRITE_ERRNOS, output_error
    from razn.errors import OutputError, RaznError
    from razn.inference import pick_device
    from razn.inference.job import segment_slide
    from razn.models import load_model

    # Here, not per slide: a missing GPU is one error, before any store is made.
    # (On a cluster each worker picks its own device.)
    pick_device(args.device)
    model = load_model(args.model)
    failed = 0
    for slide_path in args.slides:
        bar = tqdm(desc=_short(slide_path), unit="tile", leave=False, disable=None)

        def progress(done, total, zoomed, bar=bar):
            bar.total = total
            bar.n = done
            bar.set_postfix_str(f"zoomed {zoomed / max(done, 1):.0%}", refresh=False)
            bar.refresh()

        try:
            result = segment_slide(slide_path, model, out, progress=progress, **settings)
        except OutputError:
            raise  # a full disk or a read-only folder stops every slide alike
        except OSError as error:
            if error.errno in WRITE_ERRNOS:
                raise output_error(error, error.filename or out) from None
            raise
        except RaznError as error:
            # One bad slide does not stop the others.
            result = {"slide": str(slide_path), "error": str(error)}
            failed += 1
        finally:
            bar.close()
        _report(result, args.json)
    return 1 if failed else 0


def _short(path) -> str:
    from pathlib import Path

    return Path(path).name


def _report(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result), flush=True)
        return
    if "error" in result:
        print(f"razn segment: error: {result['error']}", file=sys.stderr, flush=True)
        return
    areas = ", ".join(f"{k} {v:.2f}" for k, v in result["class_area_mm2"].items())
    print(
        f"{_short(result['slide'])}: {result['tiles']} tiles ({result['tissue_tiles']} tissue), "
        f"zoomed {result['zoom_fraction']:.0%}, {result['seconds']:.1f} s; "
        f"areas mm2: {areas} -> {result['outputs']['store']}",
        flush=True,
    )
