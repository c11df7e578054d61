"""Tissue area per class, from label-grid pixel counts.

The one place the area formula lives: the napari panel's per-class areas
(`SegmentationSession.class_areas_mm2`) and the `razn segment` summary
(`razn.inference.job`) both count label pixels and call `class_areas_mm2`,
so the two can never disagree about what a label pixel covers.
"""

from __future__ import annotations

from collections.abc import Sequence

from razn.classes import TissueClass


def label_pixel_area_mm2(downsample: float, mpp: float) -> float:
    """Area of one label-grid pixel in mm^2: a square of `downsample` level-0 pixels of `mpp` um."""
    return (downsample * mpp / 1000) ** 2


def class_areas_mm2(
    counts: Sequence[int], classes: Sequence[TissueClass], downsample: float, mpp: float
) -> dict[str, float]:
    """Area in mm^2 of each class, by name.

    counts : label pixels per class value (index = value, as `np.bincount`
        gives them); must reach the highest class value.
    downsample : level-0 pixels per label pixel.
    mpp : microns per level-0 pixel.
    """
    mm2 = label_pixel_area_mm2(downsample, mpp)
    return {c.name: float(counts[c.value]) * mm2 for c in classes}
