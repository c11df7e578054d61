"""Real H&E photos with an image-level class: which data set, class, patient and scale.

Three public data sets name their images so that the name carries the
class; this module reads those names (the pixels are read by `mosaic`):

| data set | file name | class |
|---|---|---|
| BreakHis (100X) | ``SOB_B_<A|F|PT|TA>-<year>-<slide>-100-<n>.png`` | benign |
| | ``SOB_M_<DC|LC|MC>-...`` (ductal, lobular, mucinous) | invasive |
| | ``SOB_M_PC-...`` (papillary, may be in situ) | in situ |
| BACH (ICIAR 2018) | ``normal``, ``benign``, ``in_situ``, ``invasive`` (the example photos) or ``n001``, ``b001``, ``is001``, ``iv001`` | as named |
| BRACS regions of interest | ``[BRACS_]<slide>_<subtype>_<n>.png``: ``n``/``normal`` | normal |
| | ``pb``/``benign``/``pathologicalbenign``, ``udh`` | benign |
| | ``dcis`` | in situ |
| | ``ic``/``invasive`` | invasive |
| | ``adh``, ``fea`` (atypical: none of the four classes) | skipped |

Scale: BreakHis 100X originals are 700 px wide at about 0.49 um/px; BACH
photos 2048 px wide at 0.42 um/px; BRACS regions are cut from 40x scans at
0.25 um/px. A smaller copy of a BreakHis or BACH photo shows the same field,
so its pixels are coarser in proportion (`Photo.mpp_at`).

Patients: BreakHis names hold the accession (``14-21998`` of
``14-21998AB``; sections of one accession are one patient); a BRACS name
holds its slide number, taken as the patient; the BACH examples say nothing
about patients, so each counts as its own. Photos larger than
`MAX_PIECE_UM` are cut into pieces, so one large photo does not set the
mosaic's grid; `patient_split` keeps patients on one side, except a class
that only one patient shows, whose pieces it shares between the sides
(`shared_patients` names them).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from razn.classes import BENIGN, IN_SITU, INVASIVE, NORMAL
from razn.errors import RaznError

BREAKHIS_MPP = 0.49
#: Every BreakHis original is 700 x 460. Copies made smaller (the 500 x 328
#: PNGs in shared/data) still show the same field, so their pixels are
#: coarser: a photo `w` pixels wide is at photo_mpp * 700 / w um/px.
BREAKHIS_WIDTH = 700
BACH_MPP, BACH_WIDTH = 0.42, 2048
BRACS_MPP = 0.25
#: Photos wider or taller than this (in microns) are cut into pieces.
MAX_PIECE_UM = 500.0

_BREAKHIS = re.compile(
    r"^SOB_(?P<tumour>[BM])_(?P<subtype>[A-Z]+)-(?P<year>\d+)-(?P<accession>\d+)(?P<section>[A-Z]*)"
    r"-(?P<mag>\d+)-(?P<seq>\d+)\.(png|jpe?g|tif+)$",
    re.IGNORECASE,
)
_IN_SITU_SUBTYPES = {"PC"}
_BACH = re.compile(
    r"^(?P<kind>normal|benign|in_?situ|invasive|n|b|is|iv)(?P<seq>\d*)\.(png|jpe?g|tif+)$",
    re.IGNORECASE,
)
_BACH_CLASSES = {"normal": NORMAL, "n": NORMAL, "benign": BENIGN, "b": BENIGN,
                 "insitu": IN_SITU, "in_situ": IN_SITU, "is": IN_SITU,
                 "invasive": INVASIVE, "iv": INVASIVE}  # fmt: skip
_BRACS = re.compile(
    r"^(?:BRACS_)?(?P<slide>[0-9]+)_(?P<subtype>[a-z]+)_(?P<seq>\d+)\.(png|jpe?g|tif+)$",
    re.IGNORECASE,
)
_BRACS_CLASSES = {"n": NORMAL, "normal": NORMAL, "pb": BENIGN, "benign": BENIGN,
                  "pathologicalbenign": BENIGN, "udh": BENIGN, "dcis": IN_SITU,
                  "ic": INVASIVE, "invasive": INVASIVE}  # fmt: skip
_BRACS_ATYPICAL = {"adh", "fea"}


@dataclass(frozen=True)
class Photo:
    """One photo (or one piece of it) and what its name says.

    piece : (x0, y0, x1, y1) as fractions of the photo, or None for all of it.
    """

    path: Path
    class_value: int
    patient: str
    source: str  # "breakhis", "bach" or "bracs"
    subtype: str
    magnification: int | None = None
    piece: tuple[float, float, float, float] | None = None

    @property
    def benign(self) -> bool:
        return self.class_value in (NORMAL, BENIGN)

    def mpp_at(self, width: int, breakhis_mpp: float = BREAKHIS_MPP) -> float:
        """Microns per pixel of this photo's file, `width` pixels wide."""
        if self.source == "breakhis":
            return breakhis_mpp * BREAKHIS_WIDTH / width
        if self.source == "bach":
            return BACH_MPP * BACH_WIDTH / width
        return BRACS_MPP


def parse_breakhis_name(path: str | os.PathLike) -> Photo:
    """Parse ``SOB_<B|M>_<subtype>-<year>-<patient>-<mag>-<seq>.png``."""
    path = Path(path)
    match = _BREAKHIS.match(path.name)
    if not match:
        raise RaznError(
            "not a BreakHis name (SOB_<B|M>_<subtype>-<year>-<patient>-<mag>-<seq>.png)", path
        )
    subtype = match["subtype"].upper()
    if match["tumour"].upper() == "B":
        value = BENIGN
    else:
        value = IN_SITU if subtype in _IN_SITU_SUBTYPES else INVASIVE
    return Photo(path=path, class_value=value, patient=f"{match['year']}-{match['accession']}",
                 source="breakhis", subtype=subtype, magnification=int(match["mag"]))  # fmt: skip


