"""Table 1 of Dong et al. (2018) on synthetic slides: Scale 1, Scale 2, MS, Attention, RAZN.

Generates synthetic slides (training seeds and held-out seeds), samples one
fixed pool of class-balanced fields of view from the training slides (so
all five models learn from identical data under the same budget: steps,
batch size, optimiser, schedule, augmentation), trains each model with
`razn.training.train`, scores it on the held-out slides with
`razn.evaluation` (RAZN at a sweep of zoom thresholds), and writes
docs/benchmarks/table1.md beside the paper's numbers, with a plot of mIoU
against inference time relative to Scale 1 (docs/images/table1_quick.png).

Profiles: `quick` (the -small models, 128-pixel patches, CPU; meant to
finish within an hour on 2 cores), `full` (the paper's ResNet18 models
and 256-pixel patches, for a GPU; untested here) and `mosaic` (quick's
models and budget on real tissue: the BreakHis mosaic of
../shared/data/breakhis-100x, trained on the train patients and scored on
the others; writes docs/benchmarks/table1_mosaic.md) and `scattered`
(quick on slides whose invasive carcinoma is scattered nests, `razn synth
--invasive scattered`: the one class a 128 um field reads better than a
64 um patch; writes docs/benchmarks/table1_scattered.md) and `spill` (quick
on slides whose stromal reaction is patchy and spills past the invasive
outline; writes docs/benchmarks/table1_spill.md), `mosaic4` (the mosaic
with BACH and BRACS photos too: all four classes), and the paper's
robustness claims: `noisy16` and `noisy48` (training truth with label
noise of 16 or 48 um, held-out truth clean) and `uniform` (fields drawn
uniformly, not class-balanced). Everything is
cached under --cache, so an interrupted run picks up where it stopped.

Usage: python benchmarks/table1.py --profile quick|full|mosaic|mosaic4|scattered|spill|
                                             noisy16|noisy48|uniform [--cache DIR]
       [--workers 2] [--only MODEL ...] [--seed N] [--retime]
       [--demo-out src/razn/weights/demo.safetensors --demo-from razn-joint]

Besides the paper's five models, three RAZN variants that are not in the
paper (`VARIANTS`): warm-up, joint warm-up (the demo model) and no routing.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("scale1", "scale2", "ms", "attention", "razn", "razn-warmup", "razn-joint",
          "razn-unrouted")  # fmt: skip
LABELS = {"scale1": "Scale 1", "scale2": "Scale 2", "ms": "MS", "attention": "Attention",
          "razn": "RAZN", "razn-warmup": "RAZN, warm-up", "razn-joint": "RAZN, joint warm-up",
          "razn-unrouted": "RAZN, no routing"}  # fmt: skip
RAZN_MODELS = tuple(m for m in MODELS if m.startswith("razn"))
RAZN_COLOURS = {"razn": "#D32F2F", "razn-warmup": "#7B1FA2", "razn-joint": "#00897B",
                "razn-unrouted": "#616161"}  # fmt: skip


@dataclass(frozen=True)
class Variant:
    """A RAZN trained otherwise than the paper's Algorithm 1 (none of these is in the paper).

    warmup : share of the budget in which both segmentation nets learn from
        every field (TrainingConfig.warmup); routing by the action comes after.
    warmup_policy : the policy learns during that warm-up too
        (TrainingConfig.warmup_policy) instead of waiting for it to end.
    """

    base: str
    warmup: float = 0.0
    warmup_policy: bool = False


VARIANTS = {
    # Half the budget warm-up, the policy waiting; then Algorithm 1.
    "razn-warmup": Variant("razn", 0.5),
    # The nets learn from every field for the whole first lr phase (as the
    # baselines do) while the policy learns beside them; Algorithm 1 routes
    # only in the last, low-lr quarter.
    "razn-joint": Variant("razn", 0.75, warmup_policy=True),
    # Ablation: no routing at all. f_0 and f_1 learn as Scale 1 and Scale 2
    # do, the policy learns which of them to trust.
    "razn-unrouted": Variant("razn", 1.0, warmup_policy=True),
}
# The paper's Table 1 (BACH): non-carcinoma IoU, carcinoma IoU, mIoU, weighted IoU, time.
PAPER = {
    "scale1": (0.45, 0.32, 0.38, 0.07, "1.00"),
    "scale2": (0.46, 0.31, 0.39, 0.07, "4.01"),
    "ms": (0.32, 0.04, 0.18, 0.01, "5.06"),
    "attention": (0.43, 0.29, 0.36, 0.06, "5.16"),
    "razn": (0.49, 0.49, 0.49, 0.11, "2.71 ± 0.57"),
}
BASELINE_COLOURS = {"scale1": "#1f77b4", "scale2": "#ff7f0e", "ms": "#2ca02c",
                    "attention": "#8c564b"}  # fmt: skip
#: Fields per batch for the second timing (the engine's default batch).
BATCH_TIMING = 8
THRESHOLDS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)


@dataclass(frozen=True)
class Profile:
    suffix: str
    train_seeds: tuple[int, ...]
    test_seeds: tuple[int, ...]
    slide_size: int
    pool: int
    iterations: int
    batch_size: int
    decay_every: int
    lr: float = 1e-3
    #: "synthetic" (razn.synth.generate_slide at the seeds) or "mosaic" (the
    #: BreakHis photos, train and test patients; the seeds then only place
    #: the islands).
    data: str = "synthetic"
    #: Share of the tissue in lesions (razn synth --lesion-fraction).
    lesion_fraction: float = 0.4
    #: How invasive carcinoma grows (razn synth --invasive).
    invasive: str = "desmoplastic"
    #: The mosaic's photo folders, under ../shared/data.
    sources: tuple[str, ...] = ("breakhis-100x",)
    #: Label noise of the TRAINING slides' truth, in microns (razn synth
    #: --label-noise: a smooth displacement of the region boundaries, as a
    #: hurried annotator draws them); the held-out truth stays clean.
    label_noise_um: float = 0.0
    #: Class-balanced field sampling (the paper's); False draws fields
    #: uniformly over the tissue, so the classes come in their natural shares.
    balanced: bool = True


PROFILES = {
    "quick": Profile("-small", (101, 102, 103, 104, 105, 106), (201, 202, 203), 6144,
                     pool=4000, iterations=1000, batch_size=8, decay_every=750,
                     lesion_fraction=0.25),
    # The quick profile on slides whose invasive carcinoma is scattered: the
    # one class that a 128 um field reads better than a 64 um patch.
    "scattered": Profile("-small", (101, 102, 103, 104, 105, 106), (201, 202, 203), 6144,
                         pool=4000, iterations=1000, batch_size=8, decay_every=750,
                         lesion_fraction=0.25, invasive="scattered"),
    # The paper's robustness claims: the quick profile trained on noisy
    # outlines (two levels) or with uniform instead of class-balanced fields.
    "noisy16": Profile("-small", (101, 102, 103, 104, 105, 106), (201, 202, 203), 6144,
                       pool=4000, iterations=1000, batch_size=8, decay_every=750,
                       lesion_fraction=0.25, label_noise_um=16.0),
    "noisy48": Profile("-small", (101, 102, 103, 104, 105, 106), (201, 202, 203), 6144,
                       pool=4000, iterations=1000, batch_size=8, decay_every=750,
                       lesion_fraction=0.25, label_noise_um=48.0),
    "uniform": Profile("-small", (101, 102, 103, 104, 105, 106), (201, 202, 203), 6144,
                       pool=4000, iterations=1000, batch_size=8, decay_every=750,
                       lesion_fraction=0.25, balanced=False),
    # The quick profile on slides whose stromal reaction is patchy and spills
    # past the invasive outline (`razn synth --invasive spill`): the stroma's
    # colour no longer traces the label.
    "spill": Profile("-small", (101, 102, 103, 104, 105, 106), (201, 202, 203), 6144,
                     pool=4000, iterations=1000, batch_size=8, decay_every=750,
                     lesion_fraction=0.25, invasive="spill"),
    "full": Profile("", tuple(range(101, 121)), tuple(range(201, 206)), 16384,
                    pool=40000, iterations=50000, batch_size=16, decay_every=15000),
    "mosaic": Profile("-small", (1,), (2,), 0, pool=2400, iterations=400, batch_size=8,
                      decay_every=300, data="mosaic"),
    # All four classes: BreakHis plus the BACH example photos and the BRACS
    # regions of interest (razn.synth.photos says which name is which class).
    "mosaic4": Profile("-small", (1,), (2,), 0, pool=2400, iterations=400, batch_size=8,
                       decay_every=300, data="mosaic",
                       sources=("breakhis-100x", "real-tissue/bach-examples",
                                "real-tissue/bracs-roi")),
}  # fmt: skip
SHARED_DATA = ROOT.parent / "shared" / "data"


def slides_for(cache: Path, profile: Profile, split: str) -> list[Path]:
    """The profile's training or held-out slides, made on first use."""
    if profile.data == "mosaic":
        return [make_mosaic(cache, split, seed, profile) for seed in _seeds(profile, split)]
    return make_slides(
        cache,
        _seeds(profile, split),
        profile.slide_size,
        profile.lesion_fraction,
        profile.invasive,
        label_noise=profile.label_noise_um / 0.25 if split == "train" else 0.0,
    )


