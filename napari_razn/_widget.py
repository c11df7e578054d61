"""The RAZN dock widget: slide facts, segmentation of what is in view, review, export.

A magicgui `Container` of four sub-panels (`_panels`) whose callbacks are
plain methods, so tests drive it without clicking. What the panel is doing
lives in the Qt-free `PanelController` (which session is shown, which run
is current, and the one rule for which results may be applied); the engine
(`razn.inference`), the session (`razn.session`), corrections
(`_corrections`) and layers (`_layers`) do the work. Long work never runs
on the GUI thread, and every background job is a napari worker started
through `Workers`, so one teardown (`close`), run when napari closes the
panel, stops the timers, cancels and awaits the workers and flushes the
autosave.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import Container
from qtpy.QtCore import QTimer

from napari_razn import _layers, _panels
from napari_razn._controller import PanelController, SaveThrottle
from napari_razn._corrections import CorrectionLog
from napari_razn._improve import ExportAndImprove
from napari_razn._live import SegmentationRunner, view_region
from napari_razn._models import cached_model, model_facts, warm_up
from napari_razn._workers import Workers

if TYPE_CHECKING:
    import napari

#: Quiet time after the camera stops before the view is segmented (ms).
FOLLOW_DEBOUNCE_MS = 300
#: Longest time a change (a result, a correction) waits before it is saved (s).
AUTOSAVE_INTERVAL_S = 2.0
#: Quiet time after a slide is shown or the model field changes before the
#: first run's one-off work starts in the background (`warm_up`) (ms).
WARM_DEBOUNCE_MS = 500

# Saves of the same session never interleave (a worker's and the final one).
_save_lock = threading.Lock()


def devices_found() -> list[str]:
    """Worker body: "auto" first, then the CPU, then any accelerator (imports torch).

    Started with the first run, which imports torch anyway (`_models`).
    """
    from razn.devices import available_devices

    return ["auto", "cpu", *(d for d in available_devices() if d != "cpu")]


class RaznWidget(ExportAndImprove, Container):
    """Slide facts, model and threshold, live segmentation, corrections, export."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(labels=False)
        # napari hands plugins a proxy that wraps every object it returns
        # anew (so `is` fails between two reads of the same layer) and warns
        # on private attributes; the panel keeps and compares the layers
        # themselves.
        self._viewer = _unwrap(napari_viewer)
        self.controller = PanelController()
        self.workers = Workers()
        self._finetune_worker = self._save_worker = None
        self._pending_layers = []  # (session, add) of layers not added yet
        self._threshold_of = None  # the model whose own threshold the slider last took
        self.slide = None  # razn.Slide of the chosen layer, opened on demand
        self._shown_path = None  # the slide the panel shows
        self.corrections = None  # CorrectionLog of the shown session
        self.classes_layer = self.zoom_layer = self.zoomed_layer = None
        self._warm_pending = 0
        self._devices_probed = False
        self._build()
        parent = self.native  # every timer dies with the panel's widget
        self.runner = SegmentationRunner(
            self.workers, self._apply_result, self._run_done, self._run_failed, parent=parent
        )
        self.autosave = SaveThrottle(AUTOSAVE_INTERVAL_S)
        self._follow_timer = _single_shot(FOLLOW_DEBOUNCE_MS, self.segment_view, parent)
        self._save_timer = _single_shot(0, self.save_session, parent)
        self._warm_timer = _single_shot(WARM_DEBOUNCE_MS, self._warm_up, parent)
        self._layer_timer = _single_shot(0, self._add_next_layer, parent)
        self._summary_timer = _single_shot(0, self._update_summary, parent)
        self._use_model_threshold()
        self._viewer.layers.events.inserted.connect(self._refresh_choices)
        self._viewer.layers.events.removed.connect(self._refresh_choices)
        camera = _camera(self._viewer)
        camera.events.center.connect(self._camera_moved)
        camera.events.zoom.connect(self._camera_moved)
        self._viewer.mouse_move_callbacks.append(self._hover)
        # One teardown, whichever comes first: napari deleting the panel
        # with its window, or the application quitting.
        self.native.destroyed.connect(lambda *_: self.close())
        from qtpy.QtWidgets import QApplication

        QApplication.instance().aboutToQuit.connect(self.close)
        self.slide_picker.reset_choices()
        # The scale bar (a vispy overlay, 0.1-1 s to make) and the device
        # probe (which imports torch) come a turn after docking.
        self._startup_timer = _single_shot(0, self._started, parent)
        self._startup_timer.start()
        self.show_slide()

    def _started(self) -> None:
        if self.slide_layer is not None and self.slide_layer.metadata["razn_slide"].get("mpp"):
            _scale_bar(self._viewer).visible = True

    # -- layout ---------------------------------------------------------------
    def _build(self) -> None:
        boxes = []
        for box, widgets in (
            _panels.slide_panel(self._slide_choices),
            _panels.segmentation_panel(["auto", "cpu"]),
            _panels.review_panel(),
            _panels.export_panel(),
        ):
            boxes.append(box)
            for name, widget in vars(widgets).items():
                setattr(self, name, widget)
        self.extend(boxes)
        self.slide_picker.changed.connect(self.show_slide)
        self.mpp_override.changed.connect(self._mpp_override_toggled)
        self.mpp_button.changed.connect(self.apply_mpp)
        self.segment_view_button.changed.connect(self.segment_view)
        self.segment_slide_button.changed.connect(self.segment_slide)
        self.cancel_button.changed.connect(self.cancel)
        self.follow.changed.connect(self._follow_toggled)
        self.opacity.changed.connect(self._opacity_changed)
        self.outline.changed.connect(self._outline_changed)
        self.show_zoom.changed.connect(self._show_zoom_changed)
        self.export_button.changed.connect(self.export_geojson)
        self.export_corrections_button.changed.connect(self.export_corrections)
        self.improve_button.changed.connect(self.improve_model)
        self.model_input.changed.connect(lambda _value: self._model_changed())

    def _devices_found(self, devices: list[str]) -> None:
        chosen = self.device_picker.value
        self.device_picker.choices = devices
        self.device_picker.value = chosen if chosen in devices else "auto"
        self.device_label.value = ", ".join(devices[1:])

    # -- the slide --------------------------------------------------------------
    def _slide_choices(self, _widget=None) -> list:
        return [(layer.name, layer) for layer in self._viewer.layers if _is_slide(layer)]

    def _refresh_choices(self, _event=None) -> None:
        if self.controller.closed:
            return
        self.slide_picker.reset_choices()
        # Layers come and go (our own among them): only a change of slide
        # resets the panel.
        if _slide_path(self.slide_layer) != self._shown_path:
            self.show_slide()

    @property
    def slide_layer(self):
        return _unwrap(self.slide_picker.value)

    def show_slide(self, _value=None) -> None:
        """Show the chosen slide: the previous one's run stops, its session is saved."""
        self._leave_session()
        self.slide = None
        layer = self.slide_layer
        self._shown_path = _slide_path(layer)
        if layer is None:
            for label in self._fact_labels():
                label.value = "-"
            self.tissue_label.value = "open a slide (File > Open)"
            return
        facts = layer.metadata["razn_slide"]
        if not facts.get("mpp"):
            from razn.session import remembered_mpp

            mpp = remembered_mpp(facts["path"])
            if mpp:  # the user set it on an earlier visit
                _set_layer_mpp(layer, mpp, "user, remembered")
        h, w = facts["levels"][0]["shape"]
        self.format_label.value = f"{facts['format']} ({facts['compression']})"
        self.size_label.value = f"{w:,} x {h:,} px"
        downsamples = ", ".join(f"{lv['downsample']:.3g}" for lv in facts["levels"])
        self.levels_label.value = f"{len(facts['levels'])} (downsample {downsamples})"
        self._show_mpp(facts)
        mag = facts["magnification"]
        self.magnification_label.value = f"{mag:g}x" if mag else "unknown"
        if facts.get("tissue_fraction") is None:
            self.tissue_label.value = "measuring..."
            self._measure_tissue(layer)
        else:
            self.tissue_label.value = f"{facts['tissue_fraction']:.1%} of the slide"
        self._warm_timer.start()  # while the user looks at the slide
        self._restore_session()

    def _show_mpp(self, facts) -> None:
        """The pixel size: from the file and locked, else set by the user and remembered."""
        mpp, source = facts.get("mpp"), facts.get("mpp_source")
        from_file = bool(mpp) and not str(source).startswith("user")
        if mpp:
            self.mpp_label.value = f"{mpp:.4f} um/px ({source})"
            self.mpp_input.value = mpp
            if not self._startup_timer.isActive():  # else it shows it
                _scale_bar(self._viewer).visible = True
        else:
            self.mpp_label.value = "unknown: not in the file; set it below"
        # A file's own mpp is locked: one click must not override it by accident.
        self.mpp_override.visible = from_file
        self.mpp_override.value = False
        unlocked = not from_file
        self.mpp_input.enabled = self.mpp_button.enabled = unlocked

    def _mpp_override_toggled(self, on: bool) -> None:
        self.mpp_input.enabled = self.mpp_button.enabled = bool(on)

    def _fact_labels(self):
        return (
            self.format_label, self.size_label, self.levels_label, self.mpp_label,
            self.magnification_label,
        )  # fmt: skip

    def _measure_tissue(self, layer) -> None:
        # On the panel's own Slide, so the engine later finds the mask cached.
        slide = self.open_slide()
        self.workers.start(
            lambda: slide.tissue_fraction,
            returned=lambda fraction: self._tissue_measured(layer, fraction),
            errored=lambda error: self._notify(f"tissue mask failed: {error}"),
        )

    def _tissue_measured(self, layer, fraction: float) -> None:
        layer.metadata["razn_slide"]["tissue_fraction"] = round(fraction, 4)
        if layer is self.slide_layer:
            self.tissue_label.value = f"{fraction:.1%} of the slide"

    def apply_mpp(self, _value=None) -> None:
        """Set the slide's pixel size by hand (remembered for this slide): the layer follows."""
        layer = self.slide_layer
        if layer is None:
            return
        from razn.session import remember_mpp

        mpp = float(self.mpp_input.value)
        _set_layer_mpp(layer, mpp, "user")
        try:
            remember_mpp(layer.metadata["razn_slide"]["path"], mpp)
        except OSError as error:
            self._notify(f"the mpp is used, but could not be remembered: {error}")
        self._leave_session()  # its grid and placement were for the old mpp
        self._shown_path = None
        self.show_slide()

    def open_slide(self):
        """The chosen layer's slide, opened once (the engine reads through it)."""
        if self.slide is None and self.slide_layer is not None:
            from razn.slide import open_slide

            facts = self.slide_layer.metadata["razn_slide"]
            self.slide = open_slide(facts["path"], mpp=facts["mpp"])
        return self.slide

    # -- the session --------------------------------------------------------------
    @property
    def session(self):
        return self.controller.session

    @session.setter
    def session(self, session) -> None:
        self.controller.show(session)

    def _model_reference(self) -> str:
        return self.model_input.value.strip() or "demo"

    def _model(self):
        """The loaded model (imports torch: for workers and tests, never the GUI thread)."""
        return cached_model(self._model_reference())

    def _model_facts(self):
        """The model's header facts (no torch; cached after the warm-up read them)."""
        return model_facts(self._model_reference())

    def _model_changed(self) -> None:
        self._use_model_threshold()
        self.model_note.visible = self._model_reference() == "demo"
        self._warm_timer.start()

    def _use_model_threshold(self) -> None:
        """When the model changes, start the slider at the model's own threshold.

        A policy's p is not calibrated, so each checkpoint may carry the
        threshold it was tuned for (`default_threshold`; others get 0.5).
        Read in a worker (the reading imports torch, seconds on the GUI
        thread); a path still being typed is skipped.
        """
        reference = self._model_reference()
        if reference == self._threshold_of:
            return  # the user's own setting stands until the model changes
        self.workers.start(
            _model_threshold, reference,
            returned=lambda value, ref=reference: self._model_threshold_found(ref, value),
        )  # fmt: skip

    def _model_threshold_found(self, reference: str, value: float | None) -> None:
        if value is None or reference != self._model_reference():
            return  # not a checkpoint (yet), or the field changed meanwhile
        if reference != self._threshold_of:
            self._threshold_of = reference
            self.threshold.value = value

    def _warm_up(self) -> None:
        """The first run's one-off work, in a worker ahead of it (`warm_up`)."""
        self._warm_pending += 1
        self.controller.warming(True)
        self.workers.start(warm_up, self._model_reference(), finished=self._warmed)

    def _warmed(self) -> None:
        self._warm_pending -= 1
        if self._warm_pending == 0:
            self.controller.warming(False)
            self._prepare_layers()

    def _prepare_layers(self) -> None:
        """Give a shown slide its (empty) session and layers before any run.

        Adding a napari layer holds the GUI thread for 0.1 s or more; done
        when the slide is shown, a run adds none. Only with the model
        already loaded (by the warm-up), a known mpp, and no session yet.
        """
        if self.session is not None or self.slide_layer is None:
            return
        if self.slide_layer.metadata["razn_slide"].get("mpp") is None:
            return  # the user sets it first; the run makes the session then
        from razn.errors import RaznError

        with contextlib.suppress(RaznError, OSError):  # a run reports what is wrong
            self.ensure_session(self._model_facts(), quiet=True)

    @property
    def warming(self) -> bool:
        """Whether the first run's one-off work is still being done ahead (`warm_up`)."""
        return self._warm_timer.isActive() or self._warm_pending > 0

    def _settings(self, facts) -> dict:
        return {
            "model": facts.sha256,
            "threshold": round(self.threshold.value, 4),
        }

    def _restore_session(self) -> None:
        """Reopen this slide's saved session, if there is one, in a worker."""
        from razn.session import default_session_path

        facts = self.slide_layer.metadata["razn_slide"]
        path = default_session_path(facts["path"])
        if not path.is_file():
            return
        self.workers.start(
            _load_session, path,
            returned=lambda session, p=facts["path"]: self._session_restored(p, session),
            errored=lambda error: self._notify(f"could not restore the saved session: {error}"),
        )  # fmt: skip

    def _session_restored(self, slide_path: str, session) -> None:
        """Show a restored session, with the model and threshold that made its labels."""
        if slide_path != self._shown_path or self.session is not None:
            return  # another slide is shown now, or a run made a session meanwhile
        made_by = session.made_by
        if made_by.get("model"):
            # The labels shown are that model's at that threshold: say so, and
            # start from them, so segmenting on reuses the tiles done.
            self._threshold_of = made_by["model"]
            with self.model_input.changed.blocked():
                self.model_input.value = made_by["model"]
            self.model_note.visible = made_by["model"] == "demo"
            if "threshold" in session.settings:
                self.threshold.value = session.settings["threshold"]
        self._show_session(session)

    def ensure_session(self, facts, *, quiet: bool = False) -> bool:
        """A session for the slide on the model's tile grid (`ModelFacts`); False if impossible."""
        from razn.errors import RaznError
        from razn.inference.tiling import tile_grid
        from razn.session import SegmentationSession

        notify = (lambda _message: None) if quiet else self._notify
        slide = self.open_slide()
        if slide is None:
            notify("open a slide first")
            return False
        if slide.mpp is None:
            notify("the slide does not record its pixel size: set its mpp under Slide first")
            return False
        try:
            grid = tile_grid(slide, facts.config)
        except RaznError as error:
            notify(str(error))
            return False
        if self.session is None or self.session.grid != grid:
            self._show_session(SegmentationSession(slide.path, grid, slide.mpp))
        return True

    def _show_session(self, session) -> None:
        self._remove_layers()
        self.session = session
        self.corrections = CorrectionLog(session.corrected)
        self._update_summary()
        self._show_made_by()
        # Adding a napari layer is 40-120 ms of GUI-thread work: one per
        # event-loop turn, the hidden zoom layers first, so the classes layer,
        # added last, becomes the active one. A run asked for meanwhile is
        # held until they are in (`_start`).
        adds = (self._add_zoom_heatmap, self._add_zoomed_outlines, self._add_classes_layer)
        self._pending_layers = [(session, add) for add in adds]
        self._layer_timer.start()

    def _leave_session(self) -> None:
        """Stop the shown session's run and save it; its layers go (slide change, close)."""
        self.cancel()
        self.runner.shutdown()
        if self.session is not None and self.autosave.dirty:
            self._save_now()
        self._remove_layers()
        self.session, self.corrections = None, None

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
        if self._pending_layers and not self.controller.closed:
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
        layer = _layers.add_classes_layer(self._viewer, self.session)
        self.classes_layer = layer
        layer.opacity = self.opacity.value
        self._outline_changed(self.outline.value)
        layer.events.paint.connect(self._painted)
        _follow_undo(layer, self._undone, self._redone)
        self._viewer.layers.selection.active = layer

    def _remove_layers(self) -> None:
        """Remove the shown session's layers, and forget those not added yet."""
        self._pending_layers = []
        layers = self._viewer.layers
        ours = [
            layer
            for layer in (self.classes_layer, self.zoom_layer, self.zoomed_layer)
            if layer is not None and _contains(layers, layer)
        ]
        self.classes_layer = self.zoom_layer = self.zoomed_layer = None
        if not ours or self.controller.closed:
            return
        # napari runs a full garbage collection after each removal: one batch, one collection.
        with getattr(layers, "batched_update", contextlib.nullcontext)():
            for layer in ours:
                layers.remove(layer)

    # -- corrections ----------------------------------------------------------------
    def _painted(self, event) -> None:
        """A brush stroke, fill, polygon or `data_setitem`: its pixels become corrections."""
        if self.corrections is None or _unwrap(event.source) is not self.classes_layer:
            return
        try:
            self.corrections.painted(event.value)
        except Exception as error:  # an unknown history shape: said, never a lost stroke silently
            self._notify(f"could not record the correction: {error}")
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
        self._summary_timer.start()
        self._changed()

    # -- saving ---------------------------------------------------------------------
    def _changed(self) -> None:
        """Something to save: saved within `AUTOSAVE_INTERVAL_S`, whatever keeps coming."""
        if self.session is None or self.controller.closed:
            return
        delay = self.autosave.changed()
        if not self._save_timer.isActive():  # a throttle: a new change never postpones it
            self._save_timer.start(int(delay * 1000))

    def save_session(self) -> None:
        """Save a snapshot in a worker, so painting and results go on meanwhile."""
        if self.session is None or self.controller.closed or not self.autosave.dirty:
            return
        if self._save_worker is not None:  # one save at a time: try again after it
            self._save_timer.start(200)
            return
        snapshot, path = self.session.copy(), self._session_path()
        self.autosave.saved()
        self._save_worker = self.workers.start(
            _save, snapshot, path,
            errored=lambda error: self._notify(f"could not save the session: {error}"),
            finished=lambda: setattr(self, "_save_worker", None),
        )  # fmt: skip

    def _save_now(self) -> None:
        """Save on this thread (the panel is leaving this session or closing)."""
        try:
            _save(self.session.copy(), self._session_path())
            self.autosave.saved()
        except Exception as error:
            if not self.controller.closed:
                self._notify(f"could not save the session: {error}")

    def _session_path(self):
        return _session_path_of(self.session)

    def close(self) -> None:
        """The one teardown: timers stop, workers are cancelled and awaited, the session saved.

        Run when napari deletes the panel (its window closed) or the
        application quits; it touches no Qt widget, which may be gone.
        """
        if self.controller.closed:
            return
        session = self.session
        self.runner.shutdown()
        with contextlib.suppress(RuntimeError):  # timers already deleted with the widget
            for timer in (self._follow_timer, self._save_timer, self._warm_timer,
                          self._layer_timer, self._summary_timer, self._startup_timer):  # fmt: skip
                timer.stop()
        self.workers.quit(self._finetune_worker)
        self.controller.close()
        self.workers.shutdown()
        if session is not None and self.autosave.dirty:
            try:
                _save(session.copy(), _session_path_of(session))
                self.autosave.saved()
            except Exception:  # the window is going: leave a trace, not a pop-up
                logging.getLogger(__name__).exception("could not save the session on close")

    # -- segmenting ---------------------------------------------------------------
    def _prepare(self):
        """(slide, model) ready to segment, or None after telling the user why."""
        from razn.errors import RaznError

        try:
            facts = self._model_facts()
        except (RaznError, OSError) as error:
            self._notify(str(error))
            return None
        if not self.ensure_session(facts):
            return None
        self.session.use_settings(self._settings(facts))
        self.session.made_by = {"model": facts.reference}
        if not self._devices_probed:  # the run imports torch: probe beside it
            self._devices_probed = True
            self.workers.start(devices_found, returned=self._devices_found)
        return self.slide, facts.reference

    def segment_view(self, _value=None) -> None:
        ready = self._prepare()
        if ready is None:
            return
        slide, model = ready
        region = view_region(self.slide_layer, self.slide.downsamples, self._viewer)
        if region is None:
            return
        self._start(slide, model, self.session.tiles_for_view(region, margin=0.5))

    def segment_slide(self, _value=None) -> None:
        ready = self._prepare()
        if ready is None:
            return
        slide, model = ready
        h, w = slide.shape
        self._start(slide, model, self.session.tiles_for_view((0, 0, w, h)))

    def _start(self, slide, model, tiles) -> None:
        self.progress_label.value = f"0 / {len(tiles)} tiles" if tiles else "view done"
        self.progress_bar.max, self.progress_bar.value = max(len(tiles), 1), 0
        self._show_made_by()
        run = self.controller.begin_run(len(tiles))
        # Held while the session's layers are being added (`_show_session`).
        self.runner.start(
            run, slide, model, tiles, self.threshold.value, self.device_picker.value,
            hold=bool(self._pending_layers),
        )  # fmt: skip

    def cancel(self, _value=None) -> None:
        if self.runner.running:
            self.runner.cancel()
            self.controller.cancel()
            self.progress_label.value = "cancelled"
        self.workers.quit(self._finetune_worker)  # stops at its next step

    def _apply_result(self, run, result) -> None:
        # The mask the engine computed for this run (never computed here, on
        # the GUI thread): glass inside a tissue tile stays transparent too.
        tissue = vars(self.slide).get("tissue_mask") if self.slide is not None else None
        region = self.controller.apply(run, result, tissue)
        if region is None:
            return  # a result of a run that no longer owns the view
        rows, cols = region
        if self.classes_layer is not None:  # else it shows the tile when added
            _layers.refresh_region(self.classes_layer, rows, cols)
        r = self.runner
        tissue = self.session.done & ~np.isnan(self.session.zoom_p)
        zoomed = int(self.session.zoomed[tissue].sum())
        if r.running:
            self.progress_label.value = (
                f"{r.finished} / {r.total} tiles, "
                f"zoomed {zoomed / max(int(tissue.sum()), 1):.0%} of tissue"
            )
            self.progress_bar.value = min(r.finished, self.progress_bar.max)
        if r.finished % 16 == 0 or r.finished == r.total:
            self._refresh_zoom_layers()
            self._update_summary()
        self._changed()

    def _run_done(self, run) -> None:
        if self.controller.finished(run) and self.session is not None:
            self.progress_bar.value = self.progress_bar.max
            self._refresh_zoom_layers()
            self._update_summary()

    def _run_failed(self, error: Exception) -> None:
        self.progress_label.value = "failed"
        self._notify(f"segmentation failed: {error}")

    def _camera_moved(self, _event=None) -> None:
        if self.follow.value and not self.controller.closed:
            self._follow_timer.start()  # restarts: fires once the camera rests

    def _follow_toggled(self, on: bool) -> None:
        if on:
            self.segment_view()
        else:
            self.cancel()

    # -- display ------------------------------------------------------------------
    def _show_made_by(self) -> None:
        s = self.session
        if s is None or not s.done.any():
            self.made_by_label.value = "-"
            return
        model = s.made_by.get("model", "?")
        threshold = s.settings.get("threshold")
        at = f", threshold {threshold:g}" if threshold is not None else ""
        self.made_by_label.value = f"{model}{at}"

    def _refresh_zoom_layers(self) -> None:
        # A hidden layer is brought up to date when it is shown (_zoom_layer_shown).
        for layer in (self.zoom_layer, self.zoomed_layer):
            if layer is not None and layer.visible:
                self._refresh_zoom_layer(layer)

    def _refresh_zoom_layer(self, layer) -> None:
        # By the layer's own kind, never by identity: napari may hand us a wrapper.
        if getattr(_unwrap(layer), "name", None) == _layers.ZOOM_LAYER:
            layer.data = self.session.zoom_p
            layer.contrast_limits = (0.0, 1.0)
        else:
            layer.data = _layers.zoomed_rectangles(self.session)

    def _update_summary(self) -> None:
        from razn.classes import DEFAULT_CLASSES

        if self.controller.closed:
            return
        areas = self.session.class_areas_mm2(DEFAULT_CLASSES) if self.session else {}
        rows = []
        for c in DEFAULT_CLASSES:
            area = f" {areas[c.name]:.3f} mm2" if c.name in areas else ""
            rows.append(f"<span style='color:{c.hex}'>&#9632;</span> {c.name}{area}")
        self.legend.value = "<br>".join(rows)
        if self.session is not None:
            self.corrected_label.value = f"{self.session.corrected_fraction:.1%} of segmented area"
            self._show_made_by()

    def _opacity_changed(self, value: float) -> None:
        if self.classes_layer is not None:
            self.classes_layer.opacity = value

    def _outline_changed(self, on: bool) -> None:
        if self.classes_layer is not None:
            self.classes_layer.contour = 2 if on else 0

    def _show_zoom_changed(self, _value=None) -> None:
        for layer in (self.zoom_layer, self.zoomed_layer):
            if layer is not None:
                layer.visible = self.show_zoom.value

    def _hover(self, viewer, event) -> None:
        """Class and zoom probability under the cursor."""
        if self.session is None or self.classes_layer is None or self.controller.closed:
            return
        from razn.classes import DEFAULT_CLASSES

        row, col = (int(round(v)) for v in self.classes_layer.world_to_data(event.position)[-2:])
        labels = self.session.labels
        if not (0 <= row < labels.shape[0] and 0 <= col < labels.shape[1]):
            self.hover_label.value = "-"
            return
        value = int(labels[row, col])
        tile = self.session.grid.tile_labels
        done = self.session.done[row // tile, col // tile]
        fallback = "glass" if done else "not segmented"
        name = next((c.name for c in DEFAULT_CLASSES if c.value == value), fallback)
        p = self.session.zoom_p[row // tile, col // tile]
        zoom = "" if p != p else f", p(zoom) {p:.2f}"  # p != p: NaN, not segmented
        self.hover_label.value = f"{name}{zoom}"

    def _notify(self, message: str) -> None:
        from napari.utils.notifications import show_error

        if not self.controller.closed:
            show_error(f"RAZN: {message}")


def _model_threshold(reference: str) -> float | None:
    """Worker body: the threshold a checkpoint carries (None if it is not one)."""
    from razn.errors import RaznError
    from razn.models import default_threshold

    try:
        return default_threshold(reference)
    except (RaznError, OSError, ValueError):
        return None


def _load_session(path):
    from razn.session import SegmentationSession

    return SegmentationSession.load(path)


def _save(session, path) -> None:
    with _save_lock:
        session.save(path)


def _session_path_of(session):
    from razn.session import default_session_path

    return default_session_path(session.slide_path)


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


def _set_layer_mpp(layer, mpp: float, source: str) -> None:
    facts = layer.metadata["razn_slide"]
    facts["mpp"], facts["mpp_source"] = mpp, source
    layer.scale = (mpp, mpp)
    layer.units = ("um", "um")


def _single_shot(ms: int, callback, parent) -> QTimer:
    timer = QTimer(parent)
    timer.setSingleShot(True)
    timer.setInterval(ms)
    timer.timeout.connect(callback)
    return timer


def _unwrap(obj):
    """The object behind napari's plugin proxy (itself when not wrapped)."""
    return getattr(obj, "__wrapped__", obj)


def _contains(layers, layer) -> bool:
    return any(_unwrap(other) is _unwrap(layer) for other in layers)


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
