"""The RAZN dock widget: the slide's facts, and RAZN segmentation of what is in view.

A magicgui `Container` whose callbacks are plain methods, so tests drive
it without clicking. It holds no segmentation logic: the engine
(`razn.inference`), the session (`razn.session`) and the layers
(`_layers`) do the work; this module wires them to buttons, the camera and
napari's notifications. Long work never runs on the GUI thread: the
tissue fraction and the engine run in workers (`_live`), the model is
loaded ahead in one (`warm_up`), session saves run in a thread, results
arrive tile by tile, and a new session's layers are added one per
event-loop turn.
"""

from __future__ import annotations

import contextlib
import threading
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSlider,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
)
from qtpy.QtCore import QTimer

from napari_razn import _layers
from napari_razn._live import SegmentationRunner, view_region

if TYPE_CHECKING:
    import napari

#: Quiet time after the camera stops before the view is segmented (ms).
FOLLOW_DEBOUNCE_MS = 300
#: Quiet time after the last change before the session is saved (ms).
AUTOSAVE_DEBOUNCE_MS = 1500
#: Quiet time after a slide is shown or the model field changes before the
#: first run's one-off work starts in the background (`warm_up`) (ms).
WARM_DEBOUNCE_MS = 500
#: Optimiser steps of "Improve the model from my corrections".
FINETUNE_ITERATIONS = 60

# A click waits for a load the panel started ahead, rather than loading twice.
_model_lock = threading.Lock()


def cached_model(reference: str):
    """Models are loaded once per reference ("demo" or a checkpoint path)."""
    with _model_lock:
        return _load_model(reference)


@lru_cache(maxsize=4)
def _load_model(reference: str):
    from razn.models import load_model

    return load_model(reference)


def warm_up(reference: str) -> None:
    """Worker body: the first run's one-off work, done ahead off the GUI thread.

    Measured on the GUI thread at the first run after opening a slide: the
    imports napari makes when the first Labels and Shapes layers are added
    (pandas for layer features; skimage's colour conversions, and scipy,
    for label colours: 0.3-0.4 s together here), vispy's dash atlas, built
    by a numpy loop when the first line visual is made (0.1-0.2 s), and
    loading and hashing the model (the hash alone ~0.1 s for a paper-sized
    checkpoint). Errors are left for the run itself to meet and report.
    """
    with contextlib.suppress(Exception):
        import pandas  # noqa: F401
        from skimage.color import colorconv  # noqa: F401  (and scipy.linalg)
        from vispy.visuals.line.dash_atlas import DashAtlas

        DashAtlas()
    with contextlib.suppress(Exception):
        import razn.inference.engine  # noqa: F401  (the run's worker imports it)
        from razn.inference.store import model_identity

        model_identity(cached_model(reference))


def devices_found() -> list[str]:
    from razn.inference import available_devices

    # "auto" (the default) first, then the CPU, then any accelerator found.
    return ["auto", "cpu", *(d for d in available_devices() if d != "cpu")]


