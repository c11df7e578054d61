"""The tissue mask: glass vs tissue, however pale the tissue."""

from __future__ import annotations

import numpy as np

from razn.tissue import glass_saturation, tissue_mask_from_rgb


def _patch(shape, rgb, rng):
    noise = rng.integers(-2, 3, (*shape, 3))
    return np.clip(np.array(rgb) + noise, 0, 255).astype(np.uint8)


def test_pale_and_strongly_stained_tissue_are_both_tissue():
    # Glass (saturation ~5), a pale island (~14, like BreakHis benign photos
    # at 8 um/px) and a strongly stained one (~70): Otsu alone splits pale
    # from strong and loses the pale island with the glass.
    rng = np.random.default_rng(0)
    image = _patch((120, 240), (240, 238, 235), rng)
    image[20:100, 20:100] = _patch((80, 80), (232, 218, 228), rng)  # pale
    image[20:100, 140:220] = _patch((80, 80), (170, 100, 170), rng)  # strong
    assert glass_saturation(image.max(-1) - image.min(-1)) is not None
    mask = tissue_mask_from_rgb(image)
    assert mask[30:90, 30:90].mean() > 0.95
    assert mask[30:90, 150:210].mean() > 0.95
    assert mask[:, 110:130].mean() < 0.05 and mask[105:, :].mean() < 0.05


def test_a_slide_without_glass_is_all_tissue_and_glass_all_glass():
    rng = np.random.default_rng(1)
    # (closing shrinks the mask at the image border a little)
    assert tissue_mask_from_rgb(_patch((64, 64), (180, 110, 170), rng)).mean() > 0.8
    assert tissue_mask_from_rgb(_patch((64, 64), (241, 239, 236), rng)).mean() == 0


def _own_otsu(values):
    """The project's former Otsu (between-class variance over 256 levels),
    kept here as the reference scikit-image's must agree with."""
    hist = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    levels = np.arange(256)
    weight0 = np.cumsum(hist)
    weight1 = weight0[-1] - weight0
    mean0 = np.cumsum(hist * levels) / np.maximum(weight0, 1)
    mean1 = (np.sum(hist * levels) - np.cumsum(hist * levels)) / np.maximum(weight1, 1)
    return float(np.argmax(weight0 * weight1 * (mean0 - mean1) ** 2))


def test_scikit_image_otsu_leaves_the_real_masks_unchanged(shared_data, monkeypatch):
    import razn.tissue
    from razn.slide import open_slide

    paths = sorted((shared_data / "slides").glob("*.svs"))
    paths += sorted((shared_data / "real-tissue").glob("*/*.png"))
    for path in paths:
        with open_slide(path, mpp=None if path.suffix == ".svs" else 0.25) as slide:
            rgb = slide.read_region(
                (0, 0), slide.dimensions, downsample=max(8 / (slide.mpp or 0.25), 1)
            )
        new = razn.tissue.tissue_mask_from_rgb(rgb)
        with monkeypatch.context() as patch:
            patch.setattr(razn.tissue, "otsu_threshold", _own_otsu)
            old = razn.tissue.tissue_mask_from_rgb(rgb)
        assert np.array_equal(new, old), path.name
    assert razn.tissue.otsu_threshold(np.full((4, 4), 30, np.uint8)) == 0.0
