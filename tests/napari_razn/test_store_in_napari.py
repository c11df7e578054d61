"""A store from `razn segment --workers 2` in napari: layers in microns, the panel takes
over the session, a brush correction is kept in the store, and `razn train` learns from it."""

from __future__ import annotations

import numpy as np
import pytest

from napari_razn._layers import CLASSES_LAYER, ZOOM_LAYER, ZOOMED_LAYER
from tests.napari_razn.test_corrections import drag, screen_point
from tests.razn.hostile import run_razn


def razn(*args, cwd=None):
    return run_razn(*args, timeout=400, cwd=cwd)


@pytest.fixture(scope="module")
def cluster_store(small_slide, small_checkpoint, tmp_path_factory):
    pytest.importorskip("distributed")
    out = tmp_path_factory.mktemp("cluster") / "results"
    done = razn("segment", small_slide, "--model", small_checkpoint, "--out", out,
                "--workers", "2", "--device", "cpu")  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out / "ellipse.razn.zarr"


def test_a_cluster_store_opens_is_corrected_and_trains(
    make_napari_viewer, qtbot, cluster_store, small_slide, small_checkpoint, tmp_path
):
    import zarr

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1000, 700)
    viewer.open(str(cluster_store), plugin="napari-razn")
    names = [layer.name for layer in viewer.layers]
    assert names == ["ellipse.ome.tif", CLASSES_LAYER, ZOOM_LAYER, ZOOMED_LAYER]
    classes = viewer.layers[CLASSES_LAYER]
    assert tuple(classes.scale) == (2.0, 2.0)  # 8 level-0 pixels x 0.25 um
    assert tuple(viewer.layers[ZOOM_LAYER].scale) == (64.0, 64.0)  # a 256-px tile
    stored = np.asarray(zarr.open_group(str(cluster_store), mode="r")["labels/classes/0"])
    np.testing.assert_array_equal(classes.data, stored)
    # The panel takes the session over from the store, with its own editable layers.
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-razn", "RAZN")
    widget.device_picker.value = "cpu"
    qtbot.waitUntil(lambda: widget.classes_layer is not None, timeout=60000)
    assert [layer.name for layer in viewer.layers].count(CLASSES_LAYER) == 1
    assert widget.session.done.all() and widget.model_input.value == str(small_checkpoint)
    layer = widget.classes_layer
    np.testing.assert_array_equal(layer.data, stored)
    viewer.layers.selection.active = layer
    viewer.reset_view()
    qtbot.wait(100)
    layer.mode, layer.selected_label, layer.brush_size = "paint", 4, 12
    drag(viewer, [screen_point(viewer, layer, 96, 60 + 4 * i) for i in range(21)], qtbot)
    painted = widget.session.corrected.copy()
    assert painted.sum() > 100
    widget._save_now()  # what the autosave does within 2 s
    group = zarr.open_group(str(cluster_store), mode="r")
    np.testing.assert_array_equal(np.asarray(group["razn/corrected"]), painted)
    assert (np.asarray(group["labels/classes/0"])[painted] == 4).all()
    # The corrected store trains a model, as "Export corrections" files do.
    out = tmp_path / "model"
    done = razn("train", "--config", "scale1-small", "--slides", small_slide,
                "--labels", cluster_store, "--out", out, "--iterations", "2",
                "--batch-size", "2", "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (out / "model.safetensors").is_file()


@pytest.fixture
def moved_store(tmp_path, small_slide, small_checkpoint):
    """A store in results/ whose slide has since moved to elsewhere/."""
    import shutil

    from razn.inference.job import segment_slide
    from razn.models import load_model

    slide = tmp_path / "moved.ome.tif"
    shutil.copy(small_slide, slide)
    out = tmp_path / "results"
    out.mkdir()
    segment_slide(slide, load_model(small_checkpoint), out, device="cpu")
    (tmp_path / "elsewhere").mkdir()
    return out / "moved.razn.zarr", slide.rename(tmp_path / "elsewhere" / slide.name)


def answer_the_slide_dialog(qtbot, typed: str | None):
    """Type a path into the file dialog the reader opens and press Enter (None: Escape)."""
    from qtpy.QtCore import Qt, QTimer
    from qtpy.QtWidgets import QApplication, QLineEdit

    seen = []

    def answer():
        shown = [w for w in QApplication.topLevelWidgets()
                 if w.objectName() == "razn-find-slide" and w.isVisible()]  # fmt: skip
        if not shown:
            QTimer.singleShot(50, answer)
            return
        dialog = shown[0]
        seen.append(dialog.windowTitle())
        if typed is None:
            qtbot.keyClick(dialog, Qt.Key.Key_Escape)
            return
        edit = dialog.findChild(QLineEdit, "fileNameEdit")
        # setText, not typed keys: the path completer's pop-up would take the Enter.
        edit.setText(typed)
        qtbot.keyClick(edit, Qt.Key.Key_Return)

    QTimer.singleShot(50, answer)
    return seen


def test_a_moved_slide_is_asked_for_and_found(make_napari_viewer, qtbot, moved_store):
    import zarr

    store, slide = moved_store
    viewer = make_napari_viewer(show=True)
    seen = answer_the_slide_dialog(qtbot, str(slide))
    viewer.open(str(store), plugin="napari-razn")
    assert seen == ["Where is moved.ome.tif, the slide of moved.razn.zarr?"]
    names = [layer.name for layer in viewer.layers]
    assert names == ["moved.ome.tif", CLASSES_LAYER, ZOOM_LAYER, ZOOMED_LAYER]
    meta = viewer.layers[CLASSES_LAYER].metadata["razn_labels"]
    assert meta["slide"] == str(slide.resolve())
    # The panel takes the session over and saves it into the store it came
    # from, recording where the slide is now: the next open asks nothing.
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-razn", "RAZN")
    widget.device_picker.value = "cpu"
    qtbot.waitUntil(lambda: widget.classes_layer is not None, timeout=60000)
    widget._save_now()
    group = zarr.open_group(str(store), mode="r")
    assert group["razn"].attrs["slide"] == str(slide.resolve())
    viewer.layers.clear()
    viewer.open(str(store), plugin="napari-razn")
    assert len(seen) == 1 and len(viewer.layers) == 4


def test_a_moved_slide_not_given_is_one_clear_message(make_napari_viewer, qtbot, moved_store):
    store, _slide = moved_store
    viewer = make_napari_viewer(show=True)
    seen = answer_the_slide_dialog(qtbot, None)
    with pytest.raises(
        ValueError, match=r"moved\.razn\.zarr.*its slide .*moved\.ome\.tif was not found"
    ):
        viewer.open(str(store), plugin="napari-razn")
    assert len(seen) == 1 and not [layer.name for layer in viewer.layers]


def test_a_slide_of_another_size_is_refused(make_napari_viewer, qtbot, moved_store, tmp_path):
    from tests.razn.slide_files import tissue_image, write_ome_pyramid

    store, _slide = moved_store
    other = tmp_path / "other.ome.tif"
    write_ome_pyramid(other, tissue_image(1024, 1024, seed=1), mpp=0.25)
    viewer = make_napari_viewer(show=True)
    answer_the_slide_dialog(qtbot, str(other))
    with pytest.raises(
        ValueError,
        match=r"other\.ome\.tif is 1024 x 1024 px, but the store was made on a "
        r"2048 x 1536 px slide",
    ):
        viewer.open(str(store), plugin="napari-razn")


def test_without_a_viewer_nothing_is_asked(moved_store):
    from napari_razn._store_reader import get_reader

    store, _slide = moved_store
    with pytest.raises(ValueError, match=r"its slide .*moved\.ome\.tif was not found"):
        get_reader(str(store))(str(store))


def test_the_panel_and_the_cli_make_the_same_store(
    make_napari_viewer, qtbot, small_slide, small_checkpoint, tmp_path
):
    import zarr

    from razn.session import default_session_path
    from tests.napari_razn.test_corrections import dock_panel

    viewer, widget = dock_panel(make_napari_viewer, qtbot, small_slide, small_checkpoint)
    widget.threshold.value = 0.5
    widget.segment_slide()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60000)
    assert widget.session.done.all()
    widget._save_now()
    panel = zarr.open_group(str(default_session_path(small_slide)), mode="r")
    out = tmp_path / "results"
    done = razn("segment", small_slide, "--model", small_checkpoint, "--out", out,
                "--threshold", "0.5", "--device", "cpu")  # fmt: skip
    assert done.returncode == 0, done.stderr
    cli = zarr.open_group(str(out / "ellipse.razn.zarr"), mode="r")
    for name in ("labels/classes/0", "labels/zoomed/0", "razn/done", "razn/tissue",
                 "razn/corrected"):  # fmt: skip
        np.testing.assert_array_equal(np.asarray(panel[name]), np.asarray(cli[name]), name)
    np.testing.assert_array_equal(np.asarray(panel["zoom_p"]), np.asarray(cli["zoom_p"]))
    a, b = dict(panel["razn"].attrs), dict(cli["razn"].attrs)
    for key in ("format", "slide_shape", "mpp", "threshold", "tile_size", "downsample",
                "patch_size", "label_grid"):  # fmt: skip
        assert a[key] == b[key], key
    assert a["model"]["sha256"] == b["model"]["sha256"]
    assert dict(panel["labels/classes"].attrs) == dict(cli["labels/classes"].attrs)
