"""The engine on CUDA: same answers as on the CPU, mixed precision, OOM back-off."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import razn
from razn.inference import segment

pytestmark = pytest.mark.gpu


def test_cuda_labels_match_cpu(slide_path, model):
    with razn.open_slide(slide_path) as slide:
        cpu = {(r.row, r.col): r for r in segment(slide, model, device="cpu")}
        gpu = {(r.row, r.col): r for r in segment(slide, model, device="cuda")}
    assert cpu.keys() == gpu.keys()
    agree = np.mean([(cpu[k].labels == gpu[k].labels).mean() for k in cpu])
    # bf16 autocast may flip pixels whose classes nearly tie, no more.
    assert agree > 0.98
    model.to("cpu")


def test_out_of_memory_halves_the_batch(slide_path, model, monkeypatch, caplog):
    import razn.inference.engine as engine

    calls = []
    real = engine._predict_razn

    def flaky(runner, model, views, batch, *args):
        calls.append(len(batch))
        if len(batch) > 2:
            raise torch.cuda.OutOfMemoryError("pretend")
        return real(runner, model, views, batch, *args)

    monkeypatch.setattr(engine, "_predict_razn", flaky)
    with razn.open_slide(slide_path) as slide:
        results = list(segment(slide, model, device="cuda", batch_size=8))
    assert results and max(calls) == 8 and 2 in calls
    assert "halving" in caplog.text
    model.to("cpu")
