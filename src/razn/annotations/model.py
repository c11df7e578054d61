"""The in-memory annotation set every reader returns, and how class names are matched.

Readers (QuPath GeoJSON, ImageScope XML, ASAP XML) turn a file into an
`AnnotationSet`: the polygonal regions in level-0 pixels, each with the class
text the file gave and the class value that text matched (or None), plus an
`ImportReport` of what was skipped, repaired or left unmatched, so nothing is
dropped silently and nothing is guessed.

Class matching (`ClassMatcher`), the same for every format, in this order:

1. the user's table (``class_map``), keys compared case-insensitively;
2. a class name of the class table, compared case-insensitively
   ("invasive carcinoma", "Normal");
3. the BACH keywords, found as whole words anywhere in the text, with
   punctuation read as spaces, and not after "non" or "not" (so
   "non-invasive" matches nothing): "benign" -> benign, "in situ" -> in situ carcinoma,
   "invasive" -> invasive carcinoma. Text containing keywords of two
   classes is ambiguous and left unmatched.

Anything else is reported by its text in `ImportReport.unmatched`; the empty
string stands for "no class given" and can be mapped like any other text.

Where classes overlap, the set keeps both regions as the file has them;
rasterising (`razn.annotations.rasterize`) gives the pixel to the most severe
class (the highest value), which is how BACH's nested annotations read.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import shapely
from shapely.geometry.base import BaseGeometry

from razn.classes import BENIGN, DEFAULT_CLASSES, IN_SITU, INVASIVE, TissueClass
from razn.errors import AnnotationError

__all__ = [
    "Annotation",
    "AnnotationSet",
    "ClassMatch",
    "ClassMatcher",
    "ImportReport",
    "shown",
]

#: How much of a text taken from a file is echoed in a message: a class
#: name of 50 MB must not be printed whole.
SHOWN_CHARS = 60


def shown(text: str, limit: int = SHOWN_CHARS, *, quote: bool = True) -> str:
    """`text` for a message (quoted unless `quote` is False), cut to `limit`
    characters with its full length noted."""
    if len(text) <= limit:
        return repr(text) if quote else text
    return f"{text[:limit]!r}... ({len(text):,} characters)"


#: Class texts longer than this match no built-in rule (only the user's map):
#: no class name or BACH label is anywhere near this long.
MAX_CLASS_TEXT = 1000

# BACH's class texts, matched as substrings (public BACH readers do the same).
BACH_KEYWORDS = {"benign": BENIGN, "in situ": IN_SITU, "invasive": INVASIVE}

#: Why a reader skips each kind of object it counts in `ImportReport.skipped`.
SKIP_REASONS = {
    "point": "not a polygon",
    "line": "not a polygon",
    "arrow": "not a polygon",
    "empty": "no vertices",
    "degenerate": "no area",
}


@dataclass(frozen=True)
class Annotation:
    """One polygonal region: the geometry, the file's class text and its match."""

    geometry: BaseGeometry
    source_class: str
    class_value: int | None


@dataclass
class ImportReport:
    """What a reader did with a file, for the user to read.

    Attributes
    ----------
    format
        "geojson", "imagescope" or "asap".
    mpp
        Microns per level-0 pixel the file states (ImageScope), else None.
    skipped
        What -> how many objects were not imported ("point", "line", "arrow",
        "empty", ...); `skip_reason` says why.
    unmatched
        Class text -> how many regions kept no class value.
    repaired
        Self-intersecting polygons repaired with `shapely.make_valid`.
    """

    format: str
    mpp: float | None = None
    skipped: Counter = field(default_factory=Counter)
    unmatched: Counter = field(default_factory=Counter)
    repaired: int = 0

    @staticmethod
    def skip_reason(kind: str) -> str:
        """Why objects of a `skipped` kind were not imported, in words."""
        # The other kinds are the formats' own types RAZN does not read
        # ("region type 4" in ImageScope, "type Spline" in ASAP).
        return SKIP_REASONS.get(kind, "a type RAZN does not read")

    def summary(self, regions: int) -> list[str]:
        """Human-readable lines: regions read, then anything left out."""
        lines = [f"{regions} region(s) read from {self.format}"]
        if self.mpp:
            lines.append(f"file states {self.mpp:g} microns per pixel")
        for kind, n in sorted(self.skipped.items()):
            what = kind if len(kind) <= SHOWN_CHARS else shown(kind)
            lines.append(f"skipped {n} {what} object(s): {self.skip_reason(kind)}")
        if self.repaired:
            lines.append(f"repaired {self.repaired} self-intersecting polygon(s)")
        for text, n in sorted(self.unmatched.items()):
            name = shown(text) if text else "(no class)"
            lines.append(f"{n} region(s) with class {name} match no class: map them")
        return lines


