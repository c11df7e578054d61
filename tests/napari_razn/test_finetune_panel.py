"""Improving the model from the corrections: a new checkpoint beside the old, then re-segmenting."""

from __future__ import annotations

import shutil

import numpy as np

import napari_razn._improve as widget_module
from napari_razn._layers import CLASSES_LAYER
from tests.napari_razn.test_segmentation_panel import open_panel, wait_idle


def test_improve_the_model_from_corrections(
    make_napari_viewer, qtbot, small_slide, small_checkpoint, tmp_path, monkeypatch
):
    monkeypatch.setattr(widget_module, "FINETUNE_ITERATIONS", 8)
    # A copy in a folder of its own: the new checkpoint goes beside it.
    checkpoint = tmp_path / "models" / small_checkpoint.name
    checkpoint.parent.mkdir()
    shutil.copy(small_checkpoint, checkpoint)
    viewer, widget = open_panel(make_napari_viewer, small_slide, checkpoint)
    widget.improve_model()  # nothing segmented or corrected: told, nothing runs
    assert widget.export.worker is None
    widget.segment_slide()
    wait_idle(qtbot, widget)
    layer = viewer.layers[CLASSES_LAYER]
    rows, cols = np.meshgrid(np.arange(90, 106), np.arange(120, 136), indexing="ij")
    layer.data_setitem((rows.ravel(), cols.ravel()), 4)
    new = checkpoint.parent / "small.finetuned-1.safetensors"
    # Cancel stops it at its next step, and nothing is saved.
    widget.improve_model()
    widget.cancel()
    qtbot.waitUntil(lambda: widget.export.worker is None, timeout=30000)
    assert widget.progress_label.value == "cancelled" and not new.exists()
    assert widget.model_input.value == str(checkpoint)
    widget.threshold.value = 0.35  # the user's threshold outlives the fine-tuning
    widget.improve_model()
    assert "improving" in widget.progress_label.value
    qtbot.waitUntil(lambda: widget.export.worker is None, timeout=30000)
    assert new.is_file()
    assert widget.model_input.value == str(new)
    qtbot.wait(200)  # a threshold read for the new model would have landed by now
    assert widget.threshold.value == 0.35
    wait_idle(qtbot, widget)  # the view is segmented again with the new model
    from razn.inference.store import model_identity
    from razn.models import read_metadata

    info = read_metadata(new)["training"]["finetune"]
    assert info["parent"] == str(checkpoint) and info["corrected_pixels"] == 256
    assert info["iterations"] == 8
    # The corrections stay, and the session now runs on the new model.
    assert (widget.session.labels[90:106, 120:136] == 4).all()
    assert widget.segmentation.model().checkpoint_path == new
    assert (
        widget.session.settings["model"] == model_identity(widget.segmentation.model())["sha256"]
    )
    assert widget.session.done.any()


def test_improving_runs_on_the_device_picked(
    make_napari_viewer, qtbot, small_slide, small_checkpoint, monkeypatch
):
    import razn.training.finetune as finetune

    seen = {}

    def finetune_on(model, slide, labels, corrected, downsample, *, iterations, device="cpu"):
        seen["device"] = device
        yield finetune.FinetuneProgress(iterations, iterations, {}, model)

    monkeypatch.setattr(finetune, "finetune_from_corrections", finetune_on)
    monkeypatch.setattr(finetune, "save_finetuned", lambda model: small_checkpoint)
    viewer, widget = open_panel(make_napari_viewer, small_slide, small_checkpoint)
    widget.segment_slide()
    wait_idle(qtbot, widget)
    rows, cols = np.meshgrid(np.arange(90, 106), np.arange(120, 136), indexing="ij")
    viewer.layers[CLASSES_LAYER].data_setitem((rows.ravel(), cols.ravel()), 4)
    widget.device_picker.value = "auto"  # the panel's choice, not a fixed "cpu"
    widget.improve_model()
    qtbot.waitUntil(lambda: widget.export.worker is None, timeout=30000)
    assert seen == {"device": "auto"}
    wait_idle(qtbot, widget)
