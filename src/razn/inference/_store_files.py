"""How a segmentation store comes into being, is locked, replaced, repaired and converted.

`razn.inference.store` reads and writes a store's results; this module
owns its life on disk: the one-writer lock (`StoreLock`), building a store
under a unique temporary name and renaming it into place (`build`,
`create`), replacing a whole store (`swap_in`, and `recover` after a
kill between its two renames), and, under the lock, rebuilding a store an
older version's race left without attributes, or converting an old flat
`razn-segmentation/1` store (`repair_or_migrate`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import uuid
from pathlib import Path

import numpy as np
import zarr

from razn.errors import RaznError
from razn.inference.tiling import TileGrid
from razn.label_grid import label_grid_metadata
from razn.label_grid._ngff import (
    CLASSES_PATH,
    LEGACY_FORMAT,
    STORE_FORMAT,
    ZOOM_P_PATH,
    ZOOMED_PATH,
    create_layout,
    update_pyramid,
)

FORMAT = STORE_FORMAT
CHUNK = 1024


class StoreError(RaznError):
    """A segmentation store cannot be created, resumed or read."""


class StoreBusy(StoreError):
    """Another process is writing the store."""


class StoreLock:
    """`.<store>.lock` beside a store, held with `flock` by the one process writing it."""

    def __init__(self, path: Path):
        self.store = path
        self.path = path.with_name(f".{path.name}.lock")
        self.fd: int | None = None

    def acquire(self) -> StoreLock:
        try:
            import fcntl
        except ImportError:  # Windows: no flock; one writer is the user's care there
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise StoreBusy(
                    f"another run is writing it ({holder}); wait for it to finish, or write "
                    "elsewhere",
                    self.store,
                ) from None
            # Its last holder may have removed the file between our open and
            # our lock: then we hold a lock on a name nobody else sees.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.fd = fd
        with contextlib.suppress(OSError):  # who holds it is a courtesy (a full disk)
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # while still held, so no one locks the old file
        os.close(self.fd)
        self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def open_group(path: Path, mode: str):
    if not path.exists():
        raise StoreError("no such store", path)
    try:
        return zarr.open_group(str(path), mode=mode)
    except Exception as error:  # zarr raises several kinds for "not a group"
        raise StoreError(f"not a segmentation store ({error})", path) from None


def store_format(group) -> str | None:
    razn = group.get("razn")
    if razn is not None and razn.attrs.get("format"):
        return razn.attrs["format"]
    return group.attrs.get("format")


def create(path: Path, grid: TileGrid, classes, settings: dict, fill=None) -> None:
    """Build the empty store under a unique temporary name, then rename it into place.

    `os.rename` of a folder onto a folder that is not empty fails, so of two
    processes that both got here (without the lock: another host on a share
    without flock) one wins and the other's copy is removed, never theirs.
    """
    tmp = temporary_name(path, "creating")
    try:
        build(tmp, grid, classes, settings, fill)
        try:
            os.rename(tmp, path)
        except OSError:
            if not path.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def temporary_name(path: Path, why: str) -> Path:
    """A hidden name beside `path`, unique to this process and call."""
    return path.with_name(f".{path.name}.{why}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def build(folder: Path, grid: TileGrid, classes, settings: dict, fill=None) -> None:
    """Write a complete store at `folder`: layout, then `fill(group)`, then the attributes."""
    group = zarr.open_group(str(folder), mode="w", zarr_format=3)
    tiles = (grid.rows, grid.cols)
    create_layout(
        group, label_shape=grid.label_shape, tiles=tiles, downsample=grid.downsample,
        tile_size=grid.tile_size, mpp=settings["mpp"], classes=classes, chunk=CHUNK,
    )  # fmt: skip
    razn = group.create_group("razn")
    chunk = tuple(min(CHUNK, n) for n in grid.label_shape)
    razn.create_array("done", shape=tiles, dtype="bool", fill_value=False)
    razn.create_array("tissue", shape=tiles, dtype="bool", fill_value=False)
    razn.create_array(
        "corrected", shape=grid.label_shape, chunks=chunk, dtype="bool", fill_value=False
    )
    razn.create_array(
        "predictions", shape=grid.label_shape, chunks=chunk, dtype="uint8", fill_value=0
    )
    if fill is not None:
        fill(group)
    razn.attrs.update(settings)  # last: a store with attributes is whole


def swap_in(new: Path, path: Path) -> None:
    """Put the complete store `new` in place of `path` (which may not exist).

    Two renames: the old store aside, the new one in. A process killed in
    between leaves the old one aside, which `recover` puts back.
    """
    aside = temporary_name(path, "replaced")
    if path.exists():
        os.rename(path, aside)
    os.rename(new, path)
    shutil.rmtree(aside, ignore_errors=True)


def recover(path: Path) -> None:
    """If a kill between `swap_in`'s renames left no store, put the old one back."""
    if path.exists():
        return
    aside = sorted(path.parent.glob(f".{path.name}.replaced-*"), key=lambda p: p.stat().st_mtime)
    if aside:
        os.rename(aside[-1], path)


