"""Export and improve: the classes to QuPath, the corrections as training data, fine-tuning.

A mixin of `RaznWidget` (it uses the panel's session, workers, controls
and notifications), kept apart so each module stays about one thing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_razn._models import cached_model, warm_up

#: Optimiser steps of "Improve the model from my corrections".
FINETUNE_ITERATIONS = 60


class ExportAndImprove:
    """Export to QuPath, export corrections, improve the model from them."""

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
        """The corrected pixels as training data for `razn train` (a label TIFF and GeoJSON)."""
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
        self.cancel()  # the CPU goes to the fine-tuning
        session, iterations = self.session, FINETUNE_ITERATIONS
        self._finetune_worker = self.workers.start(
            _finetune, self._model_reference(), self.open_slide(), session.labels.copy(),
            session.corrected.copy(), session.grid.downsample, iterations,
            self.device_picker.value,
            yielded=self._finetune_step, returned=self._finetuned,
            errored=self._finetune_failed, finished=self._finetune_ended,
        )  # fmt: skip
        self.progress_bar.max, self.progress_bar.value = iterations, 0
        self.progress_label.value = f"improving the model: 0 / {iterations} steps"

    def _finetune_ended(self) -> None:
        if self._finetune_worker is not None and self.progress_label.value.startswith("improving"):
            self.progress_label.value = "cancelled"
        self._finetune_worker = None

    def _finetune_step(self, progress) -> None:
        loss = progress.metrics.get("segmentation_loss", float("nan"))
        self.progress_bar.value = min(progress.iteration, self.progress_bar.max)
        self.progress_label.value = (
            f"improving the model: {progress.iteration} / {progress.iterations} steps, "
            f"loss {loss:.3f}"
        )

    def _finetune_failed(self, error: Exception) -> None:
        self.progress_label.value = "failed"
        self._notify(f"improving the model failed: {error}")

    def _finetuned(self, path) -> None:
        from napari.utils.notifications import show_info

        if path is None:  # stopped before the end: nothing saved
            return
        # The threshold the user works at stays: the new model is a short
        # adaptation of the old one, not a model with a threshold of its own.
        self._threshold_of = str(path)
        self.model_input.value = str(path)
        self.progress_label.value = "model improved"
        show_info(
            f"RAZN: saved the improved model to {path} (a short adaptation to this "
            "slide, not a validated model); segmenting the view again, threshold "
            f"{self.threshold.value:g}"
        )
        self.segment_view()


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