def _seeds(profile: Profile, split: str):
    return profile.train_seeds if split == "train" else profile.test_seeds


def make_mosaic(cache: Path, split: str, seed: int, profile: Profile) -> Path:
    from razn.synth import generate_mosaic

    tag = "" if profile.sources == ("breakhis-100x",) else str(len(profile.sources))
    path = cache / f"mosaic{tag}-{split}-{seed}.tif"
    if not path.exists():
        sources = [SHARED_DATA / s for s in profile.sources]
        result, photos = generate_mosaic(path, sources, seed=seed, split=split)
        print(f"mosaic {split}: {len(photos)} photos, {result.levels[0]} px", flush=True)
    return path


def make_slides(
    cache: Path,
    seeds,
    size: int,
    lesion_fraction: float = 0.4,
    invasive: str = "desmoplastic",
    label_noise: float = 0.0,
) -> list[Path]:
    """Synthetic slides at 0.25 um/px; `label_noise` in level-0 pixels (truth only)."""
    from razn.synth import generate_slide

    paths = []
    for seed in seeds:
        tag = "" if lesion_fraction == 0.4 else f"-lesions{round(100 * lesion_fraction)}"
        tag += "" if invasive == "desmoplastic" else f"-{invasive}"
        tag += f"-noise{label_noise:g}" if label_noise else ""
        path = cache / f"synth-{size}-{seed}{tag}.tif"
        if not path.exists():
            start = time.time()
            generate_slide(path, size, size, seed=seed, tissue_fraction=0.65,
                           lesion_fraction=lesion_fraction, invasive=invasive,
                           label_noise=label_noise, workers=2)  # fmt: skip
            print(f"slide seed {seed}: {time.time() - start:.0f} s", flush=True)
        paths.append(path)
    return paths


