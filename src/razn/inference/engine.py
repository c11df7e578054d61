"""The whole-slide inference engine: one generator, for the CLI and the plugin.

`segment` walks the tiles of a slide (or of a region, or of a list the
caller orders, such as the plugin's "nearest the centre of the view
first"), and yields one `TileResult` per tile as soon as it is done. The
CLI wraps it in a progress bar and a store writer; the plugin runs it in a
`thread_worker` and paints each result.

Glass never reaches a network and is no class: tiles the tissue mask
calls glass are labelled 0 at once, and so are the label pixels of a
tissue tile whose centre the mask calls glass, so class areas count
tissue only (the CLI, the store and the panel agree). Tissue tiles are batched; their pixels are read
by a thread pool that runs ahead of the model. For RAZN only the coarse
views are read up front: the fine views are read for the tiles the policy
zooms into, which is where RAZN saves reading as well as computing.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from razn.devices import pick_device
from razn.inference.tiling import TileGrid, on_tissue, tile_grid
from razn.models.normalise import normalise
from razn.models.razn import RAZN, Prediction

log = logging.getLogger("razn.inference")

#: A tile is tissue when at least this fraction of it is (per the mask).
MIN_TISSUE = 0.05


@dataclass(kw_only=True)
class TileResult:
    """One finished tile.

    row, col : the tile's place on the tile grid.
    box : level-0 (x, y, width, height).
    labels : (n, n) uint8 class values on the label grid (n = tile_labels),
        possibly reaching past the slide's edge; 0 where the tissue mask
        says glass (all of a glass tile).
    zoom_p : the policy's zoom probability; NaN for glass and non-RAZN models.
    zoomed : whether the tile was read again at higher magnification.
    tissue : False for glass tiles, which no network saw.
    probs : (classes, n, n) float16 class probabilities, when asked for.
    """

    row: int
    col: int
    box: tuple[int, int, int, int]
    labels: np.ndarray
    zoom_p: float
    zoomed: bool
    tissue: bool
    probs: np.ndarray | None = None


class _Runner:
    """Runs the model on batches: device, precision, OOM back-off."""

    def __init__(self, model, device, compile_model: bool):
        self.device = device
        self.model = model.to(device).eval()
        if device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.autocast_dtype = None
        if device.type == "cuda":
            self.autocast_dtype = (
                torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            )
        self.compiled = torch.compile(self.model) if compile_model else self.model

    def to_device(self, pixels: np.ndarray) -> torch.Tensor:
        x = normalise(pixels).to(self.device, non_blocking=True)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def context(self) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self.autocast_dtype is not None:
            stack.enter_context(torch.autocast("cuda", self.autocast_dtype))
        return stack


def segment(
    slide,
    model,
    region: tuple[float, float, float, float] | None = None,
    threshold: float = 0.5,
    *,
    tiles: Iterable[tuple[int, int]] | None = None,
    skip: set[tuple[int, int]] | None = None,
    batch_size: int = 8,
    device: str | torch.device | None = "auto",
    read_threads: int = 2,
    probabilities: bool = False,
    compile_model: bool = False,
    cancelled=None,
) -> Iterator[TileResult]:
    """Segment a slide tile by tile, yielding each tile as it finishes.

    Parameters
    ----------
    slide : razn.Slide (with an mpp).
    model : a RAZN model or a baseline (from `razn.models.load_model`).
    region : level-0 (x, y, width, height) to segment; None is the slide.
    threshold : p > threshold zooms in; 1.0 never zooms, 0.0 always does.
    tiles : (row, col) tiles in the order to do them (overrides `region`).
    skip : tiles already done (a resumed run).
    batch_size : tiles per model call (halved on CUDA out-of-memory).
    device : "auto" (cuda, mps, cpu), or a torch device.
    read_threads : threads reading and resizing slide pixels ahead of the model.
    probabilities : also return class probabilities per tile.
    compile_model : run the model through `torch.compile`.
    cancelled : a callable returning True to stop early (between batches).
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, not {threshold}")
    grid = tile_grid(slide, model.config)
    if region is not None:
        _check_region(slide, region)
    order = list(tiles) if tiles is not None else grid.tiles_in(region)
    if skip:
        order = [t for t in order if t not in skip]
    runner = _Runner(model, pick_device(device), compile_model)
    mask = slide.tissue_mask
    glass, tissue = [], []
    for row, col in order:
        x, y, w, h = grid.box(row, col)
        (tissue if mask.fraction_in((x, y), (w, h)) >= MIN_TISSUE else glass).append((row, col))
    for row, col in glass:
        yield _glass_result(grid, row, col, model.config.num_classes, probabilities)
    if not tissue:
        return
    reader = _ViewReader(slide, grid, model.config)
    # `ahead` reads the next batch while the model runs on this one; its
    # per-tile reads go to `pool`. Two executors, so a read-ahead task never
    # waits for a thread of its own pool (a deadlock with one read thread).
    with (
        ThreadPoolExecutor(max(1, read_threads), "razn-read") as pool,
        ThreadPoolExecutor(1, "razn-ahead") as ahead,
    ):
        batches = [tissue[i : i + batch_size] for i in range(0, len(tissue), batch_size)]
        pending = ahead.submit(reader.read_batch, batches[0], reader.first_level, pool)
        for index, batch in enumerate(batches):
            if cancelled is not None and cancelled():
                pending.cancel()
                return
            views = pending.result()
            if index + 1 < len(batches):
                pending = ahead.submit(
                    reader.read_batch, batches[index + 1], reader.first_level, pool
                )
            prediction = _predict(runner, model, views, batch, reader, pool, threshold)
            yield from _results(grid, batch, prediction, probabilities, mask)


