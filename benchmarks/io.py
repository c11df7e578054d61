"""Slide reading: open cost, and region throughput beside OpenSlide.

    python benchmarks/io.py [--quick] [--workdir /tmp/razn-io] [--json out.json]

1. Open time and resident memory added by `razn.open_slide` for a 10k x 10k
   and a 100k x 100k Aperio-style JPEG pyramid (each measured in a fresh
   process, so nothing is cached in memory).
2. Region read throughput in megapixels per second, with 1 and 2 threads,
   of `Slide.read_region` and of `openslide.OpenSlide.read_region` (plus the
   RGBA -> RGB conversion every caller of OpenSlide has to do) on the same
   regions, side by side in one run: the two real slides in ../shared/data
   and the large synthetic ones.

The large slides are written here from real tiles: JPEG tiles cut from the
CMU slide, compressed once and repeated in a shuffled order, laid out as an
SVS file is (level 0, a stripped thumbnail, then levels at downsample 4, 16,
64). Their pixels are tissue-like, not
one tissue; for reading speed only the codec and the layout matter.
Regions are 1024 x 1024 level-0 pixels (512 on the small real slides) on a
grid, each read once by each reader, so neither reader's tile cache helps.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "slides"
TILE = 256
REGION = 1024


def make_large_slide(path: Path, size: int, mpp: float = 0.25) -> Path:
    """An Aperio-style tiled JPEG pyramid of size x size from real tiles."""
    if path.exists():
        return path
    import imagecodecs
    import tifffile

    import razn

    with razn.open_slide(SHARED / "CMU-1-Small-Region.svs") as source:
        h, w = source.shape
        tiles = []
        for y in range(0, h - TILE, TILE):
            for x in range(0, w - TILE, TILE):
                pixels = source.read_region((x, y), (TILE, TILE), downsample=1)
                tiles.append(imagecodecs.jpeg_encode(pixels, level=80))
    rng = np.random.default_rng(0)
    description = (
        f"Aperio Image Library v12.0.0 \n{size}x{size} ({TILE}x{TILE}) JPEG/RGB Q=80"
        f"|AppMag = 40|MPP = {mpp}"
    )
    tmp = path.with_suffix(".partial")
    with tifffile.TiffWriter(tmp, bigtiff=True) as tif:
        for level, downsample in enumerate((1, 4, 16, 64)):
            if level == 1:
                # An SVS keeps a stripped thumbnail second; tifffile (and
                # OpenSlide) find the pyramid levels after it.
                thumb = np.full((512, 512, 3), 230, np.uint8)
                tif.write(thumb, photometric="rgb", compression="jpeg", description=description)
            side = size // downsample
            count = math.ceil(side / TILE) ** 2
            order = rng.integers(0, len(tiles), count)
            tif.write(
                (tiles[i] for i in order),
                shape=(side, side, 3),
                dtype=np.uint8,
                tile=(TILE, TILE),
                compression="jpeg",
                photometric="rgb",
                # Aperio writes every level as a full image with a description;
                # "reduced" pages are its label and macro pictures.
                description=description,
                metadata=None,
            )
    os.replace(tmp, path)
    return path


def measure_open(path: Path) -> dict:
    """Open time and RSS growth, in a fresh interpreter.

    "seconds" is the first open in the process, lazy imports of the TIFF
    modules included (what `razn info` pays); "warm_seconds" a second open
    of the same file, a new Slide (what the plugin pays for the next slide).
    """
    code = (
        "import json, time, psutil, razn, numpy, dask.array, tifffile, zarr, PIL.Image\n"
        "p = psutil.Process(); before = p.memory_info().rss\n"
        f"t = time.perf_counter(); s = razn.open_slide({str(path)!r}); dt = time.perf_counter() - t\n"
        "rss = (p.memory_info().rss - before) / 2**20\n"
        f"t = time.perf_counter(); razn.open_slide({str(path)!r}); warm = time.perf_counter() - t\n"
        "print(json.dumps({'seconds': dt, 'warm_seconds': warm, 'rss_mb': rss,"
        " 'levels': len(s.levels)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def region_grid(height: int, width: int, side: int, count: int, seed: int = 0) -> list:
    """Up to `count` distinct non-overlapping side x side boxes inside the slide."""
    rows, cols = height // side, width // side
    cells = np.random.default_rng(seed).permutation(rows * cols)[:count]
    return [(int(c % cols) * side, int(c // cols) * side) for c in cells]


def throughput(read, regions, side: int, threads: int) -> float:
    """Megapixels per second reading every region once with `threads` threads."""
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for region in pool.map(read, regions):
            assert region.shape == (side, side, 3)
    return len(regions) * side * side / (time.perf_counter() - start) / 1e6


def compare_readers(path: Path, count: int) -> list[dict]:
    import openslide

    import razn

    results = []
    with razn.open_slide(path) as probe:
        height, width = probe.shape
    # The small real slides hold only a few 1024 boxes: read 512 ones there.
    side = REGION if min(height, width) >= 8 * REGION else REGION // 2
    regions = region_grid(height, width, side, count)
    for threads in (1, 2):
        # Fresh readers each time, so the second run's cache starts cold too.
        slide = razn.open_slide(path)
        reference = openslide.OpenSlide(str(path))

        def ours(xy, slide=slide):
            return slide.read_region(xy, (side, side), downsample=1)

        def theirs(xy, reference=reference):
            return np.asarray(reference.read_region(xy, 0, (side, side)).convert("RGB"))

        ours(regions[0]), theirs(regions[0])  # warm the code paths, not the data
        half = len(regions) // 2
        # Interleave halves so drift on a shared machine hits both readers.
        first, second = regions[1:half], regions[half:]
        a = [throughput(ours, first, side, threads), throughput(theirs, second, side, threads)]
        b = [throughput(theirs, first, side, threads), throughput(ours, second, side, threads)]
        mp_ours, mp_theirs = (a[0] + b[1]) / 2, (a[1] + b[0]) / 2
        results.append(
            {
                "slide": path.name,
                "threads": threads,
                "region": side,
                "regions": len(regions) - 1,
                "razn_mp_s": round(mp_ours, 1),
                "openslide_mp_s": round(mp_theirs, 1),
                "ratio": round(mp_ours / mp_theirs, 2),
            }
        )
        slide.close()
        reference.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/razn-io"))
    parser.add_argument("--quick", action="store_true", help="skip the 100k x 100k slide")
    parser.add_argument("--regions", type=int, default=60)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    sizes = [10_000] if args.quick else [10_000, 100_000]
    large = {}
    for size in sizes:
        start = time.perf_counter()
        large[size] = make_large_slide(args.workdir / f"synthetic-{size}.svs", size)
        print(
            f"slide {size}x{size}: {large[size].stat().st_size / 2**30:.2f} GiB "
            f"(made in {time.perf_counter() - start:.0f} s)",
            flush=True,
        )

    report = {"open": [], "read": []}
    print(
        "\n| slide | first open (s) | next open (s) | resident memory added (MB) |\n|---|---|---|---|"
    )
    for size, path in large.items():
        runs = [measure_open(path) for _ in range(3)]
        best = min(runs, key=lambda r: r["seconds"])
        report["open"].append({"size": size, **best})
        print(
            f"| {size:,} x {size:,} | {best['seconds']:.3f} | {best['warm_seconds']:.3f} | "
            f"{best['rss_mb']:.1f} |",
            flush=True,
        )

    print("\n| slide | threads | razn MP/s | OpenSlide MP/s | ratio |\n|---|---|---|---|---|")
    paths = [SHARED / "CMU-1-Small-Region.svs", SHARED / "tcga-cr-7395-01a-01-ts1.svs"]
    for path in paths + list(large.values()):
        for row in compare_readers(path, args.regions):
            report["read"].append(row)
            print(
                f"| {row['slide']} | {row['threads']} | {row['razn_mp_s']} | "
                f"{row['openslide_mp_s']} | {row['ratio']} |",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
