"""The layout of the panel's four sub-panels: their controls, with no behaviour.

Slide (facts and pixel size), segmentation (model, device, threshold,
runs, progress), review (legend, display, what is under the cursor, zoom
layers) and export-and-improve. Each sub-panel's module (`_slide_panel`,
`_segment_panel`, `_review_panel`, `_improve`) builds its own here and
wires it; keeping the layout apart keeps those modules about what happens.
"""

from __future__ import annotations

from types import SimpleNamespace

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSlider,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
)

#: Shown while the bundled demo model is chosen.
DEMO_NOTE = "demo model: synthetic training, not for diagnosis"


def slide_panel(choices) -> tuple[Container, SimpleNamespace]:
    w = SimpleNamespace(
        slide_picker=ComboBox(label="slide", choices=choices),
        format_label=Label(label="format"),
        size_label=Label(label="size"),
        levels_label=Label(label="levels"),
        mpp_label=Label(label="pixel size"),
        magnification_label=Label(label="magnification"),
        tissue_label=Label(label="tissue"),
        mpp_override=CheckBox(
            text="Override the file's pixel size", value=False,
            tooltip="Only if the file's mpp is wrong: every RAZN layer follows it",
        ),
        mpp_input=FloatSpinBox(
            label="mpp", min=0.01, max=50.0, step=0.001, value=0.25, enabled=False,
            tooltip="Microns per level-0 pixel",
        ),
        mpp_button=PushButton(text="Use this mpp", enabled=False),
    )  # fmt: skip
    return _box("Slide", w), w


def segmentation_panel(devices) -> tuple[Container, SimpleNamespace]:
    w = SimpleNamespace(
        model_input=LineEdit(
            label="model", value="demo", tooltip="'demo' or the path of a checkpoint"
        ),
        model_note=Label(value=DEMO_NOTE),
        device_picker=ComboBox(label="device", choices=devices, value="auto"),
        device_label=Label(label="found", value="looking..."),
        threshold=FloatSlider(
            label="zoom threshold", min=0.0, max=1.0, step=0.05, value=0.5,
            tooltip="Zoom in where the policy's p exceeds this. "
            "Lower: more zooming, slower and finer. 1: never zoom (fastest).",
        ),
        threshold_hint=Label(value="<- more zooming | faster ->"),
        follow=CheckBox(text="Follow view (segment as you pan and zoom)", value=False),
        segment_view_button=PushButton(text="Segment view"),
        segment_slide_button=PushButton(text="Segment slide"),
        cancel_button=PushButton(text="Cancel"),
        progress_bar=ProgressBar(label="progress", min=0, max=1, value=0),
        progress_label=Label(value="-"),
        made_by_label=Label(label="labels by", value="-"),
    )  # fmt: skip
    return _box("Segmentation", w), w


def review_panel() -> tuple[Container, SimpleNamespace]:
    w = SimpleNamespace(
        legend=Label(label="classes", value="-"),
        corrected_label=Label(label="corrected", value="-"),
        hover_label=Label(label="under cursor", value="-"),
        opacity=FloatSlider(label="opacity", min=0.0, max=1.0, step=0.05, value=0.6),
        outline=CheckBox(text="Outlines only (see the tissue under the classes)", value=False),
        show_zoom=CheckBox(text="Show zoom heatmap and zoomed tiles", value=False),
    )
    return _box("Review", w), w


def export_panel() -> tuple[Container, SimpleNamespace]:
    w = SimpleNamespace(
        export_path=LineEdit(label="GeoJSON", value="", tooltip="where Export writes"),
        export_button=PushButton(text="Export to QuPath"),
        export_corrections_button=PushButton(text="Export corrections as training data"),
        improve_button=PushButton(
            text="Improve the model from my corrections",
            tooltip="A short fine-tuning on the corrected regions, saved as a new checkpoint",
        ),
    )
    return _box("Export and improve", w), w


def _box(title: str, widgets: SimpleNamespace) -> Container:
    box = Container(labels=True, widgets=list(vars(widgets).values()), label=title,
                    name=title.lower().replace(" ", "_") + "_panel")  # fmt: skip
    box.native.setToolTip(title)
    return box
