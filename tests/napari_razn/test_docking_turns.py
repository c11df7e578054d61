"""Docking and the first run leave the GUI thread's heavy work to later turns and workers.

No timings here (benchmarks/gui_stall.py measures them): these check the
mechanisms the figures rest on, each of which a change could silently undo.
"""

from __future__ import annotations

import subprocess
import sys

from napari_razn._widget import RaznWidget

PANELS = ["slide_panel", "segmentation_panel", "review_panel", "export_and_improve_panel"]


def test_docking_builds_the_sub_panels_in_later_turns(make_napari_viewer, qtbot, small_slide):
    """The docking call builds the Slide sub-panel only; the others come a turn each after."""
    viewer = make_napari_viewer()
    viewer.open(str(small_slide), plugin="napari-razn")
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-razn", "RAZN")
    assert [w.name for w in widget] == PANELS[:1]
    assert "measuring" in widget.tissue_label.value or "of the slide" in widget.tissue_label.value
    qtbot.waitUntil(lambda: len(widget) == len(PANELS), timeout=5000)
    assert [w.name for w in widget] == PANELS
    # The warm-up the Segmentation sub-panel starts for a shown slide still comes.
    qtbot.waitUntil(lambda: widget.session is not None, timeout=30000)


def test_a_control_used_before_its_turn_is_built_there_and_then(make_napari_viewer):
    """Scripts and tests read any control right after making the panel."""
    viewer = make_napari_viewer()
    widget = RaznWidget(viewer)
    assert widget.show_zoom.value is False  # the Review sub-panel's, built now
    assert [w.name for w in widget] == PANELS
    assert widget.export_path.value == ""


def test_the_first_run_imports_torch_without_a_full_collection_and_a_removal_thaws(
    tmp_path, small_slide, small_checkpoint
):
    """In a fresh process, as a user's napari: the first run's worker imports torch.

    Docking freezes what napari has made by then (a full collection of it
    stalled the window 70-135 ms). Python's collector is paused for the import and what is alive then is
    frozen, so a full collection after it walks a fraction of the heap, not
    napari's and torch's objects (which held the GUI thread 0.2-1.3 s); the
    collector is on again after. Removing a layer thaws it
    (napari collects fully after a removal anyway), so no removed layer's
    cycles are kept. The device probe comes once torch is in.
    """
    code = """
import gc, sys, time
import napari
from qtpy.QtWidgets import QApplication
viewer = napari.Viewer(show=True)
viewer.open(sys.argv[1], plugin="napari-razn")
_dock, widget = viewer.window.add_plugin_dock_widget("napari-razn", "RAZN")
widget.model_input.value = sys.argv[2]
widget.device_picker.value = "cpu"
app, end = QApplication.instance(), time.monotonic() + 90
def wait(busy):
    while busy() and time.monotonic() < end:
        app.processEvents(); time.sleep(0.01)
wait(lambda: widget.warming or widget.session is None)
# Docking froze napari's heap: a full collection walks what came after.
print("before", "torch" in sys.modules, gc.get_freeze_count() > 3 * len(gc.get_objects()),
      flush=True)
widget.segment_slide()
wait(lambda: widget.runner.running or widget.device_label.value.startswith("probed"))
frozen, walked = gc.get_freeze_count(), len(gc.get_objects())  # what a full collection walks
print("after", "torch" in sys.modules, frozen > 3 * walked, gc.isenabled(),
      bool(widget.session.done.all()), widget.device_label.value, frozen, walked, flush=True)
viewer.layers.remove(widget.classes_layer)
print("removed", gc.get_freeze_count(), flush=True)
viewer.close()
"""
    done = subprocess.run(
        [sys.executable, "-c", code, str(small_slide), str(small_checkpoint)],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )  # fmt: skip
    out = done.stdout + done.stderr[-2000:]
    assert done.returncode == 0, out
    assert "before False True" in done.stdout, out
    # torch in, most objects frozen, collector on, slide segmented, the CPU found
    assert "after True True True True cpu" in done.stdout, out
    assert "removed 0" in done.stdout, out
