"""The Segmentation sub-panel: model, device, threshold, runs over the view or the slide.

It reads what a run needs before the run from the checkpoint's header
(`_models.model_facts`: no torch), so showing a slide or changing the model
never imports torch; the first run's worker loads the model itself, and the
device probe starts beside it. Results come back through the
`SegmentationRunner`, and the controller (`PanelController.apply`) decides
whether each one still belongs to what is shown.
"""

from __future__ import annotations

import numpy as np

from napari_razn import _panels
from napari_razn._live import SegmentationRunner, view_region
from napari_razn._models import cached_model, model_facts, warm_up

#: Quiet time after the camera stops before the view is segmented (ms).
FOLLOW_DEBOUNCE_MS = 300
#: Quiet time after a slide is shown or the model field changes before the
#: first run's one-off work starts in the background (`warm_up`) (ms).
WARM_DEBOUNCE_MS = 500


class SegmentationPanel:
    """Model and threshold, the runs and their progress, for the panel `shell`."""

    def __init__(self, shell) -> None:
        self.shell = shell
        self.box, self.controls = _panels.segmentation_panel(["auto", "cpu"])
        c = self.controls
        c.device_label.value = "probed at the first run"
        parent = shell.native  # every timer dies with the panel's widget
        self.runner = SegmentationRunner(
            shell.workers, self._apply_result, self._run_done, self._run_failed, parent=parent
        )
        self.follow_timer = shell.single_shot(FOLLOW_DEBOUNCE_MS, self.segment_view)
        self.warm_timer = shell.single_shot(WARM_DEBOUNCE_MS, self._warm_up)
        self._warm_pending = 0
        self._devices_probed = False
        self._threshold_of = None  # the model whose own threshold the slider last took
        c.segment_view_button.changed.connect(self.segment_view)
        c.segment_slide_button.changed.connect(self.segment_slide)
        c.cancel_button.changed.connect(self.cancel)
        c.follow.changed.connect(self._follow_toggled)
        c.model_input.changed.connect(lambda _value: self._model_changed())
        self.use_model_threshold()

    @property
    def timers(self) -> tuple:
        return (self.follow_timer, self.warm_timer)

    # -- the model ----------------------------------------------------------------
    def model_reference(self) -> str:
        return self.controls.model_input.value.strip() or "demo"

    def model(self):
        """The loaded model (imports torch: for workers and tests, never the GUI thread)."""
        return cached_model(self.model_reference())

    def model_facts(self):
        """The model's header facts (no torch; cached once the warm-up read them)."""
        return model_facts(self.model_reference())

    def _model_changed(self) -> None:
        self.use_model_threshold()
        self.controls.model_note.visible = self.model_reference() == "demo"
        self.warm_timer.start()

    def use_model_threshold(self) -> None:
        """When the model changes, start the slider at the model's own threshold.

        A policy's p is not calibrated, so each checkpoint may carry the
        threshold it was tuned for (`default_threshold`; others get 0.5).
        Read from the header in a worker; a path still being typed is skipped.
        """
        reference = self.model_reference()
        if reference == self._threshold_of:
            return  # the user's own setting stands until the model changes
        self.shell.workers.start(
            _model_threshold, reference,
            returned=lambda value, ref=reference: self._model_threshold_found(ref, value),
        )  # fmt: skip

    def _model_threshold_found(self, reference: str, value: float | None) -> None:
        if value is None or reference != self.model_reference():
            return  # not a checkpoint (yet), or the field changed meanwhile
        if reference != self._threshold_of:
            self._threshold_of = reference
            self.controls.threshold.value = value

    def show_model(self, reference: str, threshold: float | None) -> None:
        """Show the model and threshold that made restored or fine-tuned labels."""
        c = self.controls
        self._threshold_of = reference
        with c.model_input.changed.blocked():
            c.model_input.value = reference
        c.model_note.visible = reference == "demo"
        if threshold is not None:
            c.threshold.value = threshold

    def _devices_found(self, devices: list[str]) -> None:
        picker = self.controls.device_picker
        chosen = picker.value
        picker.choices = devices
        picker.value = chosen if chosen in devices else "auto"
        self.controls.device_label.value = ", ".join(devices[1:])

    # -- ahead of the first run ---------------------------------------------------
    def slide_shown(self) -> None:
        self.warm_timer.start()  # while the user looks at the slide

    def _warm_up(self) -> None:
        """The first run's one-off work that needs no torch, in a worker (`warm_up`)."""
        self._warm_pending += 1
        self.shell.workers.start(warm_up, self.model_reference(), finished=self._warmed)

    def _warmed(self) -> None:
        self._warm_pending -= 1
        if self._warm_pending == 0:
            self.shell.prepare_session()

    @property
    def warming(self) -> bool:
        """Whether the first run's one-off work is still being done ahead (`warm_up`)."""
        return self.warm_timer.isActive() or self._warm_pending > 0

    # -- runs -------------------------------------------------------------------------
    def _prepare(self):
        """(slide, model reference) ready to segment, or None after telling the user why."""
        from razn.errors import RaznError

        shell = self.shell
        try:
            facts = self.model_facts()
        except (RaznError, OSError) as error:
            shell.notify(str(error))
            return None
        if not shell.ensure_session(facts):
            return None
        shell.session.use_settings(
            {"model": facts.sha256, "threshold": round(self.controls.threshold.value, 4)}
        )
        shell.session.made_by = {"model": facts.reference}
        return shell.slide, facts.reference

    def _probe_devices(self) -> None:
        """Probe the devices once the first run has imported torch (its first result or its end).

        Not beside the run's start: its import of torch would hold the
        interpreter while the GUI thread adds the session's layers.
        """
        if not self._devices_probed and not self.shell.controller.closed:
            self._devices_probed = True
            self.shell.workers.start(devices_found, returned=self._devices_found)

    def segment_view(self, _value=None) -> None:
        ready = self._prepare()
        if ready is None:
            return
        slide, model = ready
        shell = self.shell
        region = view_region(shell.slide_layer, shell.viewer)
        if region is None:
            return
        self._start(slide, model, shell.session.tiles_for_view(region, margin=0.5), "view")

    def segment_slide(self, _value=None) -> None:
        ready = self._prepare()
        if ready is None:
            return
        slide, model = ready
        h, w = slide.shape
        self._start(slide, model, self.shell.session.tiles_for_view((0, 0, w, h)), "slide")

    def _start(self, slide, model, tiles, what: str) -> None:
        c, shell = self.controls, self.shell
        c.progress_label.value = f"0 / {len(tiles)} tiles" if tiles else f"{what} done"
        c.progress_bar.max, c.progress_bar.value = max(len(tiles), 1), 0
        self.show_made_by()
        pending = shell.review.ensure_layers()  # the classes layer, if not there yet
        run = shell.controller.begin_run(len(tiles))
        # Held while the session's layers are being added (`ReviewPanel`).
        self.runner.start(
            run, slide, model, tiles, c.threshold.value, c.device_picker.value, hold=pending,
        )  # fmt: skip

    def cancel(self, _value=None) -> None:
        if self.runner.running:
            self.runner.cancel()
            self.shell.controller.cancel()
            self.controls.progress_label.value = "cancelled"
        self.shell.export.stop()  # fine-tuning stops at its next step

    def stop(self) -> None:
        """The shown session is being left: its run stops, nothing queued is applied."""
        self.cancel()
        self.runner.shutdown()

    def _apply_result(self, run, result) -> None:
        self._probe_devices()
        shell = self.shell
        # The mask the engine computed for this run (never computed here, on
        # the GUI thread): glass inside a tissue tile stays transparent too.
        tissue = vars(shell.slide).get("tissue_mask") if shell.slide is not None else None
        region = shell.controller.apply(run, result, tissue)
        if region is None:
            return  # a result of a run that no longer owns the view
        shell.review.refresh_region(*region)
        r, c, session = self.runner, self.controls, shell.session
        tissue = session.done & ~np.isnan(session.zoom_p)
        zoomed = int(session.zoomed[tissue].sum())
        if r.running:
            c.progress_label.value = (
                f"{r.finished} / {r.total} tiles, "
                f"zoomed {zoomed / max(int(tissue.sum()), 1):.0%} of tissue"
            )
            c.progress_bar.value = min(r.finished, c.progress_bar.max)
        if r.finished % 16 == 0 or r.finished == r.total:
            shell.review.refresh_zoom_layers()
            shell.review.update_summary()
        shell.mark_changed()

    def _run_done(self, run) -> None:
        self._probe_devices()
        shell = self.shell
        if shell.controller.finished(run) and shell.session is not None:
            self.controls.progress_bar.value = self.controls.progress_bar.max
            shell.review.refresh_zoom_layers()
            shell.review.update_summary()

    def _run_failed(self, error: Exception) -> None:
        self.controls.progress_label.value = "failed"
        self.shell.notify(f"segmentation failed: {error}")

    def camera_moved(self, _event=None) -> None:
        if self.controls.follow.value and not self.shell.controller.closed:
            self.follow_timer.start()  # restarts: fires once the camera rests

    def _follow_toggled(self, on: bool) -> None:
        if on:
            self.segment_view()
        else:
            self.cancel()

    def show_made_by(self) -> None:
        s = self.shell.session
        if s is None or not s.done.any():
            self.controls.made_by_label.value = "-"
            return
        model = s.made_by.get("model", "?")
        threshold = s.settings.get("threshold")
        at = f", threshold {threshold:g}" if threshold is not None else ""
        self.controls.made_by_label.value = f"{model}{at}"


def devices_found() -> list[str]:
    """Worker body: "auto" first, then the CPU, then any accelerator (imports torch)."""
    from napari_razn._models import import_torch

    import_torch()  # as the run's worker does, which it may meet here
    from razn.devices import available_devices

    return ["auto", "cpu", *(d for d in available_devices() if d != "cpu")]


def _model_threshold(reference: str) -> float | None:
    """Worker body: the threshold a checkpoint carries (None if it is not one)."""
    from razn.errors import RaznError
    from razn.models import default_threshold

    try:
        return default_threshold(reference)
    except (RaznError, OSError, ValueError):
        return None
