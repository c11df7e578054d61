"""A napari session driven as a user would, for tests that need their own process.

    python -m tests.napari_razn.napari_session SCENARIO SLIDE CHECKPOINT [SLIDE_B]

The viewer runs its own event loop (`napari.run()`), and closing it does
not quit the application (as in IPython), so every late signal of the
panel's workers and timers still gets delivered after `viewer.close()`.
The process must exit 0; Qt aborts it (rc 134) when a callback touches a
deleted widget. Scenarios: `docked` closes right after docking, `mid-run`
during a segmentation, `mid-finetune` during fine-tuning, `progress`
prints each applied result ("applied N T") until killed.
"""

from __future__ import annotations

import sys
import time


def slow_engine(delay: float) -> None:
    """Each tile takes `delay` s more: a slide big enough for closing mid-run to matter."""
    import razn.inference

    segment = razn.inference.segment

    def slow_segment(*args, **kwargs):
        for result in segment(*args, **kwargs):
            time.sleep(delay)
            yield result

    razn.inference.segment = slow_segment


def main(scenario: str, slide: str, checkpoint: str) -> None:
    import napari
    import numpy as np
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    slow_engine({"mid-run": 0.1, "progress": 0.3}.get(scenario, 0.0))
    began = time.monotonic()
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    app.setQuitOnLastWindowClosed(False)
    viewer.open(slide, plugin="napari-razn")
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-razn", "RAZN")
    widget.model_input.value = checkpoint
    widget.device_picker.value = "cpu"
    ticker = QTimer()  # not the panel's: polls the scenario's state
    ticker.setInterval(20)
    closed = []

    def close_now():
        if not closed:
            closed.append(time.monotonic())
            print(f"closing with {widget.runner.finished} results applied "
                  f"after {time.monotonic() - began:.1f} s", flush=True)  # fmt: skip
            viewer.close()
            QTimer.singleShot(3000, app.quit)  # late signals arrive meanwhile

    def poll():
        if closed:
            return
        if scenario == "mid-run" and widget.runner.finished >= 3:
            close_now()
        elif scenario == "mid-finetune":
            if widget.session is not None and widget.export.worker is None:
                if not widget.runner.running and widget.session.done.any():
                    labels = viewer.layers["RAZN classes"]
                    rows, cols = labels.data.shape
                    square = np.mgrid[rows // 2 : rows // 2 + 8, cols // 2 : cols // 2 + 8]
                    labels.data_setitem((square[0].ravel(), square[1].ravel()), 4)
                    widget.improve_model()
            elif "improving the model: 1 /" in widget.progress_label.value:
                close_now()

    ticker.timeout.connect(poll)
    ticker.start()
    if scenario == "docked":
        QTimer.singleShot(0, close_now)
    elif scenario in ("mid-run", "mid-finetune"):
        QTimer.singleShot(0, widget.segment_slide)
    elif scenario == "progress":
        apply = widget.controller.apply

        def counting_apply(*args, **kwargs):
            region = apply(*args, **kwargs)
            print(f"applied {widget.controller.applied} {time.time():.3f}", flush=True)
            return region

        widget.controller.apply = counting_apply
        widget.threshold.value = 0.0
        QTimer.singleShot(0, widget.segment_slide)
    QTimer.singleShot(120_000, app.quit)  # never hang a test run
    napari.run()
    print("event loop over", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
