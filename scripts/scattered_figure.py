"""docs/images/synth_scattered.png: scattered invasive carcinoma under the zoom grid.

A 512 um square of one invasive lesion on a `razn synth --invasive
scattered` slide (seed 201, 6144 px, the `scattered` Table 1 profile's first
held-out slide) at 1 um/px, with RAZN's 128 um fields (white), the 64 um
patches it would zoom into (thin, grey) and the annotated lesion's outline
(red). Many 64 um patches hold only stroma or fat; nearly every 128 um
field holds a nest.

    python scripts/scattered_figure.py [OUT.png]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import binary_erosion

from razn.classes import INVASIVE
from razn.synth.layout import Layout, SlideSpec
from razn.synth.tissue import render_region

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs/images/synth_scattered.png"
    spec = SlideSpec(6144, 6144, 201, tissue_fraction=0.65, lesion_fraction=0.25,
                     invasive="scattered")  # fmt: skip
    layout = Layout.build(spec)
    lesion = int(np.flatnonzero(layout.lesions.class_value == INVASIVE)[0])
    side = int(spec.um(512))
    # Snap to the 128 um field grid the engine tiles the slide with.
    field = int(spec.um(128))
    x0 = int(layout.lesions.cx[lesion] - side / 2) // field * field
    y0 = int(layout.lesions.cy[lesion] - side / 2) // field * field
    rgb = render_region(layout, x0, y0, side, side)
    small = np.asarray(Image.fromarray(rgb).resize((512, 512), Image.Resampling.BOX)).copy()
    # The annotated lesion's outline in red: everything inside is invasive.
    centres = (np.arange(512) + 0.5) * (side / 512) - 0.5
    inside = layout.class_grid(x0 + centres, y0 + centres) == INVASIVE
    small[inside ^ binary_erosion(inside, iterations=2)] = (211, 47, 47)
    for k in range(0, 512, 64):
        small[k, :] = small[:, k] = (150, 150, 150)
    for k in range(0, 512, 128):
        small[max(k - 1, 0) : k + 2, :] = 255
        small[:, max(k - 1, 0) : k + 2] = 255
    Image.fromarray(small).save(out, optimize=True)
    print(f"{out}: seed {spec.seed}, box at ({x0}, {y0}), {side} px square")


if __name__ == "__main__":
    main()
