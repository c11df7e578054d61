"""`razn evaluate`: score a model on a slide with known labels (Table 1's metrics)."""

from __future__ import annotations

import json

HELP = "Score a model on a labelled slide: IoU per class, mIoU, zoom fraction, relative time."


def add_arguments(parser) -> None:
    from razn.cli._arguments import add_labelled_slides, add_quiet

    parser.add_argument("--model", default="demo", help="checkpoint file or bundled name")
    add_labelled_slides(parser, many=False)
    parser.add_argument(
        "--threshold",
        type=float,
        help="RAZN zooms where p > threshold (default: the model's own, else 0.5)",
    )
    parser.add_argument(
        "--timing-fields",
        type=int,
        default=100,
        help="fields timed against Scale 1 (0: no timing)",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_quiet(parser)


def format_report(report: dict) -> str:
    lines = [f"{report['model']} on {report['slide']} (threshold {report['threshold']:g})"]
    for name, value in report["per_class_iou"].items():
        lines.append(f"  IoU {name:<22} {_f(value)}")
    for key, label in (("miou", "mIoU"), ("weighted_iou", "weighted IoU"),
                       ("non_carcinoma_iou", "non-carcinoma IoU"),
                       ("carcinoma_iou", "carcinoma IoU")):  # fmt: skip
        if key in report:
            lines.append(f"  {label:<26} {_f(report[key])}")
    lines.append(f"  {'zoom fraction':<26} {report['zoom_fraction']:.3f}")
    if report.get("relative_time") is not None:
        sd = report.get("relative_time_sd") or 0.0
        lines.append(
            f"  {'time relative to Scale 1':<26} {report['relative_time']:.2f} ± {sd:.2f}"
            f" ({report['timed_fields']} fields)"
        )
    lines.append(f"  {'fields scored':<26} {report['fields']}")
    return "\n".join(lines)


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def run(args) -> int:
    from tqdm import tqdm

    from razn.classes import NORMAL, UNLABELLED
    from razn.evaluation import iter_evaluate
    from razn.models import default_threshold, load_model
    from razn.training import open_labelled

    model = load_model(args.model)
    if args.threshold is None:
        args.threshold = default_threshold(model)
    fill = NORMAL if args.unannotated == "normal" else UNLABELLED
    labelled = open_labelled(args.slide, args.labels, mpp=args.mpp, unannotated=fill)
    steps = iter_evaluate(
        model, labelled, thresholds=(args.threshold,),
        batch_size=args.batch_size, timing_fields=args.timing_fields,
    )  # fmt: skip
    with tqdm(disable=args.quiet or args.json, unit="field") as bar:
        for progress in steps:
            bar.total = progress.total
            bar.update(progress.done - bar.n)
    report = {"model": str(args.model), "slide": str(args.slide)}
    report |= progress.results[0].to_dict()
    print(json.dumps(report) if args.json else format_report(report))
    return 0
