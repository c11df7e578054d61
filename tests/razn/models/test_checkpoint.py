"""Checkpoints round-trip, and unsafe or mismatched files are refused."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from razn.models import CheckpointError, build_model, load_model, read_metadata, save_checkpoint
from tests.razn.models.test_models import views_for


def test_round_trip_keeps_weights_config_and_provenance(tmp_path):
    torch.manual_seed(3)
    model = build_model("razn-small").eval()
    path = save_checkpoint(model, tmp_path / "model.safetensors", training={"slides": ["a.tif"]})
    loaded = load_model(path)
    assert loaded.config == model.config
    assert loaded.training_record == {"slides": ["a.tif"]}
    views = views_for(model.config, batch=2)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.predict(views, 0.5).probs, model.predict(views, 0.5).probs
        )
    assert read_metadata(path)["version"]


def test_weights_for_another_architecture_are_refused(tmp_path):
    path = save_checkpoint(build_model("razn-small"), tmp_path / "small.safetensors")
    # Swap in the configuration of a wider model: the tensors no longer fit.
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iter
        metadata = f.metadata()
    config = json.loads(metadata["razn.config"])
    config["width"] = 32
    metadata["razn.config"] = json.dumps(config)
    save_file(tensors, str(tmp_path / "lying.safetensors"), metadata=metadata)
    with pytest.raises(CheckpointError, match="do not fit its configuration.*wrong shape") as info:
        load_model(tmp_path / "lying.safetensors")
    assert "lying.safetensors" in str(info.value)


def test_pickles_are_refused_without_unpickling(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CheckpointError, match="pickle"):
        load_model(path)
    zipped = tmp_path / "model.pth"
    zipped.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(CheckpointError, match="pickle"):
        load_model(zipped)


def test_foreign_and_broken_files(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="not a RAZN checkpoint"):
        load_model(plain)
    path = save_checkpoint(build_model("scale1-small"), tmp_path / "cut.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read the weights"):
        load_model(path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "missing.safetensors")
    text = tmp_path / "notes.safetensors"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a safetensors"):
        load_model(text)
