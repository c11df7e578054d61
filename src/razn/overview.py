"""Overview pictures of a slide: what a pathologist glances at before opening it.

A thumbnail with the tissue mask outlined and a caption of the slide's
facts, written as a PNG (atomically). Later stages draw their class overlay
on the same canvas.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from razn.atomic import atomic_path

#: Outline colour of the tissue mask (cyan reads on pink and purple H&E).
TISSUE_OUTLINE = (0, 200, 255)


def tissue_outline(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Boolean outline of `mask` resized to `size` (width, height)."""
    big = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.NEAREST))
    big = big > 127
    return big & ~ndimage.binary_erosion(big, iterations=2)


def render_overview(slide, max_size: int = 1024) -> Image.Image:
    """The slide's thumbnail with the tissue outlined and a one-line caption."""
    thumb = slide.thumbnail(max_size)
    canvas = thumb.copy()
    outline = tissue_outline(slide.tissue_mask.mask, (thumb.shape[1], thumb.shape[0]))
    canvas[outline] = TISSUE_OUTLINE
    image = Image.fromarray(canvas)
    caption = _caption(slide)
    bar = Image.new("RGB", (image.width, 18), (32, 32, 32))
    ImageDraw.Draw(bar).text((4, 3), caption, fill=(240, 240, 240))
    out = Image.new("RGB", (image.width, image.height + bar.height), (255, 255, 255))
    out.paste(image, (0, 0))
    out.paste(bar, (0, image.height))
    return out


def _caption(slide) -> str:
    h, w = slide.dimensions
    mpp = f"{slide.mpp:.3f} um/px" if slide.mpp else "mpp unknown"
    return f"{slide.path.name}  {w} x {h}  {mpp}  tissue {slide.tissue_fraction:.0%} (outlined)"


def write_overview(slide, path: str | os.PathLike, max_size: int = 1024) -> None:
    with atomic_path(path) as tmp:
        render_overview(slide, max_size).save(tmp, format="PNG")
