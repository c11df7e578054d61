"""A pathologist's work on one slide: predictions, corrections and settings.

The plugin shows `labels`: the model's predictions, except where the
pathologist has painted, which `corrected` remembers. Segmenting again
updates `predictions` everywhere but `labels` only where nothing was
corrected, so a correction is never overwritten. Tiles already done with
the same model and threshold are reused; changing either starts the done
set afresh while the old results stay on screen until replaced.

`save` writes everything to one `.npz` file (no pickle: plain arrays and a
JSON string) through a temporary file and a rename, so a crash or a kill
mid-save leaves the previous session intact; `load` restores it. This
module is Qt-free, so the session logic is tested without a display.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from razn.areas import class_areas_mm2
from razn.atomic import atomic_path
from razn.errors import RaznError

if TYPE_CHECKING:
    from razn.inference.tiling import TileGrid

FORMAT = "razn-session/1"
#: The arrays a session saves, restores and snapshots.
ARRAYS = ("labels", "predictions", "corrected", "zoom_p", "zoomed", "done")


def default_session_path(slide_path: str | os.PathLike) -> Path:
    """Where a slide's session lives: a per-user folder, keyed by the slide's path.

    Beside the slide would be handier, but slides often sit on read-only
    shares; `NAPARI_RAZN_SESSIONS` chooses another folder.
    """
    root = os.environ.get("NAPARI_RAZN_SESSIONS")
    if not root:
        from platformdirs import user_data_dir

        root = os.path.join(user_data_dir("napari-razn", appauthor=False), "sessions")
    slide_path = Path(slide_path).resolve()
    key = hashlib.sha1(str(slide_path).encode()).hexdigest()[:12]
    return Path(root) / f"{slide_path.name}.{key}.razn-session.npz"


class SegmentationSession:
    """Predictions, corrections and zoom decisions of one slide, on its grids."""

    def __init__(
        self, slide_path, grid: TileGrid, mpp: float | None, settings: dict | None = None
    ):
        self.slide_path = str(slide_path)
        self.grid = grid
        self.mpp = mpp
        shape, tiles = grid.label_shape, (grid.rows, grid.cols)
        self.labels = np.zeros(shape, np.uint8)
        self.predictions = np.zeros(shape, np.uint8)
        self.corrected = np.zeros(shape, bool)
        self.zoom_p = np.full(tiles, np.nan, np.float32)
        self.zoomed = np.zeros(tiles, bool)
        self.done = np.zeros(tiles, bool)
        self.settings = dict(settings or {})
        #: What made the labels shown: {"model": reference}; the threshold is in `settings`.
        self.made_by: dict = {}

    # -- settings -------------------------------------------------------------
    def use_settings(self, settings: dict) -> bool:
        """Switch model/threshold; returns True if earlier tiles must be redone."""
        if settings == self.settings:
            return False
        self.settings = dict(settings)
        self.done[:] = False
        return True

    # -- results --------------------------------------------------------------
    def apply(self, result, tissue=None) -> tuple[slice, slice]:
        """Take one `razn.inference.TileResult`; returns the label-grid region it changed.

        Glass is no class: a glass tile (`tissue` False: no network saw it)
        stays 0, transparent and outside every class area, though it counts
        as done; with the slide's `razn.tissue.TissueMask`, so do the label
        pixels of a tissue tile whose centre the mask calls glass.
        """
        rows, cols, nr, nc = self.grid.label_slices(result.row, result.col)
        tile = result.labels[:nr, :nc]
        if not getattr(result, "tissue", True):
            tile = np.zeros_like(tile)
        elif tissue is not None:
            tile = np.where(self._tissue_in(tissue, rows, cols), tile, 0).astype(tile.dtype)
        self.predictions[rows, cols] = tile
        keep = self.corrected[rows, cols]
        self.labels[rows, cols] = np.where(keep, self.labels[rows, cols], tile)
        self.zoom_p[result.row, result.col] = result.zoom_p
        self.zoomed[result.row, result.col] = result.zoomed
        self.done[result.row, result.col] = True
        return rows, cols

    def _tissue_in(self, tissue, rows: slice, cols: slice) -> np.ndarray:
        """Whether each label pixel of a region has its centre on tissue."""
        from razn.inference.tiling import on_tissue

        return on_tissue(tissue, self.grid.downsample, rows, cols)

    def mark_corrected(self, indices) -> None:
        """Record pixels the pathologist painted (napari paint-event indices)."""
        self.corrected[indices] = True

    @property
    def corrected_fraction(self) -> float:
        """Share of the segmented label pixels the pathologist has corrected."""
        segmented = self.labels > 0
        return float(self.corrected[segmented].mean()) if segmented.any() else 0.0

    def class_areas_mm2(self, classes) -> dict[str, float]:
        """Area of each class as the labels show it now (nothing without an mpp)."""
        if not self.mpp:
            return {}
        counts = np.bincount(self.labels.ravel(), minlength=len(classes) + 1)
        return class_areas_mm2(counts, classes, self.grid.downsample, self.mpp)

    # -- what to do next -------------------------------------------------------
    def tiles_for_view(
        self, region: tuple[float, float, float, float], margin: float = 0.0
    ) -> list[tuple[int, int]]:
        """Undone tiles in a level-0 region (x, y, w, h), nearest its centre first.

        margin : then the tiles of a border this fraction of the region's size
            wide on each side (what the next pan will show), nearest first too.
        """
        x, y, w, h = region
        cx, cy = x + w / 2, y + h / 2
        t = self.grid.tile_size

        def nearest_first(tiles):
            todo = [tile for tile in tiles if not self.done[tile]]
            return sorted(
                todo, key=lambda rc: math.hypot((rc[1] + 0.5) * t - cx, (rc[0] + 0.5) * t - cy)
            )

        visible = nearest_first(self.grid.tiles_in(region))
        if margin <= 0:
            return visible
        wider = (x - margin * w, y - margin * h, w * (1 + 2 * margin), h * (1 + 2 * margin))
        seen = set(self.grid.tiles_in(region))
        return visible + nearest_first(t for t in self.grid.tiles_in(wider) if t not in seen)

    def copy(self) -> SegmentationSession:
        """An independent copy (to save in a thread while painting goes on)."""
        twin = SegmentationSession(self.slide_path, self.grid, self.mpp, self.settings)
        twin.made_by = dict(self.made_by)
        for name in ARRAYS:
            setattr(twin, name, getattr(self, name).copy())
        return twin

    # -- saving ---------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "slide": self.slide_path,
            "mpp": self.mpp,
            "grid": {
                "slide_shape": list(self.grid.slide_shape),
                "tile_size": self.grid.tile_size,
                "downsample": self.grid.downsample,
                "patch_size": self.grid.patch_size,
            },
            "settings": self.settings,
            "made_by": self.made_by,
        }
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            arrays = {name: getattr(self, name) for name in ARRAYS}
            np.savez_compressed(fh, meta=np.array(json.dumps(meta)), **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> SegmentationSession:
        from razn.inference.tiling import TileGrid

        path = Path(path)
        try:
            # Our own handle: np.load leaves a file open when the zip is bad.
            with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if meta.get("format") != FORMAT:
                    raise ValueError("not a RAZN session")
                g = meta["grid"]
                grid = TileGrid(
                    tuple(g["slide_shape"]), g["tile_size"], g["downsample"], g["patch_size"]
                )
                session = cls(meta["slide"], grid, meta["mpp"], meta["settings"])
                session.made_by = dict(meta.get("made_by") or {})
                for name in ARRAYS:
                    array = data[name]
                    expected = getattr(session, name)
                    if array.shape != expected.shape:
                        raise ValueError(f"{name} has shape {array.shape}, not {expected.shape}")
                    setattr(session, name, array.astype(expected.dtype))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            raise RaznError(f"cannot restore the session: {error}", path) from None
        return session


def _mpp_path(slide_path) -> Path:
    session = default_session_path(slide_path)
    return session.with_name(session.name.replace(".razn-session.npz", ".mpp.json"))


def remember_mpp(slide_path, mpp: float) -> Path:
    """Keep a pixel size the user set for a slide that does not record one."""
    path = _mpp_path(slide_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps({"slide": str(Path(slide_path).resolve()), "mpp": mpp}))
    return path


def remembered_mpp(slide_path) -> float | None:
    """The pixel size the user set for this slide before, if any (None if unreadable)."""
    try:
        value = json.loads(_mpp_path(slide_path).read_text())["mpp"]
        return float(value) if float(value) > 0 else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
