"""Sessions: corrections are never overwritten, and saving survives a kill."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from razn.errors import RaznError
from razn.inference.engine import TileResult
from razn.inference.tiling import TileGrid
from razn.session import SegmentationSession, default_session_path

GRID = TileGrid((1024, 2048), tile_size=256, downsample=8, patch_size=64)


def result(row, col, value, zoom_p=0.7):
    n = GRID.tile_labels
    return TileResult(
        row=row,
        col=col,
        box=GRID.box(row, col),
        labels=np.full((n, n), value, np.uint8),
        zoom_p=zoom_p,
        zoomed=zoom_p > 0.5,
        tissue=True,
    )


def test_corrections_survive_new_predictions():
    session = SegmentationSession("slide.svs", GRID, 0.25)
    session.apply(result(0, 0, 2))
    painted = (np.arange(5, 10)[:, None], np.arange(5, 10)[None, :])
    session.labels[painted] = 4
    session.corrected[painted] = True
    session.apply(result(0, 0, 3))  # segmenting again with another model
    assert (session.labels[5:10, 5:10] == 4).all()
    assert (session.labels[:5, :32] == 3).all()  # the rest of the tile took the new class
    assert (session.predictions[5:10, 5:10] == 3).all()
    assert session.corrected_fraction == pytest.approx(25 / 32**2)


def test_settings_change_redoes_tiles_and_view_order():
    session = SegmentationSession("slide.svs", GRID, 0.25, {"model": "a", "threshold": 0.5})
    session.apply(result(1, 1, 2))
    assert not session.use_settings({"model": "a", "threshold": 0.5})
    # Nearest the centre of the view first; done tiles are not asked for again.
    tiles = session.tiles_for_view((256, 0, 768, 512))
    assert tiles[0] in ((0, 2), (1, 2)) and (1, 1) not in tiles
    assert session.use_settings({"model": "a", "threshold": 0.2})
    assert (1, 1) in session.tiles_for_view((256, 0, 768, 512))


def test_save_and_load_round_trip(tmp_path):
    session = SegmentationSession("slide.svs", GRID, 0.25, {"threshold": 0.5})
    session.apply(result(2, 3, 4, zoom_p=0.9))
    session.corrected[1, 2] = True
    path = session.save(tmp_path / "s.razn.zarr")
    loaded = SegmentationSession.load(path)
    assert loaded.grid == GRID and loaded.settings == {"threshold": 0.5}
    for name in ("labels", "predictions", "corrected", "zoomed", "done", "tissue"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(session, name))
    assert loaded.zoom_p[2, 3] == pytest.approx(0.9) and math.isnan(loaded.zoom_p[0, 0])


def test_broken_session_file_is_a_clear_error(tmp_path):
    path = tmp_path / "s.npz"
    path.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(RaznError, match="cannot restore the session"):
        SegmentationSession.load(path)


def test_killed_while_saving_leaves_a_whole_session(tmp_path):
    """Kill a process that keeps editing and saving; the file always loads."""
    path = tmp_path / "s.razn.zarr"
    script = textwrap.dedent(
        f"""
        import numpy as np, sys
        from razn.inference.tiling import TileGrid
        from razn.session import SegmentationSession
        grid = TileGrid((4096, 4096), tile_size=256, downsample=8, patch_size=64)
        session = SegmentationSession("slide.svs", grid, 0.25)
        for edit in range(1, 10_000):
            session.labels[:] = edit % 5
            session.corrected[:edit % 1024] = True
            session.save({str(path)!r})
            print(edit, flush=True)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    for _ in range(3):  # let it save a few times, then kill it mid-stream
        process.stdout.readline()
    process.kill()
    process.wait(30)
    process.stdout.close()
    session = SegmentationSession.load(path)
    value = int(session.labels[0, 0])
    assert (session.labels == value).all()  # one whole edit, never a mix
    assert default_session_path("/data/a.svs") != default_session_path("/other/a.svs")


