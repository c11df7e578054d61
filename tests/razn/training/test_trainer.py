"""The training loop on a tiny synthetic slide: it learns, it logs, it resumes exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from razn.cli import main
from razn.errors import RaznError
from razn.models import build_model, get_config, load_model
from razn.training import (
    FieldPool,
    FieldSampler,
    SlideFields,
    TrainingConfig,
    train,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_few_steps_lower_the_loss(labelled, tmp_path):
    pool = FieldSampler([labelled], get_config("scale1-small"), balanced=True).sample(
        8, np.random.default_rng(0)
    )
    config = TrainingConfig("scale1-small", iterations=30, batch_size=4, lr=3e-3,
                            decay_every=1000, augment=False, log_every=5)  # fmt: skip
    for _ in train(config, FieldPool(pool, augment=False), tmp_path):
        pass
    losses = [row["segmentation_loss"] for row in _rows(tmp_path / "metrics.jsonl")]
    assert len(losses) == 6
    assert losses[-1] < 0.7 * losses[0], losses
    assert load_model(tmp_path / "model.safetensors").training_record["iteration"] == 30


@pytest.mark.parametrize("baseline", ["none", "moving-average"])
def test_resume_continues_exactly(labelled, tmp_path, baseline):
    # Bit-exact resume is a CPU promise (GPU kernels are not deterministic).
    # The moving-average baseline carries a running value the checkpoint must keep.
    config = TrainingConfig("razn-small", iterations=4, batch_size=2, checkpoint_every=2,
                            log_every=1, seed=3, device="cpu", baseline=baseline)  # fmt: skip
    source = SlideFields(FieldSampler([labelled], get_config("razn-small"), balanced=True))
    for _ in train(config, source, tmp_path / "straight"):
        pass
    for progress in train(config, source, tmp_path / "interrupted"):
        if progress.iteration == 2:
            assert progress.checkpoint is not None
            break  # as if killed right after the checkpoint
    with open(tmp_path / "interrupted" / "metrics.jsonl", "a") as log:
        log.write('{"iteration": 3}\n')  # a row past the checkpoint: must go
    for _ in train(config, source, tmp_path / "interrupted", resume=True):
        pass
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(tmp_path / "interrupted" / "model.safetensors")
    for name, tensor in straight.items():
        assert torch.equal(tensor, resumed[name]), name

    def without_time(rows):
        return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in rows]

    assert without_time(_rows(tmp_path / "straight" / "metrics.jsonl")) == without_time(
        _rows(tmp_path / "interrupted" / "metrics.jsonl")
    )


def test_resume_refuses_another_seed(labelled, tmp_path):
    config = TrainingConfig("scale1-small", iterations=1, batch_size=2, checkpoint_every=1)
    source = SlideFields(FieldSampler([labelled], get_config("scale1-small")))
    for _ in train(config, source, tmp_path):
        pass
    with pytest.raises(RaznError, match="seed"):
        next(
            train(
                TrainingConfig("scale1-small", iterations=2, seed=9), source, tmp_path, resume=True
            )
        )


def test_cli_trains_and_resumes(tiny, tmp_path, capsys):
    args = ["train", "--config", "scale1-small", "--slides", str(tiny.image),
            "--labels", str(tiny.geojson), "--out", str(tmp_path), "--batch-size", "2",
            "--log-every", "1", "--checkpoint-every", "1", "--quiet"]  # fmt: skip
    assert main([*args, "--iterations", "2"]) == 0
    assert main([*args, "--iterations", "3", "--resume"]) == 0
    assert [row["iteration"] for row in _rows(tmp_path / "metrics.jsonl")] == [1, 2, 3]
    record = load_model(tmp_path / "model.safetensors").training_record
    assert record["iteration"] == 3
    assert record["config"]["data"]["labels"] == [str(tiny.geojson)]


def test_cli_reports_mismatched_slides_and_labels(tiny, tmp_path, capsys):
    code = main(["train", "--slides", str(tiny.image), str(tiny.image),
                 "--labels", str(tiny.labels), "--out", str(tmp_path)])  # fmt: skip
    assert code == 2
    assert "2 slides but 1 label files" in capsys.readouterr().err


def _cli_args(tiny, out):
    return ["train", "--config", "scale1-small", "--slides", str(tiny.image),
            "--labels", str(tiny.geojson), "--out", str(out), "--batch-size", "2",
            "--log-every", "1", "--checkpoint-every", "1", "--quiet"]  # fmt: skip


def test_cli_trains_on_the_device_asked_for_and_records_it(tiny, tmp_path):
    assert main([*_cli_args(tiny, tmp_path), "--iterations", "2", "--device", "cpu"]) == 0
    assert [row["device"] for row in _rows(tmp_path / "metrics.jsonl")] == ["cpu", "cpu"]
    record = load_model(tmp_path / "model.safetensors").training_record
    assert record["device"] == "cpu"
    assert record["config"]["device"] == "cpu"


def test_cli_reports_a_missing_device_in_one_line(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a GPU-less machine
    code = main([*_cli_args(tiny, tmp_path), "--iterations", "1", "--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 2
    assert "razn train: error: device cuda is not available here (found: " in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "metrics.jsonl").exists()  # refused before any work
    assert main([*_cli_args(tiny, tmp_path), "--iterations", "1", "--device", "gpu"]) == 2
    assert "unknown device 'gpu'" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.parametrize("first, then", [("cuda", "cpu"), ("cpu", "cuda")])
def test_a_run_resumes_on_another_device(labelled, tmp_path, first, then):
    def config(device, iterations):
        return TrainingConfig("razn-small", iterations=iterations, batch_size=2,
                              checkpoint_every=1, log_every=1, seed=5, device=device)  # fmt: skip

    source = SlideFields(FieldSampler([labelled], get_config("razn-small"), balanced=True))
    for _ in train(config(first, 2), source, tmp_path):
        pass
    for _ in train(config(then, 3), source, tmp_path, resume=True):
        pass
    assert [row["device"] for row in _rows(tmp_path / "metrics.jsonl")] == [first, first, then]
    model = load_model(tmp_path / "model.safetensors")
    assert model.training_record["device"] == then
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_two_zoom_levels_train_and_every_net_learns(labelled, tmp_path):
    # m = 2 (the paper's future work): fields read at 1, 0.5 and 0.25 um/px,
    # two policies, three segmentation nets, Algorithm 1 on each adjacent pair.
    config_m2 = get_config("razn-m2-small")
    pool = FieldSampler([labelled], config_m2, balanced=True).sample(4, np.random.default_rng(0))
    assert [im.shape[-2] for im in pool.images] == [128, 256, 512]
    torch.manual_seed(1)  # as `train` seeds itself: the same initial weights
    start = build_model(config_m2)
    config = TrainingConfig("razn-m2-small", iterations=6, batch_size=2, lr=3e-3, log_every=2,
                            checkpoint_every=3, seed=1, device="cpu")  # fmt: skip
    for _ in train(config, FieldPool(pool), tmp_path):
        pass
    rows = _rows(tmp_path / "metrics.jsonl")
    assert {"zoom_p_1", "zoom_p_2", "loss_0", "loss_1_fine", "loss_2_fine"} <= set(rows[-1])
    assert all(np.isfinite(v) for row in rows for v in row.values() if isinstance(v, float))
    trained = load_model(tmp_path / "model.safetensors")
    assert trained.config.zoom_levels == 2
    before, after = start.state_dict(), trained.state_dict()
    for net in ("segmenters.0", "segmenters.1", "segmenters.2", "policies.0", "policies.1"):
        moved = [k for k in after if k.startswith(net) and not torch.equal(before[k], after[k])]
        assert moved, f"{net} never learnt"
