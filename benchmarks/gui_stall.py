"""The napari event loop's worst stall while the RAZN panel segments.

    xvfb-run -a python benchmarks/gui_stall.py [--repeats 3]

Opens the synthetic sample's slide as a user opens a file (File > Open:
the slide alone, no other layer), adds the RAZN panel (demo model, CPU),
waits for what the panel does on its own when a slide is shown (the
tissue measurement, and any work it does ahead in the background), then
segments the whole slide at thresholds 0.5 and 0 while a 10 ms Qt timer
records the gaps between its ticks. Each run starts afresh, with no
session and no RAZN layers; run 1 is also the process's first, so it
meets every one-off cost of a first run after opening.

The clock starts before the click ("Segment slide"), so the work the
click does on the GUI thread before it returns counts: it is a stall like
any other. "click" is that call's own duration; "after the click" the
worst gap once it returned (all that this benchmark measured before the
click was counted). "full GCs" lists Python's full garbage collections
during the run: each stalls the GUI thread for its whole length.

By default the panel's (empty) session and its classes layer are in
before the click, as on any run after a slide's first; `--cold` leaves the
layer to the run, as every first run on a slide adds it, so the run's
stalls include adding it. Run 1 is the process's first, whose worker
loads torch (the panel imports it no earlier).

`--dock` measures instead what comes before any run, in a fresh napari:
File > Open Sample (the synthetic slide generated for the first time, in
an empty cache), then docking the panel as napari's Plugins menu does
(`add_plugin_dock_widget`), then the next seconds, while the panel does
its work ahead (tissue mask, warm-up: the model's header and imports),
then the first click on "Segment slide" (the real button), until the run
ends: the first run of the process, whose worker imports torch.
`--dock --baseline` does the same with napari's own pieces, side by side:
its built-in "astronaut" sample, a bare docked widget, and for the click
an empty Labels layer of the classes layer's size with the scale bar
turned on. Each prints the load average, as the figures depend on it.
`--dock --fresh N` runs N pairs of fresh processes (panel, then napari's
own), with the modules compiled once as an installed plugin's are (a
first pair, not counted, compiles what the others import), and prints
the medians and their ratios.

The issue's floor: the worst gap under 100 ms on this CPU.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time


def settle(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.005)


def reset(viewer, widget, app, cold: bool = False) -> None:
    """No session and no RAZN layers: the next run is a first run for the panel.

    Unless `cold`, the panel's empty session and classes layer are then
    made before the click (as after a first run); cold, the run adds the
    layer itself, as every first run on a slide does.
    """
    widget.session = None
    for layer in list(viewer.layers):
        if layer.name.startswith("RAZN"):
            viewer.layers.remove(layer)
    if not cold:
        widget.prepare_session()
        widget.review.ensure_layers()
        while widget.classes_layer is None:
            settle(app, 0.05)
    settle(app, 0.5)  # the repaint after removing or adding them is not the run's


class FullCollections:
    """Python's full (generation 2) garbage collections while it is on, in ms.

    One holds the interpreter, so the GUI thread, for as long as it scans
    the process's heap (0.1-0.3 s with napari and torch loaded), whichever
    thread's allocations set it off: a stall the panel causes only by
    allocating.
    """

    def __init__(self):
        self.ms: list[float] = []
        self._start = 0.0

    def __call__(self, phase, info):
        if info["generation"] != 2:
            return
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.ms.append((time.perf_counter() - self._start) * 1000)

    def __enter__(self):
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc):
        gc.callbacks.remove(self)


def measure(viewer, widget, app, threshold: float, cold: bool = False) -> dict:
    import numpy as np
    from qtpy.QtCore import QElapsedTimer, QTimer

    reset(viewer, widget, app, cold)
    widget.threshold.value = threshold
    clock, gaps = QElapsedTimer(), []
    ticker = QTimer()
    ticker.setInterval(10)
    ticker.timeout.connect(lambda: gaps.append(clock.restart()))
    with FullCollections() as collections:
        clock.start()
        ticker.start()
        start = time.monotonic()
        widget.segment_slide()
        click = time.monotonic() - start
        while widget.runner.running:
            app.processEvents()
            time.sleep(0.001)
        seconds = time.monotonic() - start
        ticker.stop()
    g = np.array(gaps or [0])
    return {
        "click": click * 1000,
        "worst": int(g.max()),
        # The first gap holds the click; the rest came after it returned.
        "after": int(g[1:].max()) if len(g) > 1 else 0,
        "p99": float(np.percentile(g, 99)),
        "gc": " + ".join(f"{ms:.0f}" for ms in collections.ms) or "-",
        "seconds": seconds,
    }


def open_panel():
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_razn._sample_data import synthetic_slide_path
    from napari_razn._widget import RaznWidget

    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.open(str(synthetic_slide_path()), plugin="napari-razn")
    widget = RaznWidget(viewer)
    viewer.window.add_dock_widget(widget, name="RAZN", area="right")
    widget.device_picker.value = "cpu"
    while not widget.tissue_label.value.endswith("of the slide"):
        settle(app, 0.1)
    # Work the panel does ahead by itself when a slide is shown, if it does.
    while getattr(widget, "warming", False):
        settle(app, 0.1)
    settle(app, 1.0)
    return app, viewer, widget


class Ticker:
    """Gaps between the ticks of a 10 ms Qt timer, each phase apart (ms)."""

    def __init__(self):
        from qtpy.QtCore import QElapsedTimer, QTimer

        self.clock, self.gaps = QElapsedTimer(), []
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(lambda: self.gaps.append(self.clock.restart()))
        self.clock.start()
        self.timer.start()

    def phase(self) -> int:
        """The worst gap since the last call, the gap still open included."""
        worst = max([*self.gaps, self.clock.elapsed()])
        self.gaps = []
        return int(worst)


def dock_phases(baseline: bool = False) -> dict:
    """Worst stalls: opening the sample (first generation), docking, the work after, the first click.

    `baseline`: the same steps with napari's own pieces, to tell napari's
    share from the panel's: napari's built-in "astronaut" sample (one RGB
    image, read from scikit-image's data), a bare QLabel docked with
    `add_dock_widget` (the call `add_plugin_dock_widget` makes once it has
    made the plugin's widget) and, for the first click, adding an empty
    Labels layer the size of the panel's classes layer, then the scale bar
    (what the click shows in napari, at napari's own cost).
    """
    import os
    import tempfile

    os.environ["NAPARI_RAZN_CACHE"] = tempfile.mkdtemp(prefix="razn-sample-")
    import napari
    from qtpy.QtWidgets import QApplication, QLabel

    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    settle(app, 2.0)
    ticker = Ticker()
    settle(app, 0.5)
    ticker.phase()
    m = {"load": os.getloadavg()[0]}
    with FullCollections() as collections:

        def phase(name: str, start: float) -> None:
            m[name], m[name + "_s"] = ticker.phase(), time.monotonic() - start
            m[name + "_gc"] = " + ".join(f"{ms:.0f}" for ms in collections.ms) or "-"
            collections.ms = []

        start = time.monotonic()
        if baseline:
            viewer.open_sample("napari", "astronaut")
        else:
            viewer.open_sample("napari-razn", "synthetic-slide")
        settle(app, 0.5)
        phase("sample", start)
        start = time.monotonic()
        if baseline:
            viewer.window.add_dock_widget(QLabel("baseline"), name="baseline", area="right")
            widget = None
        else:
            _dock, widget = viewer.window.add_plugin_dock_widget("napari-razn", "RAZN")
        settle(app, 0.3)
        phase("dock", start)
        start = time.monotonic()
        end = time.monotonic() + 60
        while widget is not None and time.monotonic() < end and (
            widget.warming or widget.session is None
            or not widget.tissue_label.value.endswith("of the slide")
        ):  # fmt: skip
            settle(app, 0.1)
        settle(app, 1.0)
        phase("after", start)
        start = time.monotonic()
        if baseline:
            import numpy as np

            # The sample's classes layer: 3072 x 2304 at 0.5 um/px, one label per 4 px.
            viewer.add_labels(np.zeros((576, 768), np.uint8), scale=(2.0, 2.0), name="labels")
            settle(app, 0.2)
            viewer.scale_bar.visible = True  # as the panel does with its classes layer
            settle(app, 0.5)
        else:
            widget.segment_slide_button.native.click()  # as the mouse does
            while widget.runner.running:
                settle(app, 0.05)
            settle(app, 0.5)
        phase("click", start)
    viewer.close()
    return m


PHASES = ("sample", "dock", "after", "click")


def dock_row(what: str, m: dict) -> str:
    cells = [f"{m[p]} ({m[p + '_s']:.1f} s; GC {m[p + '_gc']})" for p in PHASES]
    return f"| {what} | " + " | ".join(cells) + f" | {m['load']:.1f} |"


def fresh_pairs(pairs: int) -> int:
    """`--dock` and `--dock --baseline` alternately, each in a fresh process; medians and ratios."""
    import json
    import os
    import statistics
    import subprocess
    import tempfile

    # As an installed plugin runs: its modules compiled once (this machine sets
    # PYTHONDONTWRITEBYTECODE, which made every process compile them anew).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="razn-pyc-")
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(here, "..", "napari_razn"),
                    os.path.join(here, "..", "src", "razn")], env=env, capture_output=True, check=False)  # fmt: skip
    results = {"napari-razn": [], "napari baseline": []}
    print("| what | open sample, first time (ms) | docking (ms) | work after (ms) "
          "| first Segment click (ms) | load |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    # The cache prefix holds every module's compiled form, napari's and torch's
    # too (pip compiled them at install, but in their own folders), so one
    # pair first, not counted, fills it, as an installed napari's first start did.
    for pair in range(-1, pairs):
        for what, extra in (("napari-razn", []), ("napari baseline", ["--baseline"])):
            done = subprocess.run(
                [sys.executable, __file__, "--dock", "--json", *extra],
                capture_output=True, text=True, check=False, env=env,
            )  # fmt: skip
            if pair < 0:
                continue
            lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
            if done.returncode != 0 or not lines:
                print(f"| {what} | failed: {done.stderr.strip().splitlines()[-1:]} |", flush=True)
                continue
            m = json.loads(lines[-1])
            results[what].append(m)
            print(dock_row(what, m), flush=True)
    print()
    print("| phase | napari-razn median (ms) | napari baseline median (ms) | ratio |")
    print("|---|---|---|---|")
    for p in PHASES:
        ours = statistics.median(m[p] for m in results["napari-razn"])
        base = statistics.median(m[p] for m in results["napari baseline"])
        print(f"| {p} | {ours:.0f} | {base:.0f} | {ours / max(base, 1):.2f}x |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cold", action="store_true",
                        help="the run adds the RAZN layers itself (not made when the slide was shown)")  # fmt: skip
    parser.add_argument("--dock", action="store_true",
                        help="measure opening the sample and docking the panel instead")  # fmt: skip
    parser.add_argument("--baseline", action="store_true",
                        help="with --dock: napari's own sample and a bare docked widget")  # fmt: skip
    parser.add_argument("--fresh", type=int, default=0, metavar="PAIRS",
                        help="with --dock: PAIRS of fresh processes, panel and baseline "
                        "alternately; medians and ratios")  # fmt: skip
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dock and args.fresh:
        return fresh_pairs(args.fresh)
    if args.dock:
        m = dock_phases(args.baseline)
        if args.json:
            import json

            print(json.dumps(m))
            return 0
        what = "napari baseline" if args.baseline else "napari-razn"
        print("| what | open sample, first time (ms) | docking (ms) | work after (ms) "
              "| first Segment click (ms) | load |")  # fmt: skip
        print("|---|---|---|---|---|---|")
        print(dock_row(what, m))
        return 0
    app, viewer, widget = open_panel()
    print(
        "| threshold | run | click (ms) | worst stall (ms) | after the click (ms) "
        "| 99th percentile (ms) | full GCs (ms) | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for threshold in (0.5, 0.0):
        for run in range(args.repeats):
            m = measure(viewer, widget, app, threshold, args.cold)
            print(
                f"| {threshold} | {run + 1} | {m['click']:.0f} | {m['worst']} | {m['after']} "
                f"| {m['p99']:.0f} | {m['gc']} | {m['seconds']:.1f} |",
                flush=True,
            )
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
