"""The Review sub-panel: the RAZN layers, the legend and areas, display, hover, corrections.

It owns the session's layers. Adding a napari layer is 0.1-0.7 s of
GUI-thread work (its vispy visual, overlays, Qt controls), so each is added
when it has something to show, one per event-loop turn: the classes layer
when a run starts or a saved session is restored, the hidden zoom layers
only once "Show zoom heatmap and zoomed tiles" is ticked. A run asked for
while layers are pending is held until they are in. Brush, fill and
polygon strokes on the classes layer, and napari's undo and redo, become
corrections (`CorrectionLog`).
"""

from __future__ import annotations

import contextlib

from napari_razn import _layers, _panels
from napari_razn._corrections import CorrectionLog

#: Wait after the last layer step before a held run goes, so that the repaint comes first (ms).
AFTER_PAINT_MS = 100


class ReviewPanel:
    """Legend, opacity, outlines, hover and zoom layers, for the panel `shell`."""

    def __init__(self, shell) -> None:
        self.shell = shell
        self.box, self.controls = _panels.review_panel()
        self.classes_layer = self.zoom_layer = self.zoomed_layer = None
        self.corrections = None  # CorrectionLog of the shown session
        self._pending = []  # (session, add) of layers not added yet
        self.layer_timer = shell.single_shot(0, self._add_next_layer)
        self.summary_timer = shell.single_shot(0, self.update_summary)
        c = self.controls
        c.opacity.changed.connect(self._opacity_changed)
        c.outline.changed.connect(self._outline_changed)
        c.show_zoom.changed.connect(self._show_zoom_changed)

    @property
    def timers(self) -> tuple:
        return (self.layer_timer, self.summary_timer)

    # -- the session's layers -------------------------------------------------------
    def session_shown(self, session) -> None:
        """A new session (or None): its corrections are followed, its summary shown."""
        self.corrections = None if session is None else CorrectionLog(session.corrected)
        self.update_summary()

    def ensure_layers(self) -> bool:
        """Queue the layers the session should show; True while any is still pending."""
        session = self.shell.session
        if session is None:
            return False
        wanted = [(self.classes_layer, self._add_classes_layer)]
        if self.controls.show_zoom.value:  # the hidden ones only when shown
            wanted = [(self.zoom_layer, self._add_zoom_heatmap),
                      (self.zoomed_layer, self._add_zoomed_outlines), *wanted]  # fmt: skip
        queued = {add for _s, add in self._pending}
        for layer, add in wanted:
            if layer is None and add not in queued:
                self._pending.append((session, add))
        if self._pending and not self.layer_timer.isActive():
            self.layer_timer.start(0)
        return bool(self._pending)

    def _add_next_layer(self) -> None:
        """One pending step per turn; a held run goes once the last one's repaint is done.

        A layer's (or the scale bar's) first draw is GUI work of its own
        (vispy compiles its shaders, renders the scale bar's glyphs: 0.2-0.4 s
        with Mesa), and a first run's worker starts by importing torch, which
        competes with it for the CPU: the run waits `AFTER_PAINT_MS` more.
        """
        if self._pending:
            self._add_pending_layer()
            self.layer_timer.start(0 if self._pending else AFTER_PAINT_MS)
        else:
            self.shell.segmentation.runner.release()

    def finish_layers(self) -> None:
        """Add the session's layers still pending now, and let a held run go."""
        while self._pending:
            self._add_pending_layer()
        self.shell.segmentation.runner.release()

    def _add_pending_layer(self) -> None:
        if self._pending and not self.shell.controller.closed:
            session, add = self._pending.pop(0)
            if session is self.shell.session:  # not one replaced meanwhile
                add()

    def _add_zoom_heatmap(self) -> None:
        self.zoom_layer = _layers.add_zoom_heatmap(self.shell.viewer, self.shell.session)
        self._zoom_layer_added(self.zoom_layer)

    def _add_zoomed_outlines(self) -> None:
        self.zoomed_layer = _layers.add_zoomed_outlines(self.shell.viewer, self.shell.session)
        self._zoom_layer_added(self.zoomed_layer)

    def _zoom_layer_added(self, layer) -> None:
        layer.events.visible.connect(self._zoom_layer_shown)
        self._show_zoom_changed()
        if layer.visible:
            self._refresh_zoom_layer(layer)
        layers = self.shell.viewer.layers
        if self.classes_layer is not None and _contains(layers, self.classes_layer):
            # Under the classes, which stay the layer the user paints on.
            layers.move(layers.index(layer), layers.index(self.classes_layer))
            layers.selection.active = self.classes_layer

    def _add_classes_layer(self) -> None:
        shell = self.shell
        layer = _layers.add_classes_layer(shell.viewer, shell.session)
        self.classes_layer = layer
        layer.opacity = self.controls.opacity.value
        self._outline_changed(self.controls.outline.value)
        layer.events.paint.connect(self._painted)
        _follow_undo(layer, self._undone, self._redone)
        shell.viewer.layers.selection.active = layer
        if shell.session.mpp:  # the layers are in microns: show the scale
            # In a turn of its own (its overlay is 0.1-0.3 s of GUI work), before a held run goes.
            self._pending.insert(0, (shell.session, self._show_scale_bar))

    def _show_scale_bar(self) -> None:
        _scale_bar(self.shell.viewer).visible = True

    def remove_layers(self) -> None:
        """Remove the shown session's layers, and forget those not added yet."""
        self._pending = []
        layers = self.shell.viewer.layers
        ours = [
            layer
            for layer in (self.classes_layer, self.zoom_layer, self.zoomed_layer)
            if layer is not None and _contains(layers, layer)
        ]
        self.classes_layer = self.zoom_layer = self.zoomed_layer = None
        if not ours or self.shell.controller.closed:
            return
        # napari runs a full garbage collection after each removal: one batch, one collection.
        with getattr(layers, "batched_update", contextlib.nullcontext)():
            for layer in ours:
                layers.remove(layer)

    def refresh_region(self, rows: slice, cols: slice) -> None:
        if self.classes_layer is not None:  # else it shows the tile when added
            _layers.refresh_region(self.classes_layer, rows, cols)

    def refresh_zoom_layers(self) -> None:
        # A hidden layer is brought up to date when it is shown (_zoom_layer_shown).
        for layer in (self.zoom_layer, self.zoomed_layer):
            if layer is not None and layer.visible:
                self._refresh_zoom_layer(layer)

    def _refresh_zoom_layer(self, layer) -> None:
        session = self.shell.session
        # By the layer's own kind, never by identity: napari may hand us a wrapper.
        if getattr(_unwrap(layer), "name", None) == _layers.ZOOM_LAYER:
            layer.data = session.zoom_p
            layer.contrast_limits = (0.0, 1.0)
        else:
            layer.data = _layers.zoomed_rectangles(session)

    def _zoom_layer_shown(self, event) -> None:
        if event.source.visible and self.shell.session is not None:
            self._refresh_zoom_layer(event.source)  # what was skipped while hidden

    # -- corrections ------------------------------------------------------------------
    def _painted(self, event) -> None:
        """A brush stroke, fill, polygon or `data_setitem`: its pixels become corrections."""
        if self.corrections is None or _unwrap(event.source) is not self.classes_layer:
            return
        try:
            self.corrections.painted(event.value)
        except Exception as error:  # an unknown history shape: said, never a lost stroke silently
            self.shell.notify(f"could not record the correction: {error}")
            return
        self._edited()

    def _undone(self) -> None:
        if self.corrections is not None:
            self.corrections.undone()
            self._edited()

    def _redone(self) -> None:
        if self.corrections is not None:
            self.corrections.redone()
            self._edited()

    def _edited(self) -> None:
        # napari announces a `data_setitem` before it writes the pixels: count after.
        self.summary_timer.start()
        self.shell.mark_changed()

    # -- display ----------------------------------------------------------------------
    def update_summary(self) -> None:
        from razn.classes import DEFAULT_CLASSES

        shell = self.shell
        if shell.controller.closed:
            return
        session = shell.session
        areas = session.class_areas_mm2(DEFAULT_CLASSES) if session else {}
        rows = []
        for c in DEFAULT_CLASSES:
            area = f" {areas[c.name]:.3f} mm2" if c.name in areas else ""
            rows.append(f"<span style='color:{c.hex}'>&#9632;</span> {c.name}{area}")
        self.controls.legend.value = "<br>".join(rows)
        if session is not None:
            self.controls.corrected_label.value = (
                f"{session.corrected_fraction:.1%} of segmented area"
            )
        shell.segmentation.show_made_by()

    def _opacity_changed(self, value: float) -> None:
        if self.classes_layer is not None:
            self.classes_layer.opacity = value

    def _outline_changed(self, on: bool) -> None:
        if self.classes_layer is not None:
            self.classes_layer.contour = 2 if on else 0

    def _show_zoom_changed(self, _value=None) -> None:
        shown = self.controls.show_zoom.value
        for layer in (self.zoom_layer, self.zoomed_layer):
            if layer is not None:
                layer.visible = shown
        if shown and (self.zoom_layer is None or self.zoomed_layer is None):
            self.ensure_layers()  # made the first time they are asked for

    def hover(self, viewer, event) -> None:
        """Class and zoom probability under the cursor."""
        session = self.shell.session
        if session is None or self.classes_layer is None or self.shell.controller.closed:
            return
        from razn.classes import DEFAULT_CLASSES

        row, col = (int(round(v)) for v in self.classes_layer.world_to_data(event.position)[-2:])
        labels = session.labels
        if not (0 <= row < labels.shape[0] and 0 <= col < labels.shape[1]):
            self.controls.hover_label.value = "-"
            return
        value = int(labels[row, col])
        tile = session.grid.tile_labels
        done = session.done[row // tile, col // tile]
        fallback = "glass" if done else "not segmented"
        name = next((c.name for c in DEFAULT_CLASSES if c.value == value), fallback)
        p = session.zoom_p[row // tile, col // tile]
        zoom = "" if p != p else f", p(zoom) {p:.2f}"  # p != p: NaN, not segmented
        self.controls.hover_label.value = f"{name}{zoom}"


def _follow_undo(layer, undone, redone) -> None:
    """Call `undone`/`redone` after the layer's own undo and redo (napari sends no event).

    napari's Ctrl+Z and Ctrl+Shift+Z call `layer.undo()` and `layer.redo()`;
    wrapping them on this layer object catches those and any script's call.
    """
    undo, redo = layer.undo, layer.redo

    def follow_undo():
        undo()
        undone()

    def follow_redo():
        redo()
        redone()

    layer.undo, layer.redo = follow_undo, follow_redo


def _unwrap(obj):
    """The object behind napari's plugin proxy (itself when not wrapped)."""
    return getattr(obj, "__wrapped__", obj)


def _contains(layers, layer) -> bool:
    return any(_unwrap(other) is _unwrap(layer) for other in layers)


def _scale_bar(viewer):
    # napari 0.9 moved the scale bar under the canvas overlays.
    canvas = getattr(viewer, "canvas", None)
    overlays = getattr(canvas, "overlays", None)
    return getattr(overlays, "scale_bar", None) or viewer.scale_bar
