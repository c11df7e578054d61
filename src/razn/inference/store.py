"""The segmentation store, `<stem>.razn.zarr`: results written as tiles finish.

An OME-NGFF 0.5 zarr group (layout in `razn.label_grid._ngff`): the label
grid as the NGFF label image `labels/classes` (a pyramid), the zoom
decisions as the label image `labels/zoomed`, the policy's p per tile as
the root image `zoom_p`, and RAZN's bookkeeping under `razn/`: `done` and
`tissue` per tile, `corrected` and `predictions` per label pixel (where
the pathologist painted, and what the model said there), and in its
attributes the settings (threshold, tile grid, mpp and its source), the
model's identity (configuration, checkpoint, hash) and the code version.

A batch's labels and heatmap are written before its `done` flags, so a run
killed at any point resumes at the first unfinished tile, and the result
equals an uninterrupted run's. A store made with other settings is never
mixed with new results: resuming it is refused.

One writer at a time: a run holds `.<name>.lock` beside the store (an
`flock`, which the system drops when the process dies, even by SIGKILL)
from before it looks at the store until it is done. A second run started
at the same instant is refused in one line. The store is built under a
unique temporary name and renamed into place, so it is complete in
structure whenever it exists; a store left without attributes (by an
older version's race) and with no finished tile is rebuilt, one with
finished tiles is named with what to do. An old flat store
(`razn-segmentation/1`) is converted in place on resume.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from razn.inference._store_files import (  # noqa: F401 (re-exported)
    FORMAT,
    StoreBusy,
    StoreError,
    StoreLock,
    build,
    create,
    open_group,
    recover,
    repair_or_migrate,
    store_format,
    swap_in,
    temporary_name,
)
from razn.inference.tiling import TileGrid
from razn.label_grid import label_grid_metadata
from razn.label_grid._ngff import (
    CLASSES_PATH,
    LEGACY_FORMAT,
    ZOOM_P_PATH,
    ZOOMED_PATH,
    update_pyramid,
)

#: Settings that must match for a run to resume a store.
_MUST_MATCH = ("slide_shape", "threshold", "tile_size", "downsample", "model")


def model_identity(model) -> dict:
    """What makes two runs' results comparable: configuration and weights.

    Hashing a paper-sized checkpoint takes a tenth of a second, and the
    plugin asks on every view change: the answer is kept on the model, for
    its checkpoint file (a fine-tuned copy, or the copy once saved, has
    another file, or none, and is hashed afresh).
    """
    path = getattr(model, "checkpoint_path", None)
    cached = getattr(model, "_razn_identity", None)
    if path is not None and cached is not None and cached[0] == path:
        return cached[1]
    identity = _identity(model)
    if path is not None:
        model._razn_identity = (path, identity)
    return identity


def _identity(model) -> dict:
    path = getattr(model, "checkpoint_path", None)
    h = hashlib.sha256()
    if path is not None:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(2**20), b""):
                h.update(block)
    else:  # an unsaved model: hash its weights
        for name, tensor in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().numpy().tobytes())
    return {
        "config": model.config.to_dict(),
        "checkpoint": None if path is None else str(path),
        "sha256": h.hexdigest(),
    }


def store_settings(slide, model, grid: TileGrid, threshold: float) -> dict:
    """The `razn/` attributes of a store for this slide, model, grid and threshold."""
    from razn import __version__

    classes = model.config.classes
    return {
        "format": FORMAT,
        "slide": str(slide.path),
        "slide_shape": list(slide.shape),
        "mpp": slide.mpp,
        "mpp_source": getattr(slide, "mpp_source", None),
        "threshold": threshold,
        "tile_size": grid.tile_size,
        "downsample": grid.downsample,
        "patch_size": grid.patch_size,
        "model": model_identity(model),
        "code_version": __version__,
        "label_grid": label_grid_metadata(grid.downsample, slide.shape, slide.mpp, classes),
    }


class SegmentationStore:
    """An open store; `close` it (or use it as a context manager) to release its lock."""

    def __init__(self, path: Path, group, lock: StoreLock | None = None):
        self.path = path
        self.group = group
        self.lock = lock
        self.razn = group["razn"]
        self.labels = group[f"{CLASSES_PATH}/0"]
        self.zoom_p = group[ZOOM_P_PATH]
        self.zoomed = group[f"{ZOOMED_PATH}/0"]
        self.tissue = self.razn["tissue"]
        self.done = self.razn["done"]
        self.corrected = self.razn["corrected"]
        self.predictions = self.razn["predictions"]
        self._done = np.asarray(self.done[...])
        self._has_corrections = bool(self.razn.attrs.get("corrected_pixels", 0))

    # -- creating and opening ---------------------------------------------
    @classmethod
    def create_or_resume(
        cls, path: str | os.PathLike, slide, model, grid: TileGrid, threshold: float
    ) -> SegmentationStore:
        """Lock `path`, then resume it if its settings match, else create it."""
        path = Path(path)
        if not path.parent.is_dir():
            raise StoreError("its folder does not exist", path)
        settings = store_settings(slide, model, grid, threshold)
        lock = StoreLock(path).acquire()
        try:
            recover(path)
            repair_or_migrate(path, settings)
            if not path.exists():
                create(path, grid, model.config.classes, settings)
            store = cls.open(path, lock=lock)
            old = store.settings
            for key in _MUST_MATCH:
                if _comparable(key, old.get(key)) != _comparable(key, settings[key]):
                    raise StoreError(
                        f"made with other settings ({key} differs); remove it or write "
                        "elsewhere to start again",
                        path,
                    )
            return store
        except BaseException:
            lock.release()
            raise

    @classmethod
    def open(
        cls, path: str | os.PathLike, *, lock: StoreLock | None = None, mode: str = "r+"
    ) -> SegmentationStore:
        path = Path(path)
        group = open_group(path, mode)
        fmt = store_format(group)
        if fmt == LEGACY_FORMAT:
            raise StoreError(
                "an old-format store (razn-segmentation/1); `razn segment` on it converts it, "
                "`razn export` reads it as it is",
                path,
            )
        if fmt != FORMAT:
            raise StoreError("not a RAZN segmentation store (no razn/ attributes)", path)
        return cls(path, group, lock)

    def close(self) -> None:
        """Release the store's lock (a store opened to read holds none)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- writing ------------------------------------------------------------
    def write(self, results, grid: TileGrid) -> None:
        """Write finished tiles; their `done` flags last.

        Where the pathologist corrected the labels (a store the panel
        saved), a new prediction goes to `razn/predictions` only.
        """
        if not results:
            return
        # One read-modify-write per band of chunk rows, not one per tile: a
        # zarr write of a tile rewrites its whole (compressed) chunk.
        bands: dict[int, list] = {}
        for r in results:
            rows, cols, nr, nc = grid.label_slices(r.row, r.col)
            band = rows.start // self.labels.chunks[0]
            bands.setdefault(band, []).append((rows, cols, r.labels[:nr, :nc]))
        for parts in bands.values():
            r0, r1 = min(p[0].start for p in parts), max(p[0].stop for p in parts)
            c0, c1 = min(p[1].start for p in parts), max(p[1].stop for p in parts)
            region = np.asarray(self.labels[r0:r1, c0:c1])
            new = region.copy()
            for rows, cols, labels in parts:
                new[rows.start - r0 : rows.stop - r0, cols.start - c0 : cols.stop - c0] = labels
            if self._has_corrections:
                kept = np.asarray(self.corrected[r0:r1, c0:c1])
                predictions = np.asarray(self.predictions[r0:r1, c0:c1])
                self.predictions[r0:r1, c0:c1] = np.where(kept, new, predictions)
                new = np.where(kept, region, new)
            self.labels[r0:r1, c0:c1] = new
        index = (np.array([r.row for r in results]), np.array([r.col for r in results]))
        # The tile-grid arrays are small (one value a tile): rewrite them whole.
        for array, values in (
            (self.zoom_p, np.array([r.zoom_p for r in results], np.float32)),
            (self.zoomed, np.array([r.zoomed for r in results], np.uint8)),
            (self.tissue, np.array([r.tissue for r in results], bool)),
        ):
            whole = np.asarray(array[...])
            whole[index] = values
            array[...] = whole
        self._done[index] = True
        self.done[...] = self._done

    def finish(self) -> None:
        """Bring the label image's coarser levels up to date with level 0."""
        update_pyramid(self.group[CLASSES_PATH])

    # -- reading ------------------------------------------------------------
    def done_tiles(self) -> set[tuple[int, int]]:
        rows, cols = np.nonzero(self._done)
        return set(zip(rows.tolist(), cols.tolist(), strict=True))

    @property
    def settings(self) -> dict:
        return dict(self.razn.attrs)

    def summary(self) -> dict:
        done = self._done
        tissue = done & np.asarray(self.tissue[...])
        zoomed = tissue & np.asarray(self.zoomed[...]).astype(bool)
        return {
            "tiles": int(done.sum()),
            "tissue_tiles": int(tissue.sum()),
            "zoomed_tiles": int(zoomed.sum()),
            "zoom_fraction": float(zoomed.sum() / tissue.sum()) if tissue.any() else 0.0,
        }


def _comparable(key: str, value):
    """The model is the same when its weights are: the panel records no configuration."""
    if key == "model" and isinstance(value, dict):
        return value.get("sha256")
    return value