def labels_of(path: Path) -> Path:
    return path.with_name(path.name[: -len(".tif")] + ".labels.tif")


def field_pool(cache: Path, profile: Profile, name: str) -> Path:
    from razn.models import get_config
    from razn.training import FieldSampler, open_labelled

    path = cache / f"fields-{name}.safetensors"
    if path.exists():
        return path
    slides = slides_for(cache, profile, "train")
    labelled = [open_labelled(p, labels_of(p)) for p in slides]
    config = get_config("razn" + profile.suffix)
    sampler = FieldSampler(labelled, config, balanced=profile.balanced)
    batch = sampler.sample(profile.pool, np.random.default_rng(0))
    batch.save(path, {"train_seeds": profile.train_seeds, "balanced": profile.balanced,
                      "data": profile.data, "label_noise_um": profile.label_noise_um})  # fmt: skip
    print(f"field pool: {len(batch)} fields, pixels per class {batch.class_counts(4)}", flush=True)
    return path


def run_name(profile_name: str, seed: int = 0) -> str:
    """The cache folder (and report suffix) of one run: the profile, plus the seed if not 0."""
    return profile_name if seed == 0 else f"{profile_name}-seed{seed}"


def train_and_score(model: str, profile_name: str, cache: str, seed: int = 0) -> dict:
    """Train one model on the pool and score it on the held-out slides (in a worker).

    `seed` seeds the training only (initial weights, batch order,
    augmentation); the field pool and the slides are the same for every seed.
    """
    import torch

    from razn.evaluation import Evaluation, evaluate
    from razn.models import load_model
    from razn.training import FieldBatch, FieldPool, TrainingConfig, open_labelled, train

    torch.set_num_threads(1)  # two workers on two cores; more threads only contend
    cache_dir, profile = Path(cache), PROFILES[profile_name]
    result_path = cache_dir / run_name(profile_name, seed) / f"{model}.json"
    if result_path.exists():
        result = json.loads(result_path.read_text())
        if "relative_time_batched" not in result["results"][0]:  # scored before it existed
            add_batched_timing(result, load_model(result_path.parent / (model + profile.suffix)
                                                  / "model.safetensors"), profile, cache_dir)  # fmt: skip
            result_path.write_text(json.dumps(result, indent=1))
        return result
    variant = VARIANTS.get(model, Variant(model))
    name = variant.base + profile.suffix
    out = result_path.parent / (model + profile.suffix)
    config = TrainingConfig(
        model=name, iterations=profile.iterations, batch_size=profile.batch_size,
        lr=profile.lr, decay_every=profile.decay_every, seed=seed, balanced=profile.balanced,
        checkpoint_every=100, log_every=10, warmup=int(variant.warmup * profile.iterations),
        warmup_policy=variant.warmup_policy,
        data=_data_record(profile),
    )  # fmt: skip
    if not (out / "model.safetensors").exists():
        pool = FieldBatch.load(cache_dir / f"fields-{profile_name}.safetensors")
        resume = (out / "checkpoint.state.safetensors").exists()
        for _ in train(config, FieldPool(pool), out, resume=resume):
            pass
    train_s = training_seconds(out)
    trained = load_model(out / "model.safetensors")
    thresholds = THRESHOLDS if variant.base == "razn" else (0.5,)
    start = time.time()
    per_slide = []
    for path in slides_for(cache_dir, profile, "test"):
        labelled = open_labelled(path, labels_of(path))
        per_slide.append(evaluate(trained, labelled, thresholds=thresholds, timing_fields=100))
    pooled = [Evaluation.combine([s[i] for s in per_slide]) for i in range(len(thresholds))]
    result = {
        "model": name,
        "train_s": round(train_s, 1),
        "evaluate_s": round(time.time() - start, 1),
        "results": [e.to_dict() for e in pooled],
        "training": asdict(config),
    }
    add_batched_timing(result, trained, profile, cache_dir)
    result_path.write_text(json.dumps(result, indent=1))
    return result