def repair_or_migrate(path: Path, settings: dict) -> None:
    """Under the lock: rebuild a store left broken with nothing done; convert an old one."""
    if not path.exists():
        return
    if not path.is_dir():
        raise StoreError(
            "exists and is not a segmentation store; move it or write elsewhere", path
        )
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception:  # noqa: BLE001 - an empty or half-made folder
        group = None
    fmt = store_format(group) if group is not None else None
    if fmt == FORMAT:
        return
    if fmt == LEGACY_FORMAT:
        _migrate(path, group, settings)
        return
    done = _any_done(group)
    if done:
        raise StoreError(
            "its attributes are missing but it holds finished tiles; move it aside and run "
            "again to start afresh",
            path,
        )
    if not _only_zarr_files(path):
        raise StoreError(
            "exists and is not a segmentation store; move it or write elsewhere", path
        )
    _remove_aside(path)  # nothing finished in it: rebuilt below


def _any_done(group) -> bool:
    if group is None:
        return False
    for name in ("razn/done", "done"):
        with contextlib.suppress(Exception):
            if np.asarray(group[name][...]).any():
                return True
    return False


def _only_zarr_files(path: Path) -> bool:
    """Whether a folder holds nothing but zarr metadata and chunks (safe to remove)."""
    meta = {"zarr.json", ".zgroup", ".zattrs", ".zarray", ".zmetadata"}
    for _root, _dirs, files in os.walk(path):
        for name in files:
            if name not in meta and not name.replace(".", "").isdigit():
                return False
    return True


def _remove_aside(path: Path) -> None:
    aside = path.with_name(f".{path.name}.removed-{uuid.uuid4().hex[:8]}")
    os.rename(path, aside)
    shutil.rmtree(aside, ignore_errors=True)


def _migrate(path: Path, old, settings: dict) -> None:
    """Convert a `razn-segmentation/1` store to this layout, keeping its results.

    The old store is moved aside first and removed only once the new one is
    in place; a failure puts it back.
    """
    from razn.classes import DEFAULT_CLASSES
    from razn.label_grid._files import _grid

    attrs = dict(old.attrs)
    grid = TileGrid(
        tuple(attrs["slide_shape"]), attrs["tile_size"], attrs["downsample"], attrs["patch_size"]
    )
    label_attrs = dict(old["labels"].attrs)
    classes = _grid(None, label_attrs, path).classes if label_attrs else DEFAULT_CLASSES
    meta = dict(settings)
    meta.update({k: attrs[k] for k in ("slide", "mpp", "threshold", "model") if k in attrs})
    meta["label_grid"] = label_grid_metadata(
        grid.downsample, grid.slide_shape, attrs.get("mpp"), classes
    )
    meta["migrated_from"] = LEGACY_FORMAT
    aside = path.with_name(f".{path.name}.v1-{uuid.uuid4().hex[:8]}")
    os.rename(path, aside)
    old = zarr.open_group(str(aside), mode="r")

    def fill(group):
        labels, target = old["labels"], group[f"{CLASSES_PATH}/0"]
        for r0 in range(0, labels.shape[0], CHUNK):
            target[r0 : r0 + CHUNK] = labels[r0 : r0 + CHUNK]
        update_pyramid(group[CLASSES_PATH])
        group[ZOOM_P_PATH][...] = old["zoom_p"][...]
        group[f"{ZOOMED_PATH}/0"][...] = old["zoomed"][...]
        group["razn/tissue"][...] = old["tissue"][...]
        group["razn/done"][...] = old["done"][...]

    try:
        create(path, grid, classes, meta, fill=fill)
    except BaseException:
        if not path.exists():
            os.rename(aside, path)
        raise
    shutil.rmtree(aside, ignore_errors=True)