class RaznWidget(Container):
    """Slide facts, model and threshold, live segmentation, corrections, export."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._tissue_worker = None
        self._warm_worker = None
        self._finetune_worker = None
        self._pending_layers = []  # (session, add) of layers not added yet
        self._threshold_of = None  # the model whose own threshold the slider last took
        self.slide = None  # razn.Slide of the chosen layer, opened on demand
        self._shown_path = None  # the slide the panel shows
        self.session = None
        self.classes_layer = self.zoom_layer = self.zoomed_layer = None
        self._save_lock = threading.Lock()
        self._build()
        self._use_model_threshold()
        self.runner = SegmentationRunner(self._apply_result, self._run_done, self._run_failed)
        self._follow_timer = _single_shot(FOLLOW_DEBOUNCE_MS, self.segment_view)
        self._save_timer = _single_shot(AUTOSAVE_DEBOUNCE_MS, self.save_session)
        self._warm_timer = _single_shot(WARM_DEBOUNCE_MS, self._warm_up)
        self._layer_timer = _single_shot(0, self._add_next_layer)
        self._viewer.layers.events.inserted.connect(self._refresh_choices)
        self._viewer.layers.events.removed.connect(self._refresh_choices)
        camera = _camera(self._viewer)
        camera.events.center.connect(self._camera_moved)
        camera.events.zoom.connect(self._camera_moved)
        self._viewer.mouse_move_callbacks.append(self._hover)
        self.slide_picker.reset_choices()
        self.show_slide()

    # -- layout ---------------------------------------------------------------
    def _build(self) -> None:
        self.slide_picker = ComboBox(label="slide", choices=self._slide_choices)
        self.format_label = Label(label="format")
        self.size_label = Label(label="size")
        self.levels_label = Label(label="levels")
        self.mpp_label = Label(label="pixel size")
        self.magnification_label = Label(label="magnification")
        self.tissue_label = Label(label="tissue")
        self.mpp_input = FloatSpinBox(
            label="set mpp", min=0.01, max=50.0, step=0.01, value=0.25,
            tooltip="Microns per level-0 pixel, for slides that do not record it",
        )  # fmt: skip
        self.mpp_button = PushButton(text="Use this mpp")
        self.model_input = LineEdit(
            label="model", value="demo", tooltip="'demo' or the path of a checkpoint"
        )
        devices = devices_found()
        self.device_picker = ComboBox(label="device", choices=devices, value="auto")
        self.device_label = Label(label="found", value=", ".join(devices[1:]))
        self.threshold = FloatSlider(
            label="zoom threshold", min=0.0, max=1.0, step=0.05, value=0.5,
            tooltip="Zoom in where the policy's p exceeds this. "
            "Lower: more zooming, slower and finer. 1: never zoom (fastest).",
        )  # fmt: skip
        self.threshold_hint = Label(value="<- more zooming | faster ->")
        self.follow = CheckBox(text="Follow view (segment as you pan and zoom)", value=False)
        self.segment_view_button = PushButton(text="Segment view")
        self.segment_slide_button = PushButton(text="Segment slide")
        self.cancel_button = PushButton(text="Cancel")
        self.progress_label = Label(label="progress", value="-")
        self.legend = Label(label="classes", value="-")
        self.corrected_label = Label(label="corrected", value="-")
        self.hover_label = Label(label="under cursor", value="-")
        self.opacity = FloatSlider(label="opacity", min=0.0, max=1.0, step=0.05, value=0.6)
        self.show_zoom = CheckBox(text="Show zoom heatmap and zoomed tiles", value=False)
        self.export_path = LineEdit(label="GeoJSON", value="", tooltip="where Export writes")
        self.export_button = PushButton(text="Export to QuPath")
        self.export_corrections_button = PushButton(text="Export corrections as training data")
        self.improve_button = PushButton(
            text="Improve the model from my corrections",
            tooltip="A short fine-tuning on the corrected regions, saved as a new checkpoint",
        )
        self.extend(
            [
                self.slide_picker, self.format_label, self.size_label, self.levels_label,
                self.mpp_label, self.magnification_label, self.tissue_label, self.mpp_input,
                self.mpp_button, self.model_input, self.device_picker, self.device_label,
                self.threshold, self.threshold_hint, self.follow, self.segment_view_button,
                self.segment_slide_button, self.cancel_button, self.progress_label,
                self.legend, self.corrected_label, self.hover_label, self.opacity,
                self.show_zoom, self.export_path, self.export_button,
                self.export_corrections_button, self.improve_button,
            ]
        )  # fmt: skip
        self.slide_picker.changed.connect(self.show_slide)
        self.mpp_button.changed.connect(self.apply_mpp)
        self.segment_view_button.changed.connect(self.segment_view)
        self.segment_slide_button.changed.connect(self.segment_slide)
        self.cancel_button.changed.connect(self.cancel)
        self.follow.changed.connect(self._follow_toggled)
        self.opacity.changed.connect(self._opacity_changed)
        self.show_zoom.changed.connect(self._show_zoom_changed)
        self.export_button.changed.connect(self.export_geojson)
        self.export_corrections_button.changed.connect(self.export_corrections)
        self.improve_button.changed.connect(self.improve_model)
        self.model_input.changed.connect(lambda _value: self._model_changed())

    # -- the slide --------------------------------------------------------------
    def _slide_choices(self, _widget=None) -> list:
        return [(layer.name, layer) for layer in self._viewer.layers if _is_slide(layer)]

    def _refresh_choices(self, _event=None) -> None:
        self.slide_picker.reset_choices()
        # Layers come and go (our own among them): only a change of slide
        # resets the panel.
        if _slide_path(self.slide_layer) != self._shown_path:
            self.show_slide()

    @property
    def slide_layer(self):
        return self.slide_picker.value

    def show_slide(self, _value=None) -> None:
        self.cancel()
        self.slide, self.session = None, None
        self._pending_layers = []  # they were the previous slide's
        layer = self.slide_layer
        self._shown_path = _slide_path(layer)
        if layer is None:
            for label in self._fact_labels():
                label.value = "-"
            self.tissue_label.value = "open a slide (File > Open)"
            return
        facts = layer.metadata["razn_slide"]
        h, w = facts["levels"][0]["shape"]
        self.format_label.value = f"{facts['format']} ({facts['compression']})"
        self.size_label.value = f"{w:,} x {h:,} px"
        downsamples = ", ".join(f"{lv['downsample']:.3g}" for lv in facts["levels"])
        self.levels_label.value = f"{len(facts['levels'])} (downsample {downsamples})"
        mpp = facts["mpp"]
        if mpp:
            self.mpp_label.value = f"{mpp:.4f} um/px ({facts['mpp_source']})"
            _scale_bar(self._viewer).visible = True
        else:
            self.mpp_label.value = "unknown: not in the file; set it below"
        mag = facts["magnification"]
        self.magnification_label.value = f"{mag:g}x" if mag else "unknown"
        if facts.get("tissue_fraction") is None:
            self.tissue_label.value = "measuring..."
            self._measure_tissue(layer)
        else:
            self.tissue_label.value = f"{facts['tissue_fraction']:.1%} of the slide"
        self._warm_timer.start()  # while the user looks at the slide
        self._restore_session()

    def _fact_labels(self):
        return (
            self.format_label,
            self.size_label,
            self.levels_label,
            self.mpp_label,
            self.magnification_label,
        )

    def _measure_tissue(self, layer) -> None:
        from napari.qt.threading import create_worker

        # On the panel's own Slide, so the engine later finds the mask cached.
        worker = create_worker(lambda: self.open_slide().tissue_fraction)
        worker.returned.connect(lambda fraction: self._tissue_measured(layer, fraction))
        worker.errored.connect(lambda error: self._notify(f"tissue mask failed: {error}"))
        self._tissue_worker = worker
        worker.start()

    def _tissue_measured(self, layer, fraction: float) -> None:
        layer.metadata["razn_slide"]["tissue_fraction"] = round(fraction, 4)
        if layer is self.slide_layer:
            self.tissue_label.value = f"{fraction:.1%} of the slide"

    def apply_mpp(self, _value=None) -> None:
        """Set the slide's pixel size by hand: the layer's scale follows."""
        layer = self.slide_layer
        if layer is None:
            return
        mpp = float(self.mpp_input.value)
        facts = layer.metadata["razn_slide"]
        facts["mpp"], facts["mpp_source"] = mpp, "user"
        layer.scale = (mpp, mpp)
        layer.units = ("um", "um")
        self.show_slide()

    def open_slide(self):
        """The chosen layer's slide, opened once (the engine reads through it)."""
        if self.slide is None and self.slide_layer is not None:
            from razn.slide import open_slide

            facts = self.slide_layer.metadata["razn_slide"]
            self.slide = open_slide(facts["path"], mpp=facts["mpp"])
        return self.slide

    # -- the session --------------------------------------------------------------
    def _model_reference(self) -> str:
        return self.model_input.value.strip() or "demo"

    def _model(self):
        return cached_model(self._model_reference())

    def _model_changed(self) -> None:
        self._use_model_threshold()
        self._warm_timer.start()

    def _use_model_threshold(self) -> None:
        """When the model changes, start the slider at the model's own threshold.

        A policy's p is not calibrated, so each checkpoint may carry the
        threshold it was tuned for (`default_threshold`; others get 0.5). Only
        the checkpoint's header is read; a path still being typed is skipped.
        """
        from razn.errors import RaznError
        from razn.models import default_threshold

        reference = self._model_reference()
        if reference == self._threshold_of:
            return  # the user's own setting stands until the model changes
        try:
            value = default_threshold(reference)
        except (RaznError, OSError, ValueError):
            return
        self._threshold_of = reference
        self.threshold.value = value

    def _warm_up(self) -> None:
        """The first run's one-off work, in a worker ahead of it (`warm_up`)."""
        from napari.qt.threading import create_worker

        worker = create_worker(warm_up, self._model_reference())
        worker.finished.connect(lambda w=worker: self._warmed(w))
        self._warm_worker = worker
        worker.start()

    def _warmed(self, worker) -> None:
        if worker is self._warm_worker:
            self._warm_worker = None
            self._prepare_layers()

    def _prepare_layers(self) -> None:
        """Give a shown slide its (empty) session and layers before any run.

        Adding a napari layer holds the GUI thread for 0.1 s or more; done
        when the slide is shown, as opening a saved session does, a run adds
        none and segmenting does not stall on them. Only with the model
        already loaded (by the warm-up), a known mpp, and no session yet.
        """
        if self.session is not None or self.slide_layer is None:
            return
        if self.slide_layer.metadata["razn_slide"].get("mpp") is None:
            return  # the user sets it first; the run makes the session then
        from razn.errors import RaznError

        with contextlib.suppress(RaznError, OSError):  # a run reports what is wrong
            self.ensure_session(cached_model(self._model_reference()), quiet=True)

    @property
    def warming(self) -> bool:
        """Whether the first run's one-off work is still being done ahead (`warm_up`)."""
        return self._warm_timer.isActive() or self._warm_worker is not None

    def _settings(self, model) -> dict:
        from razn.inference.store import model_identity

        return {
            "model": model_identity(model)["sha256"],
            "threshold": round(self.threshold.value, 4),
        }

    def _restore_session(self) -> None:
        """Reopen this slide's saved session, if there is one."""
        from razn.session import SegmentationSession, default_session_path

        facts = self.slide_layer.metadata["razn_slide"]
        path = default_session_path(facts["path"])
        if path.is_file():
            try:
                self._show_session(SegmentationSession.load(path))
            except Exception as error:  # a damaged session must not block the slide
                self._notify(f"could not restore the saved session: {error}")

    def ensure_session(self, model, *, quiet: bool = False) -> bool:
        """A session for the slide on the model's tile grid; False if impossible.

        `quiet`: say nothing when it is impossible (work done ahead, which
        the run itself will report).
        """
        from razn.errors import RaznError
        from razn.inference.tiling import tile_grid
        from razn.session import SegmentationSession

        notify = (lambda _message: None) if quiet else self._notify
        slide = self.open_slide()
        if slide is None:
            notify("open a slide first")
            return False
        try:
            grid = tile_grid(slide, model.config)
        except RaznError as error:
            notify(str(error))
            return False
        if self.session is None or self.session.grid != grid:
            self._show_session(SegmentationSession(slide.path, grid, slide.mpp))
        return True

    def _show_session(self, session) -> None:
        self._remove_layers()
        self.session = session
        self._update_summary()
        # Adding a napari layer is 40-120 ms of GUI-thread work (its vispy
        # visual, overlays and Qt controls), hidden or not; the three in one
        # go were the first run's stall. One per event-loop turn instead, the
        # hidden zoom layers first, so the order is as before and the classes
        # layer, added last, becomes the active one. A run asked for
        # meanwhile is held until they are in (`_start`).
        adds = (self._add_zoom_heatmap, self._add_zoomed_outlines, self._add_classes_layer)
        self._pending_layers = [(session, add) for add in adds]
        self._layer_timer.start()

    def _add_next_layer(self) -> None:
        self._add_pending_layer()
        if self._pending_layers:
            self._layer_timer.start()
        else:
            self.runner.release()

    def _finish_layers(self) -> None:
        """Add the session's layers still pending now, and let a held run go."""
        while self._pending_layers:
            self._add_pending_layer()
        self.runner.release()

    def _add_pending_layer(self) -> None:
        if self._pending_layers:
            session, add = self._pending_layers.pop(0)
            if session is self.session:  # not one replaced meanwhile
                add()

    def _add_zoom_heatmap(self) -> None:
        self.zoom_layer = _layers.add_zoom_heatmap(self._viewer, self.session)
        self.zoom_layer.events.visible.connect(self._zoom_layer_shown)
        self._show_zoom_changed()

    def _add_zoomed_outlines(self) -> None:
        self.zoomed_layer = _layers.add_zoomed_outlines(self._viewer, self.session)
        self.zoomed_layer.events.visible.connect(self._zoom_layer_shown)
        self._show_zoom_changed()

    def _zoom_layer_shown(self, event) -> None:
        if event.source.visible and self.session is not None:
            self._refresh_zoom_layer(event.source)  # what was skipped while hidden

    def _add_classes_layer(self) -> None:
        self.classes_layer = _layers.add_classes_layer(self._viewer, self.session)
        self.classes_layer.opacity = self.opacity.value
        self.classes_layer.events.paint.connect(self._painted)
        # The slide stays the layer the user works on.
        self._viewer.layers.selection.active = self.classes_layer

    def _remove_layers(self) -> None:
        """Remove the shown session's layers, and forget those not added yet."""
        self._pending_layers = []
        layers = self._viewer.layers
        ours = [
            layer
            for layer in (self.classes_layer, self.zoom_layer, self.zoomed_layer)
            if layer is not None and layer in layers
        ]
        self.classes_layer = self.zoom_layer = self.zoomed_layer = None
        if not ours:
            return  # (an empty batch would still cost a collection)
        # napari runs a full garbage collection after each removal, and
        # once at the end of a batch (0.1-0.3 s here): one batch, one collection.
        with getattr(layers, "batched_update", contextlib.nullcontext)():
            for layer in ours:
                layers.remove(layer)

    def _painted(self, event) -> None:
        """Pathologist's edits become corrections, kept apart from predictions."""
        for indices, _old, _new in event.value:
            self.session.mark_corrected(indices)
        # napari announces a paint before it writes the pixels: count after.
        QTimer.singleShot(0, self._update_summary)
        self._save_timer.start()

    def save_session(self) -> None:
        """Save now, in a thread: a snapshot, so painting can go on meanwhile."""
        if self.session is None:
            return
        from razn.session import default_session_path

        snapshot = self.session.copy()
        path = default_session_path(self.session.slide_path)

        def save():
            with self._save_lock:
                snapshot.save(path)

        threading.Thread(target=save, name="razn-session-save", daemon=False).start()

    # -- segmenting ---------------------------------------------------------------
    def _prepare(self):
        """(slide, model) ready to segment, or None after telling the user why."""
        from razn.errors import RaznError

        try:
            model = self._model()
        except RaznError as error:
            self._notify(str(error))
            return None
        if not self.ensure_session(model):
            return None
        self.session.use_settings(self._settings(model))
        return self.slide, model

    def segment_view(self, _value=None) -> None:
        ready = self._prepare()
        if ready is None:
            return
        slide, model = ready
        region = view_region(self.slide_layer, self.slide.downsamples)
        if region is None:
            return
        tiles = self.session.tiles_for_view(region)
        self._start(slide, model, tiles)

    def segment_slide(self, _value=None) -> None:
        ready = self._prepare()
        if ready is None:
            return
        slide, model = ready
        h, w = slide.shape
        self._start(slide, model, self.session.tiles_for_view((0, 0, w, h)))

    def _start(self, slide, model, tiles) -> None:
        self.progress_label.value = f"0 / {len(tiles)} tiles" if tiles else "view done"
        # Held while the session's layers are being added (`_show_session`):
        # adding them as results arrive makes both slower, and the results
        # queued behind each layer then land in one long turn.
        self.runner.start(
            slide, model, tiles, self.threshold.value, self.device_picker.value,
            hold=bool(self._pending_layers),
        )  # fmt: skip

    def cancel(self, _value=None) -> None:
        if self.runner.running:
            self.runner.cancel()
            self.progress_label.value = "cancelled"
        if self._finetune_worker is not None:
            self._finetune_worker.quit()  # stops at its next step

    def _apply_result(self, result) -> None:
        rows, cols = self.session.apply(result)
        if self.classes_layer is not None:  # else it shows the tile when added
            _layers.refresh_region(self.classes_layer, rows, cols)
        r = self.runner
        # Of the tissue tiles, as `razn segment` counts: glass has no p.
        tissue = self.session.done & ~np.isnan(self.session.zoom_p)
        zoomed = int(self.session.zoomed[tissue].sum())
        if r.running:  # tiles still queued after a cancel are kept, quietly
            self.progress_label.value = (
                f"{r.finished} / {r.total} tiles, "
                f"zoomed {zoomed / max(int(tissue.sum()), 1):.0%} of tissue"
            )
        if r.finished % 16 == 0 or r.finished == r.total:
            self._refresh_zoom_layers()
            self._update_summary()
        self._save_timer.start()

    def _run_done(self) -> None:
        if self.session is not None:
            self._refresh_zoom_layers()
            self._update_summary()

    def _run_failed(self, error: Exception) -> None:
        self.progress_label.value = "failed"
        self._notify(f"segmentation failed: {error}")

    def _camera_moved(self, _event=None) -> None:
        if self.follow.value:
            self._follow_timer.start()  # restarts: fires once the camera rests

    def _follow_toggled(self, on: bool) -> None:
        if on:
            self.segment_view()
        else:
            self.cancel()

    # -- display ------------------------------------------------------------------
    def _refresh_zoom_layers(self) -> None:
        # A hidden layer is left as it is (setting its data still costs GUI
        # time) and brought up to date when it is shown (_zoom_layer_shown).
        for layer in (self.zoom_layer, self.zoomed_layer):
            if layer is not None and layer.visible:
                self._refresh_zoom_layer(layer)

    def _refresh_zoom_layer(self, layer) -> None:
        if layer is self.zoom_layer:
            layer.data = self.session.zoom_p
            layer.contrast_limits = (0.0, 1.0)
        else:
            layer.data = _layers.zoomed_rectangles(self.session)

    def _update_summary(self) -> None:
        from razn.classes import DEFAULT_CLASSES

        areas = self.session.class_areas_mm2(DEFAULT_CLASSES) if self.session else {}
        rows = []
        for c in DEFAULT_CLASSES:
            area = f" {areas[c.name]:.3f} mm2" if c.name in areas else ""
            rows.append(f"<span style='color:{c.hex}'>&#9632;</span> {c.name}{area}")
        self.legend.value = "<br>".join(rows)
        if self.session is not None:
            self.corrected_label.value = f"{self.session.corrected_fraction:.1%} of segmented area"

    def _opacity_changed(self, value: float) -> None:
        if self.classes_layer is not None:
            self.classes_layer.opacity = value

    def _show_zoom_changed(self, _value=None) -> None:
        for layer in (self.zoom_layer, self.zoomed_layer):
            if layer is not None:
                layer.visible = self.show_zoom.value

    def _hover(self, viewer, event) -> None:
        """Class and zoom probability under the cursor."""
        if self.session is None or self.classes_layer is None:
            return
        from razn.classes import DEFAULT_CLASSES

        row, col = (int(round(v)) for v in self.classes_layer.world_to_data(event.position)[-2:])
        labels = self.session.labels
        if not (0 <= row < labels.shape[0] and 0 <= col < labels.shape[1]):
            self.hover_label.value = "-"
            return
        value = int(labels[row, col])
        name = next((c.name for c in DEFAULT_CLASSES if c.value == value), "not segmented")
        tile = self.session.grid.tile_labels
        p = self.session.zoom_p[row // tile, col // tile]
        zoom = "" if p != p else f", p(zoom) {p:.2f}"  # p != p: NaN, not segmented
        self.hover_label.value = f"{name}{zoom}"

    # -- export ---------------------------------------------------------------------
    def export_geojson(self, _value=None) -> None:
        from napari.utils.notifications import show_info

        self._finish_layers()
        if self.classes_layer is None:
            self._notify("nothing to export yet: segment first")
            return
        path = self.export_path.value.strip()
        if not path:
            from pathlib import Path

            slide = Path(self.session.slide_path)
            path = str(slide.with_name(slide.stem + ".razn.geojson"))
            if not _writable(path):
                path = str(Path.home() / (slide.stem + ".razn.geojson"))
            self.export_path.value = path
        try:
            from napari_razn._writer import export_layer_to_geojson

            count = export_layer_to_geojson(self.classes_layer, path)
        except Exception as error:  # shown, never a dead widget
            self._notify(f"export failed: {error}")
            return
        show_info(f"RAZN: wrote {count} QuPath annotations to {path}")

    def export_corrections(self, _value=None) -> list:
        """The corrected pixels as training data for `razn train`.

        A label-grid TIFF (uncorrected pixels 0, which training ignores) and
        the same regions as QuPath GeoJSON, beside where Export writes.
        """
        from napari.utils.notifications import show_info

        if self.session is None or not self.session.corrected.any():
            self._notify("nothing corrected yet: paint on the classes layer first")
            return []
        from pathlib import Path

        from razn.annotations import export_label_grid
        from razn.classes import NORMAL
        from razn.label_tiff import write_label_grid

        slide = Path(self.session.slide_path)
        folder = slide.parent if _writable(str(slide)) else Path.home()
        stem = folder / (slide.stem + ".corrections")
        grid = self.session.grid
        labels = np.where(self.session.corrected, self.session.labels, 0).astype(np.uint8)
        try:
            write_label_grid(
                f"{stem}.tif", labels, grid.downsample, mpp=self.session.mpp,
                level0_shape=grid.slide_shape,
            )  # fmt: skip
            count = export_label_grid(
                labels, grid.downsample, f"{stem}.geojson", mpp=self.session.mpp,
                include_normal=bool((labels == NORMAL).any()),
            )  # fmt: skip
        except Exception as error:  # shown, never a dead widget
            self._notify(f"export failed: {error}")
            return []
        show_info(f"RAZN: wrote corrections to {stem}.tif and {stem}.geojson ({count} regions)")
        return [Path(f"{stem}.tif"), Path(f"{stem}.geojson")]

    # -- fine-tuning ------------------------------------------------------------
    def improve_model(self, _value=None) -> None:
        """Fine-tune a copy of the model on the corrections, in a worker, then segment again."""
        if self.session is None or not self.session.corrected.any():
            self._notify("nothing corrected yet: paint on the classes layer first")
            return
        if self._finetune_worker is not None:
            self._notify("the model is already being improved")
            return
        from napari.qt.threading import create_worker

        from razn.errors import RaznError

        try:
            model = self._model()
        except RaznError as error:
            self._notify(str(error))
            return
        self.cancel()  # the CPU goes to the fine-tuning
        session, iterations = self.session, FINETUNE_ITERATIONS
        worker = create_worker(
            _finetune, model, self.open_slide(), session.labels.copy(),
            session.corrected.copy(), session.grid.downsample, iterations,
            self.device_picker.value,
            _progress={"total": iterations, "desc": "Improving the model"},
        )  # fmt: skip
        worker.yielded.connect(self._finetune_step)
        worker.returned.connect(self._finetuned)
        worker.errored.connect(self._finetune_failed)
        worker.aborted.connect(lambda: setattr(self.progress_label, "value", "cancelled"))
        worker.finished.connect(lambda: setattr(self, "_finetune_worker", None))
        self._finetune_worker = worker
        self.progress_label.value = f"improving the model: 0 / {iterations} steps"
        worker.start()

    def _finetune_step(self, progress) -> None:
        loss = progress.metrics.get("segmentation_loss", float("nan"))
        self.progress_label.value = (
            f"improving the model: {progress.iteration} / {progress.iterations} steps, "
            f"loss {loss:.3f}"
        )

    def _finetune_failed(self, error: Exception) -> None:
        self.progress_label.value = "failed"
        self._notify(f"improving the model failed: {error}")

    def _finetuned(self, path) -> None:
        from napari.utils.notifications import show_info

        self.model_input.value = str(path)
        self.progress_label.value = "model improved"
        show_info(
            f"RAZN: saved the improved model to {path} (a short adaptation to this "
            "slide, not a validated model); segmenting the view again"
        )
        self.segment_view()

    def _notify(self, message: str) -> None:
        from napari.utils.notifications import show_error

        show_error(f"RAZN: {message}")


def _finetune(model, slide, labels, corrected, downsample, iterations, device):
    """Worker body: fine-tune on `device`, yielding progress; returns the new checkpoint.

    The new checkpoint is loaded and hashed here too, so the segmenting that
    follows finds it cached instead of loading it on the GUI thread.
    """
    import torch

    from razn.devices import threads_beside_gui
    from razn.training.finetune import finetune_from_corrections, save_finetuned

    torch.set_num_threads(threads_beside_gui())
    progress = None
    for progress in finetune_from_corrections(
        model, slide, labels, corrected, downsample, iterations=iterations,
        device=device,
    ):  # fmt: skip
        yield progress
    path = save_finetuned(progress.model)
    warm_up(str(path))
    return path


def _single_shot(ms: int, callback) -> QTimer:
    timer = QTimer()
    timer.setSingleShot(True)
    timer.setInterval(ms)
    timer.timeout.connect(callback)
    return timer


def _writable(path: str) -> bool:
    import os

    return os.access(os.path.dirname(os.path.abspath(path)), os.W_OK)


def _camera(viewer):
    # napari 0.9 moved the camera under the scene.
    scene = getattr(viewer, "scene", None)
    return getattr(scene, "camera", None) or viewer.camera


def _scale_bar(viewer):
    # napari 0.9 moved the scale bar under the canvas overlays.
    canvas = getattr(viewer, "canvas", None)
    overlays = getattr(canvas, "overlays", None)
    return getattr(overlays, "scale_bar", None) or viewer.scale_bar


def _slide_path(layer) -> str | None:
    return None if layer is None else layer.metadata["razn_slide"]["path"]


def _is_slide(layer) -> bool:
    return "razn_slide" in getattr(layer, "metadata", {})
