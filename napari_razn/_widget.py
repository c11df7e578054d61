"""The RAZN dock widget: four sub-panels around one session, with one teardown.

`RaznWidget` is a magicgui `Container` of the sub-panels, each a module
with its controls (`_panels`) and its behaviour: the slide's facts and
pixel size (`_slide_panel`), segmentation (`_segment_panel`), review:
legend, display, hover, the RAZN layers and corrections (`_review_panel`),
and export and improve (`_improve`). What the panel is doing lives in the
Qt-free `PanelController` (which session is shown, which run is current,
and the one rule for which results may be applied). This module keeps
what the sub-panels share: the slide, the session's life (made, restored,
autosaved, left) and the teardown. Only the Slide sub-panel is built in
the docking call; the others follow one per event-loop turn, each at once
if something uses it before its turn.

Long work never runs on the GUI thread, and every background job is a
napari worker started through `Workers`. One teardown (`close`) stops the
timers, cancels and awaits the workers and flushes the autosave; it runs
when napari deletes the docked panel, when the viewer's window goes (a
panel that was never docked), or when the application quits.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from magicgui.widgets import Container
from qtpy.QtCore import QTimer

from napari_razn._collector import freeze_heap, thaw
from napari_razn._controller import PanelController, SaveThrottle
from napari_razn._improve import ExportPanel
from napari_razn._review_panel import ReviewPanel
from napari_razn._segment_panel import SegmentationPanel
from napari_razn._session_files import load_session, save_on_close, session_path_for, write_session
from napari_razn._slide_panel import SlidePanel, slide_path
from napari_razn._workers import Workers

if TYPE_CHECKING:
    import napari

#: Longest time a change (a result, a correction) waits before it is saved (s).
AUTOSAVE_INTERVAL_S = 2.0


class RaznWidget(Container):
    """Slide facts, model and threshold, live segmentation, corrections, export."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        # napari's heap, as it stands, out of the collections the panel's
        # workers would set off (`_collector`): a full one at docking stalled
        # the window 70-135 ms. Thawed before any layer is removed.
        freeze_heap()
        super().__init__(labels=False)
        # napari hands plugins a proxy that wraps every object it returns
        # anew (so `is` fails between two reads of the same layer) and warns
        # on private attributes; the panel keeps and compares the layers
        # themselves.
        self.viewer = _unwrap(napari_viewer)
        self.controller = PanelController()
        self.workers = Workers()
        self.slide = None  # razn.Slide of the chosen layer, opened on demand
        self._shown_path = None  # the slide the panel shows
        self.autosave = SaveThrottle(AUTOSAVE_INTERVAL_S)
        self._save_worker = None
        self._save_job = None  # (snapshot, path) of the last autosave handed to a worker
        self._save_timer = self.single_shot(0, self.save_session)
        # The Slide sub-panel now; the others one per event-loop turn after
        # (`_build_next`): building the panel's 38 controls in one go was the
        # plugin's whole share of the stall napari's docking call makes. Any
        # use of one before its turn builds it there and then (`_built`).
        self.slide_panel = SlidePanel(self)
        self._built_panels: dict[str, object] = {}
        self._build_timer = self.single_shot(0, self._build_next)
        self._adopt(self.slide_panel)
        self.slide_picker.changed.connect(lambda _value: self.show_slide())
        layers = self.viewer.layers
        layers.events.inserted.connect(self._layers_changed)
        layers.events.removed.connect(self._layers_changed)
        # Before napari's own full collection after a removal (`_collector.thaw`).
        layers.events.removing.connect(thaw)
        camera = _camera(self.viewer)
        camera.events.center.connect(self._camera_moved)
        camera.events.zoom.connect(self._camera_moved)
        self.viewer.mouse_move_callbacks.append(self._hover)
        self._connect_teardown()
        self.slide_picker.reset_choices()
        self.show_slide()
        self._build_timer.start()

    # -- the sub-panels, built one per turn ------------------------------------------
    _BUILD_ORDER = (
        ("segmentation", SegmentationPanel), ("review", ReviewPanel), ("export", ExportPanel),
    )  # fmt: skip

    def _adopt(self, panel) -> None:
        self.append(panel.box)
        # Each control by its name, as tests and scripts use them.
        for name, control in vars(panel.controls).items():
            setattr(self, name, control)

    def _build(self, name: str, cls) -> None:
        panel = cls(self)
        self._built_panels[name] = panel
        self._adopt(panel)
        if name == "segmentation" and self.slide_layer is not None:
            panel.slide_shown()  # the warm-up, as `show_slide` starts it

    def _build_next(self) -> None:
        """Build the next sub-panel (a turn each), unless the panel is gone."""
        if self.controller.closed:
            return
        for name, cls in self._BUILD_ORDER:
            if name not in self._built_panels:
                self._build(name, cls)
                break
        if len(self._built_panels) < len(self._BUILD_ORDER):
            self._build_timer.start()

    def _built(self, name: str):
        """The sub-panel `name`, built now (with those before it) if its turn has not come."""
        if name not in self._built_panels:
            for other, cls in self._BUILD_ORDER:
                if other not in self._built_panels:
                    self._build(other, cls)
                if other == name:
                    break
        return self._built_panels[name]

    @property
    def segmentation(self):
        return self._built("segmentation")

    @property
    def review(self):
        return self._built("review")

    @property
    def export(self):
        return self._built("export")

    def __getattr__(self, name: str):
        # A control of a sub-panel not built yet: build them all, then look again.
        built = self.__dict__.get("_built_panels")
        if built is not None and len(built) < len(self._BUILD_ORDER) and not name.startswith("_"):
            for other, _cls in self._BUILD_ORDER:
                self._built(other)
            if name in self.__dict__:
                return self.__dict__[name]
        return super().__getattr__(name)

    def _camera_moved(self, event=None) -> None:
        if "segmentation" in self._built_panels:
            self.segmentation.camera_moved(event)

    def _hover(self, viewer, event) -> None:
        if "review" in self._built_panels:
            self.review.hover(viewer, event)

    def _connect_teardown(self) -> None:
        """One teardown, whichever comes first (see the module's docstring)."""
        from qtpy.QtWidgets import QApplication

        self.native.destroyed.connect(lambda *_: self.close())
        # A panel made but never docked has no parent: its window's menu bar
        # (a public child of napari's main window) is deleted with the window.
        menu = getattr(getattr(self.viewer, "window", None), "main_menu", None)
        if menu is not None:
            menu.destroyed.connect(lambda *_: self.close())
        QApplication.instance().aboutToQuit.connect(self.close)

    def single_shot(self, ms: int, callback) -> QTimer:
        """A single-shot timer that dies with the panel's widget."""
        timer = QTimer(self.native)
        timer.setSingleShot(True)
        timer.setInterval(ms)
        timer.timeout.connect(callback)
        return timer

    def notify(self, message: str) -> None:
        from napari.utils.notifications import show_error

        if not self.controller.closed:
            show_error(f"RAZN: {message}")

    # -- the slide ----------------------------------------------------------------
    @property
    def slide_layer(self):
        return self.slide_panel.layer

    def _layers_changed(self, _event=None) -> None:
        if self.controller.closed:
            return
        self.slide_picker.reset_choices()
        # Layers come and go (our own among them): only a change of slide
        # resets the panel.
        if slide_path(self.slide_layer) != self._shown_path:
            self.show_slide()

    def show_slide(self, *, force: bool = False) -> None:
        """Show the chosen slide: the previous one's run stops, its session is saved.

        force : show it afresh even if it is the one shown (its mpp changed).
        """
        layer = self.slide_layer
        if not force and layer is not None and slide_path(layer) == self._shown_path:
            return
        self.leave_session()
        self.slide = None
        self._shown_path = slide_path(layer)
        self.slide_panel.show_facts(layer)
        if layer is not None:
            if "segmentation" in self._built_panels:  # else it starts when built
                self.segmentation.slide_shown()
            self._restore_session()

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
        """Show `session` (or None): the previous one's layers go, no run carries on."""
        if session is None and "review" not in self._built_panels:
            self.controller.show(None)  # no layers yet, nothing to show: build nothing
            return
        self.review.remove_layers()
        self.controller.show(session)
        self.review.session_shown(session)

    def prepare_session(self) -> None:
        """Give a shown slide its (empty) session before any run, once the model's facts are in.

        Only with a known mpp and no session yet; its layers come with the
        first run (`ReviewPanel.ensure_layers`).
        """
        if self.session is not None or self.slide_layer is None:
            return
        if self.slide_layer.metadata["razn_slide"].get("mpp") is None:
            return  # the user sets it first; the run makes the session then
        from razn.errors import RaznError

        with contextlib.suppress(RaznError, OSError):  # a run reports what is wrong
            self.ensure_session(self.segmentation.model_facts(), quiet=True)

    def ensure_session(self, facts, *, quiet: bool = False) -> bool:
        """A session for the slide on the model's tile grid (`ModelFacts`); False if impossible."""
        from razn.errors import RaznError
        from razn.inference.tiling import tile_grid
        from razn.session import SegmentationSession

        notify = (lambda _message: None) if quiet else self.notify
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
            self.session = SegmentationSession(slide.path, grid, slide.mpp)
        return True

    def _restore_session(self) -> None:
        """Reopen this slide's saved session, if there is one, in a worker."""
        facts = self.slide_layer.metadata["razn_slide"]
        path = session_path_for(facts["path"])
        if not path.exists():  # a store is a folder
            return
        self.workers.start(
            load_session, path,
            returned=lambda session, p=facts["path"]: self._session_restored(p, session),
            errored=lambda error: self.notify(f"could not restore the saved session: {error}"),
        )  # fmt: skip

    def _session_restored(self, slide: str, session) -> None:
        """Show a restored session, with the model and threshold that made its labels."""
        ours = self.session
        if slide != self._shown_path or self.runner.running or (ours and ours.done.any()):
            return  # another slide is shown now, or a run is making labels
        made_by = session.made_by
        if made_by.get("model"):
            # The labels shown are that model's at that threshold: say so, and
            # start from them, so segmenting on reuses the tiles done.
            self.segmentation.show_model(made_by["model"], session.settings.get("threshold"))
        # The slide shown, wherever the store recorded it (a store copied from
        # a cluster names the cluster's path): saves follow the slide shown.
        session.slide_path = slide
        self.session = session
        if session.done.any():
            self.review.ensure_layers()  # something to show

    def leave_session(self) -> None:
        """Stop the shown session's run and save it; its layers go (slide change, close)."""
        if "segmentation" in self._built_panels:  # else no run was ever started
            self.segmentation.stop()
        if self.session is not None and self.autosave.dirty:
            self._save_now()
        self.session = None

    # -- saving ---------------------------------------------------------------------
    def mark_changed(self) -> None:
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
        snapshot, path = self.session.copy(), session_path_for(self.session.slide_path)
        self._save_job = (snapshot, path)
        self.autosave.saved()
        self._save_worker = self.workers.start(
            write_session, snapshot, path,
            errored=lambda error: self.notify(f"could not save the session: {error}"),
            finished=lambda: setattr(self, "_save_worker", None),
        )  # fmt: skip

    def _save_now(self) -> None:
        """Save on this thread (the panel is leaving this session)."""
        try:
            write_session(self.session.copy(), session_path_for(self.session.slide_path))
            self.autosave.saved()
        except Exception as error:
            self.notify(f"could not save the session: {error}")

    def close(self) -> None:
        """The one teardown: timers stop, workers are cancelled and awaited, the session saved.

        It touches no Qt widget, which may be gone.
        """
        if self.controller.closed:
            return
        session = self.session
        built = self._built_panels  # never building one now: the widgets may be gone
        segmentation, review, export = (built.get(n) for n in ("segmentation", "review", "export"))
        if segmentation is not None:
            segmentation.runner.shutdown()
        timers = [self._save_timer, self._build_timer]
        for panel in (segmentation, review):
            timers += panel.timers if panel is not None else ()
        with contextlib.suppress(RuntimeError):  # timers already deleted with the widget
            for timer in timers:
                timer.stop()
        if export is not None:
            export.stop()
        self.controller.close()
        save_worker, save_job = self._save_worker, self._save_job
        self.workers.shutdown()
        if save_worker is not None and save_worker in self.workers.never_ran:
            # An autosave asked for in this turn never began (`Workers.shutdown`);
            # its session may be gone from the panel already (the slide layer
            # went with the viewer): write its snapshot here, before any newer one.
            save_on_close(*save_job)
        with contextlib.suppress(ValueError, RuntimeError):  # the viewer may be gone
            self.viewer.mouse_move_callbacks.remove(self._hover)
        if (
            session is not None
            and self.autosave.dirty
            and save_on_close(session.copy(), session_path_for(session.slide_path))
        ):
            self.autosave.saved()

    # -- what tests, benchmarks and scripts drive -----------------------------------
    def segment_view(self, _value=None) -> None:
        self.segmentation.segment_view()

    def segment_slide(self, _value=None) -> None:
        self.segmentation.segment_slide()

    def cancel(self, _value=None) -> None:
        self.segmentation.cancel()

    def apply_mpp(self, _value=None) -> None:
        self.slide_panel.apply_mpp()

    def export_geojson(self, _value=None) -> None:
        self.export.export_geojson()

    def export_corrections(self, _value=None) -> list:
        return self.export.export_corrections()

    def improve_model(self, _value=None) -> None:
        self.export.improve_model()

    @property
    def runner(self):
        return self.segmentation.runner

    @property
    def warming(self) -> bool:
        """Whether the panel is still doing ahead what the first run needs (or being built)."""
        if len(self._built_panels) < len(self._BUILD_ORDER):
            return True
        return self.segmentation.warming

    @property
    def classes_layer(self):
        return self.review.classes_layer

    @property
    def zoom_layer(self):
        return self.review.zoom_layer

    @property
    def zoomed_layer(self):
        return self.review.zoomed_layer


def _unwrap(obj):
    """The object behind napari's plugin proxy (itself when not wrapped)."""
    return getattr(obj, "__wrapped__", obj)


def _camera(viewer):
    # napari 0.9 moved the camera under the scene.
    scene = getattr(viewer, "scene", None)
    return getattr(scene, "camera", None) or viewer.camera
