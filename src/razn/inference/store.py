"""The segmentation store, `<stem>.razn.zarr`: results written as tiles finish.

A zarr group with
- `labels`: the label grid (uint8, class values, 0 not yet segmented),
  carrying the label-grid attributes `razn.label_tiff` reads, so
  `razn export` takes it as it takes a label-grid TIFF;
- `zoom_p`: the policy's p per tile (float32, NaN for glass or not done);
- `zoomed`: 1 where the tile was zoomed into, 0 where not;
- `tissue`: which tiles held tissue (the others are glass no net saw);
- `done`: which tiles are finished;
and in the group's attributes the settings (threshold, tile grid) and the
model's identity (configuration, checkpoint hash). A batch's labels and
heatmap are written before its `done` flags, so a run killed at any point
resumes at the first unfinished tile, and the result equals an
uninterrupted run's. A store made with other settings is never mixed with
new results: resuming it is refused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import zarr

from razn.errors import RaznError
from razn.inference.tiling import TileGrid
from razn.label_tiff import label_grid_metadata

FORMAT = "razn-segmentation/1"
_CHUNK = 1024


class StoreError(RaznError):
    """A segmentation store cannot be created, resumed or read."""


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
    digest = None
    if path is not None:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(2**20), b""):
                h.update(block)
        digest = h.hexdigest()
    else:  # an unsaved model: hash its weights
        h = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().numpy().tobytes())
        digest = h.hexdigest()
    return {
        "config": model.config.to_dict(),
        "checkpoint": None if path is None else str(path),
        "sha256": digest,
    }


class SegmentationStore:
    def __init__(self, path: Path, group):
        self.path = path
        self.group = group
        self.labels = group["labels"]
        self.zoom_p = group["zoom_p"]
        self.zoomed = group["zoomed"]
        self.tissue = group["tissue"]
        self.done = group["done"]
        self._done = np.asarray(self.done[...])

    # -- creating and opening ---------------------------------------------
    @classmethod
    def create_or_resume(
        cls, path: str | os.PathLike, slide, model, grid: TileGrid, threshold: float
    ) -> SegmentationStore:
        """Open `path` to resume it if its settings match, else create it."""
        path = Path(path)
        settings = {
            "format": FORMAT,
            "slide": str(slide.path),
            "slide_shape": list(slide.shape),
            "mpp": slide.mpp,
            "threshold": threshold,
            "tile_size": grid.tile_size,
            "downsample": grid.downsample,
            "patch_size": grid.patch_size,
            "model": model_identity(model),
        }
        if path.exists():
            store = cls.open(path)
            old = dict(store.group.attrs)
            for key in ("slide_shape", "threshold", "tile_size", "downsample", "model"):
                if old.get(key) != settings[key]:
                    raise StoreError(
                        f"made with other settings ({key} differs); remove it or write "
                        "elsewhere to start again",
                        path,
                    )
            return store
        return cls._create(path, slide, model, grid, settings)

    @classmethod
    def _create(cls, path: Path, slide, model, grid: TileGrid, settings: dict):
        if not path.parent.is_dir():
            raise StoreError("its folder does not exist", path)
        # Build the empty store under a temporary name, then rename it into
        # place: a store that exists is always complete in structure.
        tmp = path.with_name(f".{path.name}.creating")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            group = zarr.open_group(str(tmp), mode="w")
            group.attrs.update(settings)
            chunk = (min(_CHUNK, grid.label_shape[0]), min(_CHUNK, grid.label_shape[1]))
            labels = group.create_array(
                "labels", shape=grid.label_shape, chunks=chunk, dtype="uint8", fill_value=0
            )
            labels.attrs.update(
                label_grid_metadata(grid.downsample, slide.shape, slide.mpp, model.config.classes)
            )
            tiles = (grid.rows, grid.cols)
            group.create_array("zoom_p", shape=tiles, dtype="float32", fill_value=np.nan)
            group.create_array("zoomed", shape=tiles, dtype="uint8", fill_value=0)
            group.create_array("tissue", shape=tiles, dtype="bool", fill_value=False)
            group.create_array("done", shape=tiles, dtype="bool", fill_value=False)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls.open(path)

    @classmethod
    def open(cls, path: str | os.PathLike) -> SegmentationStore:
        path = Path(path)
        try:
            group = zarr.open_group(str(path), mode="r+")
        except Exception as error:  # zarr raises several kinds for "not a group"
            raise StoreError(f"not a segmentation store ({error})", path) from None
        if group.attrs.get("format") != FORMAT:
            raise StoreError("not a RAZN segmentation store", path)
        return cls(path, group)

    # -- writing ------------------------------------------------------------
    def write(self, results, grid: TileGrid) -> None:
        """Write finished tiles; their `done` flags last."""
        if not results:
            return
        # One read-modify-write per band of chunk rows, not one per tile: a
        # zarr write of a tile rewrites its whole (compressed) chunk, so
        # tile by tile a batch rewrote each chunk once per tile in it, and
        # the store took as long as the nets.
        bands: dict[int, list] = {}
        for r in results:
            rows, cols, nr, nc = grid.label_slices(r.row, r.col)
            band = rows.start // self.labels.chunks[0]
            bands.setdefault(band, []).append((rows, cols, r.labels[:nr, :nc]))
        for parts in bands.values():
            r0, r1 = min(p[0].start for p in parts), max(p[0].stop for p in parts)
            c0, c1 = min(p[1].start for p in parts), max(p[1].stop for p in parts)
            region = np.asarray(self.labels[r0:r1, c0:c1])
            for rows, cols, labels in parts:
                region[rows.start - r0 : rows.stop - r0, cols.start - c0 : cols.stop - c0] = labels
            self.labels[r0:r1, c0:c1] = region
        index = (np.array([r.row for r in results]), np.array([r.col for r in results]))
        p = np.array([r.zoom_p for r in results], np.float32)
        # The tile-grid arrays are small (one value a tile): rewrite them whole.
        for array, values in (
            (self.zoom_p, p),
            (self.zoomed, np.array([r.zoomed for r in results], np.uint8)),
            (self.tissue, np.array([r.tissue for r in results], bool)),
        ):
            whole = np.asarray(array[...])
            whole[index] = values
            array[...] = whole
        self._done[index] = True
        self.done[...] = self._done

    # -- reading ------------------------------------------------------------
    def done_tiles(self) -> set[tuple[int, int]]:
        rows, cols = np.nonzero(self._done)
        return set(zip(rows.tolist(), cols.tolist(), strict=True))

    @property
    def settings(self) -> dict:
        return dict(self.group.attrs)

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
