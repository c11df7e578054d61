"""Small PNG and JPEG images as one-level slides, decoded whole.

Anything larger than `MAX_IMAGE_PIXELS` should be a tiled pyramidal TIFF.
Plain images carry no pixel size; the caller supplies one.
"""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np

from razn.errors import SlideError
from razn.slide._pyramid import _CHUNK_EDGE, Slide, build_levels

#: Plain images are decoded whole; anything larger should be a tiled TIFF.
MAX_IMAGE_PIXELS = 20_000 * 20_000


def open_image(path: Path) -> Slide:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise SlideError(
                    f"{image.width}x{image.height} is too large for a plain image; "
                    "convert it to a tiled pyramidal TIFF",
                    path,
                )
            mode = image.mode
            if mode not in ("RGB", "RGBA", "P"):
                raise SlideError(f"holds {_describe_mode(mode)}; RAZN reads 8-bit RGB", path)
            pixels = np.array(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise SlideError(f"cannot decode the image: {error}", path) from None
    level0 = da.from_array(pixels, chunks=(_CHUNK_EDGE, _CHUNK_EDGE, 3))

    def read_stored(index, y0, y1, x0, x1):
        return pixels[y0:y1, x0:x1].copy()  # callers may write into what they get

    return Slide(
        path,
        "image",
        build_levels([level0], stored_count=1),
        mpp=None,
        mpp_source=None,
        magnification=None,
        tile_size=None,
        compression=path.suffix.lstrip(".").lower() or None,
        read_stored=read_stored,
    )


def _describe_mode(mode: str) -> str:
    return {
        "L": "8-bit grayscale pixels",
        "LA": "grayscale pixels with alpha",
        "1": "1-bit pixels",
        "I;16": "16-bit grayscale pixels",
        "I": "32-bit integer pixels",
        "F": "32-bit float pixels",
        "CMYK": "CMYK pixels",
    }.get(mode, f"{mode} pixels")
