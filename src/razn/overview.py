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
    h, w = slide.shape
    mpp = f"{slide.mpp:.3f} um/px" if slide.mpp else "mpp unknown"
    return f"{slide.path.name}  {w} x {h}  {mpp}  tissue {slide.tissue_fraction:.0%} (outlined)"


def write_overview(slide, path: str | os.PathLike, max_size: int = 1024) -> None:
    with atomic_path(path) as tmp:
        render_overview(slide, max_size).save(tmp, format="PNG")


def render_segmentation_overview(
    slide, labels: np.ndarray, zoomed: np.ndarray, tile_size: int, classes, max_size: int = 1024
) -> Image.Image:
    """Thumbnail with the class overlay, a legend, and the zoomed tiles outlined.

    `labels` is the label grid (values as docs/design.md, 0 unsegmented), `zoomed`
    the tile grid of zoom decisions, `tile_size` a tile's level-0 side.
    Normal tissue (and glass) is left uncoloured so the lesions stand out.
    """
    from razn.classes import NORMAL

    thumb = slide.thumbnail(max_size)
    th, tw = thumb.shape[:2]
    small = np.asarray(Image.fromarray(labels).resize((tw, th), Image.NEAREST))
    canvas = thumb.astype(np.float32)
    for c in classes:
        if c.value == NORMAL:
            continue
        where = small == c.value
        canvas[where] = 0.45 * canvas[where] + 0.55 * np.array(c.color, np.float32)
    image = Image.fromarray(canvas.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    height0, width0 = slide.shape
    sx, sy = tw / width0, th / height0
    for row, col in zip(*np.nonzero(zoomed), strict=True):
        x0, y0 = col * tile_size * sx, row * tile_size * sy
        draw.rectangle(
            [x0, y0, x0 + tile_size * sx - 1, y0 + tile_size * sy - 1], outline=(30, 30, 30)
        )
    legend = Image.new("RGB", (image.width, 20), (32, 32, 32))
    ld = ImageDraw.Draw(legend)
    x = 4
    for c in classes:
        if c.value == NORMAL:
            continue
        ld.rectangle([x, 5, x + 10, 15], fill=tuple(c.color))
        ld.text((x + 14, 4), c.name, fill=(240, 240, 240))
        x += 22 + 6 * len(c.name)
    ld.rectangle([x, 5, x + 10, 15], outline=(200, 200, 200))
    ld.text((x + 14, 4), "zoomed in", fill=(240, 240, 240))
    out = Image.new("RGB", (image.width, image.height + legend.height), (255, 255, 255))
    out.paste(image, (0, 0))
    out.paste(legend, (0, image.height))
    return out
