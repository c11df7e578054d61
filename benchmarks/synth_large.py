"""Time and peak memory of generating a large synthetic slide.

Usage: python benchmarks/synth_large.py [--size 100000] [--workers 2] [--out DIR]

Writes a SIZE x SIZE slide (with its label grid and GeoJSON) into a scratch
folder, then prints wall time, level-0 throughput, peak resident memory of
this process and of the worker processes (from resource.getrusage), file
sizes, and deletes the files unless --keep. Memory should not grow with
SIZE beyond a band of tiles per level (O(width)) and the label grid.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

from razn.synth import generate_slide


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--out", default=None, help="folder for the files (default: a temp folder)"
    )
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    folder = Path(args.out or tempfile.mkdtemp(prefix="razn-synth-large-"))
    folder.mkdir(parents=True, exist_ok=True)
    rows_done = [0]
    t0 = time.time()

    def progress(done, total):
        if done - rows_done[0] >= total // 20 or done == total:
            rows_done[0] = done
            elapsed = time.time() - t0
            print(f"  {done}/{total} rows, {elapsed:.0f} s", flush=True)

    result = generate_slide(
        folder / "large.tif", args.size, args.size, seed=1, workers=args.workers,
        on_progress=progress, invasive="desmoplastic",  # the recorded figures' pattern
    )  # fmt: skip
    seconds = time.time() - t0
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    figures = {
        "size": args.size,
        "workers": args.workers,
        "seconds": round(seconds, 1),
        "megapixels_per_second": round(args.size**2 / seconds / 1e6, 2),
        "peak_rss_main_mb": round(own),
        "peak_rss_worker_mb": round(children),
        "levels": result.levels,
        "bytes": {p.name: p.stat().st_size for p in result.paths()},
    }
    print(json.dumps(figures, indent=1))
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
