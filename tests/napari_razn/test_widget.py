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


def undocked_panel(make_napari_viewer, slide, checkpoint):
    """A script's panel: made on a viewer with the slide open, never docked, on the CPU."""
    viewer = make_napari_viewer()
    viewer.open(str(slide), plugin="napari-razn")
    widget = RaznWidget(viewer)
    widget.model_input.value = str(checkpoint)
    widget.device_picker.value = "cpu"
    return viewer, widget


def test_a_panel_never_docked_is_torn_down_with_its_viewer(
    make_napari_viewer, qtbot, small_slide, small_checkpoint
):
    """Made but never docked (a script's panel): closing the viewer ends it, not only app quit.

    Its run stops and is awaited, its session is saved, and nothing it
    owns runs afterwards.
    """
    viewer, widget = undocked_panel(make_napari_viewer, small_slide, small_checkpoint)
    widget.segment_slide()
    qtbot.waitUntil(lambda: widget.runner.finished >= 1, timeout=60000)
    session = widget.session
    viewer.close()
    qtbot.waitUntil(lambda: widget.controller.closed, timeout=10000)
    assert not widget.runner.running and widget.workers.running() == 0
    assert not widget.autosave.dirty  # flushed on close
    from razn.session import SegmentationSession, default_session_path

    saved = SegmentationSession.load(default_session_path(session.slide_path))
    assert saved.done.sum() >= 1


def test_panel_without_a_slide(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = RaznWidget(viewer)
    assert widget.slide_layer is None
    assert "open a slide" in widget.tissue_label.value
    viewer.add_image(np.zeros((8, 8)))  # not a slide: not offered
    assert widget.slide_layer is None


def test_the_slider_starts_at_the_models_own_threshold(make_napari_viewer, qtbot, tmp_path):
    from razn.models import build_model, default_threshold, save_checkpoint

    widget = RaznWidget(make_napari_viewer())
    # Read in a worker (it imports torch), so it arrives a moment later.
    qtbot.waitUntil(lambda: widget.threshold.value == pytest.approx(default_threshold("demo")))
    tuned = save_checkpoint(build_model("razn-small"), tmp_path / "tuned.safetensors",
                            training={"default_threshold": 0.3})  # fmt: skip
    widget.model_input.value = str(tmp_path / "tun")  # being typed: not a checkpoint yet
    assert widget.threshold.value == pytest.approx(default_threshold("demo"))
    widget.model_input.value = str(tuned)
    qtbot.waitUntil(lambda: widget.threshold.value == pytest.approx(0.3))
    widget.threshold.value = 0.7  # the user's choice stands while the model does
    widget.segmentation.use_model_threshold()
    assert widget.threshold.value == pytest.approx(0.7)


def test_the_files_mpp_is_locked_and_a_users_is_remembered(make_napari_viewer, qtbot, cmu_svs,
                                                           tcga_svs):  # fmt: skip
    viewer = make_napari_viewer()
    viewer.open(str(cmu_svs), plugin="napari-razn")
    widget = RaznWidget(viewer)
    # Prefilled from the file and locked: one click cannot override it.
    assert widget.mpp_input.value == pytest.approx(0.499, abs=1e-3)
    assert not widget.mpp_input.enabled and not widget.mpp_button.enabled
    widget.mpp_override.value = True  # an explicit override
    assert widget.mpp_input.enabled and widget.mpp_button.enabled
    qtbot.waitUntil(lambda: widget.tissue_label.value.endswith("of the slide"), timeout=20000)
    # A slide without one: set by the user, and there again on reopening.
    viewer2 = make_napari_viewer()
    viewer2.open(str(tcga_svs), plugin="napari-razn")
    widget2 = RaznWidget(viewer2)
    assert widget2.mpp_input.enabled
    widget2.mpp_input.value = 0.5
    widget2.apply_mpp()
    qtbot.waitUntil(lambda: widget2.tissue_label.value.endswith("of the slide"), timeout=20000)
    viewer3 = make_napari_viewer()
    viewer3.open(str(tcga_svs), plugin="napari-razn")
    widget3 = RaznWidget(viewer3)
    np.testing.assert_allclose(viewer3.layers[0].scale, [0.5, 0.5])
    assert "0.5000 um/px (user, remembered)" in widget3.mpp_label.value
    qtbot.waitUntil(lambda: widget3.tissue_label.value.endswith("of the slide"), timeout=20000)


def test_the_model_and_threshold_that_made_the_labels_come_back(
    make_napari_viewer, qtbot, small_slide, small_checkpoint
):
    from tests.napari_razn.test_segmentation_panel import open_panel, wait_idle

    viewer, widget = open_panel(make_napari_viewer, small_slide, small_checkpoint)
    widget.threshold.value = 0.35
    widget.segment_slide()
    wait_idle(qtbot, widget)
    assert widget.made_by_label.value == f"{small_checkpoint}, threshold 0.35"
    widget.save_session()
    qtbot.waitUntil(lambda: widget._save_worker is None, timeout=10000)
    viewer2 = make_napari_viewer()
    viewer2.open(str(small_slide), plugin="napari-razn")
    widget2 = RaznWidget(viewer2)  # "demo" by default: the restored session says otherwise
    qtbot.waitUntil(lambda: widget2.session is not None, timeout=10000)
    assert widget2.model_input.value == str(small_checkpoint)
    assert widget2.threshold.value == pytest.approx(0.35)
    assert widget2.made_by_label.value == f"{small_checkpoint}, threshold 0.35"
    assert not widget2.model_note.visible  # the demo's warning is for the demo only


def test_an_autosave_started_just_before_closing_is_not_lost(
    make_napari_viewer, qtbot, small_slide, small_checkpoint
):
    """The autosave's worker is queued for the next timer tick; closing in the same turn
    must still leave the latest labels on disk (it was lost: CI, once in a few runs)."""
    viewer, widget = undocked_panel(make_napari_viewer, small_slide, small_checkpoint)
    widget.segment_slide()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60000)
    qtbot.waitUntil(
        lambda: widget._save_worker is None and not widget.autosave.dirty, timeout=10000
    )
    session = widget.session
    session.labels[:8, :8] = 3  # a last change, then its autosave and the close, in one turn
    widget.autosave.changed()
    widget.save_session()
    assert widget._save_worker is not None
    viewer.close()
    qtbot.waitUntil(lambda: widget.controller.closed, timeout=10000)
    assert not widget.autosave.dirty
    from razn.session import SegmentationSession, default_session_path

    saved = SegmentationSession.load(default_session_path(session.slide_path))
    assert (saved.labels[:8, :8] == 3).all()
    qtbot.wait(200)  # the dropped worker's tick: it writes nothing older over it
    saved = SegmentationSession.load(default_session_path(session.slide_path))
    assert (saved.labels[:8, :8] == 3).all()
