"""Writing outputs so that a crash, a power cut or a full disk never leaves a half-written file.

Every file the project writes goes to a temporary name in the same folder
and is renamed over the target only once it is complete and flushed to the
disk (`os.fsync` of the file, then of its folder, so a power cut cannot
leave an empty file under the finished name); `os.replace` is atomic on
POSIX and Windows when both names are on one file system.

`writable_folder` is the one check of an output folder before any work is
done. Errors the operating system gives while writing (a full disk, a
read-only folder) become `razn.errors.OutputError`: one line naming the
path and the OS's reason.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path

from razn.errors import OutputError

#: OS errors that mean "this output cannot be written here", not a bug.
WRITE_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.EFBIG,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ENAMETOOLONG,
    errno.ELOOP,
}


def output_error(error: OSError, path: str | os.PathLike) -> OutputError:
    """An `OutputError` naming `path` and the OS's reason ("No space left on device")."""
    reason = error.strerror or str(error)
    return OutputError(f"cannot write here: {reason} (errno {error.errno})", path)


def writable_folder(folder: str | os.PathLike, *, create: bool = False) -> Path:
    """Check (or create) an output folder before any work starts; return it.

    Writability is tested by creating and removing a file there, the only
    test that is true for root, ACLs and read-only mounts alike
    (`os.access` is not).

    Raises
    ------
    OutputError
        The folder is missing (and `create` is False), is a file, or cannot
        be written; the message names it and the OS's reason.
    """
    folder = Path(folder) if str(folder) else Path(".")
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise OutputError("is a file, not a folder", folder) from None
        except OSError as error:
            raise output_error(error, folder) from None
    if not folder.exists():
        raise OutputError("output folder does not exist", folder)
    if not folder.is_dir():
        raise OutputError("is a file, not a folder", folder)
    try:
        fd, probe = tempfile.mkstemp(prefix=".razn-write-test.", dir=folder)
    except OSError as error:
        raise output_error(error, folder) from None
    os.close(fd)
    os.unlink(probe)
    return folder


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path beside `target`; rename it over `target` on success.

    On an exception the temporary file (or folder) is removed and `target`
    is left as it was. The temporary name keeps the target's suffix so
    writers that choose a format by extension still work. An `OSError`
    such as a full disk or a read-only folder is raised as `OutputError`.
    """
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError("output folder does not exist", parent)
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=suffix or "".join(target.suffixes), dir=parent
        )
    except OSError as error:
        raise output_error(error, parent) from None
    os.close(fd)
    os.unlink(tmp)  # writers create it themselves (some write folders)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():
            # mkstemp's name is private (0600); give the result the permissions
            # a plain open() would, so colleagues can read a shared export.
            os.chmod(tmp, (0o777 if tmp.is_dir() else 0o666) & ~_umask())
            _fsync_tree(tmp)
        os.replace(tmp, target)
        _fsync_folder(parent)
    except BaseException as error:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
            raise output_error(error, target) from None
        raise


def _fsync_tree(path: Path) -> None:
    """Flush a written file, or every file and folder of a written folder, to the disk."""
    if path.is_dir():
        for root, _dirs, files in os.walk(path):
            for name in files:
                _fsync_file(Path(root) / name)
            _fsync_folder(Path(root))
    else:
        _fsync_file(path)


def _fsync_file(path: Path) -> None:
    # Windows flushes a file only through a handle that may write to it
    # (FlushFileBuffers needs GENERIC_WRITE); POSIX takes any descriptor.
    flags = os.O_RDONLY if os.name == "posix" else os.O_RDWR | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    # A folder's entry (the rename) is durable only once the folder is
    # flushed; Windows cannot open folders and orders renames itself.
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
