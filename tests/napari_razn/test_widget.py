"""The RAZN panel shows the slide's facts and measures tissue off the GUI thread."""

from __future__ import annotations

import numpy as np
import pytest

from napari_razn._widget import RaznWidget


def test_panel_shows_facts_and_tissue(make_napari_viewer, qtbot, cmu_svs):
    viewer = make_napari_viewer()
    viewer.open(str(cmu_svs), plugin="napari-razn")
    widget = RaznWidget(viewer)
    assert widget.slide_layer is viewer.layers[0]
    assert widget.format_label.value == "aperio-svs (jpeg)"
    assert widget.size_label.value == "2,220 x 2,967 px"
    assert "0.4990 um/px" in widget.mpp_label.value
    assert widget.magnification_label.value == "20x"
    qtbot.waitUntil(lambda: widget.tissue_label.value.endswith("of the slide"), timeout=20000)
    assert 0.25 < viewer.layers[0].metadata["razn_slide"]["tissue_fraction"] < 0.5


def test_panel_sets_a_missing_mpp(make_napari_viewer, qtbot, tcga_svs):
    viewer = make_napari_viewer()
    viewer.open(str(tcga_svs), plugin="napari-razn")
    widget = RaznWidget(viewer)
    assert "unknown" in widget.mpp_label.value
    widget.mpp_input.value = 0.5
    widget.apply_mpp()
    layer = viewer.layers[0]
    np.testing.assert_allclose(layer.scale, [0.5, 0.5])
    assert "0.5000 um/px (user)" in widget.mpp_label.value
    qtbot.waitUntil(lambda: widget.tissue_label.value.endswith("of the slide"), timeout=20000)


def test_panel_without_a_slide(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = RaznWidget(viewer)
    assert widget.slide_layer is None
    assert "open a slide" in widget.tissue_label.value
    viewer.add_image(np.zeros((8, 8)))  # not a slide: not offered
    assert widget.slide_layer is None


def test_the_slider_starts_at_the_models_own_threshold(make_napari_viewer, tmp_path):
    from razn.models import build_model, default_threshold, save_checkpoint

    widget = RaznWidget(make_napari_viewer())
    assert widget.threshold.value == pytest.approx(default_threshold("demo"))
    tuned = save_checkpoint(build_model("razn-small"), tmp_path / "tuned.safetensors",
                            training={"default_threshold": 0.3})  # fmt: skip
    widget.model_input.value = str(tmp_path / "tun")  # being typed: not a checkpoint yet
    assert widget.threshold.value == pytest.approx(default_threshold("demo"))
    widget.model_input.value = str(tuned)
    assert widget.threshold.value == pytest.approx(0.3)
    widget.threshold.value = 0.7  # the user's choice stands while the model does
    widget._use_model_threshold()
    assert widget.threshold.value == pytest.approx(0.7)
