"""Writing outputs so that a crash never leaves a half-written file.

Every file the project writes goes to a temporary name in the same folder
and is renamed over the target only once it is complete; `os.replace` is
atomic on POSIX and Windows when both names are on one file system.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path beside `target`; rename it over `target` on success.

    On an exception the temporary file (or folder) is removed and `target`
    is left as it was. The temporary name keeps the target's suffix so
    writers that choose a format by extension still work.
    """
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"{parent}: folder does not exist")
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix or "".join(target.suffixes), dir=parent
    )
    os.close(fd)
    os.unlink(tmp)  # writers create it themselves (some write folders)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp's name is private (0600); give the result the permissions
        # a plain open() would, so colleagues can read a shared export.
        if tmp.exists():
            os.chmod(tmp, (0o777 if tmp.is_dir() else 0o666) & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


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
