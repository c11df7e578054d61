"""Does Algorithm 1 learn to zoom? Its variants side by side, with their training curves.

Trains razn-small on table1.py's `quick` field pool (the same fields, budget
and schedule as Table 1) once per variant and seed:

- `paper`: Algorithm 1 as printed (with DESIGN.md's reward sign), lr 1e-3;
- `paper-lr0.01`: the same at the paper's learning rate;
- `batch-mean`, `self-critical`, `moving-average+norm`: the REINFORCE
  literature's reward baselines (`razn train --baseline`), the last one
  with the advantage normalised per batch;
- `symmetric`: the reward (J_0 - J_1) / max(J_0, J_1) instead of the
  paper's (J_0 - J_1) / J_0 (`razn train --reward-scale symmetric`);
- `no-routing`: the ablation, both nets learn from every field and the
  policy learns beside them (table1.py's razn-unrouted).

Each run logs, every 10 steps, the share of fields zoomed into, the mean
coarse and fine losses and `zoom_gain_1`, the mean (J_0 - J_1) / J_0 over
every field: what zooming would have paid. Every model is then scored on
validation slides (seeds 301-302, made for this script: not Table 1's
held-out seeds) at threshold 0.5, never zooming and always zooming. A
variant counts as working if it zooms into 10-60% of the validation fields
and beats the no-routing ablation's mIoU, or matches it (within 0.01) with
fewer zooms.

Writes docs/benchmarks/algorithm1.md and docs/images/algorithm1.png (another
budget than 1,000 steps: algorithm1-it<N>.md and .png).

Usage: python benchmarks/algorithm1.py [--cache DIR] [--iterations N] [--seeds 0 1 2]
       [--only VARIANT ...] [--workers 2]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import table1  # noqa: E402  (the same slides, pool and budget as Table 1)

from razn.atomic import write_text_atomic  # noqa: E402

VARIANTS = {
    "paper": {},
    "paper-lr0.01": {"lr": 0.01},
    "batch-mean": {"baseline": "batch-mean"},
    "self-critical": {"baseline": "self-critical"},
    "moving-average+norm": {"baseline": "moving-average", "normalise_advantage": True},
    "symmetric": {"reward_scale": "symmetric"},
    "no-routing": {"unrouted": True},
}
VALIDATION_SEEDS = (301, 302)
COLOURS = {"paper": "#D32F2F", "paper-lr0.01": "#F57C00", "batch-mean": "#1E88E5",
           "self-critical": "#7B1FA2", "moving-average+norm": "#00897B", "symmetric": "#43A047",
           "no-routing": "#616161"}  # fmt: skip


def run(variant: str, seed: int, cache: str, iterations: int) -> dict:
    """Train one variant at one seed and score it on the validation slides (in a worker)."""
    import torch

    from razn.evaluation import Evaluation, evaluate
    from razn.models import load_model
    from razn.training import FieldBatch, FieldPool, TrainingConfig, open_labelled, train

    torch.set_num_threads(1)
    cache_dir = Path(cache)
    profile = table1.PROFILES["quick"]
    out = cache_dir / "algorithm1" / f"{variant}-it{iterations}-seed{seed}"
    result_path = out / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    options = dict(VARIANTS[variant])
    unrouted = options.pop("unrouted", False)
    config = TrainingConfig(
        model="razn" + profile.suffix, iterations=iterations, batch_size=profile.batch_size,
        lr=options.pop("lr", profile.lr), decay_every=round(iterations * 0.75), seed=seed,
        balanced=True, checkpoint_every=100, log_every=10,
        warmup=iterations if unrouted else 0, warmup_policy=unrouted, **options,
    )  # fmt: skip
    if not (out / "model.safetensors").exists():
        pool = FieldBatch.load(cache_dir / "fields-quick.safetensors")
        resume = (out / "checkpoint.state.safetensors").exists()
        for _ in train(config, FieldPool(pool), out, resume=resume):
            pass
    model = load_model(out / "model.safetensors")
    thresholds = (2.0, 0.5, -1.0)  # never zoom, the default, always zoom
    per_slide = []
    for path in validation_slides(cache_dir):
        labelled = open_labelled(path, table1.labels_of(path))
        per_slide.append(evaluate(model, labelled, thresholds=thresholds, timing_fields=0))
    pooled = [Evaluation.combine([s[i] for s in per_slide]) for i in range(len(thresholds))]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    result = {
        "variant": variant,
        "seed": seed,
        "iterations": iterations,
        "train_s": rows[-1]["elapsed_s"],
        "scores": {
            name: e.to_dict() for name, e in zip(("never", "0.5", "always"), pooled, strict=True)
        },  # fmt: skip
        "curve": [
            {
                k: row.get(k)
                for k in (
                    "iteration",
                    "zoom_action_1",
                    "zoom_p_1",
                    "zoom_gain_1",
                    "loss_0",
                    "loss_1_fine",
                )
            }  # fmt: skip
            for row in rows
        ],
    }
    if variant == "no-routing":
        result["gains"] = gain_distribution(
            out / "model.safetensors", cache_dir / "fields-quick.safetensors"
        )
    write_text_atomic(result_path, json.dumps(result, indent=1))
    return result


def gain_distribution(model_path: Path, pool_path: Path, fields: int = 800) -> dict:
    """Per-field coarse and fine losses of a trained RAZN on pool fields, and what
    the paper's relative reward and the symmetric one make of them."""
    import torch

    from razn.models import load_model
    from razn.models.normalise import to_views
    from razn.models.views import split_levels
    from razn.training import FieldBatch
    from razn.training.algorithm import _split, field_losses, targets_from_labels, zoom_reward

    model = load_model(model_path).eval()
    pool = FieldBatch.load(pool_path)
    pool = pool.take(np.arange(min(fields, len(pool))))
    r = model.config.zoom_rate
    j0s, j1s = [], []
    with torch.no_grad():
        for start in range(0, len(pool), 50):
            batch = pool.take(np.arange(start, min(start + 50, len(pool))))
            views = to_views(batch.images)
            targets = [targets_from_labels(t) for t in batch.labels]
            s0, n0 = field_losses(model.segmenters[0](views[0]), targets[0])
            fine = split_levels(views[1], r, 1)
            s1, n1 = field_losses(model.segmenters[1](fine), _split(targets[1], r, 1))
            s1, n1 = s1.view(-1, r * r).sum(1), n1.view(-1, r * r).sum(1)
            keep = (n0 > 0) & (n1 > 0)
            j0s.append((s0 / n0.clamp(min=1))[keep])
            j1s.append((s1 / n1.clamp(min=1))[keep])
    j0, j1 = torch.cat(j0s), torch.cat(j1s)
    ones = torch.ones_like(j0)
    relative = zoom_reward(ones, j0, j1)
    symmetric = zoom_reward(ones, j0, j1, scale="symmetric")
    tail = relative < -1
    return {
        "fields": int(len(j0)),
        "mean_j0": float(j0.mean()),
        "mean_j1": float(j1.mean()),
        "fine_better": float((j1 < j0).float().mean()),
        "relative_mean": float(relative.mean()),
        "relative_median": float(relative.median()),
        "relative_min": float(relative.min()),
        "symmetric_mean": float(symmetric.mean()),
        "tail_share": float(tail.float().mean()),
        "tail_mean_j0": float(j0[tail].mean()) if tail.any() else None,
        "relative_mean_without_tail": float(relative[~tail].mean()),
    }


