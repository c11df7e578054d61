"""Whole-slide inference: RAZN against Scale 1 / Scale 2, tissue area, nets, workers.

    python benchmarks/inference.py [--model demo] [--workdir /tmp/razn-inference]
        [--large SLIDE] [--skip-cluster] [--baseline "Scale 2=CHECKPOINT" ...]

1. One held-out synthetic slide (razn synth, seed 1001): the same RAZN model
   at thresholds 1.0 (never zooms: the Scale 1 path), its own tuned
   threshold, 0.5 and 0.0 (always zooms: the Scale 2 path), and any
   --baseline models (e.g. Table 1's Scale 1 and Scale 2), run through
   `segment_slide` side by side; wall time of the engine and mIoU against
   the slide's ground truth.
2. Time against tissue area: the same generator settings at 30 % and 70 %
   tissue (70 % is the generator's maximum).
3. Patches per second of each net of the model on this CPU.
4. Slides per hour with 1 and 2 dask workers (4 small slides).
5. With --large SLIDE: peak resident memory of `razn segment` on it, in a
   fresh process (for the 100,000 x 100,000 floor of 1.5 GB).
6. With --paper-nets: the paper's configuration (`razn`: width 64, 256 px
   patches) with random weights, never and always zooming on a 6144 px
   slide, and its nets' patches/s: how the engine's fixed costs per tile
   compare with nets of the paper's size (the accuracy means nothing).
Prints markdown tables; figures go to docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def make_slide(
    workdir: Path, name: str, seed: int, size: int, tissue: float | None = None
) -> Path:
    from razn.synth import generate_slide

    path = workdir / f"{name}.tif"
    if not path.exists():
        kwargs = {} if tissue is None else {"tissue_fraction": tissue}
        # desmoplastic: the demo model's training pattern (and its recorded figures')
        generate_slide(path, size, size, seed=seed, invasive="desmoplastic", **kwargs)
    return path


def miou_against_truth(store_dir: Path, truth_path: Path, classes) -> float:
    """mIoU of a store's labels against a ground-truth label grid."""
    from razn.evaluation import confusion_matrix, scores
    from razn.label_grid import read_label_grid

    truth = read_label_grid(truth_path)
    store = read_label_grid(store_dir)
    pred = np.asarray(store.labels)
    step = truth.downsample // int(store.downsample)
    # Nearest: the prediction at the centre of each ground-truth pixel.
    pred = pred[step // 2 :: step, step // 2 :: step][
        : truth.labels.shape[0], : truth.labels.shape[1]
    ]
    t = truth.labels[: pred.shape[0], : pred.shape[1]]
    keep = (t > 0) & (pred > 0)
    confusion = confusion_matrix(t[keep], pred[keep].astype(np.int64), len(classes))
    return float(scores(confusion, classes)["miou"])


def run_slide(slide: Path, model, out: Path, threshold: float, repeat: int = 1) -> dict:
    """`segment_slide` from scratch, `repeat` times; the summary of the fastest run.

    The fastest of several runs is the least disturbed by other work on a
    shared machine (as `timeit` reports); all the times are kept.
    """
    from razn.inference.job import segment_slide

    runs = []
    for _ in range(repeat):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        runs.append(segment_slide(slide, model, out, threshold=threshold, device="cpu"))
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "all_seconds": [r["seconds"] for r in runs]}


def _times(summary: dict) -> str:
    return ", ".join(f"{s:.1f}" for s in summary["all_seconds"])


def patches_per_second(model, seconds: float = 3.0) -> list[tuple[str, float]]:
    import torch

    size = model.config.patch_size
    x = torch.rand(8, 3, size, size)
    nets = []
    if hasattr(model, "segmenters"):
        nets += [(f"f_{k}", net) for k, net in enumerate(model.segmenters)]
        nets += [(f"g_{k + 1}", net) for k, net in enumerate(model.policies)]
    else:
        nets.append(("net", model.net))
    rates = []
    with torch.inference_mode():
        for name, net in nets:
            net(x)
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                net(x)
                count += x.shape[0]
            rates.append((name, count / (time.perf_counter() - start)))
    return rates


def peak_rss_of(command: list[str]) -> tuple[float, float]:
    """(peak RSS in MB over the process tree, seconds) of a command."""
    import psutil

    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parent, peak = psutil.Process(process.pid), 0.0
    while process.poll() is None:
        try:
            rss = parent.memory_info().rss + sum(
                c.memory_info().rss for c in parent.children(recursive=True)
            )
            peak = max(peak, rss / 2**20)
        except psutil.Error:
            pass
        time.sleep(0.05)
    if process.returncode:
        raise RuntimeError(f"{command} failed with {process.returncode}")
    return peak, time.perf_counter() - start


