"""napari stops asking "Choose reader" for slide files once napari-razn has opened one.

napari's builtin reader claims *.svs, *.ndpi and *.scn too, and npe2 has no
reader priority, so without a preference napari raises MultipleReaderError
(which the GUI turns into the "Choose reader" dialog) on every open.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def fresh_settings(tmp_path, monkeypatch):
    """napari settings in a temporary file, never the user's own."""
    from napari import settings
    from napari.settings import NapariSettings

    fresh = NapariSettings(config_path=tmp_path / "settings.yaml")
    monkeypatch.setattr(settings, "_SETTINGS", fresh)
    return fresh


def test_prefer_for_slides_keeps_the_users_choice(fresh_settings):
    from napari_razn._reader import SLIDE_ONLY_PATTERNS, prefer_for_slides

    fresh_settings.plugins.extension2reader = {"*.ndpi": "napari", "*.tif": "napari"}
    assert prefer_for_slides(fresh_settings) == ["*.svs", "*.scn"]
    assert fresh_settings.plugins.extension2reader == {
        "*.ndpi": "napari",
        "*.tif": "napari",
        "*.svs": "napari-razn",
        "*.scn": "napari-razn",
    }
    assert prefer_for_slides(fresh_settings) == []  # nothing left to set
    assert "*.tif" not in SLIDE_ONLY_PATTERNS  # generic TIFF stays the user's choice


def test_choose_reader_is_asked_once(make_napari_viewer, cmu_svs, fresh_settings, monkeypatch):
    """File > Open (and drag and drop) on a .svs: the dialog comes the first
    time only, even when the user does not tick "remember"."""
    from napari import settings
    from napari._qt.dialogs.qt_reader_dialog import QtReaderDialog

    viewer = make_napari_viewer()
    settings._SETTINGS = fresh_settings  # make_napari_viewer reset the global one
    asked = []

    def user_picks_razn(dialog):
        asked.append(dialog._extension)
        return "RAZN whole-slide segmentation", False  # not "remember this choice"

    monkeypatch.setattr(QtReaderDialog, "get_user_choices", user_picks_razn)
    qt_viewer = viewer.window._qt_viewer
    qt_viewer._qt_open([str(cmu_svs)], stack=False)  # what File > Open calls
    assert len(asked) == 1 and len(viewer.layers) == 1
    assert fresh_settings.plugins.extension2reader["*.svs"] == "napari-razn"
    qt_viewer._qt_open([str(cmu_svs)], stack=False)
    assert len(asked) == 1, "napari asked which reader to use again"
    assert len(viewer.layers) == 2
    assert viewer.layers[-1].metadata["razn_slide"]["format"] == "aperio-svs"
