"""The tissue classes and their label values, names and colours.

The values are the project's convention (docs/design.md, "Classes and colours"): 0 is
"not yet segmented" and is drawn transparent (glass stays 0 too: it is no
class); 1..4 are the four BACH classes. In situ is a strong blue, so it
stands apart from invasive red over pink-purple H&E. A model checkpoint
carries its own table; this one is the default.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TissueClass:
    value: int
    name: str
    color: tuple[int, int, int]

    @property
    def hex(self) -> str:
        return "#{:02X}{:02X}{:02X}".format(*self.color)


UNLABELLED = 0
NORMAL, BENIGN, IN_SITU, INVASIVE = 1, 2, 3, 4

DEFAULT_CLASSES: tuple[TissueClass, ...] = (
    TissueClass(NORMAL, "Normal", (0x4C, 0xAF, 0x50)),
    TissueClass(BENIGN, "Benign", (0xFF, 0xC1, 0x07)),
    TissueClass(IN_SITU, "In situ carcinoma", (0x1E, 0x88, 0xE5)),
    TissueClass(INVASIVE, "Invasive carcinoma", (0xD3, 0x2F, 0x2F)),
)

# Table 1 of the paper groups the four classes in two.
NON_CARCINOMA = (NORMAL, BENIGN)
CARCINOMA = (IN_SITU, INVASIVE)


def class_by_value(value: int, classes=DEFAULT_CLASSES) -> TissueClass:
    for c in classes:
        if c.value == value:
            return c
    raise KeyError(f"no tissue class with label value {value}")
