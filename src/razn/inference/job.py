"""One slide, start to finish: engine -> store -> GeoJSON and overview picture.

`segment_slide` is what `razn segment` runs for each slide, in this process
or as a task on a dask worker (`razn.inference.cluster`). It resumes an
interrupted store, reports progress through a callback, and returns the
one-line summary as a dict.
"""

from __future__ import annotations

import contextlib
import glob
import time
from pathlib import Path

import numpy as np

from razn.annotations.export import BAND_ROWS, export_geojson
from razn.areas import class_areas_mm2

#: Tiles a store write covers: often enough to lose little on a crash.
WRITE_EVERY = 32


def output_paths(slide_path: str | Path, out_dir: str | Path) -> dict[str, Path]:
    stem = Path(slide_path).name
    for suffix in (".ome.tiff", ".ome.tif"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    else:
        stem = Path(stem).stem
    out = Path(out_dir)
    return {
        "store": out / f"{stem}.razn.zarr",
        "geojson": out / f"{stem}.geojson",
        "overview": out / f"{stem}.overview.png",
    }


class _BackgroundWriter:
    """Store writes on a thread of their own, one at a time, in order.

    A write (read, recompress and rewrite a band of label chunks, then the
    tile arrays) takes about as long as a batch of the small nets on a CPU;
    on its own thread it overlaps the next batches instead of adding to
    them. At most one write waits behind the one running, so results never
    pile up in memory. Leaving the block waits for every write, also when
    the run stops with an error, so what was finished is on disk for a
    resume; a failed write is raised there.
    """

    def __init__(self, store, grid):
        from concurrent.futures import ThreadPoolExecutor

        self.store, self.grid = store, grid
        self.executor = ThreadPoolExecutor(1, "razn-store")
        self.waiting = None

    def write(self, results) -> None:
        if not results:
            return
        if self.waiting is not None:
            self.waiting.result()  # backpressure, and a failed write surfaces here
        self.waiting = self.executor.submit(self.store.write, list(results), self.grid)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.executor.shutdown(wait=True)
        if self.waiting is not None and exc[0] is None:
            self.waiting.result()


def segment_slide(
    slide_path,
    model,
    out_dir,
    *,
    threshold: float = 0.5,
    mpp: float | None = None,
    batch_size: int = 8,
    device: str = "auto",
    read_threads: int = 2,
    progress=None,
) -> dict:
    """Segment one slide into `out_dir`; returns its summary.

    progress(done, total, zoomed) is called as tiles finish.
    """
    from razn.inference.store import SegmentationStore
    from razn.inference.tiling import tile_grid
    from razn.slide import open_slide

    paths = output_paths(slide_path, out_dir)
    with open_slide(slide_path, mpp=mpp) as slide:
        grid = tile_grid(slide, model.config)
        store = SegmentationStore.create_or_resume(paths["store"], slide, model, grid, threshold)
        with store:  # holds the store's lock until the outputs are written
            summary, counts, seconds = _run(
                slide, model, grid, store, paths, threshold, batch_size, device, read_threads,
                progress,
            )  # fmt: skip
    areas = class_areas_mm2(counts, model.config.classes, grid.downsample, slide.mpp)
    return {
        "slide": str(slide_path),
        **summary,
        "seconds": round(seconds, 3),
        "class_area_mm2": {name: round(mm2, 4) for name, mm2 in areas.items()},
        "outputs": {k: str(v) for k, v in paths.items()},
    }


def _run(slide, model, grid, store, paths, threshold, batch_size, device, read_threads, progress):
    from razn.inference.engine import segment

    done = store.done_tiles()
    total = grid.rows * grid.cols
    zoomed = store.summary()["zoomed_tiles"]
    finished = len(done)
    if progress:
        progress(finished, total, zoomed)
    start = time.perf_counter()
    pending = []
    with _BackgroundWriter(store, grid) as writer:
        for result in segment(
            slide,
            model,
            threshold=threshold,
            skip=done,
            batch_size=batch_size,
            device=device,
            read_threads=read_threads,
        ):
            pending.append(result)
            finished += 1
            zoomed += result.zoomed
            if len(pending) >= WRITE_EVERY:
                writer.write(pending)
                pending = []
            if progress:
                progress(finished, total, zoomed)
        writer.write(pending)
    seconds = time.perf_counter() - start
    store.finish()
    summary = store.summary()
    classes = model.config.classes
    # The label grid is read a band at a time, never whole: an 80k x
    # 60k slide's grid is 75 MB. Glass is 0, so the areas are tissue's.
    counts = np.zeros(len(classes) + 1, np.int64)
    rows = grid.label_shape[0]
    for r0 in range(0, rows, BAND_ROWS):
        band = np.asarray(store.labels[r0 : r0 + BAND_ROWS])
        counts += np.bincount(band.ravel(), minlength=len(classes) + 1)[: len(classes) + 1]
    remove_litter(paths)
    write_geojson_for(store.labels, grid, slide.mpp, classes, paths["geojson"])
    from razn.atomic import atomic_path
    from razn.overview import render_segmentation_overview

    step = max(1, max(grid.label_shape) // 2048)  # enough for a 1024-pixel picture
    with atomic_path(paths["overview"]) as tmp:
        render_segmentation_overview(
            slide, np.asarray(store.labels[::step, ::step]), np.asarray(store.zoomed[...]),
            grid.tile_size, classes,
        ).save(tmp, format="PNG")  # fmt: skip
    return summary, counts, seconds


def remove_litter(paths: dict[str, Path]) -> list[Path]:
    """Remove temporary files a killed run left beside its outputs.

    `razn.atomic.atomic_path` writes `.<name>.XXXXXXXX<suffixes>` and
    renames it; a run killed in between leaves it behind. Only called while
    holding the store's lock, so no other run of this slide is writing them.
    """
    removed = []
    for key in ("geojson", "overview"):
        target = paths[key]
        suffix = "".join(target.suffixes)
        for stray in target.parent.glob(f".{glob.escape(target.name)}.*"):
            if stray.name.endswith(suffix) and stray.is_file():
                with contextlib.suppress(FileNotFoundError):
                    stray.unlink()
                    removed.append(stray)
    return removed


def write_geojson_for(labels, grid, mpp, classes, path) -> int:
    """QuPath annotations of the lesion classes (normal tissue left out): the
    one banded export, `razn.annotations.export.export_geojson`."""
    count, _ = export_geojson(labels, grid.downsample, path, mpp=mpp, classes=classes)
    return count
