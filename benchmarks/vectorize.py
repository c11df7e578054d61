"""Benchmark: vectorising a slide-sized label grid, and writing it as QuPath GeoJSON.

The grid is 10,000 x 7,500 label pixels, what an 80k x 60k slide gives at
downsample 8: a few large tissue regions (normal) with glass between, and a
few thousand lesions of the other classes (radius 2 to 120 label pixels,
many with holes and nested lesions), made with `rasterize` so the timing of
that is reported too. Wall time depends on what else the machine runs, so
CPU time is printed beside it. Peak memory is the process's resident set above what
it held before the step, sampled every 5 ms, so it includes GEOS and numpy.

Run: python benchmarks/vectorize.py [--lesions 3000] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import shapely

from razn.annotations import rasterize, vectorize, write_geojson
from razn.classes import BENIGN, IN_SITU, INVASIVE, NORMAL

HEIGHT, WIDTH, DOWNSAMPLE = 7_500, 10_000, 8


def synthetic_shapes(lesions: int, seed: int) -> list[tuple[int, shapely.Geometry]]:
    rng = np.random.default_rng(seed)
    d = DOWNSAMPLE
    shapes = []
    for _ in range(6):  # tissue pieces, irregular through a union of discs
        cx, cy = rng.uniform(0.15, 0.85) * WIDTH * d, rng.uniform(0.15, 0.85) * HEIGHT * d
        discs = [
            shapely.Point(cx + dx, cy + dy).buffer(r)
            for dx, dy, r in zip(
                rng.normal(0, 9_000, 25),
                rng.normal(0, 7_000, 25),
                rng.uniform(2_000, 6_000, 25),
                strict=True,
            )
        ]
        shapes.append((NORMAL, shapely.union_all(discs)))
    for _ in range(lesions):
        value = int(rng.choice([BENIGN, IN_SITU, INVASIVE], p=[0.5, 0.3, 0.2]))
        radius = rng.pareto(1.5) * 2 * d + 2 * d
        radius = min(radius, 120 * d)
        x, y = rng.uniform(0, WIDTH * d), rng.uniform(0, HEIGHT * d)
        lesion = shapely.Point(x, y).buffer(radius, quad_segs=int(rng.integers(3, 12)))
        lesion = shapely.affinity.scale(lesion, rng.uniform(0.5, 1.5), rng.uniform(0.5, 1.5))
        if radius > 10 * d and rng.random() < 0.5:
            lesion = lesion.difference(shapely.Point(x, y).buffer(radius * 0.4))
        shapes.append((value, lesion))
    return shapes


class PeakRSS:
    """Peak resident memory above the starting level, sampled in a thread."""

    def __enter__(self):
        self.start = self.peak = _rss()
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while self._running:
            self.peak = max(self.peak, _rss())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def mib(self) -> float:
        return (self.peak - self.start) / 2**20


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lesions", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    shapes = synthetic_shapes(args.lesions, args.seed)
    with PeakRSS() as memory:
        start, cpu = time.perf_counter(), time.process_time()
        labels = rasterize(shapes, (HEIGHT, WIDTH), DOWNSAMPLE)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(
        f"grid {WIDTH} x {HEIGHT} uint8 ({labels.nbytes / 2**20:.0f} MiB), downsample {DOWNSAMPLE}"
    )
    print(
        f"rasterize {len(shapes)} shapes: {seconds:.2f} s wall, {cpu:.2f} s CPU, "
        f"peak +{memory.mib:.0f} MiB"
    )

    for simplify, min_area in [(0.0, 0.0), (0.3, 0.0), (1.0, 16.0)]:
        with PeakRSS() as memory:
            start, cpu = time.perf_counter(), time.process_time()
            regions = vectorize(labels, DOWNSAMPLE, simplify=simplify, min_area=min_area)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        parts = sum(len(g.geoms) for g in regions.values())
        vertices = sum(shapely.get_num_coordinates(g) for g in regions.values())
        valid = all(g.is_valid for g in regions.values())
        print(
            f"vectorize simplify={simplify} min_area={min_area}: {seconds:.2f} s wall, "
            f"{cpu:.2f} s CPU, "
            f"peak +{memory.mib:.0f} MiB, {parts} regions, {vertices} vertices, valid={valid}"
        )

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "regions.geojson"
        start = time.perf_counter()
        count = write_geojson(path, regions, mpp=0.25)
        seconds = time.perf_counter() - start
        size = path.stat().st_size / 2**20
    print(f"write_geojson: {count} features, {size:.1f} MiB, {seconds:.2f} s")


if __name__ == "__main__":
    main()