def training_seconds(run: Path) -> float:
    """The training's own clock from its metrics log (right for a model trained earlier, too).

    A resumed run restarts the clock, so this is the last stretch only.
    """
    rows = (run / "metrics.jsonl").read_text().splitlines()
    return float(json.loads(rows[-1])["elapsed_s"]) if rows else 0.0


def _data_record(profile: Profile) -> dict:
    if profile.data == "mosaic":
        return {"mosaic": "train patients of razn.synth.photos.patient_split "
                "(test fraction 0.3, split seed 0)", "sources": list(profile.sources),
                "fields": profile.pool}  # fmt: skip
    return {"synthetic_train_seeds": list(profile.train_seeds), "slide_size": profile.slide_size,
            "lesion_fraction": profile.lesion_fraction, "invasive": profile.invasive,
            "label_noise_um": profile.label_noise_um, "fields": profile.pool}  # fmt: skip


def _describe_data(profile: Profile) -> list[str]:
    budget = (
        f"every model {profile.iterations} Adam steps of {profile.batch_size} fields, lr "
        f"{profile.lr} x0.1 after step {profile.decay_every}, flips/turns/colour augmentation."
    )
    if profile.data == "mosaic" and profile.sources != ("breakhis-100x",):
        folders = " ".join(f"../shared/data/{s}" for s in profile.sources)
        return [
            f"Training: the four-class real-tissue mosaic of the train patients (`razn synth "
            f"--mosaic {folders} --split train`, 0.25 um/px), one pool of {profile.pool} "
            f"class-balanced fields; {budget} Held out: the mosaic of the other patients "
            f"(`--split test`). Models: `*{profile.suffix}` configurations.",
            "",
            "How little data this is: BreakHis gives benign and invasive (41 photos of 343 um), "
            "the four BACH example photos (one per class, 1.47 um/px: coarser than the 1 um/px "
            "coarse view, so a zoomed view holds no finer detail) are cut into four pieces "
            "each, and BRACS gives four regions of about 175 um at 0.25 um/px (in situ, "
            "benign). Normal tissue is one BACH photo: it is the one class with a single "
            "patient, so its pieces are shared between train and test (3 train, 1 test), the "
            "only place the split is not patient-disjoint. In situ is one BRACS region in "
            "training and the BACH in situ photo held out (split seed 0). The glass around "
            "the islands is labelled normal as well, so normal IoU is mostly glass. The "
            "truth is image-level. Read these figures as a smoke test on real pixels, not "
            "as a measurement.",
        ]
    if profile.data == "mosaic":
        return [
            f"Training: the BreakHis mosaic of the train patients (`razn synth --mosaic "
            f"../shared/data/breakhis-100x --split train`, 0.25 um/px), one pool of "
            f"{profile.pool} class-balanced fields; {budget} Held out: the mosaic of the other "
            f"patients (`--split test`). Models: `*{profile.suffix}` configurations.",
            "",
            "The truth is image-level (each photo's island carries its file name's class) "
            "and the shared photos hold no papillary carcinoma, so there is no in situ "
            "class: mIoU is over normal (glass), benign and invasive, and non-carcinoma / "
            "carcinoma IoU are the columns to compare with the paper.",
        ]
    return [
        f"Training: synthetic seeds {profile.train_seeds[0]}-{profile.train_seeds[-1]} "
        f"({profile.slide_size} px square at 0.25 um/px, 65% tissue, "
        f"{profile.lesion_fraction:.0%} of it in lesions, {profile.invasive} invasive "
        f"carcinoma{_noise(profile)}), one pool of {profile.pool} "
        f"{'class-balanced' if profile.balanced else 'uniformly drawn'} fields; {budget} "
        f"Held out (clean truth): seeds "
        f"{', '.join(map(str, profile.test_seeds))}. Models: `*{profile.suffix}` configurations."
    ]


