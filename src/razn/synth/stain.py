"""The H&E colour model: stain amounts in, 8-bit RGB out.

Brightfield images obey Beer-Lambert: each stain adds optical density (OD)
along its own colour vector, and transmitted light is I0 * exp(-OD). The
renderer therefore works in stain amounts (hematoxylin for nuclei, eosin
for cytoplasm, stroma and membranes), where overlapping objects simply add,
and converts to RGB once. The vectors and glass colour are fitted by eye to
the BreakHis 100X photomicrographs in ../shared/data (pale lavender-pink
stroma, blue-purple nuclei, glass about (247, 244, 243)).
"""

from __future__ import annotations

import numpy as np

# OD per unit stain, (R, G, B); rows normalised to unit length.
HEMATOXYLIN = np.array([0.60, 0.74, 0.30])
EOSIN = np.array([0.20, 0.90, 0.40])
HEMATOXYLIN = HEMATOXYLIN / np.linalg.norm(HEMATOXYLIN)
EOSIN = EOSIN / np.linalg.norm(EOSIN)
GLASS_RGB = np.array([247.0, 244.0, 243.0])


def stains_to_rgb(
    hematoxylin: np.ndarray, eosin: np.ndarray, rng: np.random.Generator | None = None
) -> np.ndarray:
    """RGB uint8 image (h, w, 3) from per-pixel stain amounts (h, w).

    `rng`, when given, adds the small pixel noise a camera sensor would
    (about 1.5 grey levels), which also keeps JPEG from flattening glass
    into suspiciously perfect blocks.
    """
    od = hematoxylin[..., None] * HEMATOXYLIN.astype(np.float32) + eosin[..., None] * EOSIN.astype(
        np.float32
    )
    rgb = GLASS_RGB.astype(np.float32) * np.exp(-od)
    if rng is not None:
        rgb += rng.standard_normal(rgb.shape, dtype=np.float32) * np.float32(1.5)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
