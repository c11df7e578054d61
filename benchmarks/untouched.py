"""Table 1 on an untouched test set: new slides, every model scored once.

The held-out seeds 201-203 of `table1.py` became a development set: the
generator, the warm-ups and the scattered profile were changed after
looking at scores on them. This script scores the already trained Table 1
models on slides nobody has looked at: synthetic seeds 5001-5012 (the
quick profile's generator settings, generator version frozen at the
commit this runs from), 12 slides, once. Each (model, slide) score is
written to the cache the moment it exists and is never recomputed, so a
second run only re-reads them; the report says which commit scored them
and whether the tree was clean.

Reported: the mIoU pooled over all slides (confusions summed, as Table 1
pools), with a 95% bootstrap interval from resampling the slides (2,000
resamples), and the mean and spread of the per-slide mIoU.

Models (each from its own training run, never retrained here):
- Scale 1, Scale 2, MS, Attention: `table1.py --profile quick` runs in --cache;
- RAZN as printed, and three variants not in the paper, at seed 0:
  `algorithm1.py` runs in --cache;
- the demo model (`src/razn/weights/demo.safetensors`, joint warm-up), at
  its own threshold, at 0.5, never zooming and always zooming.

Usage: python benchmarks/untouched.py --cache /tmp/razn-table1 [--report-only] [--other-seeds]

`--other-seeds` scores MS and Attention from training seeds 1 and 2 (the
quick profile's `--seed N` runs in --cache) into a report of their own,
table1_untouched-seeds.md, and leaves the frozen table alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import table1  # noqa: E402  (the same generator settings and label paths as Table 1)

from razn.atomic import write_text_atomic  # noqa: E402

ROOT = table1.ROOT
SEEDS = tuple(range(5001, 5013))
REPORT = ROOT / "docs" / "benchmarks" / "table1_untouched.md"
RESAMPLES = 2000
NEVER, ALWAYS = 2.0, -1.0  # thresholds no p in [0, 1] passes / every p passes

#: (row label, where the model file lies relative to --cache, thresholds to score).
#: None as the threshold list means "the model's own default threshold".
MODELS = (
    ("Scale 1", "quick/scale1-small", (0.5,)),
    ("Scale 2", "quick/scale2-small", (0.5,)),
    ("MS", "quick/ms-small", (0.5,)),
    ("Attention", "quick/attention-small", (0.5,)),
    ("RAZN, Algorithm 1 as printed", "algorithm1/paper-it1000-seed0", (0.5, NEVER, ALWAYS)),
    ("RAZN, no routing", "algorithm1/no-routing-it1000-seed0", (0.5, NEVER, ALWAYS)),
    ("RAZN, symmetric reward", "algorithm1/symmetric-it1000-seed0", (0.5, NEVER, ALWAYS)),
    ("RAZN, moving-average baseline + normalised",
     "algorithm1/moving-average+norm-it1000-seed0", (0.5, NEVER, ALWAYS)),
    ("demo (RAZN, joint warm-up)", "demo", None),
)  # fmt: skip

#: Added after the table above was scored: MS and Attention trained again with other
#: seeds (`table1.py --profile quick --seed N --only ms attention`), to tell whether their
#: place in the table is their architecture's or their seed's. They go to a report of their
#: own (`--other-seeds`), so the frozen table stays exactly as it was scored.
OTHER_SEEDS = (
    ("MS, training seed 1", "quick-seed1/ms-small", (0.5,)),
    ("Attention, training seed 1", "quick-seed1/attention-small", (0.5,)),
    ("MS, training seed 2", "quick-seed2/ms-small", (0.5,)),
    ("Attention, training seed 2", "quick-seed2/attention-small", (0.5,)),
)  # fmt: skip
OTHER_SEEDS_REPORT = ROOT / "docs" / "benchmarks" / "table1_untouched-seeds.md"


def model_file(cache: Path, where: str) -> Path:
    if where == "demo":
        return ROOT / "src" / "razn" / "weights" / "demo.safetensors"
    return cache / where / "model.safetensors"


def slides(cache: Path) -> list[Path]:
    profile = table1.PROFILES["quick"]
    return table1.make_slides(cache, SEEDS, profile.slide_size, profile.lesion_fraction,
                              profile.invasive)  # fmt: skip


def code_state() -> dict:
    def git(*args) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    dirty = git("status", "--porcelain", "--", "src", "benchmarks").strip()
    return {"commit": git("rev-parse", "HEAD").strip(), "clean": not dirty}


def score(cache: Path, label: str, where: str, thresholds) -> None:
    """Score one model on every untouched slide it has not been scored on yet."""
    import torch

    from razn.evaluation import evaluate
    from razn.models import default_threshold, load_model
    from razn.training import open_labelled

    path = model_file(cache, where)
    if not path.exists():
        print(f"{label}: no trained model at {path}; skipped", flush=True)
        return
    torch.set_num_threads(1)
    model = load_model(path)
    if thresholds is None:
        own = default_threshold(model)
        thresholds = tuple(dict.fromkeys((own, 0.5, NEVER, ALWAYS)))
    out = cache / "untouched" / where.replace("/", "_")
    out.mkdir(parents=True, exist_ok=True)
    for slide in slides(cache):
        target = out / f"{slide.stem}.json"
        if target.exists():  # scored once; never again
            continue
        start = time.time()
        labelled = open_labelled(slide, table1.labels_of(slide))
        results = evaluate(model, labelled, thresholds=thresholds, timing_fields=0)
        record = {
            "model": label,
            "file": str(path),
            "slide": slide.name,
            **code_state(),
            "scored_at": time.strftime("%Y-%m-%d %H:%M:%S"),
            "results": [
                {"threshold": e.threshold, "confusion": e.confusion.tolist(), "fields": e.fields,
                 "zoomed": e.zoomed} for e in results
            ],
        }  # fmt: skip
        write_text_atomic(target, json.dumps(record))
        print(f"{label} on {slide.name}: {time.time() - start:.0f} s", flush=True)


def miou(confusion: np.ndarray) -> float:
    from razn.evaluation import iou_per_class

    return float(np.nanmean(iou_per_class(confusion)))


def summarise(records: list[dict], index: int, rng: np.random.Generator) -> dict:
    confusions = np.array([r["results"][index]["confusion"] for r in records], dtype=np.int64)
    pooled = miou(confusions.sum(0))
    picks = rng.integers(0, len(records), size=(RESAMPLES, len(records)))
    boot = np.array([miou(confusions[p].sum(0)) for p in picks])
    per_slide = np.array([miou(c) for c in confusions])
    fields = sum(r["results"][index]["fields"] for r in records)
    zoomed = sum(r["results"][index]["zoomed"] for r in records)
    from razn.evaluation import iou_per_class

    return {
        "threshold": records[0]["results"][index]["threshold"],
        "pooled": pooled,
        "low": float(np.percentile(boot, 2.5)),
        "high": float(np.percentile(boot, 97.5)),
        "per_slide_mean": float(per_slide.mean()),
        "per_slide_sd": float(per_slide.std(ddof=1)),
        "zoom": zoomed / fields if fields else 0.0,
        "per_class": iou_per_class(confusions.sum(0)).tolist(),
    }


def _threshold_name(t: float) -> str:
    return {NEVER: "never zoom", ALWAYS: "always zoom"}.get(t, f"{t:g}")


def report(cache: Path, other_seeds: bool = False) -> None:
    """The frozen table, or (`other_seeds`) MS and Attention from other seeds in their own."""
    models, path = (OTHER_SEEDS, OTHER_SEEDS_REPORT) if other_seeds else (MODELS, REPORT)
    rng = np.random.default_rng(0)
    rows, per_class, commits = [], [], set()
    for label, where, _ in models:
        folder = cache / "untouched" / where.replace("/", "_")
        records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
        if len(records) < len(SEEDS):
            rows.append(f"| {label} | not scored ({len(records)} of {len(SEEDS)} slides) |"
                        + " |" * 5)  # fmt: skip
            continue
        commits |= {(r["commit"], r["clean"]) for r in records}
        for i in range(len(records[0]["results"])):
            s = summarise(records, i, rng)
            rows.append(
                f"| {label} | {_threshold_name(s['threshold'])} | {s['pooled']:.3f} | "
                f"{s['low']:.3f}-{s['high']:.3f} | {s['per_slide_mean']:.3f} ± "
                f"{s['per_slide_sd']:.3f} | {s['zoom']:.2f} |"
            )
            if i == 0:
                per_class.append(f"| {label} | "
                                 + " | ".join(f"{v:.2f}" for v in s["per_class"]) + " |")  # fmt: skip
    provenance = ", ".join(f"`{c[:10]}`" + ("" if clean else " (with uncommitted changes)")
                           for c, clean in sorted(commits))  # fmt: skip
    if not other_seeds:
        head = [
            "# Table 1 on an untouched test set",
            "",
            f"Written by `python benchmarks/untouched.py`. {len(SEEDS)} synthetic slides, seeds "
            f"{SEEDS[0]}-{SEEDS[-1]}, made with the quick profile's settings (6144 px square at "
            "0.25 um/px, 65% tissue, 25% of it in lesions, desmoplastic invasive carcinoma, "
            "generator version 2) after the generator and the code were frozen. No model was "
            "trained, tuned or chosen on them; each model was scored on them once and nothing "
            f"was changed after the numbers were seen. Scored from commit {provenance}.",
        ]  # fmt: skip
    else:
        head = [
            "# The untouched test set: MS and Attention from other training seeds",
            "",
            "Written by `python benchmarks/untouched.py --other-seeds`. The same "
            f"{len(SEEDS)} slides as table1_untouched.md (seeds {SEEDS[0]}-{SEEDS[-1]}), "
            "scored with MS and Attention trained again on the quick profile's pool with "
            "training seeds 1 and 2 (`table1.py --profile quick --seed N --only ms "
            "attention`): the same data, budget and settings as the seed-0 models in "
            "table1_untouched.md; only initial weights, batch order and augmentation differ. "
            "Added after that table was scored, which stays as it was; nothing was trained, "
            f"tuned or chosen on these slides. Scored from commit {provenance}.",
        ]  # fmt: skip
    lines = [
        *head,
        "",
        f"mIoU pooled over the {len(SEEDS)} slides (confusions summed, as in Table 1), its 95% "
        f"bootstrap interval ({RESAMPLES:,} resamples of the slides), and the mean ± sd of "
        "the per-slide mIoU. Zoom: share of fields read at the fine level.",
        "",
        "| model | threshold | mIoU | 95% CI | per-slide mIoU | zoom |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "Per-class IoU (first threshold of each row group):",
        "",
        "| model | Normal | Benign | In situ carcinoma | Invasive carcinoma |",
        "|---|---|---|---|---|",
        *per_class,
        "",
    ]
    write_text_atomic(path, "\n".join(lines))
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="/tmp/razn-table1", help="the Table 1 cache")
    parser.add_argument(
        "--report-only", action="store_true", help="write the report, score nothing"
    )
    parser.add_argument("--only", nargs="+", help="score only the models with these row labels")
    parser.add_argument("--other-seeds", action="store_true",
                        help="MS and Attention from training seeds 1 and 2, into "
                        f"{OTHER_SEEDS_REPORT.name}")  # fmt: skip
    args = parser.parse_args()
    cache = Path(args.cache)
    models = OTHER_SEEDS if args.other_seeds else MODELS
    if not args.report_only:
        slides(cache)
        for label, where, thresholds in models:
            if args.only and label not in args.only:
                continue
            score(cache, label, where, thresholds)
    report(cache, args.other_seeds)


if __name__ == "__main__":
    main()