def _noise(profile: Profile) -> str:
    if not profile.label_noise_um:
        return ""
    return (f"; training truth with label noise: region boundaries displaced smoothly by up to "
            f"{profile.label_noise_um:g} um, `razn synth --label-noise "
            f"{profile.label_noise_um / 0.25:g}`")  # fmt: skip


def report_path(profile_name: str) -> Path:
    name = "table1.md" if profile_name == "quick" else f"table1_{profile_name}.md"
    return ROOT / "docs" / "benchmarks" / name


def retime(result: dict, model, profile: Profile, cache: Path) -> None:
    """Both relative times again, with nothing else running (--retime).

    Scoring runs two models at a time on two cores, so its timings share
    the machine with another model's training; here one process times one
    model at a time. Same protocol: 100 evenly spread fields per slide one
    per call, and batches of BATCH_TIMING.
    """
    _store_times(result, _times_on_test_slides(result, model, profile, cache, batch=1, fields=100),
                 "relative_time", "timed_fields")  # fmt: skip
    add_batched_timing(result, model, profile, cache)
    result["retimed"] = True


def add_batched_timing(result: dict, model, profile: Profile, cache: Path) -> None:
    """Relative time per field in batches of BATCH_TIMING (`time_in_batches`), per threshold."""
    times = _times_on_test_slides(result, model, profile, cache, batch=BATCH_TIMING, fields=104)
    _store_times(result, times, "relative_time_batched", "timed_batches")


def _times_on_test_slides(result, model, profile, cache, *, batch, fields) -> dict:
    """Relative times of `model` at each of `result`'s thresholds, pooled over the test slides."""
    from razn.evaluation import time_in_batches
    from razn.training import open_labelled

    thresholds = [r["threshold"] for r in result["results"]]
    pooled = {t: [] for t in thresholds}
    for path in slides_for(cache, profile, "test"):
        times = time_in_batches(model, open_labelled(path, labels_of(path)),
                                thresholds=thresholds, batch=batch, fields=fields)  # fmt: skip
        for t in thresholds:
            pooled[t] += times[t]
    return pooled


def _store_times(result: dict, times: dict, key: str, count_key: str) -> None:
    for r in result["results"]:
        t = np.array(times[r["threshold"]])
        r[key], r[f"{key}_sd"], r[count_key] = float(t.mean()), float(t.std(ddof=1)), int(t.size)