def test_copy_is_independent():
    session = SegmentationSession("slide.svs", GRID, 0.25, {"threshold": 0.5})
    session.apply(result(0, 0, 2))
    twin = session.copy()
    session.labels[:] = 4
    assert (twin.labels[:32, :32] == 2).all() and twin.settings == session.settings


def test_a_session_is_a_segmentation_store(tmp_path):
    """What the panel saves reads as `razn segment`'s result: export and train take it."""
    from razn.label_grid import read_label_grid

    session = SegmentationSession("slide.svs", GRID, 0.25, {"model": "abc", "threshold": 0.5})
    session.apply(result(0, 0, 2))
    session.labels[3:6, 3:6] = 4
    session.corrected[3:6, 3:6] = True
    path = session.save(tmp_path / "slide.razn.zarr")
    grid = read_label_grid(path)
    assert grid.downsample == 8 and grid.level0_shape == (1024, 2048)
    assert (grid.labels[3:6, 3:6] == 4).all() and grid.labels[10, 10] == 2
    loaded = SegmentationSession.load(path)
    assert (loaded.predictions[3:6, 3:6] == 2).all() and loaded.corrected[3:6, 3:6].all()
    assert loaded.settings == {"model": "abc", "threshold": 0.5}


def test_an_old_npz_session_still_opens_and_becomes_a_store(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("NAPARI_RAZN_SESSIONS", str(tmp_path))
    legacy = default_session_path("/data/a.svs")
    assert legacy.name.endswith(".razn.zarr")
    legacy = legacy.with_name(legacy.name.replace(".razn.zarr", ".razn-session.npz"))
    meta = {"format": "razn-session/1", "slide": "/data/a.svs", "mpp": 0.25,
            "grid": {"slide_shape": [1024, 2048], "tile_size": 256, "downsample": 8,
                     "patch_size": 64},
            "settings": {"threshold": 0.5}, "made_by": {"model": "demo"}}  # fmt: skip
    arrays = {
        "labels": np.full(GRID.label_shape, 3, np.uint8),
        "predictions": np.full(GRID.label_shape, 3, np.uint8),
        "corrected": np.zeros(GRID.label_shape, bool),
        "zoom_p": np.zeros((4, 8), np.float32),
        "zoomed": np.zeros((4, 8), bool),
        "done": np.ones((4, 8), bool),
    }
    with open(legacy, "wb") as fh:
        np.savez_compressed(fh, meta=np.array(json.dumps(meta)), **arrays)
    assert default_session_path("/data/a.svs") == legacy  # found while it is all there is
    session = SegmentationSession.load(legacy)
    assert session.made_by == {"model": "demo"} and (session.labels == 3).all()
    store = session.save(default_session_path("/data/a.svs"))
    assert store.name.endswith(".razn.zarr") and store.is_dir() and not legacy.exists()
    assert default_session_path("/data/a.svs") == store


def test_a_store_keeps_a_recorded_slide_path_only_while_it_finds_the_slide(tmp_path):
    from razn.session_store import find_slide

    results, slides = tmp_path / "results", tmp_path / "slides"
    results.mkdir(), slides.mkdir()
    (results / "slide.svs").write_bytes(b"")  # beside the store
    store = results / "slide.razn.zarr"
    # As a cluster recorded it: a path that is not there, the slide beside the store.
    SegmentationSession("/cluster/scans/slide.svs", GRID, 0.25).save(store)
    shown = SegmentationSession.load(store)
    assert find_slide(store, shown.slide_path) == (results / "slide.svs").resolve()
    shown.slide_path = str((results / "slide.svs").resolve())
    shown.save(store)
    assert SegmentationSession.load(store).slide_path == "/cluster/scans/slide.svs"
    # The slide moved and the user pointed to it: the store records the new place.
    (results / "slide.svs").rename(slides / "slide.svs")
    with pytest.raises(RaznError, match=r"slide\.razn\.zarr: its slide /cluster/scans/slide\.svs"):
        find_slide(store, "/cluster/scans/slide.svs")
    shown.slide_path = str((slides / "slide.svs").resolve())
    shown.save(store)
    assert SegmentationSession.load(store).slide_path == str((slides / "slide.svs").resolve())
