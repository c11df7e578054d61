"""The Export-and-improve sub-panel: classes to QuPath, corrections as training data, fine-tuning.

Fine-tuning runs in a worker that loads the model itself (torch is never
imported on the GUI thread); the panel's teardown stops it at its next step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_razn import _panels
from napari_razn._models import cached_model, warm_up

#: Optimiser steps of "Improve the model from my corrections".
FINETUNE_ITERATIONS = 60


class ExportPanel:
    """Export to QuPath, export corrections, improve the model from them, for `shell`."""

    def __init__(self, shell) -> None:
        self.shell = shell
        self.box, self.controls = _panels.export_panel()
        self.worker = None  # the fine-tuning worker, while it runs
        c = self.controls
        c.export_button.changed.connect(self.export_geojson)
        c.export_corrections_button.changed.connect(self.export_corrections)
        c.improve_button.changed.connect(self.improve_model)

    def stop(self) -> None:
        """Fine-tuning stops at its next step (nothing if none runs)."""
        self.shell.workers.quit(self.worker)

    # -- export ---------------------------------------------------------------------
    def export_geojson(self, _value=None) -> None:
        from napari.utils.notifications import show_info

        shell, review = self.shell, self.shell.review
        if shell.session is not None and shell.session.done.any():
            review.ensure_layers()
        review.finish_layers()
        if review.classes_layer is None:
            shell.notify("nothing to export yet: segment first")
            return
        export_path = self.controls.export_path
        path = export_path.value.strip()
        if not path:
            slide = Path(shell.session.slide_path)
            path = str(slide.with_name(slide.stem + ".razn.geojson"))
            if not _writable(path):
                path = str(Path.home() / (slide.stem + ".razn.geojson"))
            export_path.value = path
        try:
            from napari_razn._writer import export_layer_to_geojson

            count = export_layer_to_geojson(review.classes_layer, path)
        except Exception as error:  # shown, never a dead widget
            shell.notify(f"export failed: {error}")
            return
        show_info(f"RAZN: wrote {count} QuPath annotations to {path}")

    def export_corrections(self, _value=None) -> list:
        """The corrected pixels as training data for `razn train` (a label TIFF and GeoJSON)."""
        from napari.utils.notifications import show_info

        session = self.shell.session
        if session is None or not session.corrected.any():
            self.shell.notify("nothing corrected yet: paint on the classes layer first")
            return []
        from razn.annotations import export_label_grid
        from razn.classes import NORMAL
        from razn.label_tiff import write_label_grid

        slide = Path(session.slide_path)
        folder = slide.parent if _writable(str(slide)) else Path.home()
        stem = folder / (slide.stem + ".corrections")
        grid = session.grid
        labels = np.where(session.corrected, session.labels, 0).astype(np.uint8)
        try:
            write_label_grid(
                f"{stem}.tif", labels, grid.downsample, mpp=session.mpp,
                level0_shape=grid.slide_shape,
            )  # fmt: skip
            count = export_label_grid(
                labels, grid.downsample, f"{stem}.geojson", mpp=session.mpp,
                include_normal=bool((labels == NORMAL).any()),
            )  # fmt: skip
        except Exception as error:  # shown, never a dead widget
            self.shell.notify(f"export failed: {error}")
            return []
        show_info(f"RAZN: wrote corrections to {stem}.tif and {stem}.geojson ({count} regions)")
        return [Path(f"{stem}.tif"), Path(f"{stem}.geojson")]

    # -- fine-tuning ------------------------------------------------------------
    def improve_model(self, _value=None) -> None:
        """Fine-tune a copy of the model on the corrections, in a worker, then segment again."""
        shell, segmentation = self.shell, self.shell.segmentation
        session = shell.session
        if session is None or not session.corrected.any():
            shell.notify("nothing corrected yet: paint on the classes layer first")
            return
        if self.worker is not None:
            shell.notify("the model is already being improved")
            return
        segmentation.cancel()  # the CPU goes to the fine-tuning
        iterations = FINETUNE_ITERATIONS
        self.worker = shell.workers.start(
            _finetune, segmentation.model_reference(), shell.open_slide(),
            session.labels.copy(), session.corrected.copy(), session.grid.downsample,
            iterations, segmentation.controls.device_picker.value,
            yielded=self._finetune_step, returned=self._finetuned,
            errored=self._finetune_failed, finished=self._finetune_ended,
        )  # fmt: skip
        progress = segmentation.controls
        progress.progress_bar.max, progress.progress_bar.value = iterations, 0
        progress.progress_label.value = f"improving the model: 0 / {iterations} steps"

    def _finetune_ended(self) -> None:
        label = self.shell.segmentation.controls.progress_label
        if self.worker is not None and label.value.startswith("improving"):
            label.value = "cancelled"
        self.worker = None

    def _finetune_step(self, progress) -> None:
        c = self.shell.segmentation.controls
        loss = progress.metrics.get("segmentation_loss", float("nan"))
        c.progress_bar.value = min(progress.iteration, c.progress_bar.max)
        c.progress_label.value = (
            f"improving the model: {progress.iteration} / {progress.iterations} steps, "
            f"loss {loss:.3f}"
        )

    def _finetune_failed(self, error: Exception) -> None:
        self.shell.segmentation.controls.progress_label.value = "failed"
        self.shell.notify(f"improving the model failed: {error}")

    def _finetuned(self, path) -> None:
        from napari.utils.notifications import show_info

        if path is None:  # stopped before the end: nothing saved
            return
        segmentation = self.shell.segmentation
        c = segmentation.controls
        # The threshold the user works at stays: the new model is a short
        # adaptation of the old one, not a model with a threshold of its own.
        segmentation.show_model(str(path), None)
        c.progress_label.value = "model improved"
        show_info(
            f"RAZN: saved the improved model to {path} (a short adaptation to this "
            "slide, not a validated model); segmenting the view again, threshold "
            f"{c.threshold.value:g}"
        )
        segmentation.segment_view()


def _finetune(reference, slide, labels, corrected, downsample, iterations, device):
    """Worker body: fine-tune on `device`, yielding progress; returns the new checkpoint.

    The model is loaded here (torch is never imported on the GUI thread), and
    the new checkpoint's facts are read here too, so the segmenting that
    follows finds them cached.
    """
    model = cached_model(reference)
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


def _writable(path: str) -> bool:
    """Whether a file can be written beside `path` (a real write test: see writable_folder)."""
    from razn.atomic import writable_folder
    from razn.errors import OutputError

    try:
        writable_folder(Path(path).resolve().parent)
    except OutputError:
        return False
    return True