def write_report(
    profile_name: str, results: dict, cache: Path, seconds: float | None, seed: int = 0
) -> None:
    """docs/benchmarks/table1_<run>.md; `seconds` is this invocation's wall time, None if it
    trained nothing (`--report-only`), so a rewritten report does not claim a 0-minute run."""
    profile, run = PROFILES[profile_name], run_name(profile_name, seed)
    image = f"table1_{run}.png"
    plot(results, ROOT / "docs" / "images" / image)
    what = "synthetic slides"
    if profile.data == "mosaic":
        only_breakhis = profile.sources == ("breakhis-100x",)
        what = "the BreakHis mosaic" if only_breakhis else "the four-class real-tissue mosaic"
    seeded = f", training seed {seed}" if seed else ""
    lines = [
        f"# Table 1 on {what} ({profile_name} profile{seeded})",
        "",
        "Written by `python benchmarks/table1.py --profile " + profile_name
        + (f" --seed {seed}" if seed else "") + "`; see "
        "docs/benchmarks.md (\"Table 1\") for what was run and what it means.",
        "",
        *_describe_data(profile),
        "",
        "| model | non-carcinoma IoU | carcinoma IoU | mIoU | weighted IoU | relative time | relative time, batches | zoom fraction | paper: non-carc. | paper: carc. | paper: mIoU | paper: wIoU | paper: time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for model in MODELS:
        if model not in results:
            continue
        r = _at(results[model], 0.5)
        p = PAPER.get(model, (None, None, None, None, "-"))
        lines.append(
            f"| {LABELS[model]} | {_f(r['non_carcinoma_iou'])} | {_f(r['carcinoma_iou'])} | "
            f"{_f(r['miou'])} | {_f(r['weighted_iou'])} | {_time(r)} | {_time(r, '_batched')} | "
            f"{r['zoom_fraction']:.2f} | {' | '.join(map(_f, p[:4]))} | {p[4]} |"
        )
    lines += ["", "Relative time is per field against a Scale 1 net of the same width, mean ± sd: "
              "one field per call (as the paper timed patches; 100 fields per held-out slide) "
              f"and in batches of {BATCH_TIMING} fields (as the whole-slide engine runs them; 13 "
              "batches per slide, spread over the tissue). CPU, one torch thread. "
              + ("Timed after training, one model at a time with nothing else running "
                 "(`--retime`)." if all(r.get("retimed") for r in results.values()) else
                 "Timed while scoring, beside another model's training (noisy)."),
              "", "Per-class IoU (threshold 0.5 for RAZN):", "",
              "| model | " + " | ".join(_at(next(iter(results.values())), 0.5)["per_class_iou"])
              + " |",
              "|---|" + "---|" * 4]  # fmt: skip
    for model in MODELS:
        if model in results:
            ious = _at(results[model], 0.5)["per_class_iou"].values()
            lines.append(f"| {LABELS[model]} | " + " | ".join(_f(v) for v in ious) + " |")
    for model in RAZN_MODELS:
        if model not in results:
            continue
        lines += ["", f"{LABELS[model]}: threshold sweep", "",
                  "| threshold | mIoU | non-carc. IoU | carc. IoU | zoom fraction | relative time | relative time, batches |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in results[model]["results"]:
            lines.append(
                f"| {r['threshold']} | {_f(r['miou'])} | {_f(r['non_carcinoma_iou'])} | "
                f"{_f(r['carcinoma_iou'])} | {r['zoom_fraction']:.2f} | {_time(r)} | "
                f"{_time(r, '_batched')} |"
            )
    lines += ["", f"![mIoU against relative time](../images/{image})", ""]
    lines += floors(results, "Floors" if profile.data == "synthetic" else "Does zooming pay here?")
    if not seed:
        lines += seed_spread(results, cache, profile_name)
    lines += ["", "Run times (one worker per model, 1 torch thread each):", ""]
    for model in MODELS:
        if model in results:
            lines.append(f"- {LABELS[model]}: training {results[model]['train_s']:.0f} s, "
                         f"evaluation {results[model]['evaluate_s']:.0f} s")  # fmt: skip
    serial = sum(r["train_s"] + r["evaluate_s"] for r in results.values())
    lines += [f"- all models, training plus evaluation, one after another: {serial / 60:.0f} min"]
    if seconds is not None:
        lines += [f"- this invocation (wall; cached models cost nothing): {seconds / 60:.1f} min"]
    lines += [f"- machine: {platform.machine()}, {multiprocessing.cpu_count()} cores, "
              f"{platform.python_version()}, shared with other jobs", ""]  # fmt: skip
    out = report_path(run)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))


def seed_spread(results: dict, cache: Path, profile_name: str) -> list[str]:
    """mIoU of the same models trained with other seeds (`--seed N` runs in the cache)."""
    runs = {0: results}
    for folder in sorted(cache.glob(f"{profile_name}-seed*")):
        seed = int(folder.name.rsplit("seed", 1)[1])
        found = {m: json.loads((folder / f"{m}.json").read_text()) for m in MODELS
                 if (folder / f"{m}.json").exists()}  # fmt: skip
        if found:
            runs[seed] = found
    if len(runs) < 2:
        return []
    seeds = sorted(runs)
    lines = ["", "## Other training seeds", "",
             "The same pool, slides and budget; only the training seed differs (initial "
             "weights, batch order, augmentation). Each run's full report is "
             + ", ".join(f"`table1_{run_name(profile_name, s)}.md`" for s in seeds[1:])
             + ". mIoU at threshold 0.5; for RAZN also its best mIoU within 0.6 of that "
             "run's Scale 2 time (one field per call), with the zoom fraction there. The last "
             "column is the mean ± sd (n - 1) of the mIoU at 0.5 over the seeds that have the "
             "model.", "",
             "| model | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± sd |",
             "|---|" + "---|" * (len(seeds) + 1)]  # fmt: skip
    for model in MODELS:
        if sum(model in runs[s] for s in seeds) < 2:
            continue
        mious = np.array([_at(runs[s][model], 0.5)["miou"] for s in seeds if model in runs[s]])
        cells = []
        for s in seeds:
            if model not in runs[s]:
                cells.append("-")
                continue
            cell = f"{_at(runs[s][model], 0.5)['miou']:.3f}"
            scale2 = runs[s].get("scale2")
            if model in RAZN_MODELS and scale2:
                budget = 0.6 * _at(scale2, 0.5)["relative_time"]
                near = [r for r in runs[s][model]["results"] if r["relative_time"] <= budget]
                if near:
                    best = max(near, key=lambda r: r["miou"])
                    cell += f"; {best['miou']:.3f} (zoom {best['zoom_fraction']:.2f})"
            cells.append(cell)
        cells.append(f"{mious.mean():.3f} ± {mious.std(ddof=1):.3f} (n = {mious.size})")
        lines.append(f"| {LABELS[model]} | " + " | ".join(cells) + " |")
    return lines


