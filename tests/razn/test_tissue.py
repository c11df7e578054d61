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


def _scipy_mask(rgb):
    """The former tissue mask, through scipy.ndimage and scikit-image: the
    reference the numpy filters must reproduce pixel for pixel."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    from razn import tissue

    sat = ndimage.median_filter(tissue.saturation(rgb), size=3)
    hist = np.bincount(sat.ravel(), minlength=256)
    otsu = 0.0
    if np.count_nonzero(hist) >= 2:
        otsu = float(threshold_otsu(hist=(hist, np.arange(hist.size))))
    low, high = tissue.SATURATION_RANGE
    threshold = min(max(otsu, low), high)
    glass = tissue.glass_saturation(sat)
    if glass is not None:
        threshold = min(threshold, glass + tissue.GLASS_MARGIN)
    mask = ndimage.binary_closing(sat > threshold, structure=np.ones((3, 3)), iterations=2)
    mask = ndimage.binary_fill_holes(mask)
    labels, count = ndimage.label(mask)
    if count:
        sizes = np.bincount(labels.ravel())
        keep = sizes >= max(4, tissue.MIN_BLOB_FRACTION * mask.size)
        keep[0] = False
        mask = keep[labels]
    return mask


def test_numpy_filters_give_scipys_results():
    """Each numpy filter against scipy.ndimage / scikit-image on random
    images: speckle, blobs with holes, one-pixel and empty edges."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    from razn import tissue

    rng = np.random.default_rng(0)
    for _ in range(150):
        h, w = (int(n) for n in rng.integers(1, 50, 2))
        mask = rng.random((h, w)) < rng.uniform(0.2, 0.8)
        image = rng.integers(0, 256, (h, w)).astype(np.uint8)
        np.testing.assert_array_equal(tissue.median3(image), ndimage.median_filter(image, size=3))
        np.testing.assert_array_equal(
            tissue.erode3(tissue.erode3(tissue.dilate3(tissue.dilate3(mask)))),
            ndimage.binary_closing(mask, structure=np.ones((3, 3)), iterations=2),
        )
        np.testing.assert_array_equal(tissue.fill_holes(mask), ndimage.binary_fill_holes(mask))
        labels, count = tissue.label4(mask)
        expected, expected_count = ndimage.label(mask)
        assert count == expected_count
        np.testing.assert_array_equal(labels, expected)
        hist = np.bincount(image.ravel(), minlength=256)
        if np.count_nonzero(hist) >= 2:
            assert tissue.otsu_threshold(image) == threshold_otsu(hist=(hist, np.arange(256)))
    assert tissue.otsu_threshold(np.full((4, 4), 30, np.uint8)) == 0.0
    # A spiral: one component whose labels must travel its whole length.
    spiral = np.zeros((61, 61), bool)
    for k in range(0, 30, 4):
        spiral[k, k : 61 - k] = spiral[k : 61 - k, 60 - k] = spiral[60 - k, k : 61 - k] = True
        spiral[k + 2 : 61 - k, k] = True
        if k + 2 < 61 - k - 2:
            spiral[k + 2, k : k + 3] = True
    labels, count = tissue.label4(spiral)
    expected, expected_count = ndimage.label(spiral)
    assert count == expected_count
    np.testing.assert_array_equal(labels, expected)


def test_the_real_masks_are_unchanged(shared_data):
    """The numpy mask equals the former scipy / scikit-image mask on both
    real slides and every real-tissue image."""
    from razn.slide import open_slide

    paths = sorted((shared_data / "slides").glob("*.svs"))
    images = (shared_data / "real-tissue").glob("*/*")
    paths += sorted(p for p in images if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    assert len(paths) >= 13
    for path in paths:
        with open_slide(path, mpp=None if path.suffix == ".svs" else 0.25) as slide:
            rgb = slide.read_region(
                (0, 0), slide.dimensions, downsample=max(8 / (slide.mpp or 0.25), 1)
            )
        np.testing.assert_array_equal(tissue_mask_from_rgb(rgb), _scipy_mask(rgb), path.name)
