"""The RAZN dock widget. For now it shows the facts of the slide in view.

Later it becomes the RAZN control panel (model, threshold, live
segmentation); the slide facts stay at its top. The tissue fraction reads
pixels, so it is computed in a `thread_worker` and never on the GUI thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import ComboBox, Container, FloatSpinBox, Label, PushButton

if TYPE_CHECKING:
    import napari


class SlideWidget(Container):
    """Slide picker and facts: format, size, levels, pixel size, tissue."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._worker = None
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
        self.extend(
            [
                self.slide_picker,
                self.format_label,
                self.size_label,
                self.levels_label,
                self.mpp_label,
                self.magnification_label,
                self.tissue_label,
                self.mpp_input,
                self.mpp_button,
            ]
        )
        self.slide_picker.changed.connect(self.show_slide)
        self.mpp_button.changed.connect(self.apply_mpp)
        self._viewer.layers.events.inserted.connect(self._refresh_choices)
        self._viewer.layers.events.removed.connect(self._refresh_choices)
        self._refresh_choices()

    # -- layer picker ------------------------------------------------------
    def _slide_choices(self, _widget=None) -> list:
        return [(layer.name, layer) for layer in self._viewer.layers if _is_slide(layer)]

    def _refresh_choices(self, _event=None) -> None:
        self.slide_picker.reset_choices()
        self.show_slide()

    @property
    def slide_layer(self):
        return self.slide_picker.value

    # -- facts -------------------------------------------------------------
    def show_slide(self, _value=None) -> None:
        layer = self.slide_layer
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
            # The layer is in microns, so napari's scale bar is true.
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

        path = layer.metadata["razn_slide"]["path"]
        worker = create_worker(_tissue_fraction, path)
        worker.returned.connect(lambda fraction: self._tissue_measured(layer, fraction))
        worker.errored.connect(self._tissue_failed)
        self._worker = worker
        worker.start()

    def _tissue_measured(self, layer, fraction: float) -> None:
        layer.metadata["razn_slide"]["tissue_fraction"] = round(fraction, 4)
        if layer is self.slide_layer:
            self.tissue_label.value = f"{fraction:.1%} of the slide"

    def _tissue_failed(self, error: Exception) -> None:
        from napari.utils.notifications import show_error

        self.tissue_label.value = "could not be measured"
        show_error(f"RAZN: tissue mask failed: {error}")

    # -- mpp ---------------------------------------------------------------
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


def _scale_bar(viewer):
    # napari 0.9 moved the scale bar under the canvas overlays.
    canvas = getattr(viewer, "canvas", None)
    overlays = getattr(canvas, "overlays", None)
    return getattr(overlays, "scale_bar", None) or viewer.scale_bar


def _is_slide(layer) -> bool:
    return "razn_slide" in getattr(layer, "metadata", {})


def _tissue_fraction(path: str) -> float:
    from razn.slide import open_slide

    with open_slide(path) as slide:
        return slide.tissue_fraction