@dataclass(frozen=True)
class ClassMatch:
    """One class text of a file, the class value it matched (None: none), its regions."""

    text: str
    value: int | None
    regions: int


@dataclass
class AnnotationSet:
    """The regions of one annotation file, in level-0 pixels, and its report."""

    annotations: list[Annotation]
    report: ImportReport

    @property
    def shapes(self) -> list[tuple[int, BaseGeometry]]:
        """``(class_value, geometry)`` of every classified region (`rasterize` input)."""
        return [(a.class_value, a.geometry) for a in self.annotations if a.class_value is not None]

    @property
    def unclassified(self) -> list[Annotation]:
        """Regions whose class text matched no class (their text may be empty)."""
        return [a for a in self.annotations if a.class_value is None]

    @property
    def without_class(self) -> list[Annotation]:
        """Regions the file gives no class at all (ImageScope ``Text=""``, QuPath
        features without a classification): QuPath's unclassified annotations."""
        return [a for a in self.annotations if a.class_value is None and not a.source_class]

    def class_matches(self) -> list[ClassMatch]:
        """Which class text of the file matched which class value, by text.

        The empty text stands for regions without a class. A text always
        matches the same value, so one row per text says it all.
        """
        regions = Counter(a.source_class for a in self.annotations)
        values = {a.source_class: a.class_value for a in self.annotations}
        return [ClassMatch(text, values[text], n) for text, n in sorted(regions.items())]

    def geometries_by_class(self) -> dict[int, BaseGeometry]:
        """One geometry per class value: the union of that class's regions.

        Overlaps between classes are kept; see the module docstring.
        """
        grouped: dict[int, list[BaseGeometry]] = {}
        for value, geometry in self.shapes:
            grouped.setdefault(value, []).append(geometry)
        return {v: shapely.union_all(g) for v, g in sorted(grouped.items())}


class ClassMatcher:
    """Map a file's class text to a class value by the module's rules.

    Parameters
    ----------
    classes
        The class table (value, name, colour).
    class_map
        User table: class text -> class value or class name.
    """

    def __init__(
        self,
        classes: tuple[TissueClass, ...] = DEFAULT_CLASSES,
        class_map: Mapping[str, int | str] | None = None,
    ):
        self.classes = tuple(classes)
        self._by_name = {_normalise(c.name): c.value for c in self.classes}
        values = {c.value for c in self.classes}
        self._keywords = {k: v for k, v in BACH_KEYWORDS.items() if v in values}
        self._user = {
            _normalise(text): self.value_of(target, f"class map {text!r}")
            for text, target in (class_map or {}).items()
        }

    def value_of(self, target: int | str, context: str = "class") -> int:
        """The value of a class given by value, by name or by BACH keyword ("invasive").

        Raises `AnnotationError` naming ``context`` if there is no such class.
        """
        if isinstance(target, str) and not target.strip().isdigit():
            value = self._builtin(target)
            if value is None:
                names = ", ".join(repr(c.name) for c in self.classes)
                raise AnnotationError(
                    f"{context}: {target!r} is not a class name (one of {names})"
                )
            return value
        if int(target) not in {c.value for c in self.classes}:
            raise AnnotationError(f"{context}: no class has the value {target}")
        return int(target)

    def match(self, text: str | None) -> int | None:
        """The class value for ``text``, or None when no rule matches."""
        key = _normalise(text or "")
        if key in self._user:
            return self._user[key]
        return self._builtin(key)

    def _builtin(self, text: str) -> int | None:
        """Rules 2 and 3: a class name, else exactly one BACH keyword."""
        if len(text) > MAX_CLASS_TEXT:
            return None  # not a class name; searching 50 MB for keywords took 9 s
        key = _normalise(text)
        if key in self._by_name:
            return self._by_name[key]
        # A keyword counts as a word, and not when negated ("non-invasive").
        hits = {
            v
            for word, v in self._keywords.items()
            if re.search(rf"(?<!non )(?<!not )\b{word}\b", key)
        }
        return hits.pop() if len(hits) == 1 else None


def _normalise(text: str) -> str:
    """Lower case, punctuation as spaces: "In-Situ" and "in situ" compare equal."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())
