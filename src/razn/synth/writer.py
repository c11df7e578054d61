"""Writing a tiled, JPEG-compressed, pyramidal OME-TIFF tile by tile.

The slide is never whole in memory. Level 0 is rendered in row-major bands
of blocks (one tile high) and handed to tifffile as an iterator of tiles;
while a band passes, its block-mean downsample is appended to a raw
temporary file, which then feeds the next level the same way, and so on.
Memory is bounded by one band (one tile high, the slide wide) plus a few
blocks in flight; the temporaries take about a quarter of level 0
uncompressed on disk (7.5 GB for a 100,000-pixel-square slide at factor 2),
beside the output, and vanish with it on error.

The file is OME-TIFF with the reduced levels as SubIFDs, which tifffile,
Bio-Formats, QuPath and OpenSlide 4 read; the mpp is in the OME
PhysicalSizeX/Y and in the TIFF resolution tags. Nothing time-dependent is
written (the OME UUID is derived from the caller's key), so the same
arguments give the same bytes.
"""

from __future__ import annotations

import concurrent.futures
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import tifffile

TILE = 256


def pyramid_shapes(height: int, width: int, factor: int, smallest: int) -> list[tuple[int, int]]:
    """Level shapes: each `factor` times smaller (rounded up) while the
    longer side stays at least `smallest` pixels."""
    shapes = [(height, width)]
    while max(shapes[-1]) // factor >= smallest:
        h, w = shapes[-1]
        shapes.append((-(-h // factor), -(-w // factor)))
    return shapes


def write_pyramid(
    path: str | os.PathLike,
    height: int,
    width: int,
    render: Callable[[int, int, int, int], np.ndarray],
    *,
    mpp: float,
    key: str,
    factor: int = 2,
    smallest: int = 512,
    quality: int = 90,
    block_width: int = 1024,
    executor: concurrent.futures.Executor | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    name: str = "synthetic slide",
) -> list[tuple[int, int]]:
    """Write the image `render` draws as a pyramidal OME-TIFF at `path`.

    Parameters
    ----------
    render : callable (x, y, w, h) -> uint8 (h, w, 3)
        Draws any level-0 box; called on bands of blocks in row-major order.
    mpp : float
        Microns per level-0 pixel.
    key : str
        Identifies the content (e.g. the generator arguments); the OME UUID
        is derived from it so that equal arguments write equal bytes.
    factor, smallest : int
        Downsample between levels, and the smallest longer side kept.
    executor : Executor, optional
        Renders blocks in parallel (results are used in order).
    on_progress : callable (done, total), optional
        Called after each band with level-0 rows done and total rows.

    Returns
    -------
    list of (height, width) of the levels written.
    """
    if TILE % factor:
        raise ValueError(f"level factor {factor} must divide the tile size {TILE}")
    shapes = pyramid_shapes(height, width, factor, smallest)
    path = Path(path)
    metadata = {
        "axes": "YXS",
        "Name": name,
        "UUID": str(uuid.uuid5(uuid.NAMESPACE_URL, "razn-synth:" + key)),
        "PhysicalSizeX": mpp,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": mpp,
        "PhysicalSizeYUnit": "µm",
    }
    common = {
        "tile": (TILE, TILE),
        "photometric": "rgb",
        "compression": "jpeg",
        "compressionargs": {"level": quality},
        "resolutionunit": "CENTIMETER",
        "dtype": np.uint8,
    }
    with (
        tempfile.TemporaryDirectory(prefix=".razn-synth-", dir=path.parent) as scratch,
        tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif,
    ):
        raws = [Path(scratch) / f"level{k}.raw" for k in range(len(shapes))]
        for k, (h, w) in enumerate(shapes):
            downsample = factor**k
            res = 1e4 / (mpp * downsample)
            if k == 0:
                bands = _render_bands(render, h, w, block_width, executor, on_progress)
            else:
                bands = _read_bands(raws[k], h, w)
            sink = _Downsampler(raws[k + 1], factor) if k + 1 < len(shapes) else None
            tiles = _tiles(bands, h, w, sink)
            try:
                if k == 0:
                    tif.write(
                        tiles,
                        shape=(h, w, 3),
                        subifds=len(shapes) - 1,
                        resolution=(res, res),
                        metadata=metadata,
                        **common,
                    )
                else:
                    tif.write(
                        tiles, shape=(h, w, 3), subfiletype=1, resolution=(res, res), **common
                    )
            finally:
                if sink is not None:
                    sink.close()
            if k > 0:
                raws[k].unlink()
    return shapes


def _render_bands(render, height, width, block_width, executor, on_progress) -> Iterator:
    """Level-0 bands (TILE rows, or fewer at the bottom), rendered in blocks."""
    jobs = [
        (x, y, min(block_width, width - x), min(TILE, height - y))
        for y in range(0, height, TILE)
        for x in range(0, width, block_width)
    ]
    per_band = -(-width // block_width)
    if executor is None:
        results: Iterator = (render(*job) for job in jobs)
    else:
        # A few blocks per worker in flight keep them busy; more only costs memory.
        results = _ordered(executor, render, jobs, lookahead=16)
    band: list[np.ndarray] = []
    for i, block in enumerate(results):
        band.append(block)
        if len(band) == per_band:
            yield np.concatenate(band, axis=1)
            band = []
            if on_progress is not None:
                on_progress(min(height, (i // per_band + 1) * TILE), height)


def _ordered(executor, fn, jobs, lookahead):
    """`executor.map` with a bounded number of results in flight."""
    pending: list[concurrent.futures.Future] = []
    it = iter(jobs)
    try:
        for job in it:
            pending.append(executor.submit(fn, *job))
            if len(pending) >= lookahead:
                yield pending.pop(0).result()
        while pending:
            yield pending.pop(0).result()
    finally:
        for f in pending:
            f.cancel()


def _read_bands(raw: Path, height: int, width: int) -> Iterator[np.ndarray]:
    row_bytes = width * 3
    with open(raw, "rb") as f:
        for y in range(0, height, TILE):
            rows = min(TILE, height - y)
            data = f.read(rows * row_bytes)
            yield np.frombuffer(data, np.uint8).reshape(rows, width, 3)


def _tiles(bands, height, width, sink) -> Iterator[np.ndarray]:
    """Cut bands into TILE x TILE tiles (edge tiles padded) in row-major order."""
    for band in bands:
        if sink is not None:
            sink.add(band)
        rows = band.shape[0]
        for x in range(0, width, TILE):
            tile = band[:, x : x + TILE]
            if tile.shape[0] < TILE or tile.shape[1] < TILE:
                padded = np.zeros((TILE, TILE, 3), np.uint8)
                padded[:rows, : tile.shape[1]] = tile
                tile = padded
            yield tile


class _Downsampler:
    """Appends the block mean of each band to a raw file (the next level)."""

    def __init__(self, raw: Path, factor: int):
        self.file = open(raw, "wb")  # noqa: SIM115 (closed by close())
        self.factor = factor

    def add(self, band: np.ndarray) -> None:
        f = self.factor
        h, w = band.shape[:2]
        ph, pw = -h % f, -w % f
        if ph or pw:
            # Edge-replicate so border pixels average only real image.
            band = np.pad(band, ((0, ph), (0, pw), (0, 0)), mode="edge")
        h, w = band.shape[:2]
        small = band.reshape(h // f, f, w // f, f, 3).mean(axis=(1, 3), dtype=np.float32)
        self.file.write(np.rint(small).astype(np.uint8).tobytes())

    def close(self) -> None:
        self.file.close()
