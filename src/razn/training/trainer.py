"""The training loop: a generator of progress, JSON-lines metrics, checkpoints, exact resume.

`train` runs `TrainingConfig.iterations` steps of `training_step` on
batches from a field source (fields sampled from slides as it goes, or a
fixed pool sampled once) and yields a `TrainingProgress` after each, so the
CLI can wrap it in a progress bar and the plugin in a worker. In `out_dir`
it writes `metrics.jsonl` (one JSON object per logged window),
`checkpoint.safetensors` (the model, loadable by `razn.models.load_model`)
every `checkpoint_every` steps with `checkpoint.state.safetensors` beside
it (Adam's moments and every random number generator's state, as tensors,
and the rest as JSON in its header: no pickle), and `model.safetensors` at
the end. Resuming restores all of it, so a resumed CPU run takes exactly
the steps the uninterrupted run would have taken.

`TrainingConfig.device` picks where the steps run ("auto": CUDA, then MPS,
then the CPU, as the inference engine picks). Checkpoints hold CPU tensors
only, so a run started on a GPU resumes on the CPU and the other way round;
only a CPU run resumes bit for bit (GPU kernels are not deterministic, and
the GPU's own random state, used by dropout there, is not saved).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from razn.atomic import atomic_path
from razn.devices import pick_device
from razn.errors import RaznError
from razn.models import build_model, load_model, save_checkpoint
from razn.models.normalise import to_views
from razn.training.algorithm import (
    REWARD_BASELINES,
    REWARD_SCALES,
    targets_from_labels,
    training_step,
)
from razn.training.patches import FieldBatch, FieldSampler, augment

CHECKPOINT = "checkpoint.safetensors"
STATE = "checkpoint.state.safetensors"
FINAL = "model.safetensors"
METRICS = "metrics.jsonl"


@dataclass(frozen=True)
class TrainingConfig:
    """How to train; stored in every checkpoint.

    Attributes
    ----------
    model : registry name of the model configuration.
    iterations : optimiser steps (batches).
    batch_size : fields of view per step.
    lr : Adam's initial learning rate (the paper: 0.01 for 200k steps).
    decay_every : multiply lr by `decay_factor` every this many steps;
        None: a quarter of `iterations`, the paper's 50k of 200k.
    alpha : bound of the zoom sampling probability (paper 0.8).
    cost : lambda, the reward's price per zoom (paper 0: accuracy only).
    warmup : RAZN only: for this many first steps every segmentation net
        learns from every field and the policy waits (0: the paper).
    warmup_policy : RAZN only: the policy learns during the warm-up too,
        rewarded by the same J_0 and J_1 (the nets' training is unchanged).
    baseline : RAZN only: what the policy's REINFORCE step subtracts from
        the reward, one of `razn.training.algorithm.REWARD_BASELINES`
        ("none": the paper; "batch-mean", "moving-average", "self-critical").
    normalise_advantage : RAZN only: the advantage scaled to zero mean and
        unit spread over each batch (not in the paper).
    reward_scale : RAZN only: "relative", the paper's (J_0 - J_1) / J_0, or
        "symmetric", (J_0 - J_1) / max(J_0, J_1) (not in the paper).
    balanced : class-balanced field sampling.
    augment : flips, 90-degree turns and colour jitter.
    seed : seeds every random number generator; same seed, same run on CPU.
    device : "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:1", "mps".
    checkpoint_every, log_every : in steps.
    """

    model: str = "razn-small"
    iterations: int = 2000
    batch_size: int = 8
    lr: float = 1e-3
    decay_every: int | None = None
    decay_factor: float = 0.1
    alpha: float = 0.8
    cost: float = 0.0
    warmup: int = 0
    warmup_policy: bool = False
    baseline: str = "none"
    normalise_advantage: bool = False
    reward_scale: str = "relative"
    balanced: bool = True
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 500
    log_every: int = 10
    data: dict = field(default_factory=dict, compare=False)

    def learning_rate(self, iteration: int) -> float:
        every = self.decay_every or max(1, self.iterations // 4)
        return self.lr * self.decay_factor ** (iteration // every)

    @classmethod
    def from_dict(cls, data: dict) -> TrainingConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class TrainingProgress:
    """What `train` yields after each step."""

    iteration: int
    iterations: int
    metrics: dict
    checkpoint: Path | None = None


class SlideFields:
    """Fields sampled from slides afresh for every batch."""

    def __init__(self, sampler: FieldSampler, augment: bool = True):
        self.sampler, self.augment = sampler, augment

    def batch(self, size: int, rng: np.random.Generator) -> FieldBatch:
        fields_ = self.sampler.sample(size, rng)
        return augment(fields_, rng) if self.augment else fields_


class FieldPool:
    """Batches drawn from a fixed, pre-sampled pool of fields (cheap for benchmarks)."""

    def __init__(self, pool: FieldBatch, augment: bool = True):
        self.pool, self.augment = pool, augment

    def batch(self, size: int, rng: np.random.Generator) -> FieldBatch:
        fields_ = self.pool.take(np.sort(rng.choice(len(self.pool), size, replace=False)))
        return augment(fields_, rng) if self.augment else fields_


def train(
    config: TrainingConfig,
    source,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
) -> Iterator[TrainingProgress]:
    """Train `config.model` on batches from `source`, yielding progress after each step.

    Parameters
    ----------
    config : TrainingConfig
    source : SlideFields or FieldPool (anything with `batch(size, rng) -> FieldBatch`).
    out_dir : where metrics and checkpoints go (created if missing).
    resume : continue from `out_dir`'s last checkpoint; its model and seed must match.
    """
    if config.baseline not in REWARD_BASELINES:
        raise RaznError(
            f"unknown reward baseline {config.baseline!r}; choose one of "
            f"{', '.join(REWARD_BASELINES)}"
        )
    if config.reward_scale not in REWARD_SCALES:
        raise RaznError(
            f"unknown reward scale {config.reward_scale!r}; choose one of "
            f"{', '.join(REWARD_SCALES)}"
        )
    device = pick_device(config.device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    # The moving-average baseline's running value: part of the state a
    # checkpoint keeps, so a resumed run takes the same steps.
    baseline_state: dict = {}
    if resume:
        model, optimizer, start = _restore(config, out, rng, generator, device, baseline_state)
    else:
        # Built on the CPU, then moved: the same seed gives the same initial
        # weights whatever the device.
        model = build_model(config.model).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        start = 0
        (out / METRICS).write_text("")
    window: list[dict] = []
    started = time.perf_counter()
    for iteration in range(start, config.iterations):
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate(iteration)
        batch = source.batch(config.batch_size, rng)
        views = [view.to(device) for view in to_views(batch.images)]
        targets = [targets_from_labels(t).to(device) for t in batch.labels]
        metrics = training_step(
            model, optimizer, views, targets,
            alpha=config.alpha, cost=config.cost, generator=generator,
            route=iteration >= config.warmup,
            train_policy=iteration >= config.warmup or config.warmup_policy,
            baseline=config.baseline, normalise_advantage=config.normalise_advantage,
            baseline_state=baseline_state, reward_scale=config.reward_scale,
        )  # fmt: skip
        window.append(metrics)
        done = iteration + 1
        if done % config.log_every == 0 or done == config.iterations:
            _log(out, done, config, device, window, time.perf_counter() - started)
            window = []
        saved = None
        if done % config.checkpoint_every == 0 or done == config.iterations:
            saved = _checkpoint(
                out, model, optimizer, rng, generator, config, device, done, baseline_state
            )
        yield TrainingProgress(done, config.iterations, metrics, saved)
    if start < config.iterations or not (out / FINAL).exists():
        record = _record(config, device, config.iterations)
        save_checkpoint(model, out / FINAL, training=record)


def _record(config: TrainingConfig, device: torch.device, iteration: int) -> dict:
    # `config.device` is what was asked for ("auto"); `device`, what ran.
    return {"iteration": iteration, "config": asdict(config), "device": str(device)}


def _log(out: Path, iteration: int, config, device, window: list[dict], elapsed: float) -> None:
    keys = sorted({k for m in window for k in m})
    row = {"iteration": iteration, "lr": config.learning_rate(iteration - 1)}
    row |= {k: float(np.mean([m[k] for m in window if k in m])) for k in keys}
    row["elapsed_s"] = round(elapsed, 3)
    row["device"] = str(device)  # per row: a resumed run may have moved
    with open(out / METRICS, "a") as fh:
        fh.write(json.dumps(row) + "\n")


def _checkpoint(
    out, model, optimizer, rng, generator, config, device, iteration, baseline_state
) -> Path:
    # The state goes first: a crash between the two files leaves a state
    # newer than the model, which `_restore` detects and refuses.
    tensors, plain = _flatten_optimizer(optimizer)
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.bernoulli"] = generator.get_state()
    header = {
        "iteration": iteration,
        "optimizer": plain,
        "rng.numpy": rng.bit_generator.state,
        "config": asdict(config),
        "device": str(device),
        "baseline_state": baseline_state,
    }
    from safetensors.torch import save_file

    with atomic_path(out / STATE) as tmp:
        save_file(tensors, str(tmp), metadata={"razn.state": json.dumps(header)})
    record = _record(config, device, iteration)
    return save_checkpoint(model, out / CHECKPOINT, training=record)


def _restore(config, out: Path, rng, generator, device: torch.device, baseline_state: dict):
    from safetensors import safe_open

    if not (out / STATE).is_file() or not (out / CHECKPOINT).is_file():
        raise RaznError("nothing to resume: no checkpoint in this folder", out)
    with safe_open(str(out / STATE), framework="pt") as fh:
        header = json.loads(fh.metadata()["razn.state"])
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (not a dict)
    model = load_model(out / CHECKPOINT, device=device).train()
    saved = TrainingConfig.from_dict(header["config"])
    if (saved.model, saved.seed) != (config.model, config.seed):
        raise RaznError(
            f"the checkpoint is of {saved.model} with seed {saved.seed}, not "
            f"{config.model} with seed {config.seed}",
            out,
        )
    iteration = int(header["iteration"])
    if model.training_record.get("iteration") != iteration:
        raise RaznError("the checkpoint's model and state are from different steps", out)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    # Adam moves the saved (CPU) moments onto its parameters' device.
    optimizer.load_state_dict(_unflatten_optimizer(tensors, header["optimizer"]))
    torch.set_rng_state(tensors["rng.torch"])
    generator.set_state(tensors["rng.bernoulli"])
    rng.bit_generator.state = header["rng.numpy"]
    baseline_state.update(header.get("baseline_state", {}))  # absent before baselines existed
    _truncate_metrics(out / METRICS, iteration)
    return model, optimizer, iteration


def _flatten_optimizer(optimizer) -> tuple[dict, dict]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                # CPU copies: a checkpoint must load on a machine without the GPU.
                tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict, plain: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for name, value in plain["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": plain["param_groups"]}


def _truncate_metrics(path: Path, iteration: int) -> None:
    if not path.exists():
        return
    rows = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [row for row in rows if json.loads(row)["iteration"] <= iteration]
    path.write_text("".join(row + "\n" for row in kept))
