"""The BreakHis mosaic: names, patient-disjoint split, labels per island."""

from __future__ import annotations

import numpy as np
import pytest

from razn.classes import BENIGN, INVASIVE, NORMAL
from razn.errors import RaznError
from razn.label_tiff import read_label_grid
from razn.synth.mosaic import find_photos, generate_mosaic, parse_breakhis_name, patient_split


def test_names_give_class_and_patient():
    benign = parse_breakhis_name("SOB_B_F-14-21998EF-100-007.png")
    assert benign.class_value == BENIGN and benign.patient == "14-21998"
    malignant = parse_breakhis_name("SOB_M_LC-14-15570C-100-013.png")
    assert malignant.class_value == INVASIVE and malignant.patient == "14-15570"
    assert malignant.magnification == 100
    with pytest.raises(RaznError, match="not a BreakHis name"):
        parse_breakhis_name("slide-001.png")


@pytest.fixture(scope="module")
def photos(shared_data):
    return find_photos(shared_data / "breakhis-100x")


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("fraction", [0.2, 0.3, 0.5])
def test_split_never_shares_a_patient(photos, seed, fraction):
    split = patient_split(photos, fraction, seed)
    train = {p.patient for p in split["train"]}
    test = {p.patient for p in split["test"]}
    assert train and test and not train & test
    assert len(split["train"]) + len(split["test"]) == len(photos)
    # Both labels on both sides (the data have several patients of each).
    for side in split.values():
        assert {p.class_value for p in side} == {BENIGN, INVASIVE}


def test_mosaic_labels_each_island_from_its_name(photos, shared_data, tmp_path):
    result, used = generate_mosaic(
        tmp_path / "mosaic.tif", shared_data / "breakhis-100x", split="test", seed=2
    )
    grid = read_label_grid(result.labels)
    labels = np.asarray(grid.labels)
    values, counts = np.unique(labels, return_counts=True)
    assert set(values) == {NORMAL} | {p.class_value for p in used}
    assert counts[values == NORMAL][0] / labels.size > 0.3  # glass around islands
    assert {p.patient for p in used}.isdisjoint(
        {p.patient for p in patient_split(photos)["train"]}
    )


def test_a_smaller_copy_keeps_the_field_of_view(photos):
    # The shared PNGs are BreakHis's 700 x 460 photos resized to 500 wide:
    # the same 343 um field, so each island must come out 343 um wide.
    from PIL import Image

    from razn.synth.mosaic import build_mosaic

    photo = photos[0]
    with Image.open(photo.path) as im:
        assert im.width == 500
    layout = build_mosaic([photo], seed=0, mpp=0.5, photo_mpp=0.49)
    (island,) = layout.islands
    assert island.pixels.shape[1] * 0.5 == pytest.approx(0.49 * 700, abs=1.0)
