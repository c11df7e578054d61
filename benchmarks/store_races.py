"""Simultaneous starts on one segmentation store, in separate processes.

`python benchmarks/store_races.py [--races 30] [--processes 4]`: each race
starts N processes that all wait for the same instant, then each calls
`SegmentationStore.create_or_resume` on the same path, writes one tile and
closes. A race counts as good when afterwards the store opens, resumes and
holds its tile, and every process either wrote or was refused in one line
(no traceback). Prints the counts; docs/design.md quotes them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKER = r"""
import sys, time
from pathlib import Path
from types import SimpleNamespace
import numpy as np
from razn.classes import DEFAULT_CLASSES
from razn.inference.store import SegmentationStore, StoreBusy
from razn.inference.tiling import TileGrid

path, weights, at = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
config = SimpleNamespace(classes=DEFAULT_CLASSES, to_dict=lambda: {"name": "fake"})
model = SimpleNamespace(config=config, checkpoint_path=weights)
slide = SimpleNamespace(path=path.parent / "s.svs", shape=(1024, 2048), mpp=0.25)
grid = TileGrid((1024, 2048), 256, 8, 64)
result = SimpleNamespace(row=0, col=1, labels=np.full((32, 32), 4, np.uint8), zoom_p=0.7,
                         zoomed=True, tissue=True)
time.sleep(max(0.0, at - time.time()))
try:
    with SegmentationStore.create_or_resume(path, slide, model, grid, 0.5) as store:
        store.write([result], grid)
    print("wrote")
except StoreBusy as error:
    print("busy:", error)
"""


def race(folder: Path, index: int, processes: int, weights: Path) -> dict:
    from razn.inference.store import SegmentationStore

    path = folder / f"r{index}.razn.zarr"
    at = time.time() + 2.0  # every process imported and waiting by then
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), str(weights), str(at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(processes)
    ]
    outs = [(p.communicate()[0].strip(), p.returncode, p.communicate()[1]) for p in runs]
    wrote = sum(o == "wrote" for o, _, _ in outs)
    refused = sum(o.startswith("busy:") and "\n" not in o for o, _, _ in outs)
    failed = [err for o, code, err in outs if code != 0 or not o]
    try:
        store = SegmentationStore.open(path)
        usable = store.done_tiles() == {(0, 1)} and int(store.labels[0, 32]) == 4
    except Exception as error:  # noqa: BLE001 - counted, then reported
        usable, failed = False, [*failed, repr(error)]
    return {"wrote": wrote, "refused": refused, "failed": failed, "usable": usable}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--races", type=int, default=30)
    parser.add_argument("--processes", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        weights = folder / "m.safetensors"
        weights.write_bytes(b"weights")
        results = [race(folder, i, args.processes, weights) for i in range(args.races)]
        litter = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    usable = sum(r["usable"] for r in results)
    print(
        f"{args.races} races of {args.processes} processes: {usable} usable stores; "
        f"{sum(r['wrote'] for r in results)} runs wrote, "
        f"{sum(r['refused'] for r in results)} refused in one line, "
        f"{sum(len(r['failed']) for r in results)} failed; litter left: {len(litter)}"
    )
    for r in results:
        for failure in r["failed"]:
            print("failure:", failure.strip().splitlines()[-1] if failure.strip() else "(none)")


if __name__ == "__main__":
    main()