def validation_slides(cache: Path) -> list[Path]:
    profile = table1.PROFILES["quick"]
    return table1.make_slides(cache, VALIDATION_SEEDS, profile.slide_size,
                              profile.lesion_fraction, profile.invasive)  # fmt: skip


def working(result: dict, unrouted: dict | None) -> str:
    scores = result["scores"]["0.5"]
    zoom = scores["zoom_fraction"]
    if not 0.10 <= zoom <= 0.60:
        return f"no (zooms into {zoom:.0%})"
    if unrouted is None:
        return "?"
    reference = unrouted["scores"]["0.5"]
    if scores["miou"] > reference["miou"] + 0.01:
        return "yes (beats no routing)"
    if scores["miou"] >= reference["miou"] - 0.01:
        if zoom < reference["zoom_fraction"]:
            return "yes (matches no routing with fewer zooms)"
        return "not quite (matches no routing, with as many zooms or more)"
    return "no (below no routing)"


def report_name(iterations: int) -> str:
    """algorithm1 at the default budget; another budget gets a report of its own."""
    return "algorithm1" if iterations == 1000 else f"algorithm1-it{iterations}"


def report(results: list[dict], iterations: int, elapsed: float | None) -> None:
    by_variant: dict[str, list[dict]] = {}
    for r in results:
        by_variant.setdefault(r["variant"], []).append(r)
    unrouted_by_seed = {r["seed"]: r for r in by_variant.get("no-routing", [])}
    commit = _git_commit()
    lines = [
        "# Algorithm 1: does it learn to zoom?",
        "",
        (
            f"Generated by `python benchmarks/algorithm1.py --iterations {iterations}` at "
            f"commit `{commit}` ({elapsed / 60:.0f} min on a 2-core machine shared with "
            "other work)."
            if elapsed
            else f"Written by `python benchmarks/algorithm1.py --iterations {iterations} "
            f"--report-only` at commit `{commit}` from the runs in its cache, which were "
            "trained earlier (by the same training code unless `git log src/razn/training` "
            "says otherwise). Training time per run is in the table: the machine was "
            "shared with other work, so these are not speed figures."
        ),
        "",
        "razn-small on Table 1's quick field pool (4,000 class-balanced fields of synthetic "
        f"seeds 101-106), {iterations} Adam steps of 8 fields, lr x0.1 after 75% of them, "
        "augmentation on. Scored on validation slides 301-302 (made for this script; "
        "Table 1's held-out seeds are not used here). mIoU over the four classes, pixels "
        "pooled over both slides; zoom = share of tissue fields zoomed into at threshold 0.5.",
        "",
        "| variant | seed | zoom at 0.5 | mIoU at 0.5 | never zoom | always zoom | "
        "zoom in training (last 10%) | zoom gain, own scale (last 10%) | training | working? |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for variant in VARIANTS:
        for r in sorted(by_variant.get(variant, []), key=lambda r: r["seed"]):
            s = r["scores"]
            tail = r["curve"][-max(1, len(r["curve"]) // 10) :]
            zoom_train = np.mean([row["zoom_action_1"] for row in tail])
            gain = np.mean([row["zoom_gain_1"] for row in tail if row["zoom_gain_1"] is not None])
            verdict = (
                working(r, unrouted_by_seed.get(r["seed"]))
                if variant != "no-routing"
                else "(reference)"
            )
            lines.append(
                f"| {variant} | {r['seed']} | {s['0.5']['zoom_fraction']:.2f} | "
                f"{s['0.5']['miou']:.3f} | {s['never']['miou']:.3f} | {s['always']['miou']:.3f} | "
                f"{zoom_train:.2f} | {gain:+.3f} | {r['train_s'] / 60:.0f} min | {verdict} |"
            )
    lines += _seed_summary(by_variant)
    name = report_name(iterations)
    lines += ["", f"![zoom share and zoom gain over training](../images/{name}.png)", ""]
    lines += _gain_section(results, iterations)
    path = ROOT / "docs" / "benchmarks" / f"{name}.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    plot(by_variant, ROOT / "docs" / "images" / f"{name}.png")
    print(f"wrote {path}")


def _seed_summary(by_variant: dict[str, list[dict]]) -> list[str]:
    """Mean ± sd over the seeds each variant has, against no routing's seeds."""

    def stats(runs, key):
        values = np.array([r["scores"]["0.5"][key] for r in runs])
        sd = f" ± {values.std(ddof=1):.3f}" if len(values) > 1 else ""
        return values.mean(), f"{values.mean():.3f}{sd}"

    unrouted = by_variant.get("no-routing", [])
    lines = ["", "Over the seeds each variant has (mean ± sd; a variant counts as working if "
             "it zooms into 10-60% of fields and beats no routing, or matches it within 0.01 "
             "with fewer zooms; the paired column is the variant's mIoU minus no routing's, "
             "seed by seed, on the seeds both have):", "",
             "| variant | seeds | zoom at 0.5 | mIoU at 0.5 | mIoU - no routing, paired | "
             "working? |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for variant in VARIANTS:
        runs = by_variant.get(variant, [])
        if not runs:
            continue
        zoom, zoom_text = stats(runs, "zoom_fraction")
        miou, miou_text = stats(runs, "miou")
        verdict, paired = "(reference)", "-"
        if variant != "no-routing":
            # Judged on the seeds both have, so a seed's luck is not taken for a method's.
            shared = {r["seed"] for r in runs} & {r["seed"] for r in unrouted}
            mine = [r for r in runs if r["seed"] in shared]
            theirs = [r for r in unrouted if r["seed"] in shared]
            reference_miou = {r["seed"]: r["scores"]["0.5"]["miou"] for r in theirs}
            paired = (
                ", ".join(
                    f"{r['scores']['0.5']['miou'] - reference_miou[r['seed']]:+.3f}"
                    for r in sorted(mine, key=lambda r: r["seed"])
                )
                or "-"
            )
            if not 0.10 <= zoom <= 0.60 or not shared:
                verdict = working({"scores": {"0.5": {"zoom_fraction": zoom, "miou": miou}}},
                                  None)  # fmt: skip
            else:
                pooled, reference = (
                    {"scores": {"0.5": {"zoom_fraction": stats(rs, "zoom_fraction")[0],
                                        "miou": stats(rs, "miou")[0]}}}
                    for rs in (mine, theirs)
                )  # fmt: skip
                verdict = working(pooled, reference)
                verdict += f", on seed{'s' if len(shared) > 1 else ''} " + ", ".join(
                    map(str, sorted(shared))
                )
        seeds = ", ".join(str(r["seed"]) for r in sorted(runs, key=lambda r: r["seed"]))
        lines.append(f"| {variant} | {seeds} | {zoom_text} | {miou_text} | {paired} | {verdict} |")
    return lines


def _gain_section(results: list[dict], iterations: int) -> list[str]:
    """What the paper's reward makes of the no-routing model's two nets (if trained)."""
    runs = sorted((r for r in results if r["variant"] == "no-routing"), key=lambda r: r["seed"])
    if not runs or "gains" not in runs[0]:
        return []
    g = runs[0]["gains"]
    return [
        "## What the reward sees",
        "",
        f"The no-routing model (seed {runs[0]['seed']}) trains both nets on every field, so "
        f"its f_0 and f_1 are the fairest pair to compare. On the first {g['fields']} "
        "fields of the training pool (eval mode):",
        "",
        "| | value |",
        "|---|---|",
        f"| mean J_0 (coarse) / mean J_1 (fine) | {g['mean_j0']:.3f} / {g['mean_j1']:.3f} |",
        f"| fields where the fine net's loss is lower | {g['fine_better']:.0%} |",
        f"| mean of the paper's (J_0 - J_1) / J_0 | {g['relative_mean']:+.3f} "
        f"(median {g['relative_median']:+.3f}, lowest {g['relative_min']:+.1f}) |",
        f"| fields where it is below -1 (J_1 more than twice J_0) | {g['tail_share']:.0%} "
        f"(their mean J_0: {g['tail_mean_j0'] or float('nan'):.3f}) |",
        f"| its mean without those fields | {g['relative_mean_without_tail']:+.3f} |",
        f"| mean of the symmetric (J_0 - J_1) / max(J_0, J_1) | {g['symmetric_mean']:+.3f} |",
        "",
    ]


def plot(by_variant: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for variant, runs in by_variant.items():
        for i, r in enumerate(runs):
            it = [row["iteration"] for row in r["curve"]]
            label = variant if i == 0 else None
            colour = COLOURS.get(variant, "black")
            axes[0].plot(it, [row["zoom_action_1"] for row in r["curve"]], color=colour,
                         label=label, alpha=0.8)  # fmt: skip
            axes[1].plot(it, [row["zoom_gain_1"] for row in r["curve"]], color=colour, alpha=0.8)
            axes[2].plot(it, [row["loss_0"] - row["loss_1_fine"] for row in r["curve"]],
                         color=colour, alpha=0.8)  # fmt: skip
    axes[0].set(title="share of fields zoomed into (sampled)", xlabel="step", ylim=(0, 1))
    axes[1].set(title="zoom gain: mean reward of zooming (own scale)", xlabel="step")
    axes[2].set(title="J0 - J1 (batch means)", xlabel="step")
    for ax in axes[1:]:
        ax.axhline(0, color="black", lw=0.5)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _git_commit() -> str:
    import subprocess

    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=str(ROOT / "benchmarks" / "out" / "table1"))
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the report from the finished runs"
    )
    args = parser.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    start = time.time()
    if args.report_only:
        report(_finished(cache, args.iterations), args.iterations, None)
        return
    table1.field_pool(cache, table1.PROFILES["quick"], "quick")
    validation_slides(cache)
    jobs = [(v, s) for s in args.seeds for v in (args.only or VARIANTS)]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        futures = {pool.submit(run, v, s, str(cache), args.iterations): (v, s) for v, s in jobs}
        for future in concurrent.futures.as_completed(futures):
            r = future.result()
            s = r["scores"]["0.5"]
            print(f"{r['variant']} seed {r['seed']}: zoom {s['zoom_fraction']:.2f} "
                  f"mIoU {s['miou']:.3f} ({r['train_s']:.0f} s training)", flush=True)  # fmt: skip
    # Every run in the cache at this budget goes in the report, not only this call's.
    report(_finished(cache, args.iterations), args.iterations, time.time() - start)


def _finished(cache: Path, iterations: int) -> list[dict]:
    paths = sorted((cache / "algorithm1").glob(f"*-it{iterations}-seed*/result.json"))
    results = []
    for path in paths:
        result = json.loads(path.read_text())
        if result["variant"] == "no-routing" and "gains" not in result:  # scored before it existed
            result["gains"] = gain_distribution(
                path.parent / "model.safetensors", cache / "fields-quick.safetensors"
            )
            write_text_atomic(path, json.dumps(result, indent=1))
        results.append(result)
    return results


if __name__ == "__main__":
    main()
