"""The layout's lesions and structures: typed fields, and the same draws as before.

The digests were taken from the layout before its attributes moved out of
an untyped `extra` dict into `Lesions` / `Structures` fields (and the
placement code into `razn.synth.placement`): same spec, same numbers, so
the synthetic slides keep their bytes.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from razn.classes import BENIGN, IN_SITU, INVASIVE
from razn.synth.layout import Layout, SlideSpec
from razn.synth.shapes import INVASIVE_NEST, NORMAL_DUCT, Lesions, Structures

OUTLINE = ("cx", "cy", "a", "b", "theta", "amps", "phases")


def _digest(layout: Layout) -> str:
    h = hashlib.sha256()
    lesions, structures = layout.lesions, layout.structures
    for shapes, attributes in (
        (lesions, ["class_value"]),
        (structures, ["kind", "lumen", "lesion"]),
    ):
        for name in (*OUTLINE, *attributes):
            h.update(np.ascontiguousarray(getattr(shapes, name)).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            SlideSpec(2048, 1536, seed=1),
            "b0206b3d6997a923a28aea34bb7b87e4d473c974ba8af3a6e2515ef2a8ef7808",
        ),
        (
            SlideSpec(2048, 1536, seed=7, invasive="scattered"),
            "235a71709e2cac5bb5be0fddfe586ff0c3984a82bccb10bca008642253ab6b3a",
        ),
    ],
)
def test_same_layout_as_before_the_typed_fields(spec, expected):
    assert _digest(Layout.build(spec)) == expected


def test_fields_are_typed_per_shape_arrays():
    layout = Layout.build(SlideSpec(2048, 1536, seed=1))
    lesions, structures = layout.lesions, layout.structures
    assert isinstance(lesions, Lesions) and isinstance(structures, Structures)
    assert lesions.class_value.dtype == np.uint8
    assert len(lesions) and set(lesions.class_value) <= {BENIGN, IN_SITU, INVASIVE}
    assert structures.kind.dtype == np.int8 and structures.lesion.dtype == np.int32
    assert len(structures.kind) == len(structures.lumen) == len(structures) > 0
    # A structure in a lesion has that lesion's kind; normal ones belong to none.
    nests = structures.kind == INVASIVE_NEST
    assert (lesions.class_value[structures.lesion[nests]] == INVASIVE).all()
    assert (structures.lesion[structures.kind == NORMAL_DUCT] == -1).all()
    picked = structures.subset(np.flatnonzero(nests))
    assert isinstance(picked, Structures) and (picked.kind == INVASIVE_NEST).all()
    assert len(Structures.concat([picked, Structures.empty(), picked])) == 2 * len(picked)