def parse_name(path: str | os.PathLike) -> Photo | str:
    """A Photo for a BreakHis, BACH or BRACS name, else why not (a string)."""
    path = Path(path)
    if _BREAKHIS.match(path.name):
        return parse_breakhis_name(path)
    match = _BACH.match(path.name)
    if match:
        kind = match["kind"].lower()
        return Photo(path=path, class_value=_BACH_CLASSES[kind], patient=f"bach-{path.stem}",
                     source="bach", subtype=kind)  # fmt: skip
    match = _BRACS.match(path.name)
    if match:
        subtype = match["subtype"].lower()
        if subtype in _BRACS_ATYPICAL:
            return f"BRACS {subtype.upper()} is atypical, none of the four classes"
        if subtype in _BRACS_CLASSES:
            return Photo(path=path, class_value=_BRACS_CLASSES[subtype],
                         patient=f"bracs-{match['slide']}", source="bracs",
                         subtype=subtype)  # fmt: skip
        return f"unknown BRACS subtype {subtype!r}"
    return "not a BreakHis, BACH or BRACS name"


def find_photos(
    folders: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    breakhis_mpp: float = BREAKHIS_MPP,
    skipped: list[tuple[Path, str]] | None = None,
) -> list[Photo]:
    """Every named photo in the folders (sorted by name), large ones cut into pieces.

    Files whose names say nothing (or an atypical BRACS subtype) are left
    out; pass a list as `skipped` to learn which and why.
    """
    if isinstance(folders, (str, os.PathLike)):
        folders = [folders]
    photos = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise RaznError("mosaic source is not a folder", folder)
        for path in sorted(folder.iterdir()):
            parsed = parse_name(path)
            if isinstance(parsed, str):
                if skipped is not None and path.is_file():
                    skipped.append((path, parsed))
                continue
            photos += _pieces(parsed, breakhis_mpp)
    if not photos:
        shown = ", ".join(str(f) for f in folders)
        raise RaznError(f"no BreakHis, BACH or BRACS images in {shown}")
    return photos


def _pieces(photo: Photo, breakhis_mpp: float) -> list[Photo]:
    """The photo, or a grid of pieces of it no larger than MAX_PIECE_UM."""
    from PIL import Image

    try:
        with Image.open(photo.path) as im:
            width, height = im.size
    except OSError as error:
        raise RaznError(f"cannot read image: {error}", photo.path) from None
    mpp = photo.mpp_at(width, breakhis_mpp)
    cols = math.ceil(width * mpp / MAX_PIECE_UM)
    rows = math.ceil(height * mpp / MAX_PIECE_UM)
    if cols * rows == 1:
        return [photo]
    return [
        replace(photo, piece=(c / cols, r / rows, (c + 1) / cols, (r + 1) / rows))
        for r in range(rows)
        for c in range(cols)
    ]


def patient_split(
    photos: list[Photo], test_fraction: float = 0.3, seed: int = 0
) -> dict[str, list[Photo]]:
    """Split photos by patient into {"train": [...], "test": [...]}.

    Patients are split separately per label set (benign-only,
    malignant-only, mixed, ...) so both sides see each label where the data
    allow; no patient is on both sides, with one exception: a class that
    only one patient shows has that patient's pieces shared out (the last
    `test_fraction` of them, at least one, go to test), or the class could
    only ever be trained or only ever be scored.
    """
    if not 0.0 < test_fraction < 1.0:
        raise RaznError(f"test fraction must be in (0, 1), got {test_fraction}")
    labels: dict[str, set[int]] = {}
    for p in photos:
        labels.setdefault(p.patient, set()).add(p.class_value)
    showing: dict[int, set[str]] = {}
    for patient, values in labels.items():
        for value in values:
            showing.setdefault(value, set()).add(patient)
    lonely = {next(iter(ps)) for ps in showing.values() if len(ps) == 1}
    lonely = {p for p in lonely if sum(ph.patient == p for ph in photos) > 1}
    groups: dict[tuple[int, ...], list[str]] = {}
    for patient, values in sorted(labels.items()):
        if patient not in lonely:
            groups.setdefault(tuple(sorted(values)), []).append(patient)
    rng = np.random.default_rng([seed, 0x5B1])
    test: set[str] = set()
    for _, patients in sorted(groups.items()):
        order = list(rng.permutation(len(patients)))
        n_test = round(test_fraction * len(patients))
        if len(patients) >= 2:
            n_test = min(max(n_test, 1), len(patients) - 1)
        test.update(patients[i] for i in order[:n_test])
    split: dict[str, list[Photo]] = {"train": [], "test": []}
    for patient in sorted(lonely):
        own = [p for p in photos if p.patient == patient]
        n_test = min(max(round(test_fraction * len(own)), 1), len(own) - 1)
        split["train"] += own[: len(own) - n_test]
        split["test"] += own[len(own) - n_test :]
    split["train"] += [p for p in photos if p.patient not in test and p.patient not in lonely]
    split["test"] += [p for p in photos if p.patient in test]
    for side in split.values():  # name order, as find_photos gives them
        side.sort(key=lambda p: (str(p.path), p.piece or ()))
    return split


def shared_patients(split: dict[str, list[Photo]]) -> set[str]:
    """Patients on both sides of a split (the lone patients of a class)."""
    return {p.patient for p in split["train"]} & {p.patient for p in split["test"]}
