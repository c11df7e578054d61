"""Model configurations: what a checkpoint must carry so it is run right.

A configuration fixes the architecture, the sizes and, above all, the
resolution: the coarse patch is read at `base_mpp` microns per pixel and
zoom level k at `base_mpp / zoom_rate**k`. A model therefore cannot be run
at the wrong scale, whatever the slide's pyramid looks like. Everything is
validated on construction and round-trips through JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace

from razn.classes import DEFAULT_CLASSES, TissueClass

ARCHITECTURES = ("razn", "single-scale", "multi-scale", "attention")

#: How to read the paper's "no downsampling in conv3_1 and conv4_1" (output
#: stride 8). "deeplab": stages 3 and 4 (torchvision layer3, layer4) keep
#: their resolution and dilate, as DeepLab does; "literal": the ResNet
#: paper's conv3_x and conv4_x stages (layer2, layer3) keep it, layer4
#: strides. docs/models.md gives the cost of each.
STRIDE_READINGS = {
    "deeplab": (False, True, False, False),
    "literal": (False, False, False, True),
}


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model and run it at the right scale.

    Attributes
    ----------
    name : registry name or a user's label.
    architecture : "razn", "single-scale" (Scale 1 / Scale 2 baselines),
        "multi-scale" (one net on every scale, fused) or "attention"
        (attention to scale, Chen et al. 2016).
    width : channels of the first ResNet stage (64 is ResNet18).
    policy_width : the same for the zoom policy.
    stride_reading : "deeplab" or "literal", see STRIDE_READINGS.
    patch_size : edge of every patch a net sees, in pixels.
    base_mpp : resolution of the coarse patch (zoom level 0), um/px.
    zoom_rate : r, the magnification step between zoom levels.
    zoom_levels : m, the number of zoom-in levels (RAZN: policies g_1..g_m).
    scale : for "single-scale", the zoom level the net works at (0 is the
        paper's Scale 1, 1 is Scale 2).
    classes : the tissue classes, in logit order (label value = index + 1).
    """

    name: str
    architecture: str = "razn"
    width: int = 64
    policy_width: int = 64
    stride_reading: str = "deeplab"
    patch_size: int = 256
    base_mpp: float = 1.0
    zoom_rate: int = 2
    zoom_levels: int = 1
    scale: int = 0
    classes: tuple[TissueClass, ...] = field(default=DEFAULT_CLASSES)

    def __post_init__(self):
        problems = []
        if self.architecture not in ARCHITECTURES:
            problems.append(f"architecture must be one of {ARCHITECTURES}")
        if self.stride_reading not in STRIDE_READINGS:
            problems.append(f"stride_reading must be one of {tuple(STRIDE_READINGS)}")
        if self.width < 4 or self.policy_width < 4:
            problems.append("width and policy_width must be at least 4")
        if self.patch_size < 32 or self.patch_size % 32:
            problems.append("patch_size must be a multiple of 32, at least 32")
        if not self.base_mpp > 0:
            problems.append("base_mpp must be positive")
        if self.zoom_rate < 2:
            problems.append("zoom_rate must be at least 2")
        if self.zoom_levels < 1:
            problems.append("zoom_levels must be at least 1")
        if not 0 <= self.scale <= self.zoom_levels:
            problems.append("scale must be a zoom level, 0..zoom_levels")
        if len(self.classes) < 2:
            problems.append("a model needs at least two classes")
        if [c.value for c in self.classes] != list(range(1, len(self.classes) + 1)):
            problems.append("class values must be 1, 2, ... in order")
        if problems:
            raise ValueError(f"invalid model configuration {self.name!r}: " + "; ".join(problems))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def level_mpp(self, level: int) -> float:
        """Microns per pixel of zoom level `level` (0 is the coarse patch)."""
        return self.base_mpp / self.zoom_rate**level

    @property
    def finest_level(self) -> int:
        """The finest zoom level this model ever reads."""
        return self.scale if self.architecture == "single-scale" else self.zoom_levels

    def with_(self, **changes) -> ModelConfig:
        return replace(self, **changes)

    # -- JSON --------------------------------------------------------------
    def to_dict(self) -> dict:
        data = asdict(self)
        data["classes"] = [
            {"value": c.value, "name": c.name, "color": list(c.color)} for c in self.classes
        ]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model configuration keys: {sorted(unknown)}")
        data = dict(data)
        if "classes" in data:
            data["classes"] = tuple(
                TissueClass(int(c["value"]), str(c["name"]), tuple(int(v) for v in c["color"]))
                for c in data["classes"]
            )
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)
