"""Star-shaped outlines, the one geometry of a synthetic slide's lesions and structures.

A shape is an ellipse (cx, cy, a, b, theta) times a radial Fourier series
1 + sum_k amp_k cos(k phi + phase_k), k = 1..N_HARMONICS, all in level-0
pixels. `Shapes` holds many as parallel arrays; `Lesions` adds each one's
class, `Structures` (ducts, acini, invasive nests) what is drawn inside it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from razn.classes import BENIGN, IN_SITU, INVASIVE

__all__ = [
    "BENIGN_DUCT",
    "INVASIVE_NEST",
    "IN_SITU_DUCT",
    "KIND_OF_CLASS",
    "NORMAL_DUCT",
    "N_HARMONICS",
    "Lesions",
    "Shapes",
    "Structures",
]

# Structure kinds (what is drawn), distinct from class values (what is true).
NORMAL_DUCT, BENIGN_DUCT, IN_SITU_DUCT, INVASIVE_NEST = 0, 1, 2, 3
KIND_OF_CLASS = {BENIGN: BENIGN_DUCT, IN_SITU: IN_SITU_DUCT, INVASIVE: INVASIVE_NEST}

N_HARMONICS = 10


@dataclass
class Shapes:
    """Star-shaped outlines: ellipse (cx, cy, a, b, theta) times a radial
    Fourier series 1 + sum_k amp_k cos(k phi + phase_k), k = 1..N_HARMONICS.

    Every field is an array with one entry (row) per shape, so a subset or
    a concatenation treats all fields alike, in subclasses too.
    """

    cx: np.ndarray
    cy: np.ndarray
    a: np.ndarray
    b: np.ndarray
    theta: np.ndarray
    amps: np.ndarray  # (n, N_HARMONICS)
    phases: np.ndarray  # (n, N_HARMONICS)

    def __len__(self) -> int:
        return len(self.cx)

    def extent(self) -> np.ndarray:
        """Radius of a circle around each centre that contains the shape."""
        return np.maximum(self.a, self.b) * (1.0 + np.abs(self.amps).sum(axis=1))

    def rho(self, i: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Normalised radius of points (broadcast x, y) in shape i: < 1 inside."""
        dx, dy = x - self.cx[i], y - self.cy[i]
        c, s = np.cos(self.theta[i]), np.sin(self.theta[i])
        u = (dx * c + dy * s) / self.a[i]
        v = (-dx * s + dy * c) / self.b[i]
        r = np.sqrt(u * u + v * v)
        phi = np.arctan2(v, u)
        radius = np.ones_like(phi)
        for k in range(N_HARMONICS):
            if self.amps[i, k]:
                radius += self.amps[i, k] * np.cos((k + 1) * phi + self.phases[i, k])
        return (r / np.maximum(radius, 0.2)).astype(np.float32)

    def subset(self, index: np.ndarray):
        """The shapes at `index` (any numpy index), of the same type."""
        return replace(self, **{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @classmethod
    def concat(cls, parts: list):
        """One collection of every shape in `parts` (empty ones skipped), in order."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)}
        )

    @classmethod
    def empty(cls):
        return cls(**_empty_outlines())

    def outlines(self) -> dict[str, np.ndarray]:
        """The geometry fields alone, to build a subclass from plain shapes."""
        return {f.name: getattr(self, f.name) for f in fields(Shapes)}


@dataclass
class Lesions(Shapes):
    """Lesion outlines, each with its class."""

    class_value: np.ndarray  # (n,) uint8: BENIGN, IN_SITU or INVASIVE

    @classmethod
    def empty(cls) -> Lesions:
        return cls(**_empty_outlines(), class_value=np.zeros(0, np.uint8))


@dataclass
class Structures(Shapes):
    """Ducts, acini and invasive nests: what each is and where it lies."""

    kind: np.ndarray  # (n,) int8: NORMAL_DUCT, BENIGN_DUCT, IN_SITU_DUCT or INVASIVE_NEST
    lumen: np.ndarray  # (n,) float: open lumen as a fraction of the radius (0: filled)
    lesion: np.ndarray  # (n,) int32: index of the lesion holding it, -1 in normal tissue

    @classmethod
    def empty(cls) -> Structures:
        return cls(
            **_empty_outlines(),
            kind=np.zeros(0, np.int8),
            lumen=np.zeros(0),
            lesion=np.zeros(0, np.int32),
        )


def _empty_outlines() -> dict[str, np.ndarray]:
    empty = np.zeros(0)
    harmonics = np.zeros((0, N_HARMONICS))
    return {"cx": empty, "cy": empty, "a": empty, "b": empty, "theta": empty,
            "amps": harmonics, "phases": harmonics}  # fmt: skip
