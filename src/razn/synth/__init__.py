"""Synthetic H&E breast slides with known answers, and a real-tissue mosaic.

The paper's BACH slides cannot be had here, yet training, evaluation,
benchmarks, the demo and the napari sample all need slides whose truth is
known. `generate_slide` writes one: a pyramidal JPEG OME-TIFF rendered tile
by tile from a procedural layout (`layout`, `tissue`, `nuclei`, `stain`,
`writer`), its ground-truth label grid and the same truth as QuPath
GeoJSON (`ground_truth`). They are synthetic and say so in their metadata.
`generate_mosaic` lays real BreakHis photomicrographs on glass instead
(`mosaic`). See docs/synthetic.md for what the generator models and what
the benchmark measured on it.

Example
-------
>>> import tempfile, os
>>> out = os.path.join(tempfile.mkdtemp(), "demo.tif")
>>> result = generate_slide(out, 2048, 1536, seed=7)
>>> sorted(p.name for p in result.paths())
['demo.geojson', 'demo.labels.tif', 'demo.tif']
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import multiprocessing
import os
from collections.abc import Callable
from dataclasses import asdict, replace

from razn.errors import RaznError
from razn.synth.layout import INVASIVE_PATTERNS, Layout, SlideSpec
from razn.synth.output import SynthResult, _check_writable, atomic_companions, companion_paths

#: Raised whenever the same seed and settings start to give other pixels or
#: labels, so that slides cached by seed (the napari sample) are made anew.
#: 2: benign and in situ share every coarse-visible property, dense ducts
#: (the second session's generator).
GENERATOR_VERSION = 2

__all__ = [
    "GENERATOR_VERSION",
    "INVASIVE_PATTERNS",
    "SlideSpec",
    "SynthResult",
    "companion_paths",
    "generate_slide",
    "generate_mosaic",
]

# Validated here, not by argparse, so the API and the CLI refuse alike.
MAX_SIDE = 1_000_000


def default_label_downsample(width: int, height: int) -> int:
    """16 (4 um at 0.25 mpp) unless that would make a grid over 8k per side."""
    d = 16
    while max(width, height) / d > 8192:
        d *= 2
    return d


def generate_slide(
    out: str | os.PathLike,
    width: int,
    height: int,
    *,
    seed: int,
    mpp: float = 0.25,
    tissue_fraction: float = 0.55,
    lesion_fraction: float = 0.4,
    invasive: str = "spill",
    label_noise: float = 0.0,
    label_downsample: int | None = None,
    level_factor: int = 2,
    quality: int = 90,
    workers: int = 1,
    on_progress: Callable[[int, int], None] | None = None,
) -> SynthResult:
    """Write a synthetic slide, its label grid and its GeoJSON.

    Parameters
    ----------
    out : path
        ``OUT.tif``; ``OUT.labels.tif`` and ``OUT.geojson`` go beside it.
        All three appear only when all three are complete.
    width, height : int
        Level-0 size in pixels.
    seed : int
        Same arguments, same bytes.
    mpp : float
        Microns per level-0 pixel (tissue is modelled in microns).
    tissue_fraction : float
        Fraction of the slide covered by tissue, in (0, 0.7]; glass covers
        the rest (at least 30%).
    lesion_fraction : float
        Fraction of the tissue inside lesions, in [0.05, 0.6], shared about
        equally by benign, in situ and invasive; the rest is normal. Real
        biopsies vary; the default is lesion-rich, so small slides test
        every class.
    invasive : {"spill", "desmoplastic", "scattered"}
        How invasive carcinoma grows: crowded nests whose stromal reaction
        is patchy and reaches past the outline (the default: the stroma no
        longer traces the label); crowded nests in pale reactive stroma
        that fills the annotated outline exactly (plain at any
        magnification, and its colour alone gives the label away; the
        built-in sample, the demo model and Table 1's quick profile use
        it); or small nests about 100 um apart in stroma and fat that look
        normal (a 64 um patch of the lesion often shows no tumour; a 128 um
        field nearly always does).
    label_noise : float
        Amplitude in level-0 pixels of a smooth random displacement of the
        ground-truth region boundaries (the image is unaffected).
    label_downsample : int, optional
        Downsample of the label grid; default `default_label_downsample`.
    level_factor : int
        Downsample between pyramid levels (2 or 4).
    quality : int
        JPEG quality of the slide tiles.
    workers : int
        Processes rendering blocks in parallel (1: in this process).
    on_progress : callable (done, total), optional
        Level-0 rows written so far, and in all.
    """
    spec = _check_spec(width, height, seed, mpp, tissue_fraction, label_noise)
    if not 0.05 <= lesion_fraction <= 0.6:
        raise RaznError(f"lesion fraction must be in 0.05..0.6, got {lesion_fraction}")
    if invasive not in INVASIVE_PATTERNS:
        raise RaznError(
            f"invasive pattern must be one of {', '.join(INVASIVE_PATTERNS)}, got {invasive!r}"
        )
    spec = replace(spec, lesion_fraction=float(lesion_fraction), invasive=invasive)
    if label_downsample is None:
        label_downsample = default_label_downsample(width, height)
    if int(label_downsample) != label_downsample or label_downsample < 1:
        raise RaznError(f"label downsample must be a positive integer, got {label_downsample}")
    if level_factor not in (2, 4):
        raise RaznError(f"level factor must be 2 or 4, got {level_factor}")
    if not 1 <= quality <= 100:
        raise RaznError(f"JPEG quality must be in 1..100, got {quality}")
    image, labels, geojson = companion_paths(out)
    _check_writable(image)

    from razn.synth.ground_truth import write_ground_truth
    from razn.synth.tissue import render_region
    from razn.synth.writer import write_pyramid

    layout = Layout.build(spec)
    described = asdict(spec)
    if spec.invasive == INVASIVE_PATTERNS[0]:
        # Desmoplastic slides keep the bytes they had before the option
        # (the key makes the OME UUID).
        del described["invasive"]
    key = json.dumps(
        {**described, "label_noise": label_noise, "label_downsample": label_downsample,
         "level_factor": level_factor, "quality": quality},
        sort_keys=True,
    )  # fmt: skip
    with contextlib.ExitStack() as stack:
        tmp_image, tmp_labels, tmp_geojson = stack.enter_context(
            atomic_companions(image, labels, geojson)
        )
        executor = None
        if workers > 1:
            executor = stack.enter_context(
                concurrent.futures.ProcessPoolExecutor(
                    workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker,
                    initargs=(spec,),
                )
            )
            render = _render_in_worker
        else:

            def render(x, y, w, h):
                return render_region(layout, x, y, w, h)

        levels = write_pyramid(
            tmp_image,
            spec.height,
            spec.width,
            render,
            mpp=spec.mpp,
            key=key,
            factor=level_factor,
            quality=quality,
            executor=executor,
            on_progress=on_progress,
            name=f"razn synthetic H&E slide (seed {seed}; not real tissue)",
        )
        write_ground_truth(
            layout,
            tmp_labels,
            tmp_geojson,
            downsample=label_downsample,
            label_noise=label_noise,
            key=key,
        )
    return SynthResult(image, labels, geojson, levels, label_downsample)


def generate_mosaic(*args, **kwargs):
    """Lay real photomicrographs on glass; see `razn.synth.mosaic.generate_mosaic`."""
    from razn.synth.mosaic import generate_mosaic as _generate_mosaic

    return _generate_mosaic(*args, **kwargs)


def _check_spec(width, height, seed, mpp, tissue_fraction, label_noise) -> SlideSpec:
    for name, value in (("width", width), ("height", height)):
        if int(value) != value or not 64 <= value <= MAX_SIDE:
            raise RaznError(f"slide {name} must be an integer in 64..{MAX_SIDE}, got {value}")
    if int(seed) != seed or seed < 0:
        raise RaznError(f"seed must be a non-negative integer, got {seed}")
    if not 0.05 <= mpp <= 20:
        raise RaznError(f"mpp must be in 0.05..20 microns per pixel, got {mpp}")
    if not 0.05 <= tissue_fraction <= 0.7:
        raise RaznError(
            f"tissue fraction must be in 0.05..0.7 (glass covers at least 30%), got {tissue_fraction}"
        )
    if not 0 <= label_noise <= min(width, height) / 4:
        raise RaznError(
            f"label noise must be in 0..{min(width, height) / 4:g} pixels, got {label_noise}"
        )
    return SlideSpec(int(width), int(height), int(seed), float(mpp), float(tissue_fraction))


_WORKER_LAYOUT: Layout | None = None


def _init_worker(spec: SlideSpec) -> None:
    global _WORKER_LAYOUT
    _WORKER_LAYOUT = Layout.build(spec)


def _render_in_worker(x, y, w, h):
    from razn.synth.tissue import render_region

    return render_region(_WORKER_LAYOUT, x, y, w, h)
