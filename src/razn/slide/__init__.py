"""Whole-slide images as lazy pyramids, read in level-0 coordinates at any mpp.

`open_slide` turns a slide file into a `Slide` (`_pyramid.py`): its
pyramid levels, largest first (`_levels.py`: each a dask array built on
first use and an array-like view for napari), and `Slide.read_region` to
read a level-0 box at any resolution. TIFF-family files (SVS, OME-TIFF, SCN, NDPI,
pyramidal TIFF) open through `_tiff.py`, whose tiled levels are read by the
direct tile reader in `_tiles.py`; the scanner's metadata is parsed in
`_metadata.py`; small PNG/JPEG images open through `_image.py`.

Opening only parses the TIFF directory and metadata; on a 100k x 100k slide
that is a few tile-offset tables, not pixels.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from razn.errors import SlideError
from razn.slide._levels import Level, LevelView, build_levels, chunk_shape
from razn.slide._pyramid import BACKGROUND, Slide

#: File endings opened as TIFF-family slides, and as plain images.
TIFF_SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".scn", ".qptiff", ".btf")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SLIDE_SUFFIXES = TIFF_SUFFIXES + IMAGE_SUFFIXES

__all__ = [
    "BACKGROUND",
    "IMAGE_SUFFIXES",
    "SLIDE_SUFFIXES",
    "TIFF_SUFFIXES",
    "Level",
    "LevelView",
    "Slide",
    "build_levels",
    "chunk_shape",
    "open_slide",
]


def open_slide(path: str | os.PathLike, *, mpp: float | None = None) -> Slide:
    """Open a whole-slide image lazily.

    Parameters
    ----------
    path : path to an Aperio SVS, (OME-)TIFF, Leica SCN, Hamamatsu NDPI,
        or a small PNG/JPEG image.
    mpp : microns per level-0 pixel, overriding (or supplying, for files
        without it) what the file records.

    Raises
    ------
    SlideError naming the file and the problem: missing, empty, not an image,
    corrupt, or not 8-bit RGB.
    """
    path = Path(path)
    if path.is_symlink() and not path.exists():
        # exists() is False both for a dangling link and for a loop; say which.
        try:
            path.resolve(strict=True)
        except RuntimeError:  # Python < 3.13 reports a loop so
            raise SlideError("is a symbolic link loop (it points back to itself)", path) from None
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise SlideError(
                    "is a symbolic link loop (it points back to itself)", path
                ) from None
            raise SlideError(
                f"is a symbolic link to a missing file ({path.readlink()})", path
            ) from None
    if not path.exists():
        raise SlideError("no such file", path)
    if path.is_dir():
        raise SlideError("is a folder, not a slide file", path)
    if path.stat().st_size == 0:
        raise SlideError("the file is empty (0 bytes)", path)
    if mpp is not None and not mpp > 0:
        raise SlideError(f"mpp must be a positive number of microns per pixel, not {mpp}", path)
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic[:2] in (b"II", b"MM"):
        from razn.slide._tiff import open_tiff_slide

        slide = open_tiff_slide(path)
    elif magic[:4] == b"\x89PNG" or magic[:2] == b"\xff\xd8":
        from razn.slide._image import open_image

        slide = open_image(path)
    else:
        kind = "a text file" if _looks_like_text(path) else "not a TIFF, PNG or JPEG file"
        raise SlideError(
            f"cannot open as a slide: {kind} (supported: {', '.join(SLIDE_SUFFIXES)})", path
        )
    if mpp is not None:
        slide.mpp, slide.mpp_source = float(mpp), "user"
    return slide


def _looks_like_text(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(512)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
