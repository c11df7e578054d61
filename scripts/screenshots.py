"""Screenshots of the real napari window for docs/, taken under Xvfb.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots.py

Writes docs/images/napari-slide.png: a real slide opened through the
napari-razn reader, with the RAZN panel docked and the scale bar on.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLIDE = ROOT.parent / "shared" / "data" / "slides" / "CMU-1-Small-Region.svs"


def settle(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def main() -> int:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_razn._widget import RaznWidget

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 860)
    viewer.open(str(SLIDE), plugin="napari-razn")
    widget = RaznWidget(viewer)
    viewer.window.add_dock_widget(widget, name="RAZN", area="right")
    app = QApplication.instance()
    deadline = time.monotonic() + 30
    while not widget.tissue_label.value.endswith("of the slide") and time.monotonic() < deadline:
        settle(app, 0.1)
    viewer.reset_view()
    settle(app, 2.0)
    out = ROOT / "docs" / "images" / "napari-slide.png"
    viewer.screenshot(str(out), canvas_only=False)
    print(f"wrote {out}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
