"""Opening a slide in napari: time to the first frame and memory, napari-razn beside napari-wsi.

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/napari_open.py [--reps 3]

For each slide (CMU-1-Small-Region.svs and the 100k x 100k pyramid that
benchmarks/io.py writes) and each plugin, a fresh process starts napari with
a shown window of a fixed size (`WINDOW`: the canvas size decides which
level napari shows first) and its settings from a fresh file (no saved
geometry or reader preference carries over), pays napari's own one-off
costs of a first multiscale RGB layer with a tiny layer, then times
`viewer.open(path, plugin=...)` until the canvas has drawn the slide's
first frame (the layer loaded and a draw of the canvas with it), the
resident memory it added by then, and the CPU time the process spent
meanwhile (all its threads; steadier than the wall time on a busy
machine). That first open in a process pays for the plugin's own
imports, as a user's first slide does. Then the layer is removed and the
same slide opened again in the same process ("again"): what the next
slide costs. Plugins alternate, their order rotating, and each figure is
the median of N runs.

"floor" is napari's own share: the same pyramid shapes and layer
arguments added with `viewer.add_image`, reading constant pixels (no
file, no decoding, no reader plugin, no "Opening Files" progress bar);
what a plugin adds is its time above the floor.

napari-wsi (1.3.0, OpenSlide backend; the `compare-napari` extra, which
`make test` does not install) is found where it is installed: the
benchmark's environment, or a folder named by --wsi-site (put on sys.path
only in napari-wsi's processes, so its readers do not join napari-razn's),
for example after `pip install --target /tmp/wsi-site napari-wsi==1.3.0`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLIDES = {
    "CMU-1-Small-Region.svs": ROOT.parent
    / "shared"
    / "data"
    / "slides"
    / "CMU-1-Small-Region.svs",
    "100k x 100k pyramid": Path("/tmp/razn-io/synthetic-100000.svs"),
}
PLUGINS = ("napari-razn", "napari-wsi", "floor")
# The most a run may wait for the first frame before it counts as a failure.
TIMEOUT_S = 60
# The window every run opens the slide in (width, height): the xvfb screen.
WINDOW = (1600, 1000)


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _open_until_drawn(viewer, path: Path, plugin: str) -> tuple[float, float, float, object]:
    """Seconds, MB and CPU seconds from `viewer.open` to the first frame drawn after it."""
    from qtpy.QtWidgets import QApplication

    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    drawn = []

    def on_draw(event) -> None:
        # napari draws while `viewer.open` still runs (it slices at once);
        # the first frame is the first draw with the slide's layer loaded.
        if not drawn and len(viewer.layers) and viewer.layers[-1].loaded:
            drawn.append(time.perf_counter())

    canvas.events.draw.connect(on_draw)
    if plugin == "floor":
        data, kwargs = _blank_pyramid(path)
    before = _rss_mb()
    start, cpu = time.perf_counter(), time.process_time()
    if plugin == "floor":
        layer = viewer.add_image(data, **kwargs)
    else:
        [layer] = viewer.open(str(path), plugin=plugin)
    canvas.update()
    while not drawn:
        QApplication.processEvents()
        if time.perf_counter() - start > TIMEOUT_S:
            raise TimeoutError(f"{plugin} drew no frame of {path.name} in {TIMEOUT_S} s")
        time.sleep(0.001)
    seconds, cpu = drawn[0] - start, time.process_time() - cpu
    canvas.events.draw.disconnect(on_draw)
    return seconds, _rss_mb() - before, cpu, layer


def _blank_pyramid(path: Path):
    """napari's own floor: a layer with the slide's level shapes and
    napari-razn's layer arguments, whose reads cost nothing (constant
    pixels, no file, no decoding), added with `viewer.add_image` (no
    plugin, no reader, no "Opening Files" progress bar)."""
    import numpy as np

    import razn
    from napari_razn._reader import slide_layer_data
    from razn.slide import LevelView

    with razn.open_slide(path) as slide:
        _, kwargs, _ = slide_layer_data(slide)
        shapes = [view.shape[:2] for view in slide.level_views]

    def blank(y0, y1, x0, x1):
        return np.full((y1 - y0, x1 - x0, 3), 200, np.uint8)

    return [LevelView(blank, shape) for shape in shapes], kwargs


def child(plugin: str, path: Path) -> dict:
    import napari
    import numpy as np
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    # The same window for every run (the xvfb screen, as a maximised window):
    # the canvas size decides which level napari shows first.
    viewer.window.set_geometry(0, 0, *WINDOW)
    # napari's own one-off costs of a first multiscale RGB layer (its units
    # registry, the thumbnail's scipy.ndimage) are not the plugin's: pay
    # them with a tiny layer, then let the window settle.
    warm = [np.zeros((64, 64, 3), np.uint8), np.zeros((32, 32, 3), np.uint8)]
    viewer.add_image(warm, rgb=True, multiscale=True, units=("um", "um"), scale=(0.5, 0.5))
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.01)
    viewer.layers.clear()
    QApplication.processEvents()
    first, first_mb, first_cpu, layer = _open_until_drawn(viewer, path, plugin)
    shown = int(layer.data_level) if layer.multiscale else 0
    data = layer.data if layer.multiscale else [layer.data]
    shape = [list(map(int, level.shape)) for level in data]
    viewer.layers.clear()
    QApplication.processEvents()
    again, again_mb, again_cpu, _ = _open_until_drawn(viewer, path, plugin)
    viewer.close()
    return {
        "first_s": first,
        "first_mb": first_mb,
        "first_cpu_s": first_cpu,
        "again_s": again,
        "again_mb": again_mb,
        "again_cpu_s": again_cpu,
        "levels": shape,
        "shown": shape[shown],
    }


def run_child(plugin: str, path: Path, wsi_site: Path | None, baseline: Path | None) -> dict:
    env = dict(os.environ)
    # napari's settings from a fresh file for each run: the window geometry,
    # reader preferences and the rest a previous run (or session) saved do
    # not carry over. So every napari-razn run is a first open ever: it sets
    # napari-razn as the reader for slide files and says so (one
    # notification), which a user sees once.
    if plugin == "napari-wsi" and wsi_site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(wsi_site), env.get("PYTHONPATH")]))
    if plugin == "napari-razn (baseline)":
        # The baseline's razn and napari_razn first on the path.
        env["PYTHONPATH"] = os.pathsep.join([str(baseline / "src"), str(baseline)])
        plugin = "napari-razn"
    with tempfile.TemporaryDirectory() as settings:
        env["NAPARI_CONFIG"] = str(Path(settings) / "settings.yaml")
        out = subprocess.run(
            [sys.executable, __file__, "--child", plugin, str(path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=4 * TIMEOUT_S,
        )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], Path(sys.argv[3]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--wsi-site", type=Path, help="folder holding napari-wsi, if not installed"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--plugins", nargs="+", default=list(PLUGINS), help="what to compare")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a folder with an older src/ and napari_razn/: adds 'napari-razn (baseline)'",
    )
    args = parser.parse_args()
    plugins = tuple(args.plugins)
    if args.baseline:
        plugins += ("napari-razn (baseline)",)

    missing = [name for name, path in SLIDES.items() if not path.exists()]
    if missing:
        print(f"missing {missing}: run benchmarks/io.py first to write the 100k pyramid")
        return 1
    results = {(slide, plugin): [] for slide in SLIDES for plugin in plugins}
    loads = [os.getloadavg()[0]]
    for rep in range(args.reps):
        for slide, path in SLIDES.items():
            order = plugins[rep % len(plugins) :] + plugins[: rep % len(plugins)]
            for plugin in order:
                result = run_child(plugin, path, args.wsi_site, args.baseline)
                loads.append(os.getloadavg()[0])
                results[slide, plugin].append(result)
                print(f"{slide} {plugin}: {result}", file=sys.stderr, flush=True)

    print(
        f"\nmedian of {args.reps} fresh processes; load average (1 min) "
        f"{min(loads):.1f}-{max(loads):.1f}\n"
        "| slide | plugin | level shown | first open to first frame (s) | memory added (MB) "
        "| CPU (s) | next open (s) | next open memory (MB) | next open CPU (s) |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    summary = []
    for (slide, plugin), runs in results.items():
        good = [r for r in runs if "error" in r] == [] and runs
        if not good:
            print(f"| {slide} | {plugin} | failed: {runs[0].get('error')} | | | | | | |")
            continue
        row = {"slide": slide, "plugin": plugin, "shown": runs[0]["shown"]}
        for key in ("first_s", "first_mb", "first_cpu_s", "again_s", "again_mb", "again_cpu_s"):
            row[key] = statistics.median(r[key] for r in runs)
        summary.append(row)
        shown = "x".join(map(str, row["shown"][1::-1]))
        print(
            f"| {slide} | {plugin} | {shown} | {row['first_s']:.2f} | {row['first_mb']:+.0f} | "
            f"{row['first_cpu_s']:.2f} | {row['again_s']:.2f} | {row['again_mb']:+.0f} | "
            f"{row['again_cpu_s']:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "runs": str(results)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
