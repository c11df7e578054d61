"""A `razn.session.SegmentationSession` saved as, and restored from, a segmentation store.

The panel's session and `razn segment`'s result are one format: the
session's `labels` are the store's `labels/classes` image, `predictions`
are kept in `razn/predictions` where the pathologist corrected (elsewhere
they equal the labels), and the panel's settings and "made by" sit in
`razn/`'s attributes under "session". A store `razn segment` wrote opens
as a session with its model's hash and threshold as settings, so the
panel resumes its run where the CLI stopped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from razn.errors import OutputError, RaznError


def is_writable_folder(folder: Path) -> bool:
    from razn.atomic import writable_folder

    try:
        writable_folder(folder)
    except OutputError:
        return False
    return True


def find_slide(store: Path, recorded: str) -> Path:
    """The slide a store names: as recorded, relative to the store's folder, or beside it.

    Raises a RaznError naming the store and what to do when it is in none of them.
    """
    recorded_path = Path(recorded)
    for candidate in (
        recorded_path,
        store.parent / recorded_path,
        store.parent / recorded_path.name,
    ):
        if candidate.is_file():
            return candidate.resolve()
    raise RaznError(
        f"its slide {recorded} was not found, nor {Path(recorded).name} beside the store; "
        "put the slide there (or open the slide, then this store's session follows)",
        store,
    )


def _leads_to(store: Path, recorded: str, slide: str) -> bool:
    """Whether the recorded slide path still finds this slide from the store."""
    try:
        return find_slide(store, recorded) == Path(slide).resolve()
    except RaznError:
        return False


def session_settings(session) -> dict:
    """The `razn/` attributes of a store saved from a session."""
    from razn import __version__
    from razn.label_grid import label_grid_metadata
    from razn.label_grid._ngff import STORE_FORMAT

    grid = session.grid
    settings = session.settings
    model = {"sha256": settings.get("model"), "checkpoint": session.made_by.get("model")}
    return {
        "format": STORE_FORMAT,
        "slide": session.slide_path,
        "slide_shape": list(grid.slide_shape),
        "mpp": session.mpp,
        "mpp_source": None,
        "threshold": settings.get("threshold"),
        "tile_size": grid.tile_size,
        "downsample": grid.downsample,
        "patch_size": grid.patch_size,
        "model": model,
        "code_version": __version__,
        "label_grid": label_grid_metadata(grid.downsample, grid.slide_shape, session.mpp),
        "corrected_pixels": int(session.corrected.sum()),
        "session": {"settings": dict(settings), "made_by": dict(session.made_by)},
    }


def save_session(session, path: Path) -> None:
    """Write the whole session as a new store and swap it in, under the store's lock."""
    from razn.classes import DEFAULT_CLASSES
    from razn.inference.store import StoreLock, build, recover, swap_in, temporary_name
    from razn.label_grid._ngff import CLASSES_PATH, ZOOM_P_PATH, ZOOMED_PATH, update_pyramid

    path.parent.mkdir(parents=True, exist_ok=True)
    settings = session_settings(session)
    old = _previous_settings(path)
    if old:  # keep what the CLI recorded about the model and the slide
        settings["mpp_source"] = old.get("mpp_source", settings["mpp_source"])
        # The recorded path (often relative, or the cluster's) stays while it
        # still finds this slide; a slide the user had to point to is recorded anew.
        if old.get("slide") and _leads_to(path, old["slide"], session.slide_path):
            settings["slide"] = old["slide"]
        if (old.get("model") or {}).get("sha256") == settings["model"]["sha256"]:
            settings["model"] = old["model"]

    def fill(group):
        group[f"{CLASSES_PATH}/0"][...] = session.labels
        update_pyramid(group[CLASSES_PATH])
        group[ZOOM_P_PATH][...] = session.zoom_p
        group[f"{ZOOMED_PATH}/0"][...] = session.zoomed.astype(np.uint8)
        group["razn/done"][...] = session.done
        group["razn/tissue"][...] = session.tissue & session.done
        if session.corrected.any():
            group["razn/corrected"][...] = session.corrected
            group["razn/predictions"][...] = np.where(session.corrected, session.predictions, 0)

    with StoreLock(path):
        recover(path)
        tmp = temporary_name(path, "saving")
        try:
            build(tmp, session.grid, DEFAULT_CLASSES, settings, fill)
            swap_in(tmp, path)
        except BaseException:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _previous_settings(path: Path) -> dict:
    import zarr

    try:
        return dict(zarr.open_group(str(path), mode="r")["razn"].attrs)
    except Exception:  # noqa: BLE001 - none, or not ours: nothing to keep
        return {}


def load_session(cls, path: Path):
    """A session from a store (`razn segment`'s or a saved session's)."""
    from razn.inference.store import SegmentationStore, StoreError, recover
    from razn.inference.tiling import TileGrid

    try:
        recover(path)
        store = SegmentationStore.open(path, mode="r")
    except StoreError as error:
        raise RaznError(f"cannot restore the session: {error}") from None
    attrs = store.settings
    grid = TileGrid(
        tuple(attrs["slide_shape"]), attrs["tile_size"], attrs["downsample"], attrs["patch_size"]
    )
    saved = attrs.get("session")
    if saved is not None:  # the panel saved it
        settings = dict(saved.get("settings") or {})
    else:  # `razn segment` wrote it: the settings the panel gives that model and threshold
        settings = {
            "model": (attrs.get("model") or {}).get("sha256"),
            "threshold": round(float(attrs["threshold"]), 4),
        }
        saved = {}
    session = cls(attrs["slide"], grid, attrs.get("mpp"), settings)
    made_by = saved.get("made_by")
    if made_by is None and (attrs.get("model") or {}).get("checkpoint"):
        made_by = {"model": attrs["model"]["checkpoint"]}
    session.made_by = dict(made_by or {})
    session.labels = np.asarray(store.labels[...], np.uint8)
    session.corrected = np.asarray(store.corrected[...], bool)
    stored = np.asarray(store.predictions[...], np.uint8)
    session.predictions = np.where(session.corrected, stored, session.labels).astype(np.uint8)
    session.zoom_p = np.asarray(store.zoom_p[...], np.float32)
    session.zoomed = np.asarray(store.zoomed[...]).astype(bool)
    session.done = np.asarray(store.done[...], bool)
    session.tissue = np.asarray(store.tissue[...], bool)
    return session
