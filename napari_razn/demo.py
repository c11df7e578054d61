"""`python -m napari_razn.demo`: napari with the sample slide, RAZN docked and live.

What README's main command runs on a machine with a display: the synthetic
sample (generated into the cache on first use), the demo model, and
"Follow view" on, so panning segments what comes into view.
"""

from __future__ import annotations

import sys


def main(slide: str | None = None) -> int:
    import napari

    from napari_razn._widget import RaznWidget

    viewer = napari.Viewer(title="napari-razn demo")
    if slide:
        viewer.open(slide, plugin="napari-razn")
    else:
        viewer.open_sample("napari-razn", "synthetic-slide")
    widget = RaznWidget(viewer)
    viewer.window.add_dock_widget(widget, name="RAZN", area="right")
    widget.follow.value = True
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
