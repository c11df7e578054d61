"""napari sample data: a synthetic H&E slide with its ground-truth labels.

File > Open Sample > napari-razn > "Synthetic breast slide (with ground
truth)". Nothing is downloaded: the slide is generated on first use into
the user's cache (``$NAPARI_RAZN_CACHE``, else ``$XDG_CACHE_HOME/napari-razn``,
else ``~/.cache/napari-razn``) and reused afterwards; it is regenerated when
any of its three files is missing, and made anew under another name when
the generator changes (`razn.synth.GENERATOR_VERSION`). Layers carry `scale` in microns and the
half-pixel `translate` of docs/design.md, so the labels sit on the tissue.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from razn.synth import GENERATOR_VERSION

# Small enough to generate in a few seconds on a laptop core, large enough
# to hold every class: 1.5 x 1.1 mm at 0.5 um/px.
SAMPLE_SIZE = (3072, 2304)
SAMPLE_SEED = 4  # a seed whose layout holds all four classes (tested)
SAMPLE_MPP = 0.5
SAMPLE_INVASIVE = "desmoplastic"
SAMPLE_NAME = (
    f"razn-synthetic-seed{SAMPLE_SEED}-{SAMPLE_SIZE[0]}x{SAMPLE_SIZE[1]}"
    f"-g{GENERATOR_VERSION}.tif"
)  # the generator's version in the name: a newer generator makes a new sample


def cache_folder() -> Path:
    """Where generated samples live (created on demand)."""
    override = os.environ.get("NAPARI_RAZN_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "napari-razn"


def synthetic_slide_path(*, in_subprocess: bool = False) -> Path:
    """The cached sample slide, generated if it or its ground truth is missing.

    in_subprocess : generate it in a child Python process. The generator is
        numpy and scipy work, much of which holds the interpreter (scipy's
        filters, small array operations): in a thread beside napari's GUI
        thread it stalled the window for seconds at a time. A process has an
        interpreter of its own.
    """
    from razn.synth import companion_paths

    folder = cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / SAMPLE_NAME
    if not all(p.is_file() for p in companion_paths(image)):
        if in_subprocess:
            _generate_in_subprocess(image)
        else:
            _generate(image)
    return image


def _generate(image: Path) -> None:
    from razn.synth import generate_slide

    width, height = SAMPLE_SIZE
    # Desmoplastic, the pattern the demo model was trained on (not the
    # generator's default, spill), so the demo reads its own kind of slide.
    generate_slide(
        image, width, height, seed=SAMPLE_SEED, mpp=SAMPLE_MPP, invasive=SAMPLE_INVASIVE
    )


def _generate_in_subprocess(image: Path) -> None:
    """`_generate(image)` in a child process; its last error line if it fails."""
    import subprocess
    import sys

    code = "import sys; from pathlib import Path; from napari_razn._sample_data import _generate; "
    code += "_generate(Path(sys.argv[1]))"
    done = subprocess.run(
        [sys.executable, "-c", code, str(image)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        lines = (done.stderr or "").strip().splitlines() or [f"exit status {done.returncode}"]
        raise RuntimeError(f"could not generate the sample slide {image}: {lines[-1]}")


def _keeping_the_gui_live(func):
    """`func()` in a thread while the Qt event loop keeps turning, if there is one.

    napari calls a sample contribution on the GUI thread and waits for its
    layers; generating the slide the first time takes seconds, which froze
    the window. The event loop turns here meanwhile, so the window repaints
    and stays responsive; without a Qt application it is a plain call.
    """
    import threading

    try:
        from qtpy.QtCore import QCoreApplication, QEventLoop
    except ImportError:
        return func()
    if QCoreApplication.instance() is None:
        return func()
    outcome, done = {}, threading.Event()

    def run():
        try:
            outcome["value"] = func()
        except BaseException as error:  # re-raised on the GUI thread
            outcome["error"] = error
        finally:
            done.set()

    threading.Thread(target=run, name="razn-sample", daemon=True).start()
    loop = QEventLoop()
    while not done.wait(0.005):
        loop.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def make_synthetic_slide_sample():
    """napari sample contribution: the slide (multiscale) and its truth (labels).

    All of it runs off the GUI thread (`_keeping_the_gui_live`): the imports,
    opening the slide and reading its truth in a thread, and generating it
    the first time in a child process (`synthetic_slide_path`).
    """
    return _keeping_the_gui_live(_sample_layers)


def _sample_layers():
    from napari_razn._collector import collections_paused

    # With the collector paused, then frozen: a full collection these imports
    # set off stalled the window 70-100 ms, twice, while the sample opened.
    with contextlib.suppress(Exception), collections_paused():
        # One-off work napari does on the GUI thread when these layers are
        # added (found by profiling it and diffing sys.modules around it),
        # done here instead: pint's unit registry (1-2 s) for the first
        # layer with units; the imports of the first Labels layer (pandas
        # for its features, scipy.ndimage and scipy.linalg, skimage's
        # colour, exposure and util modules); vispy's dash patterns for its
        # outlines (a numpy loop, 0.2-0.3 s, cached once made).
        from napari.utils._units import get_unit_registry
        from vispy.visuals.line.dash_atlas import DashAtlas

        DashAtlas()
        get_unit_registry().um  # noqa: B018  (pint builds the registry on first use)
        import pandas  # noqa: F401
        import scipy.linalg  # noqa: F401
        import scipy.ndimage  # noqa: F401
        from skimage import color, exposure, util  # noqa: F401
    import numpy as np

    from razn.classes import DEFAULT_CLASSES
    from razn.label_tiff import read_label_grid
    from razn.slide import open_slide
    from razn.synth import companion_paths

    image = synthetic_slide_path(in_subprocess=True)
    slide = open_slide(image)
    mpp0 = slide.mpp
    levels = slide.levels
    # Downsample of each level from the shapes, not from metadata.
    h0 = levels[0].shape[0]
    scales = [h0 / lv.shape[0] for lv in levels]
    grid = read_label_grid(companion_paths(image)[1])
    d = grid.downsample
    colors = {None: (0, 0, 0, 0), 0: (0, 0, 0, 0)}
    colors.update({c.value: tuple(np.array([*c.color, 255]) / 255) for c in DEFAULT_CLASSES})
    from napari_razn._reader import slide_layer_data

    # The reader's layer (so the RAZN panel offers it), named as what it is.
    data, kwargs, kind = slide_layer_data(slide)
    kwargs["name"] = "synthetic slide (not real tissue)"
    kwargs["metadata"].update({"path": str(image), "mpp": mpp0, "downsamples": scales})
    slide_layer = (data, kwargs, kind)
    labels_layer = (
        np.asarray(grid.labels),
        {
            "name": "ground truth",
            "scale": (d * mpp0, d * mpp0),
            "translate": ((d - 1) / 2 * mpp0, (d - 1) / 2 * mpp0),
            "opacity": 0.4,
            "colormap": colors,
            "units": "um",
            "metadata": {
                "label_downsample": d,
                "path": str(companion_paths(image)[1]),
                # What the QuPath writer needs to place the grid in level 0.
                "razn_labels": {
                    "downsample": d,
                    "level0_shape": list(slide.shape),
                    "mpp": mpp0,
                },
            },
        },
        "labels",
    )
    return [slide_layer, labels_layer]
