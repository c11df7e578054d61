"""Plugin test fixtures: sessions in a temporary folder, a small slide and model."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def session_folder(tmp_path, monkeypatch):
    import razn.session

    folder = tmp_path / "sessions"
    monkeypatch.setenv("NAPARI_RAZN_SESSIONS", str(folder))
    # Stores opened in napari are remembered per slide for the process; the
    # slide fixtures are shared, so one test's store must not become the next
    # test's session.
    monkeypatch.setattr(razn.session, "_OPENED_STORES", {})
    return folder


@pytest.fixture(scope="session")
def small_slide(tmp_path_factory):
    from tests.razn.slide_files import tissue_image, write_ome_pyramid

    path = tmp_path_factory.mktemp("plugin") / "ellipse.ome.tif"
    write_ome_pyramid(path, tissue_image(1536, 2048, seed=4), mpp=0.25)
    return path


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory):
    import torch

    from razn.models import build_model, get_config, save_checkpoint

    torch.manual_seed(0)
    model = build_model(get_config("razn-small").with_(patch_size=64))
    return save_checkpoint(model, tmp_path_factory.mktemp("models") / "small.safetensors")


@pytest.fixture(autouse=True)
def no_worker_outlives_its_test(qapp):
    """Wait for the panel's background workers (napari runs them on Qt's pool).

    A warm-up or tissue worker still running when its test ends can touch
    the next test's state, and one still running when Python shuts down
    crashed the interpreter after the last test (a segfault, rc 139, once
    in three full runs).
    """
    yield
    from qtpy.QtCore import QThreadPool

    assert QThreadPool.globalInstance().waitForDone(60_000), "a worker did not finish"
