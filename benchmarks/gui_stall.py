"""The napari event loop's worst stall while the RAZN panel segments.

    xvfb-run -a python benchmarks/gui_stall.py [--repeats 3]

Opens the synthetic sample with the RAZN panel (demo model, CPU), waits for
the tissue measurement, then segments the whole slide at thresholds 0.5
and 0 while a 10 ms Qt timer records the gaps between its ticks. The
issue's floor: the worst gap under 100 ms on this CPU.
"""

from __future__ import annotations

import argparse
import sys
import time


def settle(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.005)


def measure(viewer, widget, app, threshold: float) -> tuple[int, float, float]:
    import numpy as np
    from qtpy.QtCore import QElapsedTimer, QTimer

    widget.session = None  # a fresh run, nothing reused
    for layer in list(viewer.layers):
        if layer.name.startswith("RAZN"):
            viewer.layers.remove(layer)
    widget.threshold.value = threshold
    clock, gaps = QElapsedTimer(), []
    ticker = QTimer()
    ticker.setInterval(10)
    ticker.timeout.connect(lambda: gaps.append(clock.restart()))
    widget.segment_slide()
    clock.start()
    ticker.start()
    start = time.monotonic()
    while widget.runner.running:
        app.processEvents()
        time.sleep(0.001)
    ticker.stop()
    g = np.array(gaps[1:] or [0])
    return int(g.max()), float(np.percentile(g, 99)), time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_razn._widget import RaznWidget

    viewer = napari.Viewer(show=True)
    viewer.open_sample("napari-razn", "synthetic-slide")
    widget = RaznWidget(viewer)
    viewer.window.add_dock_widget(widget, name="RAZN", area="right")
    widget.device_picker.value = "cpu"
    app = QApplication.instance()
    while not widget.tissue_label.value.endswith("of the slide"):
        settle(app, 0.1)
    widget._model()  # load once, outside the measurement
    print("| threshold | run | worst stall (ms) | 99th percentile (ms) | seconds |")
    print("|---|---|---|---|---|")
    for threshold in (0.5, 0.0):
        for run in range(args.repeats):
            worst, p99, seconds = measure(viewer, widget, app, threshold)
            print(f"| {threshold} | {run + 1} | {worst} | {p99:.0f} | {seconds:.1f} |", flush=True)
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
