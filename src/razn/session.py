"""A pathologist's work on one slide: predictions, corrections and settings.

The plugin shows `labels`: the model's predictions, except where the
pathologist has painted, which `corrected` remembers. Segmenting again
updates `predictions` everywhere but `labels` only where nothing was
corrected, so a correction is never overwritten. Tiles already done with
the same model and threshold are reused; changing either starts the done
set afresh while the old results stay on screen until replaced.

`save` writes everything as a segmentation store (`<slide>.razn.zarr`,
`razn.inference.store`: the format `razn segment` writes, so a store
segmented on a cluster opens in the panel and the panel's work exports
and trains like a CLI result). A save builds a whole new store under a
temporary name and swaps it in, under the store's lock, so a crash or a
kill mid-save leaves the previous session intact; `load` restores it.
Sessions saved by earlier versions as `.razn-session.npz` still load, and
their next save writes the store and removes the `.npz`. This module is
Qt-free, so the session logic is tested without a display.
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

#: The format of the `.npz` sessions of earlier versions (read, never written).
FORMAT = "razn-session/1"
STORE_SUFFIX = ".razn.zarr"
#: The arrays a session saves, restores and snapshots.
ARRAYS = ("labels", "predictions", "corrected", "zoom_p", "zoomed", "done", "tissue")
#: slide path (resolved) -> the store it was opened from (`use_store`).
_OPENED_STORES: dict[str, Path] = {}


def use_store(slide_path: str | os.PathLike, store: str | os.PathLike) -> None:
    """Keep this slide's session in `store` (napari opened the slide from it)."""
    _OPENED_STORES[str(Path(slide_path).resolve())] = Path(store).resolve()


def default_session_path(slide_path: str | os.PathLike) -> Path:
    """Where a slide's session lives: a segmentation store.

    The store the slide was opened from (`napari results/x.razn.zarr`), or
    one `razn segment` left beside the slide, when its folder is writable;
    else a per-user folder (slides often sit on read-only shares), keyed by
    the slide's path; `NAPARI_RAZN_SESSIONS` chooses that folder. While
    only an earlier version's `.razn-session.npz` exists, that file (it
    loads, and its next save becomes the store).
    """
    from razn.session_store import is_writable_folder

    slide_path = Path(slide_path).resolve()
    beside = slide_path.with_name(_stem(slide_path.name) + STORE_SUFFIX)
    for store in (_OPENED_STORES.get(str(slide_path)), beside):
        if store is not None and store.exists() and is_writable_folder(store.parent):
            return store
    root = os.environ.get("NAPARI_RAZN_SESSIONS")
    if not root:
        from platformdirs import user_data_dir

        root = os.path.join(user_data_dir("napari-razn", appauthor=False), "sessions")
    key = hashlib.sha1(str(slide_path).encode()).hexdigest()[:12]
    store = Path(root) / f"{slide_path.name}.{key}{STORE_SUFFIX}"
    legacy = _legacy_path(store)
    if not store.exists() and legacy.is_file():
        return legacy
    return store


def _legacy_path(store: Path) -> Path:
    return store.with_name(store.name[: -len(STORE_SUFFIX)] + ".razn-session.npz")


def _stem(name: str) -> str:
    for suffix in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


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
        #: Which done tiles held tissue (the others are glass no net saw).
        self.tissue = np.zeros(tiles, bool)
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
        self.tissue[result.row, result.col] = getattr(result, "tissue", True)
        self.done[result.row, result.col] = True
        return rows, cols

    def _tissue_in(self, tissue, rows: slice, cols: slice) -> np.ndarray:
        """Whether each label pixel of a region has its centre on tissue."""
        from razn.inference.tiling import on_tissue

        return on_tissue(tissue, self.grid.downsample, rows, cols)

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
        """Save as a segmentation store at `path` (an old `.npz` path: the store beside it).

        Returns the store's path. Refused (`razn.inference.store.StoreBusy`)
        while `razn segment` is writing that store.
        """
        from razn.session_store import save_session

        path = Path(path)
        if path.name.endswith(".razn-session.npz"):
            legacy, path = (
                path,
                path.with_name(path.name[: -len(".razn-session.npz")] + STORE_SUFFIX),
            )
        else:
            legacy = None
        save_session(self, path)
        if legacy is not None:
            legacy.unlink(missing_ok=True)  # migrated
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> SegmentationSession:
        """Restore a session from a segmentation store (or an earlier version's `.npz`)."""
        path = Path(path)
        if path.is_dir() or path.name.endswith(STORE_SUFFIX):
            from razn.session_store import load_session

            return load_session(cls, path)
        return cls._load_npz(path)

    @classmethod
    def _load_npz(cls, path: Path) -> SegmentationSession:
        from razn.inference.tiling import TileGrid

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
                    if name not in data and name == "tissue":  # not kept before: all tissue
                        session.tissue = session.done.copy()
                        continue
                    array = data[name]
                    expected = getattr(session, name)
                    if array.shape != expected.shape:
                        raise ValueError(f"{name} has shape {array.shape}, not {expected.shape}")
                    setattr(session, name, array.astype(expected.dtype))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            raise RaznError(f"cannot restore the session: {error}", path) from None
        return session


def _mpp_path(slide_path) -> Path:
    root = os.environ.get("NAPARI_RAZN_SESSIONS")
    if not root:
        from platformdirs import user_data_dir

        root = os.path.join(user_data_dir("napari-razn", appauthor=False), "sessions")
    slide_path = Path(slide_path).resolve()
    key = hashlib.sha1(str(slide_path).encode()).hexdigest()[:12]
    return Path(root) / f"{slide_path.name}.{key}.mpp.json"


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
