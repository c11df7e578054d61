"""The RAZN panel segments what is in view, keeps corrections, and never freezes."""

from __future__ import annotations

import math
import time

import numpy as np

from napari_razn._layers import CLASSES_LAYER
from napari_razn._widget import RaznWidget


def open_panel(make_napari_viewer, slide, checkpoint):
    # Shown (under Xvfb in CI): a hidden canvas does not follow the camera,
    # so the layer's corner pixels would not either.
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1000, 700)
    viewer.open(str(slide), plugin="napari-razn")
    widget = RaznWidget(viewer)
    widget.model_input.value = str(checkpoint)
    widget.device_picker.value = "cpu"
    return viewer, widget


def wait_idle(qtbot, widget, timeout=60000):
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=timeout)


def look_at(viewer, widget, x0, y0, x1, y1):
    """Point the camera at a level-0 box (pixels) of the slide."""
    mpp = widget.slide_layer.scale[-1]
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    camera.center = ((y0 + y1) / 2 * mpp, (x0 + x1) / 2 * mpp)
    canvas_h, canvas_w = viewer.window._qt_viewer.canvas.size
    camera.zoom = min(canvas_w / ((x1 - x0) * mpp), canvas_h / ((y1 - y0) * mpp))


def test_segment_view_paints_the_view_and_nowhere_else(
    make_napari_viewer, qtbot, small_slide, small_checkpoint
):
    viewer, widget = open_panel(make_napari_viewer, small_slide, small_checkpoint)
    look_at(viewer, widget, 1024, 512, 1536, 1024)
    qtbot.wait(100)
    widget.segment_view()
    wait_idle(qtbot, widget)
    session = widget.session
    done = np.argwhere(session.done)
    assert len(done) > 0
    # What the canvas shows, in level-0 pixels, from the camera and the canvas size.
    camera = viewer.scene.camera
    (h, w), mpp = viewer.canvas.size, widget.slide_layer.scale[-1]
    cy, cx = (v / mpp for v in camera.center[-2:])
    hh, hw = h / 2 / camera.zoom / mpp, w / 2 / camera.zoom / mpp
    r0, r1, c0, c1 = cy - hh, cy + hh, cx - hw, cx + hw
    tile = session.grid.tile_size
    # Every visible tile is done, then a margin of half the view: nothing farther.
    mr, mc = (r1 - r0) / 2, (c1 - c0) / 2
    for row, col in done:
        assert row * tile <= r1 + mr and (row + 1) * tile >= r0 - mr
        assert col * tile <= c1 + mc and (col + 1) * tile >= c0 - mc
    for row in range(max(0, int(r0 // tile)), min(int(r1 // tile) + 1, session.done.shape[0])):
        for col in range(max(0, int(c0 // tile)), min(int(c1 // tile) + 1, session.done.shape[1])):
            assert session.done[row, col]
    layer = viewer.layers[CLASSES_LAYER]
    assert layer.data is session.labels
    np.testing.assert_allclose(layer.scale, [2.0, 2.0])  # downsample 8 x 0.25 um
    np.testing.assert_allclose(layer.translate, [0.875, 0.875])  # (8 - 1) / 2 x 0.25


def test_hidden_zoom_layers_catch_up_when_shown(
    make_napari_viewer, qtbot, small_slide, small_checkpoint
):
    viewer, widget = open_panel(make_napari_viewer, small_slide, small_checkpoint)
    assert not widget.show_zoom.value  # hidden by default: not redrawn during a run
    widget.threshold.value = 0.0
    widget.segment_slide()
    wait_idle(qtbot, widget)
    zoomed = int(widget.session.zoomed.sum())
    assert zoomed > 0
    # Counted over tissue tiles, as `razn segment` counts: all of them zoomed.
    assert widget.progress_label.value.endswith("zoomed 100% of tissue")
    assert widget.zoom_layer is None  # never shown: never made
    widget.show_zoom.value = True  # made now, one per turn, up to date
    qtbot.waitUntil(lambda: widget.zoomed_layer is not None, timeout=10000)
    assert len(widget.zoomed_layer.data) == zoomed
    np.testing.assert_array_equal(widget.zoom_layer.data, widget.session.zoom_p)
    widget.show_zoom.value = False  # hidden, then a run: caught up when shown again
    widget.threshold.value = 1.0
    widget.segment_slide()
    wait_idle(qtbot, widget)
    assert widget.session.zoomed.sum() == 0 and len(widget.zoomed_layer.data) == zoomed
    widget.show_zoom.value = True
    assert len(widget.zoomed_layer.data) == 0
    np.testing.assert_array_equal(widget.zoom_layer.data, widget.session.zoom_p)


def test_correction_survives_segmenting_again_and_a_restart(
    make_napari_viewer, qtbot, small_slide, small_checkpoint, session_folder, tmp_path
):
    import shutil

    # A copy in a folder of its own: the corrections are written beside it.
    slide = tmp_path / small_slide.name
    shutil.copy(small_slide, slide)
    small_slide = slide
    viewer, widget = open_panel(make_napari_viewer, small_slide, small_checkpoint)
    widget.segment_slide()
    wait_idle(qtbot, widget)
    layer = viewer.layers[CLASSES_LAYER]
    # The pathologist paints a square of invasive carcinoma (class 4).
    rows, cols = np.meshgrid(np.arange(90, 100), np.arange(120, 130), indexing="ij")
    layer.data_setitem((rows.ravel(), cols.ravel()), 4)
    assert widget.session.corrected[95, 125] and "%" in widget.corrected_label.value
    # Segment again with other settings: predictions change, the square stays.
    widget.threshold.value = 0.0
    widget.segment_slide()
    wait_idle(qtbot, widget)
    assert (widget.session.labels[90:100, 120:130] == 4).all()
    tissue = ~np.isnan(widget.session.zoom_p)  # glass tiles have no p, and never zoom
    assert tissue.any() and widget.session.zoomed[tissue].all()
    # napari is closed (the panel saves on the way out), then a new napari on
    # the same slide restores it. Waiting for the store to appear was not
    # enough: an autosave from before the correction makes it appear too.
    viewer.close()
    qtbot.waitUntil(lambda: widget.controller.closed, timeout=10000)
    assert not widget.autosave.dirty and any(session_folder.glob("*.razn.zarr"))
    viewer2, widget2 = open_panel(make_napari_viewer, small_slide, small_checkpoint)
    # Restored in a worker (reading it must not stall the window).
    qtbot.waitUntil(lambda: widget2.session is not None, timeout=10000)
    assert (widget2.session.labels[90:100, 120:130] == 4).all()
    assert widget2.session.corrected[90:100, 120:130].all()
    # The corrections leave as training data: a label grid and GeoJSON.
    tif, geojson = widget2.export_corrections()
    from razn.label_tiff import read_label_grid

    grid = read_label_grid(tif)
    assert grid.downsample == 8 and (grid.labels[90:100, 120:130] == 4).all()
    assert (grid.labels > 0).sum() == 100
    import json

    (feature,) = json.loads(geojson.read_text())["features"]
    assert feature["properties"]["classification"]["name"] == "Invasive carcinoma"


def test_cancel_in_the_middle(
    make_napari_viewer, qtbot, small_slide, small_checkpoint, monkeypatch
):
    import razn.inference.engine as engine

    predict = engine._predict

    def slow_predict(*args, **kwargs):
        time.sleep(0.3)  # a slide big enough that cancelling matters
        return predict(*args, **kwargs)

    monkeypatch.setattr(engine, "_predict", slow_predict)
    viewer, widget = open_panel(make_napari_viewer, small_slide, small_checkpoint)
    apply = widget.runner._on_result

    def cancel_after_two(run, result):
        apply(run, result)
        if widget.runner.finished == 2:
            widget.cancel()  # as if the user pressed Cancel now

    widget.runner._on_result = cancel_after_two
    widget.threshold.value = 0.0  # zooming everywhere: the slowest run
    widget.segment_slide()
    wait_idle(qtbot, widget)
    qtbot.wait(1000)  # anything still queued arrives
    assert widget.progress_label.value == "cancelled"
    done = int(widget.session.done.sum())
    assert 2 <= done < widget.session.done.size
    # Nothing half-done: every finished tissue tile is painted (its glass stays 0).
    tile = widget.session.grid.tile_labels
    for row, col in np.argwhere(widget.session.done & ~np.isnan(widget.session.zoom_p)):
        assert (
            widget.session.labels[row * tile : (row + 1) * tile, col * tile : (col + 1) * tile] > 0
        ).any()


def test_follow_view_and_bad_model(
    make_napari_viewer, qtbot, small_slide, small_checkpoint, tmp_path
):
    viewer, widget = open_panel(make_napari_viewer, small_slide, small_checkpoint)
    look_at(viewer, widget, 1536, 1024, 2048, 1536)
    qtbot.wait(100)
    widget.follow.value = True
    wait_idle(qtbot, widget)
    assert widget.session.done[5, 7] and not widget.session.done[0, 0]
    # Panning is enough: the view's tiles are queued once the camera rests.
    look_at(viewer, widget, 0, 0, 600, 400)
    qtbot.waitUntil(lambda: widget.session.done[0, 0], timeout=30000)
    wait_idle(qtbot, widget)
    widget.follow.value = False
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"\x80\x04K\x01.")
    widget.model_input.value = str(bad)
    widget.segment_view()  # a notification, not an exception
    assert not widget.runner.running


def test_the_layers_come_with_the_first_run_one_turn_at_a_time(
    make_napari_viewer, qtbot, small_slide, small_checkpoint
):
    """Adding a layer is napari's heaviest GUI-thread work: none before it shows something.

    Showing a slide adds no layer and imports no torch (the model's facts
    come from its header); the first run adds the classes layer, holding
    the run until it is in, and the hidden zoom layers come only once they
    are asked for, one per turn, under the classes, which stay active.
    """
    viewer, widget = open_panel(make_napari_viewer, small_slide, small_checkpoint)
    added = []
    viewer.layers.events.inserted.connect(lambda event: added.append(event.value.name))
    qtbot.waitUntil(lambda: not widget.warming, timeout=30000)
    qtbot.waitUntil(lambda: widget.session is not None, timeout=10000)  # empty, made ahead
    qtbot.wait(200)
    assert added == [] and widget.classes_layer is None
    from razn.inference.store import model_identity

    widget.segment_slide()
    assert widget.runner.running and widget.runner._held  # waits for its layer
    wait_idle(qtbot, widget)
    assert added == ["RAZN classes"]
    assert viewer.layers.selection.active is widget.classes_layer
    assert widget.classes_layer.data is widget.session.labels
    assert widget.session.done.all()
    # The facts read from the header name the model the worker loaded.
    assert (
        widget.session.settings["model"] == model_identity(widget.segmentation.model())["sha256"]
    )
    widget.show_zoom.value = True
    qtbot.waitUntil(lambda: widget.zoomed_layer is not None, timeout=10000)
    assert added == ["RAZN classes", "RAZN zoom", "RAZN zoomed tiles"]
    assert [layer.name for layer in viewer.layers][-3:] == [
        "RAZN zoom", "RAZN zoomed tiles", "RAZN classes",
    ]  # fmt: skip
    assert viewer.layers.selection.active is widget.classes_layer
    assert (
        widget.zoom_layer.visible and len(widget.zoomed_layer.data) == widget.session.zoomed.sum()
    )
    # A new session replaces the layers (one removal batch), in turns again,
    # and a run asked for meanwhile waits for them.
    widget.session = None
    widget.segment_slide()
    assert widget.classes_layer is None and widget.runner._held
    wait_idle(qtbot, widget)
    names = [layer.name for layer in viewer.layers]
    assert names.count("RAZN classes") == 1 and names[-1] == "RAZN classes"
    assert widget.session.done.all()


def test_showing_a_slide_and_docking_import_no_torch(tmp_path, small_slide, small_checkpoint):
    """torch holds the interpreter (so the window) for 0.3-0.6 s as it loads: not before a run.

    A fresh process, as a user's napari: the panel docked through napari's
    own wrapper with a slide open, its warm-up and tissue measurement done,
    the model's threshold on the slider and its empty session made; torch
    is not imported until the user segments.
    """
    import subprocess
    import sys

    code = """
import sys, time
import napari
from qtpy.QtWidgets import QApplication
viewer = napari.Viewer(show=True)
viewer.open(sys.argv[1], plugin="napari-razn")
_dock, widget = viewer.window.add_plugin_dock_widget("napari-razn", "RAZN")
widget.model_input.value = sys.argv[2]
app, end = QApplication.instance(), time.monotonic() + 60
while time.monotonic() < end and (widget.warming or widget.session is None
        or not widget.tissue_label.value.endswith("of the slide")):
    app.processEvents(); time.sleep(0.01)
print("session", widget.session is not None, "torch", "torch" in sys.modules, flush=True)
widget.segment_slide()
while widget.runner.running and time.monotonic() < end:
    app.processEvents(); time.sleep(0.01)
print("segmented", bool(widget.session.done.all()), "torch", "torch" in sys.modules, flush=True)
viewer.close()
"""
    done = subprocess.run(
        [sys.executable, "-c", code, str(small_slide), str(small_checkpoint)],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "session True torch False" in done.stdout, done.stdout + done.stderr[-2000:]
    assert "segmented True torch True" in done.stdout, done.stdout + done.stderr[-2000:]


def test_follow_view_queues_the_visible_tiles_first(
    make_napari_viewer, qtbot, small_slide, small_checkpoint
):
    """The view's own tiles, nearest the centre first, then the margin; not the layer's chunks."""
    viewer, widget = open_panel(make_napari_viewer, small_slide, small_checkpoint)
    look_at(viewer, widget, 1024, 512, 1536, 1024)
    qtbot.wait(100)
    queued = []
    widget.runner.start = lambda run, slide, model, tiles, *a, **k: queued.extend(tiles)
    widget.segment_view()
    camera, (h, w) = viewer.scene.camera, viewer.canvas.size
    mpp, tile = widget.slide_layer.scale[-1], widget.session.grid.tile_size
    cy, cx = (v / mpp for v in camera.center[-2:])
    hh, hw = h / 2 / camera.zoom / mpp, w / 2 / camera.zoom / mpp
    visible = {  # the tiles the canvas shows a part of
        (r, c)
        for r in range(max(0, math.floor((cy - hh) / tile)), math.ceil((cy + hh) / tile))
        for c in range(max(0, math.floor((cx - hw) / tile)), math.ceil((cx + hw) / tile))
        if r < widget.session.grid.rows and c < widget.session.grid.cols
    }
    assert set(queued[: len(visible)]) == visible
    assert len(visible) <= 12 and len(queued) > len(visible)  # then the margin
    first = queued[0]
    assert abs((first[0] + 0.5) * tile - cy) <= tile and abs((first[1] + 0.5) * tile - cx) <= tile
