"""Class areas: one formula, used alike by the panel's session and `razn segment`."""

from __future__ import annotations

import numpy as np
import pytest

from razn.areas import class_areas_mm2, label_pixel_area_mm2
from razn.classes import DEFAULT_CLASSES
from razn.inference.tiling import TileGrid
from razn.session import SegmentationSession


def test_a_label_pixel_covers_downsample_squared_level0_pixels():
    # 8 level-0 pixels of 0.5 um: a 4 um square, 16 um^2 = 1.6e-5 mm^2.
    assert label_pixel_area_mm2(8, 0.5) == pytest.approx(1.6e-5)
    counts = np.array([7, 100, 0, 25, 3])  # value 0 (not segmented) has no class
    areas = class_areas_mm2(counts, DEFAULT_CLASSES, 8, 0.5)
    assert list(areas) == [c.name for c in DEFAULT_CLASSES]
    assert areas == pytest.approx(
        {"Normal": 1.6e-3, "Benign": 0.0, "In situ carcinoma": 4e-4, "Invasive carcinoma": 4.8e-5}
    )


def test_the_session_uses_it():
    session = SegmentationSession("slide.svs", TileGrid((1024, 2048), 256, 8, 64), 0.25)
    session.labels[:10, :20] = 4
    session.labels[50:60, :5] = 2
    counts = np.bincount(session.labels.ravel(), minlength=5)
    assert session.class_areas_mm2(DEFAULT_CLASSES) == class_areas_mm2(
        counts, DEFAULT_CLASSES, 8, 0.25
    )
    assert session.class_areas_mm2(DEFAULT_CLASSES)["Invasive carcinoma"] == pytest.approx(
        200 * (8 * 0.25 / 1000) ** 2
    )
    session.mpp = None
    assert session.class_areas_mm2(DEFAULT_CLASSES) == {}
