"""Fields of view from a synthetic slide: levels read from the slide, labels, balance, augmentation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from razn.models import get_config
from razn.slide import open_slide
from razn.training.patches import (
    FieldBatch,
    FieldSampler,
    LabelledSlide,
    augment,
    open_labelled,
    read_field,
)

CONFIG = get_config("razn-small")


pytestmark = pytest.mark.usefixtures("one_thread")


def _shrink(image, factor):
    h, w = image.shape[:2]
    return image.reshape(h // factor, factor, w // factor, factor, -1).mean(axis=(1, 3))


def test_fields_hold_every_level_at_its_size(labelled):
    batch = FieldSampler([labelled], CONFIG).sample(4, np.random.default_rng(0))
    assert [a.shape for a in batch.images] == [(4, 128, 128, 3), (4, 256, 256, 3)]
    assert [a.shape for a in batch.labels] == [(4, 128, 128), (4, 256, 256)]
    assert all(a.dtype == np.uint8 for a in batch.images + batch.labels)


def test_fine_level_is_read_from_the_slide_not_upsampled(labelled):
    location, size = (512.0, 384.0), 512.0  # 128 um at 0.25 um/px
    images, _ = read_field(labelled, location, size, CONFIG)
    direct = labelled.slide.read_region(location, (size, size), mpp=0.5)
    np.testing.assert_array_equal(images[1], direct)
    coarse, fine = images[0].astype(float), images[1].astype(float)
    assert np.abs(_shrink(fine, 2) - coarse).mean() < 6  # the same tissue
    upsampled = np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)
    assert not np.allclose(fine, upsampled, atol=8)


def _shrink_batch(images):
    return np.stack([_shrink(image, 2) for image in images])


def test_labels_agree_between_levels(labelled):
    batch = FieldSampler([labelled], CONFIG).sample(8, np.random.default_rng(2))
    assert (batch.labels[1][:, ::2, ::2] == batch.labels[0]).mean() > 0.98


def test_balanced_sampling_evens_out_the_classes(tmp_path):
    # A pink slide, 85% normal, with one 448-px square each of classes 2..4.
    rng = np.random.default_rng(0)
    pixels = np.clip(rng.normal((220, 150, 200), 10, (2048, 2048, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "pink.png")
    grid = np.ones((128, 128), np.uint8)
    for value, (row, col) in zip((2, 3, 4), ((10, 10), (60, 80), (95, 20)), strict=True):
        grid[row : row + 28, col : col + 28] = value
    labelled = LabelledSlide(open_slide(tmp_path / "pink.png", mpp=0.25), grid, 16)
    rng = np.random.default_rng(3)
    plain = FieldSampler([labelled], CONFIG, balanced=False).sample(60, rng).class_counts(4)
    balanced = FieldSampler([labelled], CONFIG, balanced=True).sample(60, rng).class_counts(4)
    assert plain.min() / plain.sum() < 0.07
    assert balanced.min() / balanced.sum() > 0.09


def test_augmentation_keeps_levels_and_labels_aligned(labelled):
    batch = FieldSampler([labelled], CONFIG).sample(6, np.random.default_rng(4))
    out = augment(batch, np.random.default_rng(5))
    assert not np.array_equal(out.images[0], batch.images[0])
    assert (out.labels[1][:, ::2, ::2] == out.labels[0]).mean() > 0.98
    for c, f in zip(out.images[0].astype(float), out.images[1].astype(float), strict=True):
        assert np.abs(_shrink(f, 2) - c).mean() < 6
    # Flips and turns only permute label pixels; colour never touches labels.
    assert sorted(np.bincount(out.labels[0].ravel(), minlength=5)) == sorted(
        np.bincount(batch.labels[0].ravel(), minlength=5)
    )


def test_geojson_labels_match_the_label_grid(tiny, labelled):
    from_polygons = open_labelled(tiny.image, tiny.geojson)
    grid = labelled.labels
    assert from_polygons.labels.shape == grid.shape
    tissue = (grid > 1) | (from_polygons.labels > 1)
    assert (from_polygons.labels[tissue] == grid[tissue]).mean() > 0.9


def test_field_batches_round_trip_through_safetensors(labelled, tmp_path):
    batch = FieldSampler([labelled], CONFIG).sample(3, np.random.default_rng(6))
    batch.save(tmp_path / "fields.safetensors")
    again = FieldBatch.load(tmp_path / "fields.safetensors")
    for a, b in zip(batch.images + batch.labels, again.images + again.labels, strict=True):
        np.testing.assert_array_equal(a, b)
