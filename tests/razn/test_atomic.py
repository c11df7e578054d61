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


def test_the_file_reaches_the_disk_before_its_name_and_the_folder_after(tmp_path, monkeypatch):
    # A power cut must not leave an empty file under the finished name: the
    # data is fsynced before the rename, the folder entry after it.
    import razn.atomic

    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", "folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(razn.atomic.os, "fsync", fsync)
    monkeypatch.setattr(razn.atomic.os, "replace", replace)
    write_text_atomic(tmp_path / "labels.geojson", "{}")
    assert events == [("fsync", "file"), ("replace", "labels.geojson"), ("fsync", "folder")]


def test_an_output_that_cannot_be_written_is_one_output_error(tmp_path):
    from razn.atomic import writable_folder
    from razn.errors import OutputError

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        writable_folder(blocker)
    with pytest.raises(OutputError, match="output folder does not exist"):
        writable_folder(tmp_path / "missing")
    with pytest.raises(OutputError, match="Not a directory"):
        writable_folder(blocker / "below", create=True)
    assert writable_folder(tmp_path / "new" / "deep", create=True).is_dir()
