"""Slide reading: open cost, and region throughput beside OpenSlide, tiffslide and fastslide.

    python benchmarks/io.py [--quick] [--reps 3] [--workdir /tmp/razn-io] [--json out.json]
                            [--readers razn fastslide] [--baseline-src DIR]

1. Open time and resident memory added by `razn.open_slide` for a 10k x 10k
   and a 100k x 100k Aperio-style JPEG pyramid (each measured in a fresh
   process, so nothing is cached in memory).
2. Region read throughput in megapixels per second of level-0 regions,
   256, 512 and 1024 px square, read one at a time from one thread by
   `razn` (`Slide.read_region(downsample=1)`), OpenSlide (its RGBA output
   converted to RGB, as every caller has to), tiffslide (`as_array=True`)
   and fastslide (`.numpy()`): the two real slides in ../shared/data and
   the 100k x 100k pyramid. Every measurement runs in a fresh process
   that opens the reader afresh and reads the same random regions twice:
   "cold" is the first pass (the reader's caches empty, every tile
   decoded, the first read included), "warm" the second (whatever each
   reader kept). Readers run interleaved, their order rotating, and each
   figure is the best of N runs, so a busy moment on a shared machine does
   not decide a ratio. Before a worker's clock starts it reads the file
   bytes of the tiles under its regions (`warm_page_cache`), so the file
   is in the OS page cache for every reader alike. Beside MP/s it
   reports the CPU time (all threads) each reader spent per megapixel,
   which a busy machine disturbs less.

The large slides are written here from real tiles: JPEG tiles cut from the
CMU slide, compressed once and repeated in a shuffled order, laid out as an
SVS file is (level 0, a stripped thumbnail, then levels at downsample 4, 16,
64). Their pixels are tissue-like, not one tissue; for reading speed only
the codec and the layout matter. Regions on the large slide almost never
overlap; on the small real slides they do, which is where tile caches help.

`--baseline-src DIR` adds a reader "razn-base": razn imported from DIR
(say, `git archive <commit> src | tar -x -C /tmp/base`, then DIR is
/tmp/base/src), run interleaved with the others, so a change is measured
against the code before it in the same minutes of a shared machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "slides"
TILE = 256


def make_large_slide(path: Path, size: int, mpp: float = 0.25) -> Path:
    """An Aperio-style tiled JPEG pyramid of size x size from real tiles."""
    if path.exists():
        return path
    import imagecodecs
    import tifffile

    import razn

    with razn.open_slide(SHARED / "CMU-1-Small-Region.svs") as source:
        h, w = source.level_info[0].shape
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


READERS = ("razn", "openslide", "tiffslide", "fastslide")
SIDES = (256, 512, 1024)


def random_regions(height: int, width: int, side: int, count: int, seed: int) -> list:
    """`count` random level-0 boxes of side x side inside the slide."""
    rng = np.random.default_rng(seed)
    xs = rng.integers(0, max(1, width - side), count)
    ys = rng.integers(0, max(1, height - side), count)
    return [(int(x), int(y)) for x, y in zip(xs, ys, strict=True)]


def open_reader(name: str, path: Path):
    """(read(xy, side) -> (side, side, 3) uint8 array, close(), (width, height))."""
    if name == "razn":
        import razn

        slide = razn.open_slide(path)
        height, width = slide.level_info[0].shape

        def read(xy, side):
            return slide.read_region(xy, (side, side), downsample=1)

        return read, slide.close, (width, height)
    if name == "openslide":
        import openslide

        slide = openslide.OpenSlide(str(path))

        def read(xy, side):
            return np.asarray(slide.read_region(xy, 0, (side, side)).convert("RGB"))

        return read, slide.close, slide.dimensions
    if name == "tiffslide":
        import tiffslide

        slide = tiffslide.TiffSlide(path)

        def read(xy, side):
            return slide.read_region(xy, 0, (side, side), as_array=True)[..., :3]

        return read, slide.close, slide.dimensions
    if name == "fastslide":
        import fastslide

        slide = fastslide.FastSlide.from_file_path(str(path))

        def read(xy, side):
            return np.asarray(slide.read_region(xy, 0, (side, side)).numpy())[..., :3]

        return read, slide.close, tuple(slide.dimensions)
    raise ValueError(f"unknown reader {name}")


def _import_reader(name: str) -> None:
    # Imports are not reading: load the module before the clock starts.
    __import__({"razn": "razn.slide._tiff"}.get(name, name))


def warm_page_cache(path: Path, regions: list, side: int) -> None:
    """Read the bytes of the tiles under the regions, so none of the readers
    waits on the disk: on this VM the OS drops a 1.4 GB file from its page
    cache within minutes, and the reader that ran first would pay for all."""
    if path.stat().st_size < 2**29:
        with open(path, "rb") as fh:
            while fh.read(1 << 24):
                pass
        return
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.series[0].levels[0].pages[0]
        rows, cols = page.chunked[:2]
        th, tw = page.tilelength, page.tilewidth
        fd = os.open(path, os.O_RDONLY)
        try:
            for x, y in regions:
                for row in range(y // th, min(rows, (y + side - 1) // th + 1)):
                    first, last = row * cols + x // tw, row * cols + (x + side - 1) // tw
                    start = page.dataoffsets[first]
                    end = page.dataoffsets[last] + page.databytecounts[last]
                    os.pread(fd, int(end - start), int(start))
        finally:
            os.close(fd)


def worker(name: str, path: Path, side: int, count: int, seed: int) -> dict:
    """One fresh reader: open, read the regions twice; MP/s of each pass."""
    _import_reader(name)
    start = time.perf_counter()
    read, close, (width, height) = open_reader(name, path)
    opened = time.perf_counter() - start
    regions = random_regions(height, width, side, count, seed)
    warm_page_cache(path, regions, side)
    passes, cpu = [], []
    megapixels = len(regions) * side * side / 1e6
    for _ in range(2):
        before, start = time.process_time(), time.perf_counter()
        for xy in regions:
            region = read(xy, side)
        passes.append(megapixels / (time.perf_counter() - start))
        # CPU time of all the process's threads: what the reading cost, however
        # busy the machine was (wall time also says how well it used the cores).
        cpu.append((time.process_time() - before) / megapixels * 1e3)
        assert region.shape == (side, side, 3) and region.dtype == np.uint8, region.shape
    close()
    return {
        "open_s": opened,
        "cold_mp_s": passes[0],
        "warm_mp_s": passes[1],
        "cold_cpu_ms_mp": cpu[0],
        "warm_cpu_ms_mp": cpu[1],
    }


#: Where "razn-base" imports razn from (`--baseline-src`).
BASELINE_SRC: Path | None = None


def run_worker(name: str, path: Path, side: int, count: int, seed: int) -> dict:
    env = None
    if name == "razn-base":
        # The same worker, with the baseline's razn first on the path.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BASELINE_SRC), str(ROOT)])}
        name = "razn"
    out = subprocess.run(
        [sys.executable, __file__, "--worker", name, str(path), str(side), str(count), str(seed)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def region_count(side: int, regions: int) -> int:
    """At least `regions` regions, and at least 4 MP a pass, so a pass is not a blip."""
    return max(regions, math.ceil(4e6 / side**2))


def compare_readers(
    path: Path, regions: int, reps: int, readers=READERS, sides=SIDES
) -> list[dict]:
    rows = []
    for side in sides:
        count = region_count(side, regions)
        seed = side  # same regions for every reader and every repetition
        best = {name: {} for name in readers}
        for rep in range(reps):
            order = readers[rep % len(readers) :] + readers[: rep % len(readers)]
            for name in order:
                result = run_worker(name, path, side, count, seed)
                for key, value in result.items():
                    # Best of the runs: the most MP/s, the least time and CPU.
                    pick = max if key.endswith("mp_s") else min
                    best[name][key] = pick(best[name].get(key, value), value)
        for state in ("cold", "warm"):
            row = {"slide": path.name, "side": side, "regions": count, "state": state}
            for name in readers:
                row[name] = round(best[name][f"{state}_mp_s"], 1)
                row[f"{name}_cpu_ms_mp"] = round(best[name][f"{state}_cpu_ms_mp"], 2)
            for name in readers[1:]:
                row[f"razn/{name}"] = round(row["razn"] / row[name], 2)
            rows.append(row)
            print(
                f"| {path.name} | {side} | {state} | "
                + " | ".join(f"{row[name]}" for name in readers)
                + " | "
                + " | ".join(f"{row[f'razn/{name}']:.2f}" for name in readers[1:])
                + " | "
                + " / ".join(f"{row[f'{name}_cpu_ms_mp']:.1f}" for name in readers)
                + " |",
                flush=True,
            )
    return rows


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        name, path, side, count, seed = sys.argv[2:7]
        print(json.dumps(worker(name, Path(path), int(side), int(count), int(seed))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/razn-io"))
    parser.add_argument("--quick", action="store_true", help="skip the 100k x 100k slide")
    parser.add_argument("--regions", type=int, default=40, help="regions per pass (at least)")
    parser.add_argument("--reps", type=int, default=3, help="best of this many runs")
    parser.add_argument("--skip-open", action="store_true", help="only the reader comparison")
    parser.add_argument(
        "--large-only", action="store_true", help="compare on the large slide only"
    )
    parser.add_argument("--sides", type=int, nargs="+", default=list(SIDES), help="region sizes")
    parser.add_argument(
        "--readers", nargs="+", default=list(READERS), help="readers to compare (razn first)"
    )
    parser.add_argument(
        "--baseline-src", type=Path, help="also run razn imported from this folder (razn-base)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    readers = tuple(args.readers)
    if readers[0] != "razn":
        parser.error("--readers must start with razn")
    if args.baseline_src:
        global BASELINE_SRC
        BASELINE_SRC = args.baseline_src.resolve()
        readers += ("razn-base",)
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
    if not args.skip_open:
        print(
            "\n| slide | first open (s) | next open (s) | resident memory added (MB) |"
            "\n|---|---|---|---|"
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

    paths = [large[max(large)]]
    if not args.large_only:
        paths += [SHARED / "CMU-1-Small-Region.svs", SHARED / "tcga-cr-7395-01a-01-ts1.svs"]
    for path in paths:
        with open(path, "rb") as fh:  # into the OS page cache, for every reader alike
            while fh.read(1 << 24):
                pass
    names = " | ".join(readers)
    ratios = " | ".join(f"razn / {name}" for name in readers[1:])
    print(
        f"\nMP/s, best of {args.reps}; ratio > 1: razn faster\n"
        f"| slide | px | pass | {names} | {ratios} | CPU ms per MP ({', '.join(readers)}) |"
        "\n|---|---|---|" + "---|" * (2 * len(readers))
    )
    for path in paths:
        print(f"load average before {path.name}: {os.getloadavg()}", flush=True)
        report["read"].extend(
            compare_readers(path, args.regions, args.reps, readers=readers, sides=args.sides)
        )
    print(f"load average at the end: {os.getloadavg()}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
