"""Switching slides, or removing the slide layer, while a run is going: nothing mixed, nothing lost.

The engine is replaced by one that labels every tile with its own slide's
mark, slowly, so a result that lands on the wrong slide is seen.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.napari_razn.test_corrections import dock_panel

MARKS = {"ellipse": 2, "other": 3}


@pytest.fixture
def marking_engine(monkeypatch):
    import razn.inference
    from razn.inference.engine import TileResult
    from razn.inference.tiling import tile_grid

    def segment(slide, model, *, tiles, cancelled=lambda: False, **_):
        grid = tile_grid(slide, model.config)
        mark = MARKS["ellipse" if "ellipse" in str(slide.path) else "other"]
        n = grid.tile_labels
        for row, col in tiles:
            if cancelled():
                return
            time.sleep(0.03)
            labels = np.full((n, n), mark, np.uint8)
            yield TileResult(row=row, col=col, box=grid.box(row, col), labels=labels, zoom_p=0.5,
                             zoomed=False, tissue=True)  # fmt: skip

    monkeypatch.setattr(razn.inference, "segment", segment)


@pytest.fixture(scope="module")
def other_slide(tmp_path_factory):
    from tests.razn.slide_files import tissue_image, write_ome_pyramid

    path = tmp_path_factory.mktemp("other") / "other.ome.tif"
    write_ome_pyramid(path, tissue_image(1024, 2560, seed=7), mpp=0.25)
    return path


def test_switching_slide_mid_run_mixes_nothing(
    make_napari_viewer, qtbot, small_slide, small_checkpoint, other_slide, marking_engine,
    session_folder,
):  # fmt: skip
    viewer, widget = dock_panel(make_napari_viewer, qtbot, small_slide, small_checkpoint)
    viewer.open(str(other_slide), plugin="napari-razn")
    (slide_a,) = [layer for layer in viewer.layers if "ellipse" in layer.name]
    (slide_b,) = [layer for layer in viewer.layers if "other" in layer.name]
    widget.slide_picker.value = slide_a
    widget.segment_slide()
    qtbot.waitUntil(lambda: widget.runner.finished >= 5, timeout=30000)
    session_a = widget.session
    widget.slide_picker.value = slide_b  # mid-run
    assert widget.session is not session_a
    widget.segment_slide()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60000)
    qtbot.wait(300)  # anything still queued arrives
    session_b = widget.session
    assert session_b.slide_path == str(other_slide)
    assert session_b.done.all(), "slide B's run finished every tile"
    assert set(np.unique(session_b.labels)) <= {0, MARKS["other"]}
    # Slide A's session was saved when the panel left it, with A's marks only.
    from razn.session import SegmentationSession, default_session_path

    saved_a = SegmentationSession.load(default_session_path(small_slide))
    assert saved_a.done.sum() >= 5
    assert set(np.unique(saved_a.labels)) <= {0, MARKS["ellipse"]}
    # Back on A, and again mid-run, the slide layer goes: its results are dropped.
    widget.slide_picker.value = slide_a
    qtbot.waitUntil(lambda: widget.session is not None, timeout=10000)
    assert set(np.unique(widget.session.labels)) <= {0, MARKS["ellipse"]}
    widget.threshold.value = 0.0  # other settings: every tile again
    widget.segment_slide()
    qtbot.waitUntil(lambda: widget.runner.finished >= 3, timeout=30000)
    viewer.layers.remove(slide_a)
    qtbot.wait(1000)
    assert widget.slide_layer is not None and "other" in widget.slide_layer.name
    assert not widget.runner.running
    assert set(np.unique(widget.session.labels)) <= {0, MARKS["other"]}
    saved_a = SegmentationSession.load(default_session_path(small_slide))
    assert set(np.unique(saved_a.labels)) <= {0, MARKS["ellipse"]}