def floors(results: dict, title: str = "Floors") -> list[str]:
    """The issue's floors, checked, whatever they say."""
    if "scale2" not in results:
        return []
    s2 = _at(results["scale2"], 0.5)
    out = [f"## {title}", ""]
    ok = True  # a run without Scale 1 (other seeds) checks RAZN against Scale 2 only
    if "scale1" in results:
        s1 = _at(results["scale1"], 0.5)
        ok = s2["miou"] > s1["miou"]
        out.append(f"- Scale 2 beats Scale 1: mIoU {s2['miou']:.3f} vs {s1['miou']:.3f}: "
                   f"**{'met' if ok else 'NOT met'}**.")  # fmt: skip
    for key, how in (("relative_time", "one field per call"),
                     ("relative_time_batched", f"batches of {BATCH_TIMING} fields")):  # fmt: skip
        if s2.get(key) is None:
            continue
        out += ["", f"Time measured with {how}:", ""]
        out += _razn_floor(results, s2, key, ok)
    return out


def _razn_floor(results: dict, s2: dict, key: str, scale2_wins: bool) -> list[str]:
    out = []
    budget = 0.6 * s2[key]
    for model in RAZN_MODELS:
        if model not in results:
            continue
        rows = results[model]["results"]
        r5 = _at(results[model], 0.5)
        out.append(
            f"- {LABELS[model]} at threshold 0.5: mIoU {r5['miou']:.3f} at relative time "
            f"{r5[key]:.2f}, zoom fraction {r5['zoom_fraction']:.2f} (Scale 2: "
            f"{s2['miou']:.3f} at {s2[key]:.2f}; 0.6 of its time is {budget:.2f})."
        )
        fits = [r for r in rows if r[key] <= budget and r["miou"] >= s2["miou"]]
        if fits:
            best = max(fits, key=lambda r: r["miou"])
            out.append(f"- {LABELS[model]} >= Scale 2's mIoU within 0.6 of its time: **met** at "
                       f"threshold {best['threshold']} (mIoU {best['miou']:.3f}, time "
                       f"{best[key]:.2f}).")  # fmt: skip
            if not scale2_wins:
                out.append(f"  This is vacuous: Scale 2 is below Scale 1, so {LABELS[model]} "
                           "passes by not zooming (Scale 1's net plus a policy).")  # fmt: skip
        else:
            best = max(rows, key=lambda r: r["miou"])
            out.append(f"- {LABELS[model]} >= Scale 2's mIoU within 0.6 of its time: **NOT met** "
                       f"at any threshold of the sweep (its best mIoU: {best['miou']:.3f} at "
                       f"threshold {best['threshold']}, time {best[key]:.2f}).")  # fmt: skip
        near = [r for r in rows if r[key] <= budget]
        if near and not fits:
            best = max(near, key=lambda r: r["miou"])
            out.append(f"  Within 0.6 of Scale 2's time its best is mIoU {best['miou']:.3f} "
                       f"(threshold {best['threshold']}, time {best[key]:.2f}).")  # fmt: skip
    return out


