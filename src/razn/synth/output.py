"""The three files a synthetic slide is: image, label grid and GeoJSON, written all or none.

`generate_slide` and `generate_mosaic` both write ``OUT.tif`` with
``OUT.labels.tif`` and ``OUT.geojson`` beside it. They share the naming, the
checks made before any work starts, and `atomic_companions`, which renames
the three finished files into place only when the whole block succeeded, so
an interrupted run never leaves an image without its truth.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from razn.atomic import atomic_path, writable_folder
from razn.errors import RaznError

__all__ = ["SynthResult", "atomic_companions", "companion_paths"]


@dataclass(frozen=True)
class SynthResult:
    """What `generate_slide` / `generate_mosaic` wrote."""

    image: Path
    labels: Path
    geojson: Path
    levels: list[tuple[int, int]]
    label_downsample: int

    def paths(self) -> list[Path]:
        return [self.image, self.labels, self.geojson]


def companion_paths(image: str | os.PathLike) -> tuple[Path, Path, Path]:
    """(image, labels, geojson) paths: OUT.tif -> OUT.labels.tif, OUT.geojson."""
    image = Path(image)
    name = image.name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            stem = name[: -len(suffix)]
            break
    else:
        raise RaznError("the slide must be named *.tif or *.tiff", image)
    if not stem:
        raise RaznError("the slide needs a name before its extension", image)
    return image, image.with_name(stem + ".labels.tif"), image.with_name(stem + ".geojson")


@contextlib.contextmanager
def atomic_companions(
    image: Path, labels: Path, geojson: Path
) -> Iterator[tuple[Path, Path, Path]]:
    """Temporary paths for the three files, renamed into place together on success.

    On an exception none of the three is renamed and the temporaries are
    removed, so a half-written slide never replaces a finished one.
    """
    # Entered in this order, renamed in the reverse one: the image, which
    # says the slide exists, lands last.
    with (
        atomic_path(image) as tmp_image,
        atomic_path(labels) as tmp_labels,
        atomic_path(geojson) as tmp_geojson,
    ):
        yield tmp_image, tmp_labels, tmp_geojson


def _check_writable(image: Path) -> None:
    """Refuse, before any rendering, an output whose folder is missing or read-only."""
    writable_folder(image.parent)  # missing, a file or not writable: one line naming it
    if image.is_dir():
        raise RaznError("is a folder, not a file name", image)
