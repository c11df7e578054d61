"""A slide of real tissue: BreakHis, BACH and BRACS photos laid as islands on glass.

Each photo (or piece of a large one) becomes a tissue island, resampled to
the slide's mpp and cut to a rounded, slightly irregular outline, on a
jittered grid over glass, and its whole island is labelled with the class
its file name gives (`razn.synth.photos`: image-level labels, so the truth
is coarser than the tissue). The glass around the islands is labelled
normal, as on the synthetic slides. In the 4-class terms of Table 1, normal
and benign are non-carcinoma, in situ and invasive carcinoma.

BreakHis 100X images are taken at about 0.49 um/px (Spanhol et al. 2016
give no calibration; 0.49 is the value usually assumed for the 100X
Olympus setup) in the 700 x 460 originals, so a photo w pixels wide is
resampled by 0.49 * 700 / w / mpp; BACH and BRACS scales are in `photos`.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from razn.classes import BENIGN, IN_SITU, INVASIVE, NORMAL
from razn.errors import RaznError
from razn.synth.photos import (  # noqa: F401 (re-exported: the mosaic's public names)
    BREAKHIS_MPP,
    BREAKHIS_WIDTH,
    Photo,
    find_photos,
    parse_breakhis_name,
    patient_split,
    shared_patients,
)


@dataclass(frozen=True)
class _Island:
    x: int
    y: int
    pixels: np.ndarray  # (h, w, 3) uint8, resampled to the slide's mpp
    mask: np.ndarray  # (h, w) bool, the island outline
    class_value: int


class MosaicLayout:
    """Islands on a jittered grid; renders boxes and the class map."""

    def __init__(self, islands: list[_Island], width: int, height: int, mpp: float):
        self.islands, self.width, self.height, self.mpp = islands, width, height, mpp

    def render(self, x0: int, y0: int, w: int, h: int) -> np.ndarray:
        from razn.synth.stain import GLASS_RGB

        out = np.empty((h, w, 3), np.uint8)
        out[:] = GLASS_RGB.astype(np.uint8)
        for isl in self._meeting(x0, y0, w, h):
            sy, sx, dy, dx = _overlap(isl, x0, y0, w, h)
            m = isl.mask[sy, sx]
            out[dy, dx][m] = isl.pixels[sy, sx][m]
        return out

    def label_grid(self, downsample: int) -> np.ndarray:
        gh, gw = -(-self.height // downsample), -(-self.width // downsample)
        labels = np.full((gh, gw), NORMAL, np.uint8)
        for isl in self.islands:
            # Sample each grid cell at its level-0 centre, as the synthetic
            # ground truth does.
            ys = np.arange(gh) * downsample + (downsample - 1) / 2 - isl.y
            xs = np.arange(gw) * downsample + (downsample - 1) / 2 - isl.x
            iy = np.nonzero((ys >= 0) & (ys < isl.mask.shape[0]))[0]
            ix = np.nonzero((xs >= 0) & (xs < isl.mask.shape[1]))[0]
            if len(iy) and len(ix):
                inside = isl.mask[np.floor(ys[iy]).astype(int)][:, np.floor(xs[ix]).astype(int)]
                labels[np.ix_(iy, ix)] = np.where(inside, isl.class_value, labels[np.ix_(iy, ix)])
        return labels

    def _meeting(self, x0, y0, w, h):
        for isl in self.islands:
            ih, iw = isl.mask.shape
            if isl.x < x0 + w and isl.x + iw > x0 and isl.y < y0 + h and isl.y + ih > y0:
                yield isl


def _overlap(isl, x0, y0, w, h):
    ih, iw = isl.mask.shape
    ax0, ay0 = max(x0, isl.x), max(y0, isl.y)
    ax1, ay1 = min(x0 + w, isl.x + iw), min(y0 + h, isl.y + ih)
    return (
        slice(ay0 - isl.y, ay1 - isl.y),
        slice(ax0 - isl.x, ax1 - isl.x),
        slice(ay0 - y0, ay1 - y0),
        slice(ax0 - x0, ax1 - x0),
    )


def build_mosaic(photos: list[Photo], *, seed: int, mpp: float, photo_mpp: float) -> MosaicLayout:
    """Resample the photos, cut them to island outlines and place them."""
    from PIL import Image

    rng = np.random.default_rng([seed, 0x3051])
    islands_px = []
    for photo in photos:
        try:
            with Image.open(photo.path) as im:
                im = im.convert("RGB")  # BACH examples carry an alpha channel
                scale = photo.mpp_at(im.width, photo_mpp) / mpp
                if photo.piece is not None:
                    x0, y0, x1, y1 = photo.piece
                    im = im.crop((round(x0 * im.width), round(y0 * im.height),
                                  round(x1 * im.width), round(y1 * im.height)))  # fmt: skip
                size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
                pixels = np.asarray(im.resize(size, Image.Resampling.LANCZOS))
        except OSError as error:
            raise RaznError(f"cannot read image: {error}", photo.path) from None
        islands_px.append((pixels, _island_mask(pixels.shape[:2], rng), photo.class_value))
    cell_h = max(p.shape[0] for p, _, _ in islands_px)
    cell_w = max(p.shape[1] for p, _, _ in islands_px)
    # Cells 1.45x the island in each direction: glass covers over half.
    pitch_y, pitch_x = int(cell_h * 1.45), int(cell_w * 1.45)
    cols = math.ceil(math.sqrt(len(photos) * pitch_y / pitch_x))
    rows = math.ceil(len(photos) / cols)
    width, height = cols * pitch_x, rows * pitch_y
    order = rng.permutation(len(photos))
    islands = []
    for slot, index in enumerate(order):
        pixels, mask, value = islands_px[index]
        r, c = divmod(slot, cols)
        h, w = mask.shape
        x = c * pitch_x + int(rng.integers(0, pitch_x - w + 1))
        y = r * pitch_y + int(rng.integers(0, pitch_y - h + 1))
        islands.append(_Island(x, y, pixels, mask, value))
    return MosaicLayout(islands, width, height, mpp)


def _island_mask(shape, rng) -> np.ndarray:
    """A rounded outline with a wobbly edge, filling most of the photo."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    u = (xx - (w - 1) / 2) / (w / 2)
    v = (yy - (h - 1) / 2) / (h / 2)
    phi = np.arctan2(v, u)
    wobble = np.ones_like(phi)
    for k in (3, 5, 7):
        wobble += rng.uniform(0.0, 0.04) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    # A superellipse (p = 4) keeps most of the rectangle, corners rounded.
    r = (np.abs(u) ** 4 + np.abs(v) ** 4) ** 0.25
    return r < 0.97 * wobble


