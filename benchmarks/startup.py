"""Start-up time a user feels at the prompt: `razn --help`, `razn info`, `import razn`.

    python benchmarks/startup.py [--runs 7] [--json out.json] [--baseline-src DIR]

Each command runs in a fresh interpreter (nothing imported, file cache warm
after the first run), interleaved with `python -c pass` as the baseline the
interpreter itself costs; the figure is the best wall time of N runs, so a
busy moment on a shared machine does not count against a command. It also
lists which heavy modules each command imports (dask.array, torch, zarr,
tifffile, scipy, PIL), since those are what make a command slow.

`--baseline-src DIR` also times every razn command with razn imported
from DIR (say, `git archive <commit> src | tar -x -C /tmp/base`, then DIR
is /tmp/base/src), interleaved with the current code, so a change is
measured against the code before it in the same minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CMU = ROOT.parent / "shared" / "data" / "slides" / "CMU-1-Small-Region.svs"
HEAVY = ("dask.array", "torch", "zarr", "tifffile", "scipy", "PIL.Image", "numpy", "imagecodecs")

# Each entry: name, and the Python code the fresh interpreter runs. The CLI
# runs through razn.cli.main, exactly as the `razn` console script does.
COMMANDS = {
    "python -c pass": "pass",
    "import razn": "import razn",
    "razn --help": (
        "import sys; sys.argv = ['razn', '--help']\n"
        "from razn.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    ),
    "razn info --json CMU": (
        f"import sys; sys.argv = ['razn', 'info', '--json', {str(CMU)!r}]\n"
        "from razn.cli import main\n"
        "main()"
    ),
}

_REPORT = (
    "\nimport json, sys as _s\n"
    "_s.stderr.write('RAZN-MODULES ' + json.dumps("
    "[m for m in {heavy!r} if m in _s.modules]) + '\\n')\n"
)


def time_once(code: str, src: Path | None = None) -> tuple[float, list[str]]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = f"{src}{os.pathsep}{ROOT}"
    env.setdefault("PYTHONPATH", f"{ROOT / 'src'}{os.pathsep}{ROOT}")
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code + _REPORT.format(heavy=HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    seconds = time.perf_counter() - start
    modules = []
    for line in out.stderr.splitlines():
        if line.startswith("RAZN-MODULES "):
            modules = json.loads(line.split(" ", 1)[1])
    return seconds, modules


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--baseline-src", type=Path, help="also time the razn commands with razn from here"
    )
    args = parser.parse_args()

    runs = [(name, code, None) for name, code in COMMANDS.items()]
    if args.baseline_src:
        src = args.baseline_src.resolve()
        runs += [(f"{name} (baseline)", code, src) for name, code in list(COMMANDS.items())[1:]]
    best = {name: float("inf") for name, _, _ in runs}
    modules = {}
    loads = [os.getloadavg()[0]]
    for _ in range(args.runs):
        # Interleaved, so drift on a shared machine hits every command alike.
        for name, code, src in runs:
            seconds, imported = time_once(code, src)
            best[name] = min(best[name], seconds)
            modules[name] = imported
        loads.append(os.getloadavg()[0])
    base = best["python -c pass"]
    print(f"\nload average (1 min) during the runs: {min(loads):.1f}-{max(loads):.1f}")
    print(f"\n| command | best of {args.runs} (s) | above `python -c pass` (s) | heavy imports |")
    print("|---|---|---|---|")
    for name, _, _ in runs:
        heavy = ", ".join(modules[name]) or "none"
        print(f"| `{name}` | {best[name]:.3f} | {best[name] - base:+.3f} | {heavy} |")
    if args.json:
        args.json.write_text(json.dumps({"best_s": best, "modules": modules}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
