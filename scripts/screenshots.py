"""Screenshots of the real napari window for docs/, taken under Xvfb.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots.py

Writes, in docs/images/:
- napari-slide.png: a real slide opened through the napari-razn reader,
  with the RAZN panel docked and the scale bar on;
- napari-segmented.png: the synthetic sample segmented by the demo model,
  with the zoom heatmap shown;
- napari-correction.png: a region the pathologist repainted as invasive
  carcinoma, and the panel counting it, classes drawn as outlines only.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SLIDE = ROOT.parent / "shared" / "data" / "slides" / "CMU-1-Small-Region.svs"


def settle(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def main() -> int:
    import os
    import tempfile

    # Sessions in a folder of their own: a run starts from nothing, as a
    # first-time user does, not from a session restored from the last run.
    os.environ["NAPARI_RAZN_SESSIONS"] = tempfile.mkdtemp(prefix="razn-screenshots-")
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1500, 980)
    viewer.open(str(SLIDE), plugin="napari-razn")
    # Docked as the Plugins menu docks it.
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-razn", "RAZN")
    app = QApplication.instance()
    deadline = time.monotonic() + 30
    while not widget.tissue_label.value.endswith("of the slide") and time.monotonic() < deadline:
        settle(app, 0.1)
    viewer.reset_view()
    settle(app, 2.0)
    shoot(viewer, "napari-slide.png")
    viewer.close()

    # The sample, segmented whole by the demo model.
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1500, 980)
    viewer.open_sample("napari-razn", "synthetic-slide")
    viewer.layers["ground truth"].visible = False
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-razn", "RAZN")
    widget.device_picker.value = "cpu"
    # The slider starts at the demo's own threshold (read in the background), as a user sees it.
    while widget.segmentation._threshold_of != "demo":
        settle(app, 0.1)
    widget.segment_slide()
    deadline = time.monotonic() + 120
    while widget.runner.running and time.monotonic() < deadline:
        settle(app, 0.1)
    widget.show_zoom.value = True
    viewer.reset_view()
    settle(app, 2.0)
    shoot(viewer, "napari-segmented.png")

    # A correction: a block repainted as invasive carcinoma (class 4).
    widget.show_zoom.value = False
    layer = widget.classes_layer
    h, w = layer.data.shape
    rows, cols = np.meshgrid(
        np.arange(h // 3, h // 3 + h // 8), np.arange(w // 3, w // 3 + w // 6), indexing="ij"
    )
    layer.data_setitem((rows.ravel(), cols.ravel()), 4)
    viewer.layers.selection.active = layer
    widget.outline.value = True  # outlines only: the tissue under the classes shows
    settle(app, 2.0)
    shoot(viewer, "napari-correction.png")
    viewer.close()
    return 0


def shoot(viewer, name: str) -> None:
    out = ROOT / "docs" / "images" / name
    viewer.screenshot(str(out), canvas_only=False)
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