def generate_mosaic(
    out: str | os.PathLike,
    source: str | os.PathLike,
    *,
    seed: int = 0,
    mpp: float = 0.25,
    photo_mpp: float = BREAKHIS_MPP,
    split: str = "all",
    test_fraction: float = 0.3,
    split_seed: int = 0,
    label_downsample: int = 8,
    quality: int = 90,
    on_progress: Callable[[int, int], None] | None = None,
):
    """Write a mosaic slide of the BreakHis, BACH and BRACS photos in `source`, with its truth.

    Parameters
    ----------
    source : folder, or a list of folders
        Where the photos are; `razn.synth.photos` says which names count.
    photo_mpp : float
        Microns per pixel of the 700 px wide BreakHis originals.
    split : {"all", "train", "test"}
        Which patients to use (see `patient_split`, with `test_fraction`
        and `split_seed`).

    Returns
    -------
    (SynthResult, list of Photo used)
    """
    from razn.annotations import geojson_features, vectorize
    from razn.atomic import write_text_atomic
    from razn.label_tiff import write_label_grid
    from razn.synth.output import (
        SynthResult,
        _check_writable,
        atomic_companions,
        companion_paths,
    )
    from razn.synth.writer import write_pyramid

    if split not in ("all", "train", "test"):
        raise RaznError(f"split must be all, train or test, got {split!r}")
    if not 0.05 <= mpp <= 20 or not 0.05 <= photo_mpp <= 20:
        raise RaznError("mpp values must be in 0.05..20 microns per pixel")
    image, labels_path, geojson_path = companion_paths(out)
    _check_writable(image)
    photos = find_photos(source, breakhis_mpp=photo_mpp)
    if split != "all":
        photos = patient_split(photos, test_fraction, split_seed)[split]
        if not photos:
            raise RaznError(f"the {split} split is empty")
    layout = build_mosaic(photos, seed=seed, mpp=mpp, photo_mpp=photo_mpp)
    key = json.dumps(
        {"mosaic": [p.path.name + _piece_tag(p) for p in photos], "seed": seed, "mpp": mpp,
         "photo_mpp": photo_mpp, "downsample": label_downsample, "quality": quality},
        sort_keys=True,
    )  # fmt: skip
    with atomic_companions(image, labels_path, geojson_path) as (
        tmp_image,
        tmp_labels,
        tmp_geojson,
    ):
        levels = write_pyramid(
            tmp_image,
            layout.height,
            layout.width,
            layout.render,
            mpp=mpp,
            key=key,
            quality=quality,
            on_progress=on_progress,
            name=f"razn mosaic of {len(photos)} {_sources(photos)} images ({split})",
        )
        grid = layout.label_grid(label_downsample)
        write_label_grid(
            tmp_labels, grid, label_downsample, mpp=mpp, level0_shape=(layout.height, layout.width)
        )
        shapes = vectorize(grid, label_downsample, classes=(BENIGN, IN_SITU, INVASIVE))
        features = geojson_features(shapes, mpp=mpp)
        for i, feature in enumerate(features):
            feature["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"razn-mosaic:{key}:{i}"))
        write_text_atomic(
            tmp_geojson,
            json.dumps({"type": "FeatureCollection", "features": features}, separators=(",", ":")),
        )
    result = SynthResult(image, labels_path, geojson_path, levels, label_downsample)
    return result, photos


def _sources(photos: list[Photo]) -> str:
    # A BreakHis-only mosaic keeps the name (and bytes) it had before BACH and BRACS.
    return "BreakHis" if all(p.source == "breakhis" for p in photos) else "real-tissue"


def _piece_tag(photo: Photo) -> str:
    # Whole photos keep the key they had before pieces existed (same bytes).
    return "" if photo.piece is None else "#" + ",".join(f"{v:g}" for v in photo.piece)
