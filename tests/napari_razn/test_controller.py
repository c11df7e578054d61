"""The panel's Qt-free parts: which results count, corrections with undo, autosave timing, glass."""

from __future__ import annotations

import numpy as np
import pytest

from napari_razn._controller import PanelController, SaveThrottle, State
from napari_razn._corrections import CorrectionLog, edited_pixels


def session_for(path="a.svs", settings=None):
    from razn.inference.tiling import TileGrid
    from razn.session import SegmentationSession

    grid = TileGrid((512, 768), 256, 8, 64)
    return SegmentationSession(path, grid, 0.5, settings or {"model": "m", "threshold": 0.5})


def tile(row, col, value=2, tissue=True):
    from razn.inference.engine import TileResult

    return TileResult(row=row, col=col, box=(0, 0, 256, 256),
                      labels=np.full((32, 32), value, np.uint8), zoom_p=0.5, zoomed=False,
                      tissue=tissue)  # fmt: skip


def test_only_the_current_run_of_the_shown_session_is_applied():
    panel = PanelController()
    a = session_for("a.svs")
    panel.show(a)
    run_a = panel.begin_run(6)
    assert panel.state is State.RUNNING
    assert panel.apply(run_a, tile(0, 0)) is not None
    b = session_for("b.svs")
    panel.show(b)  # the user switched slides mid-run
    assert panel.apply(run_a, tile(0, 1)) is None and not b.done.any()
    run_b = panel.begin_run(6)
    panel.cancel()
    assert panel.state is State.CANCELLING
    # A cancelled run's last results are finished tiles of the shown session: kept.
    assert panel.apply(run_b, tile(1, 1, 3)) is not None and b.done[1, 1]
    b.use_settings({"model": "other", "threshold": 0.5})  # settings changed: stale
    assert panel.apply(run_b, tile(1, 2)) is None
    assert panel.finished(run_b) and panel.state is State.IDLE
    panel.close()
    assert panel.apply(panel.run, tile(0, 0)) is None and panel.state is State.CLOSED
    assert panel.dropped == 3


def test_glass_is_transparent_and_out_of_every_area():
    from razn.classes import DEFAULT_CLASSES

    session = session_for()
    session.apply(tile(0, 0, value=1, tissue=False))  # the engine calls glass Normal
    assert session.done[0, 0] and not session.labels.any()
    assert session.class_areas_mm2(DEFAULT_CLASSES)["Normal"] == 0
    session.apply(tile(0, 1, value=1))
    assert session.class_areas_mm2(DEFAULT_CLASSES)["Normal"] > 0


def test_glass_inside_a_tissue_tile_stays_transparent_too():
    from razn.tissue import TissueMask

    session = session_for()
    # A tissue mask at 64 level-0 px per pixel: the first tile's left half is glass.
    mask = np.ones((8, 12), bool)
    mask[:, :2] = False
    session.apply(tile(0, 0, value=2), TissueMask(mask, (64.0, 64.0)))
    labels = session.labels[:32, :32]  # the tile's 32 x 32 label pixels, 8 level-0 px each
    assert not labels[:, :16].any() and (labels[:, 16:] == 2).all()


def test_in_situ_and_invasive_are_far_apart_in_colour():
    from razn.classes import DEFAULT_CLASSES, IN_SITU, INVASIVE, class_by_value

    in_situ, invasive = class_by_value(IN_SITU).color, class_by_value(INVASIVE).color
    assert in_situ == (0x1E, 0x88, 0xE5)  # ../shared/DESIGN.md: a strong blue
    assert np.abs(np.subtract(in_situ, invasive)).sum() > 300
    assert len({c.name for c in DEFAULT_CLASSES}) == 4


def test_paint_steps_of_every_shape_and_their_undo():
    from napari.layers.labels.labels import _MaskedPaintAtom

    corrected = np.zeros((10, 12), bool)
    log = CorrectionLog(corrected)
    mask = np.zeros((3, 4), bool)
    mask[1, 1:3] = True
    stroke = [
        _MaskedPaintAtom((slice(2, 5), slice(3, 7)), mask, np.array([1, 1]), 3),
        _MaskedPaintAtom((slice(0, 2), slice(0, 2)), None, np.ones((2, 2)), 3),  # all of it
    ]
    assert log.painted(stroke) == 6
    assert corrected[3, 4] and corrected[3, 5] and corrected[0:2, 0:2].all()
    setitem = [((np.array([9, 9]), np.array([10, 11])), np.array([1, 1]), 4)]
    log.painted(setitem)
    assert corrected[9, 10:12].all() and corrected.sum() == 8
    log.undone()
    assert corrected.sum() == 6
    log.undone()
    assert not corrected.any()
    log.redone()
    assert corrected.sum() == 6
    # A pixel painted twice stays corrected until both steps are undone.
    log.painted([_MaskedPaintAtom((slice(0, 1), slice(0, 1)), None, np.ones((1, 1)), 2)])
    log.undone()
    assert corrected[0, 0]
    assert edited_pixels([], (4, 4)).size == 0


def test_autosave_is_a_throttle_not_a_debounce():
    now = [100.0]
    throttle = SaveThrottle(2.0, clock=lambda: now[0])
    assert throttle.changed() == 0.0  # the first change: save now
    throttle.saved()
    waits = []
    for _ in range(20):  # results every 0.25 s for 5 s
        now[0] += 0.25
        waits.append(throttle.changed())
        if waits[-1] == 0.0:
            throttle.saved()
    # A save came every 2 s, however often results arrived.
    assert waits.count(0.0) == 2
    assert max(waits) == pytest.approx(1.75)
