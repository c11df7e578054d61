"""The errors the core raises for bad input.

Every error names the file it is about and what is wrong with it, so the
CLI and the plugin can show the message as it is, without a traceback.
"""

from __future__ import annotations

import os


class RaznError(Exception):
    """Base of every error caused by the user's input, not by a bug."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class SlideError(RaznError):
    """A slide cannot be opened or read: missing, corrupt, or not 8-bit RGB."""


class AnnotationError(RaznError):
    """An annotation file (GeoJSON, ImageScope or ASAP XML) is malformed."""


class OutputError(RaznError, OSError):
    """An output cannot be written: its folder is missing or read-only, or the disk is full.

    Also an `OSError`, which it is at heart, so callers that catch the OS's
    errors around a write keep catching it.
    """