def plot(results: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install napari-razn[benchmarks])")
        return
    keys = [("relative_time", "one field per call")]
    if all(_at(r, 0.5).get("relative_time_batched") is not None for r in results.values()):
        keys.append(("relative_time_batched", f"batches of {BATCH_TIMING} fields"))
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4), squeeze=False)
    for ax, (key, how) in zip(axes[0], keys, strict=True):
        for model in MODELS:
            if model not in results:
                continue
            rows = results[model]["results"]
            if model.startswith("razn"):
                colour = RAZN_COLOURS[model]
                ax.plot([r[key] for r in rows], [r["miou"] for r in rows], "-o",
                        ms=3, color=colour, label=f"{LABELS[model]} (threshold sweep)")  # fmt: skip
                r = _at(results[model], 0.5)
                ax.plot(r[key], r["miou"], "*", ms=12, color=colour,
                        label=f"{LABELS[model]}, threshold 0.5")  # fmt: skip
            else:
                r = rows[0]
                ax.plot(r[key], r["miou"], "s", ms=7, label=LABELS[model],
                        color=BASELINE_COLOURS[model])  # fmt: skip
        ax.set_xlabel(f"inference time relative to Scale 1 ({how})")
        ax.set_ylabel("mIoU (held-out slides)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def _at(result: dict, threshold: float) -> dict:
    return min(result["results"], key=lambda r: abs(r["threshold"] - threshold))


def _f(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def _time(r: dict, kind: str = "") -> str:
    """Relative time ('' one field per call, '_batched' in batches), mean ± sd."""
    mean, sd = r.get(f"relative_time{kind}"), r.get(f"relative_time{kind}_sd")
    if sd is None:
        return _f(mean)
    return f"{mean:.2f} ± {sd:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    parser.add_argument("--cache", default="/tmp/razn-table1", help="slides, fields, runs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=MODELS, help="train and score only these")
    parser.add_argument("--demo-out", help="also copy a trained RAZN here (the demo model)")
    parser.add_argument("--demo-from", choices=RAZN_MODELS, default="razn-joint")
    parser.add_argument("--seed", type=int, default=0,
                        help="training seed; runs other than 0 go to their own folder and "
                        "report, and the seed-0 report lists them")  # fmt: skip
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: write the report from what the cache holds (for "
                        "example the seed-0 report once other seeds have run)")  # fmt: skip
    parser.add_argument("--retime", action="store_true",
                        help="time the scored models again, one at a time, in this process")  # fmt: skip
    args = parser.parse_args()
    start = time.time()
    cache = Path(args.cache)
    run = cache / run_name(args.profile, args.seed)
    run.mkdir(parents=True, exist_ok=True)
    profile = PROFILES[args.profile]
    if not args.report_only:  # a report needs neither (nor should it generate them)
        field_pool(cache, profile, args.profile)
        slides_for(cache, profile, "test")
    # Slowest first, so the workers finish close together.
    order = ("attention", *RAZN_MODELS, "ms", "scale2", "scale1")
    order = [m for m in order if m in (args.only or MODELS)] if not args.report_only else []
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        futures = {pool.submit(train_and_score, m, args.profile, str(cache), args.seed): m
                   for m in order}  # fmt: skip
        for future in concurrent.futures.as_completed(futures):
            future.result()
            print(f"{futures[future]}: done ({time.time() - start:.0f} s)", flush=True)
    # The report takes every model scored so far, in this run or an earlier one.
    results = {}
    for model in MODELS:
        path = run / f"{model}.json"
        if path.exists():
            results[model] = json.loads(path.read_text())
            if args.retime and not results[model].get("retimed"):
                import torch

                from razn.models import load_model

                torch.set_num_threads(1)
                trained = run / (model + profile.suffix) / "model.safetensors"
                retime(results[model], load_model(trained), profile, cache)
                path.write_text(json.dumps(results[model], indent=1))
                print(f"{model}: retimed ({time.time() - start:.0f} s)", flush=True)
    if not results:
        raise SystemExit(f"{run}: no scored model to report on")
    wall = None if args.report_only else time.time() - start
    write_report(args.profile, results, cache, wall, args.seed)
    if args.demo_out:
        trained = run / (args.demo_from + profile.suffix)
        export_demo(trained, results[args.demo_from], args.demo_out, profile, cache)


def choose_threshold(model, profile: Profile, cache: Path) -> tuple[float, list[dict]]:
    """The demo's operating point, chosen on a TRAINING slide, never the held-out ones.

    The largest threshold (least zooming) whose mIoU is within 0.01 of the
    sweep's best: accuracy first, then speed.
    """
    from razn.evaluation import evaluate
    from razn.training import open_labelled

    path = slides_for(cache, profile, "train")[0]
    sweep = [e.to_dict() for e in evaluate(model, open_labelled(path, labels_of(path)),
                                           thresholds=THRESHOLDS, timing_fields=0)]  # fmt: skip
    best = max(r["miou"] for r in sweep)
    chosen = max(r["threshold"] for r in sweep if r["miou"] >= best - 0.01)
    return chosen, sweep


def export_demo(run: Path, result: dict, out: str, profile: Profile, cache: Path) -> None:
    """Save the trained RAZN as the demo model, with what it was trained on and how good it is."""
    from razn.models import load_model, save_checkpoint

    model = load_model(run / "model.safetensors")
    threshold, sweep = choose_threshold(model, profile, cache)
    held_out = _at(result, threshold)
    training = {
        **model.training_record,
        "data": "synthetic slides from razn.synth.generate_slide, training seeds "
        + ", ".join(map(str, result["training"]["data"]["synthetic_train_seeds"])),
        "held_out": {
            k: held_out[k]
            for k in (
                "threshold",
                "miou",
                "per_class_iou",
                "non_carcinoma_iou",
                "carcinoma_iou",
                "zoom_fraction",
            )
        },  # fmt: skip
        "default_threshold": threshold,
        "default_threshold_rule": "the largest threshold whose mIoU on training slide "
        f"{slides_for(cache, profile, 'train')[0].name} is within 0.01 of the best of the sweep",
        "training_slide_sweep": [
            {k: r[k] for k in ("threshold", "miou", "zoom_fraction")} for r in sweep
        ],
        "intended_use": "demonstration only; not for diagnosis",
    }
    save_checkpoint(model, out, training=training)
    print(f"demo model written to {out} (default threshold {threshold})")


if __name__ == "__main__":
    main()