def _check_region(slide, region) -> None:
    from razn.errors import SlideError

    x, y, w, h = region
    height, width = slide.shape
    if w <= 0 or h <= 0 or x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise SlideError(
            f"region ({x:g}, {y:g}, {w:g} x {h:g}) lies outside the slide "
            f"({width} x {height} level-0 pixels)",
            slide.path,
        )


class _ViewReader:
    """Reads the fields of view of tiles at each zoom level the model uses."""

    def __init__(self, slide, grid: TileGrid, config):
        self.slide, self.grid, self.config = slide, grid, config
        self.is_razn = config.architecture == "razn"
        # RAZN starts from the coarse view alone; baselines need every level
        # they use (Scale 2 only its own).
        if self.is_razn:
            self.first_level = [0]
        elif config.architecture == "single-scale":
            self.first_level = [config.scale]
        else:
            self.first_level = list(range(config.zoom_levels + 1))

    def read(self, tile, level: int) -> np.ndarray:
        x, y, w, h = self.grid.box(*tile)
        side = self.config.patch_size * self.config.zoom_rate**level
        return self.slide.read_region((x, y), (w, h), downsample=self.grid.tile_size / side)

    def read_batch(self, batch, levels, pool) -> dict[int, np.ndarray]:
        views = {}
        for level in levels:
            views[level] = np.stack(list(pool.map(lambda t, lv=level: self.read(t, lv), batch)))
        return views


def _predict(runner, model, views, batch, reader, pool, threshold) -> Prediction:
    while True:
        try:
            with runner.context():
                if reader.is_razn:
                    return _predict_razn(runner, model, views, batch, reader, pool, threshold)
                levels = [
                    runner.to_device(views[k]) if k in views else None
                    for k in range(max(views) + 1)
                ]
                return runner.compiled.predict(levels, threshold)
        except torch.cuda.OutOfMemoryError:
            if len(batch) == 1:
                raise
            torch.cuda.empty_cache()
            log.warning("CUDA out of memory with %d tiles a batch; halving it", len(batch))
            half = len(batch) // 2
            first = _predict(
                runner, model, _part(views, slice(0, half)), batch[:half], reader, pool, threshold
            )
            second = _predict(
                runner,
                model,
                _part(views, slice(half, None)),
                batch[half:],
                reader,
                pool,
                threshold,
            )
            return _concat(first, second)


def _part(views, index):
    return {k: v[index] for k, v in views.items()}


def _concat(a: Prediction, b: Prediction) -> Prediction:
    cat = lambda x, y: None if x is None else torch.cat([x, y])  # noqa: E731
    return Prediction(
        torch.cat([a.probs, b.probs]),
        cat(a.zoom_p, b.zoom_p),
        cat(a.zoomed, b.zoomed),
        a.patches + b.patches,
    )


def _predict_razn(runner, model: RAZN, views, batch, reader, pool, threshold) -> Prediction:
    x0 = runner.to_device(views[0])
    p = torch.sigmoid(model.policies[0](x0).float())
    zoomed = p > threshold
    index = zoomed.nonzero().squeeze(1).tolist()

    def read_finer(_):
        tiles = [batch[i] for i in index]
        finer = reader.read_batch(tiles, range(1, model.config.zoom_levels + 1), pool)
        return [runner.to_device(finer[k]) for k in sorted(finer)]

    return model.predict_lazy(x0, read_finer, threshold, p=p)


def _glass_to_zero(labels: np.ndarray, grid: TileGrid, row, col, mask) -> np.ndarray:
    """A tissue tile's labels with its glass pixels (centre off the mask) set to 0."""
    n = grid.tile_labels
    rows, cols = slice(row * n, row * n + n), slice(col * n, col * n + n)
    return np.where(on_tissue(mask, grid.downsample, rows, cols), labels, 0).astype(np.uint8)


def _glass_result(grid: TileGrid, row, col, num_classes, probabilities) -> TileResult:
    n = grid.tile_labels
    probs = np.zeros((num_classes, n, n), np.float16) if probabilities else None
    return TileResult(
        row=row,
        col=col,
        box=grid.box(row, col),
        labels=np.zeros((n, n), np.uint8),
        zoom_p=math.nan,
        zoomed=False,
        tissue=False,
        probs=probs,
    )


def _results(
    grid: TileGrid, batch, prediction: Prediction, probabilities, mask
) -> Iterator[TileResult]:
    n = grid.tile_labels
    # Average the probabilities over each label pixel, then take the class.
    probs = F.adaptive_avg_pool2d(prediction.probs.float(), n)
    labels = (probs.argmax(1) + 1).to(torch.uint8).cpu().numpy()
    probs_np = probs.to(torch.float16).cpu().numpy() if probabilities else None
    p = prediction.zoom_p.float().cpu().numpy() if prediction.zoom_p is not None else None
    zoomed = prediction.zoomed.cpu().numpy() if prediction.zoomed is not None else None
    for i, (row, col) in enumerate(batch):
        yield TileResult(
            row=row,
            col=col,
            box=grid.box(row, col),
            labels=_glass_to_zero(labels[i], grid, row, col, mask),
            zoom_p=float(p[i]) if p is not None else math.nan,
            zoomed=bool(zoomed[i]) if zoomed is not None else False,
            tissue=True,
            probs=probs_np[i] if probabilities else None,
        )
