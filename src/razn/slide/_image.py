"""Small PNG and JPEG images as one-level slides, decoded whole.

Anything larger than `MAX_IMAGE_PIXELS` should be a tiled pyramidal TIFF.
Plain images carry no pixel size; the caller supplies one.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import numpy as np

from razn.errors import SlideError
from razn.slide._levels import _CHUNK_EDGE, lazy_levels
from razn.slide._pyramid import Slide

#: Plain images are decoded whole; anything larger should be a tiled TIFF.
MAX_IMAGE_PIXELS = 20_000 * 20_000
#: The most pixels one stored byte can stand for. Deflate compresses at most
#: ~1032:1, so a PNG needs a byte per ~344 RGB pixels (~8,000 for a 1-bit
#: palette); JPEG needs bits per 8x8 block. A header that claims more pixels
#: than this per byte of file is truncated or a decompression bomb, and
#: decoding it would only allocate gigabytes to fail.
MAX_PIXELS_PER_BYTE = 20_000

# PIL's bomb limit is a module global; it is raised to ours only while one
# image opens, under a lock, so other users of PIL keep their own.
_PIL_LIMIT_LOCK = threading.Lock()


def open_image(path: Path) -> Slide:
    from PIL import Image, UnidentifiedImageError

    try:
        with _pil_limit(Image):
            image = Image.open(path)
        with image:
            pixels_claimed = image.width * image.height
            if pixels_claimed > MAX_IMAGE_PIXELS:
                raise SlideError(
                    f"{image.width}x{image.height} is too large for a plain image "
                    f"(at most {MAX_IMAGE_PIXELS:,} pixels); convert it to a tiled "
                    "pyramidal TIFF",
                    path,
                )
            size = path.stat().st_size
            if pixels_claimed > MAX_PIXELS_PER_BYTE * size:
                raise SlideError(
                    f"its header claims {image.width}x{image.height} pixels but the file "
                    f"holds only {size:,} bytes: truncated or a decompression bomb",
                    path,
                )
            image_format = (image.format or "").lower() or None
            mode = image.mode
            if mode not in ("RGB", "RGBA", "P"):
                raise SlideError(f"holds {_describe_mode(mode)}; RAZN reads 8-bit RGB", path)
            pixels = np.array(image.convert("RGB"))
    except Image.DecompressionBombError:  # only past 2x our own limit
        raise SlideError(
            f"too large for a plain image (its header claims over {2 * MAX_IMAGE_PIXELS:,} "
            "pixels); convert it to a tiled pyramidal TIFF",
            path,
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise SlideError(f"cannot decode the image: {error}", path) from None

    def dask_level(index):
        # Built on first use of `Slide.levels`: opening and reading an image
        # import no dask.
        import dask.array as da

        return da.from_array(pixels, chunks=(_CHUNK_EDGE, _CHUNK_EDGE, 3))

    def read_stored(index, y0, y1, x0, x1):
        return pixels[y0:y1, x0:x1].copy()  # callers may write into what they get

    return Slide(
        path,
        "image",
        lazy_levels([pixels.shape[:2]], dask_level),
        mpp=None,
        mpp_source=None,
        magnification=None,
        tile_size=None,
        # What the bytes are, not the file name: a PNG named .svs is "png".
        compression=image_format,
        read_stored=read_stored,
    )


@contextlib.contextmanager
def _pil_limit(Image):
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


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