def paper_nets(workdir: Path, repeat: int) -> dict:
    """Never and always zooming with the paper-sized RAZN (random weights), and its nets."""
    import torch

    from razn.models import build_model, get_config, load_model, save_checkpoint

    torch.manual_seed(0)
    path = save_checkpoint(
        build_model(get_config("razn")), workdir / "razn-paper-random.safetensors"
    )
    model = load_model(path)
    slide = make_slide(workdir, "paper-6144", 1002, 6144)
    print("\n| paper-sized RAZN, random weights | engine seconds, fastest (all runs) |\n|---|---|")
    runs = {}
    for threshold, label in ((1.0, "never zoom"), (0.0, "always zoom")):
        summary = run_slide(slide, model, workdir / f"paper-t{threshold}", threshold, repeat)
        runs[label] = summary
        print(f"| {label} ({summary['tissue_tiles']} tissue tiles) | {summary['seconds']:.1f} "
              f"({_times(summary)}) |", flush=True)  # fmt: skip
    never, always = runs["never zoom"]["seconds"], runs["always zoom"]["seconds"]
    print(f"\nnever / always zoom: {never / always:.2f}")
    print("\n| net (paper size) | patches/s (CPU, batch 8) |\n|---|---|")
    rates = patches_per_second(model, seconds=10.0)
    for name, rate in rates:
        print(f"| {name} | {rate:.2f} |", flush=True)
    return {"runs": runs, "never_over_always": never / always, "patches_per_s": dict(rates)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/razn-inference"))
    parser.add_argument("--size", type=int, default=8192, help="side of the test slides")
    parser.add_argument("--large", type=Path, help="a large slide for the peak-memory run")
    parser.add_argument("--skip-cluster", action="store_true")
    parser.add_argument("--paper-nets", action="store_true",
                        help="also time the paper-sized RAZN (random weights)")  # fmt: skip
    parser.add_argument("--only-paper-nets", action="store_true",
                        help="run only the --paper-nets part")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each model on the test slide; the fastest is reported")  # fmt: skip
    parser.add_argument("--baseline", action="append", default=[], metavar="NAME=CHECKPOINT",
                        help="also run a baseline model on the test slide (repeatable), "
                        "e.g. 'Scale 2=/tmp/razn-table1/quick/scale2-small/model.safetensors'")  # fmt: skip
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    import torch

    from razn.models import default_threshold, load_model
    from razn.synth import companion_paths

    torch.set_num_threads(2)
    model = load_model(args.model)
    tuned = default_threshold(model)
    classes = model.config.classes
    report = {}

    if args.paper_nets or args.only_paper_nets:
        report["paper_nets"] = paper_nets(args.workdir, args.repeat)
        if args.only_paper_nets:
            return 0
    test = make_slide(args.workdir, "test-1001", 1001, args.size)
    print(
        "\n| run | zoom fraction | engine seconds, fastest (all runs) | relative to threshold 0 | mIoU |\n|---|---|---|---|---|"
    )
    rows = {}
    for threshold in sorted({0.0, tuned, 0.5, 1.0}):
        summary = run_slide(test, model, args.workdir / f"t{threshold}", threshold, args.repeat)
        miou = miou_against_truth(
            Path(summary["outputs"]["store"]), companion_paths(test)[1], classes
        )
        rows[threshold] = (summary, miou)
    base = rows[0.0][0]["seconds"]
    for threshold, (summary, miou) in rows.items():
        label = {0.0: "always zoom (Scale 2 path)", 1.0: "never zoom (Scale 1 path)"}.get(
            threshold, f"RAZN, threshold {threshold}"
        ) + (" (the model's own threshold)" if threshold == tuned else "")
        print(
            f"| {label} | {summary['zoom_fraction']:.2f} | {summary['seconds']:.1f} "
            f"({_times(summary)}) | {summary['seconds'] / base:.2f} | {miou:.3f} |",
            flush=True,
        )
    report["thresholds"] = {str(t): {"summary": s, "miou": m} for t, (s, m) in rows.items()}
    for spec in args.baseline:
        name, _, path = spec.partition("=")
        summary = run_slide(test, load_model(path), args.workdir / f"baseline-{name}", 0.5,
                            args.repeat)  # fmt: skip
        miou = miou_against_truth(
            Path(summary["outputs"]["store"]), companion_paths(test)[1], classes
        )
        report[f"baseline {name}"] = {"summary": summary, "miou": miou}
        print(f"| {name} (its own model) | {summary['zoom_fraction']:.2f} | "
              f"{summary['seconds']:.1f} ({_times(summary)}) | {summary['seconds'] / base:.2f} | "
              f"{miou:.3f} |", flush=True)  # fmt: skip

    print(f"\n| tissue | tissue tiles | engine seconds (threshold {tuned}) |\n|---|---|---|")
    for fraction in (0.3, 0.7):
        slide = make_slide(args.workdir, f"tissue-{fraction}", 2001, args.size, tissue=fraction)
        summary = run_slide(slide, model, args.workdir / f"area{fraction}", tuned)
        report[f"tissue_{fraction}"] = summary
        print(
            f"| {fraction:.0%} | {summary['tissue_tiles']} | {summary['seconds']:.1f} |",
            flush=True,
        )

    print("\n| net | patches/s (CPU, batch 8) |\n|---|---|")
    for name, rate in patches_per_second(model):
        print(f"| {name} | {rate:.1f} |", flush=True)

    if not args.skip_cluster:
        from razn.inference.cluster import segment_on_cluster

        slides = [make_slide(args.workdir, f"small-{i}", 3000 + i, 4096) for i in range(4)]
        print("\n| dask workers | slides/hour |\n|---|---|")
        for workers in (1, 2):
            out = args.workdir / f"cluster{workers}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            start = time.perf_counter()
            settings = {"threshold": tuned, "device": "cpu"}
            results = list(segment_on_cluster(slides, args.model, out, settings, workers=workers))
            seconds = time.perf_counter() - start
            assert all("error" not in r for r in results), results
            print(f"| {workers} | {len(slides) / seconds * 3600:.0f} |", flush=True)

    if args.large:
        out = args.workdir / "large"
        shutil.rmtree(out, ignore_errors=True)
        command = [sys.executable, "-m", "razn.cli", "segment", str(args.large), "--model",
                   args.model, "--out", str(out), "--device", "cpu"]  # fmt: skip
        peak, seconds = peak_rss_of(command)
        print(f"\nlarge slide {args.large.name}: peak RSS {peak:.0f} MB, {seconds:.0f} s")
        report["large"] = {"peak_mb": peak, "seconds": seconds}
    (args.workdir / "report.json").write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
