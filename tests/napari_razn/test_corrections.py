"""Corrections as a pathologist makes them: the real mouse on the canvas, undo and redo.

The panel is docked the way napari docks it (`add_plugin_dock_widget`,
which hands the panel a proxy of the viewer), and the strokes go through
QTest on the canvas, so napari's own paint, fill and polygon tools make the
paint events the panel reads.
"""

from __future__ import annotations

import warnings

import numpy as np
from qtpy.QtCore import QPoint, Qt
from qtpy.QtTest import QTest

from napari_razn._layers import CLASSES_LAYER


def dock_panel(make_napari_viewer, qtbot, slide, checkpoint):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1000, 700)
    viewer.open(str(slide), plugin="napari-razn")
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-razn", "RAZN")
    widget.model_input.value = str(checkpoint)
    widget.device_picker.value = "cpu"
    return viewer, widget


def segmented(make_napari_viewer, qtbot, slide, checkpoint):
    viewer, widget = dock_panel(make_napari_viewer, qtbot, slide, checkpoint)
    widget.segment_slide()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60000)
    layer = viewer.layers[CLASSES_LAYER]
    viewer.layers.selection.active = layer
    # The classes layer fills the canvas: every label pixel is a few screen pixels.
    viewer.reset_view()
    qtbot.wait(100)
    return viewer, widget, layer


def screen_point(viewer, layer, row, col) -> QPoint:
    """Where label pixel (row, col) is on the canvas widget."""
    world = layer.data_to_world((row, col))
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    native = viewer.window._qt_viewer.canvas.native
    cy, cx = camera.center[-2:]
    x = (world[-1] - cx) * camera.zoom + native.width() / 2
    y = (world[-2] - cy) * camera.zoom + native.height() / 2
    return QPoint(int(round(x)), int(round(y)))


def drag(viewer, points, qtbot):
    native = viewer.window._qt_viewer.canvas.native
    left, none = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    QTest.mousePress(native, left, none, points[0])
    for point in points[1:]:
        QTest.mouseMove(native, point)
        qtbot.wait(5)
    QTest.mouseRelease(native, left, none, points[-1])
    qtbot.wait(50)


def test_a_brush_stroke_is_a_correction_that_undo_and_redo_follow(
    make_napari_viewer, qtbot, small_slide, small_checkpoint
):
    viewer, widget, layer = segmented(make_napari_viewer, qtbot, small_slide, small_checkpoint)
    session = widget.session
    before = layer.data.copy()
    assert not session.corrected.any()
    layer.mode, layer.selected_label, layer.brush_size = "paint", 3, 12
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        drag(viewer, [screen_point(viewer, layer, 96, 60 + 4 * i) for i in range(21)], qtbot)
    painted = layer.data != before
    assert painted.sum() > 100
    # Every painted pixel is recorded, and nothing else.
    np.testing.assert_array_equal(session.corrected, painted)
    qtbot.waitUntil(lambda: widget.corrected_label.value != "0.0% of segmented area")
    assert not [w for w in caught if "Private attribute" in str(w.message)]
    # Undo takes the pixels back and the record with them; redo both again.
    layer.undo()
    np.testing.assert_array_equal(layer.data, before)
    assert not session.corrected.any()
    layer.redo()
    np.testing.assert_array_equal(session.corrected, painted)
    # Segmenting again with other settings keeps the stroke.
    widget.threshold.value = 0.0 if widget.threshold.value else 1.0
    widget.segment_slide()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60000)
    assert (session.labels[painted] == 3).all()


def test_fill_and_polygon_are_corrections(
    make_napari_viewer, qtbot, small_slide, small_checkpoint
):
    viewer, widget, layer = segmented(make_napari_viewer, qtbot, small_slide, small_checkpoint)
    session = widget.session
    before = layer.data.copy()
    # Fill: the whole connected region under the click takes the label.
    layer.mode, layer.selected_label = "fill", 2
    value = int(before[100, 120])
    point = screen_point(viewer, layer, 100, 120)
    QTest.mouseClick(viewer.window._qt_viewer.canvas.native, Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.NoModifier, point)  # fmt: skip
    qtbot.wait(50)
    filled = layer.data != before
    assert filled.any() and (before[filled] == value).all()
    np.testing.assert_array_equal(session.corrected, filled)
    # Polygon: clicks at the corners, a double click closes it.
    layer.mode, layer.selected_label = "polygon", 4
    native = viewer.window._qt_viewer.canvas.native
    left, none = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    corners = [(20, 20), (20, 60), (60, 60), (60, 20)]
    for row, col in corners:
        QTest.mouseClick(native, left, none, screen_point(viewer, layer, row, col))
        qtbot.wait(20)
    QTest.mouseDClick(native, left, none, screen_point(viewer, layer, *corners[-1]))
    qtbot.wait(50)
    changed = layer.data != before
    assert (layer.data[30:50, 30:50] == 4).all()
    np.testing.assert_array_equal(session.corrected, changed)
    layer.undo()
    np.testing.assert_array_equal(session.corrected, filled)


def test_zoom_layers_toggle_when_docked_by_napari(
    make_napari_viewer, qtbot, small_slide, small_checkpoint
):
    viewer, widget = dock_panel(make_napari_viewer, qtbot, small_slide, small_checkpoint)
    widget.threshold.value = 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        widget.segment_slide()
        qtbot.waitUntil(lambda: not widget.runner.running, timeout=60000)
        widget.show_zoom.value = True
        qtbot.wait(50)
    assert not [w for w in caught if "Private attribute" in str(w.message)]
    zoomed = viewer.layers["RAZN zoomed tiles"]
    assert zoomed.visible and len(zoomed.data) == int(widget.session.zoomed.sum()) > 0
    np.testing.assert_array_equal(viewer.layers["RAZN zoom"].data, widget.session.zoom_p)
    widget.outline.value = True  # outline-only display
    assert viewer.layers[CLASSES_LAYER].contour > 0
