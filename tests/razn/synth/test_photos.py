"""Real-tissue photos of all four classes: BACH and BRACS names, pieces, the split."""

from __future__ import annotations

import numpy as np
import pytest

from razn.classes import BENIGN, IN_SITU, INVASIVE, NORMAL
from razn.label_tiff import read_label_grid
from razn.synth.mosaic import generate_mosaic
from razn.synth.photos import (
    MAX_PIECE_UM,
    find_photos,
    parse_name,
    patient_split,
    shared_patients,
)


@pytest.mark.parametrize(
    ("name", "value", "source"),
    [
        ("normal.png", NORMAL, "bach"),
        ("in_situ.png", IN_SITU, "bach"),
        ("iv012.tif", INVASIVE, "bach"),
        ("b001.tif", BENIGN, "bach"),
        ("283_dcis_4.png", IN_SITU, "bracs"),
        ("1231_pathologicalbenign_23.png", BENIGN, "bracs"),
        ("1286_udh_35.png", BENIGN, "bracs"),
        ("BRACS_1003_N_1.png", NORMAL, "bracs"),
        ("BRACS_745_IC_3.png", INVASIVE, "bracs"),
        ("SOB_M_PC-14-15704-100-001.png", IN_SITU, "breakhis"),
    ],
)
def test_names_give_the_class(name, value, source):
    photo = parse_name(name)
    assert photo.class_value == value and photo.source == source


@pytest.mark.parametrize("name", ["1238_adh_10.png", "311_fea_25.png", "17B0031061.png"])
def test_atypical_and_unnamed_photos_are_left_out_with_a_reason(name):
    assert isinstance(parse_name(name), str)


@pytest.fixture(scope="module")
def sources(shared_data):
    return [
        shared_data / "breakhis-100x",
        shared_data / "real-tissue" / "bach-examples",
        shared_data / "real-tissue" / "bracs-roi",
    ]


@pytest.fixture(scope="module")
def photos(sources):
    return find_photos(sources)


def test_all_four_classes_and_the_skipped_files_are_named(sources):
    skipped = []
    photos = find_photos(sources, skipped=skipped)
    assert {p.class_value for p in photos} == {NORMAL, BENIGN, IN_SITU, INVASIVE}
    names = {path.name for path, _ in skipped}
    assert {"1238_adh_10.png", "311_fea_25.png", "17B0031061.png"} <= names


def test_a_large_photo_is_cut_into_pieces_no_larger_than_the_cap(photos):
    from PIL import Image

    bach = [p for p in photos if p.source == "bach" and p.class_value == NORMAL]
    assert len(bach) > 1  # 863 x 648 um at 1.47 um/px
    with Image.open(bach[0].path) as im:
        width, height = im.size
    mpp = bach[0].mpp_at(width)
    for piece in bach:
        x0, y0, x1, y1 = piece.piece
        assert (x1 - x0) * width * mpp <= MAX_PIECE_UM and (y1 - y0) * height * mpp <= MAX_PIECE_UM
    assert all(p.piece is None for p in photos if p.source == "breakhis")


@pytest.mark.parametrize("seed", range(4))
def test_the_split_shares_only_the_lone_patient_of_a_class(photos, seed):
    split = patient_split(photos, 0.3, seed)
    # Normal tissue is one BACH photo: its pieces go to both sides; nobody else does.
    assert shared_patients(split) == {"bach-normal"}
    for side in split.values():
        assert {p.class_value for p in side} == {NORMAL, BENIGN, IN_SITU, INVASIVE}
    test_pieces = {(p.path, p.piece) for p in split["test"]}
    assert not test_pieces & {(p.path, p.piece) for p in split["train"]}
    assert len(split["train"]) + len(split["test"]) == len(photos)
    # In situ has two patients (BACH, BRACS): one on each side.
    in_situ = [{p.patient for p in side if p.class_value == IN_SITU} for side in split.values()]
    assert all(len(s) == 1 for s in in_situ) and not in_situ[0] & in_situ[1]


def test_a_four_class_mosaic_labels_each_island(sources, tmp_path):
    result, used = generate_mosaic(tmp_path / "m.tif", sources, split="test", seed=2, mpp=0.5)
    labels = np.asarray(read_label_grid(result.labels).labels)
    assert set(np.unique(labels)) == {NORMAL, BENIGN, IN_SITU, INVASIVE}
    assert {p.class_value for p in used} == {NORMAL, BENIGN, IN_SITU, INVASIVE}


def test_the_documented_command_writes_a_four_class_mosaic_and_names_the_shared_patient(
    sources, tmp_path
):
    import subprocess
    import sys

    out = tmp_path / "test4.tif"
    cmd = [sys.executable, "-m", "razn.cli", "synth", str(out),
           "--mpp", "1", "--split", "test", "--mosaic", *map(str, sources)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "bach-normal is the only patient of its class" in done.stdout
    assert out.exists() and out.with_suffix(".geojson").exists()
