"""Where the panel's session is read and written (the store beside the slide, or the user's).

The panel saves from workers (autosave) and from the GUI thread (leaving a
slide, closing); one lock keeps two saves of a session from interleaving.
"""

from __future__ import annotations

import logging
import threading

# Saves of the same session never interleave (a worker's and the final one).
_save_lock = threading.Lock()


def load_session(path):
    from razn.session import SegmentationSession

    return SegmentationSession.load(path)


def write_session(session, path) -> None:
    with _save_lock:
        session.save(path)


def save_on_close(session, path) -> bool:
    """Save as the window goes: a trace in the log, not a pop-up, if it fails."""
    try:
        write_session(session, path)
        return True
    except Exception:
        logging.getLogger(__name__).exception("could not save the session on close")
        return False


def session_path_for(slide: str):
    from razn.session import default_session_path

    return default_session_path(slide)
