"""The Slide sub-panel: which slide, its facts, its tissue, and its pixel size.

A file's own mpp is shown and locked (one click must not override it by
accident; an explicit override unlocks it); a slide without one takes the
user's, which is remembered for that slide (`razn.session.remember_mpp`).
The tissue measurement runs in a worker on the panel's own `Slide`, so the
engine later finds the mask cached.
"""

from __future__ import annotations

from napari_razn import _panels


class SlidePanel:
    """Slide picker, facts and mpp, for the panel `shell`."""

    def __init__(self, shell) -> None:
        self.shell = shell
        self.box, self.controls = _panels.slide_panel(self._choices)
        c = self.controls
        c.mpp_override.changed.connect(self._override_toggled)
        c.mpp_button.changed.connect(self.apply_mpp)

    @property
    def layer(self):
        """The chosen slide layer (the object itself, never napari's proxy)."""
        return _unwrap(self.controls.slide_picker.value)

    def _choices(self, _widget=None) -> list:
        return [(layer.name, layer) for layer in self.shell.viewer.layers if is_slide(layer)]

    def show_facts(self, layer) -> None:
        """Show the layer's facts (or none); start measuring its tissue if not known."""
        c = self.controls
        if layer is None:
            for label in (c.format_label, c.size_label, c.levels_label, c.mpp_label,
                          c.magnification_label):  # fmt: skip
                label.value = "-"
            c.tissue_label.value = "open a slide (File > Open)"
            return
        facts = layer.metadata["razn_slide"]
        if not facts.get("mpp"):
            from razn.session import remembered_mpp

            mpp = remembered_mpp(facts["path"])
            if mpp:  # the user set it on an earlier visit
                set_layer_mpp(layer, mpp, "user, remembered")
        h, w = facts["levels"][0]["shape"]
        c.format_label.value = f"{facts['format']} ({facts['compression']})"
        c.size_label.value = f"{w:,} x {h:,} px"
        downsamples = ", ".join(f"{lv['downsample']:.3g}" for lv in facts["levels"])
        c.levels_label.value = f"{len(facts['levels'])} (downsample {downsamples})"
        self._show_mpp(facts)
        mag = facts["magnification"]
        c.magnification_label.value = f"{mag:g}x" if mag else "unknown"
        if facts.get("tissue_fraction") is None:
            c.tissue_label.value = "measuring..."
            self._measure_tissue(layer)
        else:
            c.tissue_label.value = f"{facts['tissue_fraction']:.1%} of the slide"

    def _show_mpp(self, facts) -> None:
        """The pixel size: from the file and locked, else set by the user and remembered."""
        c = self.controls
        mpp, source = facts.get("mpp"), facts.get("mpp_source")
        from_file = bool(mpp) and not str(source).startswith("user")
        if mpp:
            c.mpp_label.value = f"{mpp:.4f} um/px ({source})"
            c.mpp_input.value = mpp
        else:
            c.mpp_label.value = "unknown: not in the file; set it below"
        # A file's own mpp is locked: one click must not override it by accident.
        c.mpp_override.visible = from_file
        c.mpp_override.value = False
        c.mpp_input.enabled = c.mpp_button.enabled = not from_file

    def _override_toggled(self, on: bool) -> None:
        self.controls.mpp_input.enabled = self.controls.mpp_button.enabled = bool(on)

    def _measure_tissue(self, layer) -> None:
        shell = self.shell
        slide = shell.open_slide()
        shell.workers.start(
            lambda: slide.tissue_fraction,
            returned=lambda fraction: self._tissue_measured(layer, fraction),
            errored=lambda error: shell.notify(f"tissue mask failed: {error}"),
        )

    def _tissue_measured(self, layer, fraction: float) -> None:
        layer.metadata["razn_slide"]["tissue_fraction"] = round(fraction, 4)
        if layer is self.layer:
            self.controls.tissue_label.value = f"{fraction:.1%} of the slide"

    def apply_mpp(self, _value=None) -> None:
        """Set the slide's pixel size by hand (remembered for this slide): the layer follows."""
        layer = self.layer
        if layer is None:
            return
        from razn.session import remember_mpp

        mpp = float(self.controls.mpp_input.value)
        set_layer_mpp(layer, mpp, "user")
        try:
            remember_mpp(layer.metadata["razn_slide"]["path"], mpp)
        except OSError as error:
            self.shell.notify(f"the mpp is used, but could not be remembered: {error}")
        self.shell.show_slide(force=True)  # its session's grid and placement were for the old mpp


def set_layer_mpp(layer, mpp: float, source: str) -> None:
    facts = layer.metadata["razn_slide"]
    facts["mpp"], facts["mpp_source"] = mpp, source
    layer.scale = (mpp, mpp)
    layer.units = ("um", "um")


def slide_path(layer) -> str | None:
    return None if layer is None else layer.metadata["razn_slide"]["path"]


def is_slide(layer) -> bool:
    return "razn_slide" in getattr(layer, "metadata", {})


def _unwrap(obj):
    """The object behind napari's plugin proxy (itself when not wrapped)."""
    return getattr(obj, "__wrapped__", obj)
