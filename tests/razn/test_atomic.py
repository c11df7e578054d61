"""Atomic writes: all or nothing, with the permissions a plain open() gives."""

from __future__ import annotations

import os
import stat

import pytest

from razn.atomic import atomic_path, write_text_atomic


def test_outputs_get_ordinary_permissions(tmp_path):
    path = tmp_path / "shared.geojson"
    write_text_atomic(path, "{}")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "labels.geojson"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["labels.geojson"]
