"""Fine-tuning on a pathologist's corrections: it learns them, on a copy, saved beside."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from scipy import ndimage

from razn.classes import BENIGN, IN_SITU, INVASIVE, NORMAL
from razn.errors import RaznError
from razn.inference import segment
from razn.inference.tiling import tile_grid
from razn.label_tiff import read_label_grid
from razn.models import build_model, default_threshold, get_config, load_model, save_checkpoint
from razn.session import SegmentationSession
from razn.slide import open_slide
from razn.training.finetune import (
    CorrectionFields,
    _targets_and_weights,
    finetune_from_corrections,
    finetuned_path,
    save_finetuned,
)
from tests.razn.slide_files import tissue_image, write_ome_pyramid

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
    path = tmp_path_factory.mktemp("finetune") / "ellipse.ome.tif"
    write_ome_pyramid(path, tissue_image(1536, 2048, seed=4), mpp=0.25)
    return open_slide(path)


@pytest.fixture
def model(tmp_path):
    torch.manual_seed(0)
    built = build_model(get_config("razn-small").with_(patch_size=64))
    (tmp_path / "models").mkdir()
    return load_model(save_checkpoint(built, tmp_path / "models" / "small.safetensors"))


@pytest.fixture(scope="module")
def demo():
    return load_model("demo")


def _segmented(slide, model, threshold=0.5):
    session = SegmentationSession(slide.path, tile_grid(slide, model.config), slide.mpp)
    for result in segment(slide, model, threshold=threshold, device="cpu", batch_size=4):
        session.apply(result)
    return session


def _corrections(session):
    """Two painted blocks of invasive carcinoma (4) on the (uniform) tissue."""
    labels, corrected = session.labels.copy(), np.zeros_like(session.corrected)
    for r, c in ((80, 110), (96, 150)):
        labels[r : r + 16, c : c + 16] = 4
        corrected[r : r + 16, c : c + 16] = True
    return labels, corrected


def _run(model, slide, labels, corrected, downsample, **kwargs):
    progress = list(
        finetune_from_corrections(model, slide, labels, corrected, downsample, **kwargs)
    )
    assert [p.iteration for p in progress] == list(range(1, len(progress) + 1))
    assert all(p.model is None for p in progress[:-1])
    return progress[-1].model


def test_learns_the_corrections_on_a_copy(slide, model, tmp_path):
    session = _segmented(slide, model)
    labels, corrected = _corrections(session)
    # Nothing else counts as segmented: on this uniform tissue the model's own
    # predictions around two small blocks would outvote them (the documented
    # limit of pseudo-labels); here the corrections are learnt on their own.
    labels = np.where(corrected, labels, 0)
    before = float((session.labels[corrected] == labels[corrected]).mean())
    original = {k: v.clone() for k, v in model.state_dict().items()}
    tuned = _run(model, slide, labels, corrected, session.grid.downsample,
                 iterations=20, batch_size=4)  # fmt: skip
    after_session = _segmented(slide, tuned)
    after = float((after_session.labels[corrected] == labels[corrected]).mean())
    print(f"corrected pixels predicted as corrected: {before:.3f} -> {after:.3f}")
    assert before < 0.1 and after > 0.8
    # The original is untouched and still usable.
    for name, value in model.state_dict().items():
        assert torch.equal(value, original[name]), name
    assert not model.training and not tuned.training
    # Saved beside its parent, with where it came from.
    path = save_finetuned(tuned)
    assert path == model.checkpoint_path.parent / "small.finetuned-1.safetensors"
    reloaded = load_model(path)
    info = reloaded.training_record["finetune"]
    assert info["parent"] == str(model.checkpoint_path)
    assert info["slide"] == str(slide.path)
    assert info["corrected_pixels"] == 512
    assert info["class_pixels"] == {"4": 512}
    assert (info["iterations"], info["lr"], info["seed"]) == (20, 1e-4, 0)
    assert (info["pseudo_label_weight"], info["fields_on_predictions"]) == (0.3, 0)
    assert tuned.checkpoint_path == path


def test_fields_weigh_the_uncorrected_predictions_less(slide, model):
    labels = np.zeros((192, 256), np.uint8)
    labels[40:150, 60:200] = NORMAL  # what the model predicted on the tissue
    corrected = np.zeros(labels.shape, bool)
    labels[90:100, 120:130], corrected[90:100, 120:130] = INVASIVE, True
    fields = CorrectionFields(slide, labels, corrected, 8, model.config,
                              rehearse=True, augment=False)  # fmt: skip
    assert fields.rehearsal_share(4) == 2
    batch = fields.batch(4, np.random.default_rng(0))
    targets, weights = _targets_and_weights(batch.labels[0], 0.3)
    corrected_pixels = targets == INVASIVE - 1
    assert corrected_pixels[:2].flatten(1).any(1).all()  # first half: centred on corrections
    assert (weights[corrected_pixels] == 1).all()
    assert (weights[targets == NORMAL - 1] == 0.3).all()  # the predictions, flag decoded
    assert set(targets.unique().tolist()) <= {-1, NORMAL - 1, INVASIVE - 1}


def test_a_correction_of_one_class_keeps_the_others(tiny, demo):
    """The old rule (corrections only) turned a slide into the corrected class.

    A pathologist repaints the lesion of the tiny synthetic slide that the
    demo model gets most wrong with its true class. The classes the
    correction says nothing about (neither the new class nor the ones it
    replaced) must stay predicted elsewhere about as much as before. Both
    segmentations use the model's own threshold, as the pathologist sees them.
    """
    slide = open_slide(tiny.image)
    threshold = default_threshold(demo)
    before = _segmented(slide, demo, threshold=threshold)
    truth = _truth_on(before.grid, tiny.labels)
    lesion, value = _most_wrong_lesion(truth, before.labels)
    labels = np.where(lesion, value, before.labels).astype(np.uint8)
    replaced = _classes_over(before.labels[lesion], share=0.1)
    tuned = _run(demo, slide, labels, lesion, before.grid.downsample,
                 iterations=30, batch_size=4)  # fmt: skip
    after = _segmented(slide, tuned, threshold=threshold)
    learnt = float((after.labels[lesion] == value).mean())
    was = np.bincount(before.labels[~lesion], minlength=5)
    now = np.bincount(after.labels[~lesion], minlength=5)
    kept = {v: round(now[v] / was[v], 2) for v in range(1, 5) if v != value and v not in replaced
            and was[v] >= 200}  # fmt: skip
    print(f"corrected {value} over {replaced}: learnt {learnt:.2f}, kept {kept}")
    assert learnt > 0.8
    assert len(kept) >= 2 and all(0.7 <= share <= 1.3 for share in kept.values()), kept


def _truth_on(grid, labels_tif):
    """The ground-truth label grid resampled onto a session's label grid."""
    truth = read_label_grid(labels_tif)
    step = truth.downsample // grid.downsample
    fine = np.asarray(truth.labels).repeat(step, 0).repeat(step, 1)
    return fine[: grid.label_shape[0], : grid.label_shape[1]]


def _most_wrong_lesion(truth, predicted):
    """The lesion (400 label pixels or more) the model gets most wrong, and its true class."""
    best, best_value, best_wrong = None, 0, 0.0
    for value in (BENIGN, IN_SITU, INVASIVE):
        regions, count = ndimage.label(truth == value)
        for index in range(1, count + 1):
            region = regions == index
            wrong = float((predicted[region] != value).mean())
            if region.sum() >= 400 and wrong > best_wrong:
                best, best_value, best_wrong = region, value, wrong
    assert best_wrong >= 0.4, f"the demo model gets every lesion right ({best_wrong:.2f} wrong)"
    return best, best_value


def _classes_over(values, share):
    counts = np.bincount(values, minlength=5)
    return {v for v in range(1, 5) if counts[v] >= share * values.size}


def test_same_seed_same_model(slide, model):
    labels = np.zeros((192, 256), np.uint8)
    corrected = np.zeros(labels.shape, bool)
    labels[90:100, 120:130], corrected[90:100, 120:130] = 3, True
    a, b = (_run(model, slide, labels, corrected, 8, iterations=3, batch_size=2) for _ in "ab")
    for name, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[name]), name


def test_refuses_without_corrections(slide, model):
    labels = np.ones((192, 256), np.uint8)
    corrected = np.zeros(labels.shape, bool)
    with pytest.raises(RaznError, match="nothing is corrected"):
        next(finetune_from_corrections(model, slide, labels, corrected, 8))
    corrected[100, 100:103] = True
    with pytest.raises(RaznError, match="only 3 corrected pixels"):
        next(finetune_from_corrections(model, slide, labels, corrected, 8))
    corrected[:, :] = False
    corrected[0:8, 0:8] = True  # a corner of glass: no tissue to learn from
    with pytest.raises(RaznError, match="not on tissue"):
        next(finetune_from_corrections(model, slide, labels, corrected, 8))


def test_checkpoint_names(tmp_path):
    models, slides, data = tmp_path / "models", tmp_path / "slides", tmp_path / "data"
    models.mkdir()
    slides.mkdir()
    parent = models / "small.safetensors"
    slide = slides / "a.tif"
    assert finetuned_path(parent, slide) == models / "small.finetuned-1.safetensors"
    (models / "small.finetuned-1.safetensors").touch()
    (models / "small.finetuned-3.safetensors").touch()
    assert finetuned_path(parent, slide) == models / "small.finetuned-4.safetensors"
    # Fine-tuning a fine-tuned model counts on rather than nesting names.
    nested = models / "small.finetuned-3.safetensors"
    assert finetuned_path(nested, slide) == models / "small.finetuned-4.safetensors"
    # A bundled model (no writable folder of its own): beside the slide, then the data folder.
    assert finetuned_path(None, slide, name="demo") == slides / "demo.finetuned-1.safetensors"
    if os.geteuid() != 0:  # root writes anywhere
        models.chmod(0o555)
        slides.chmod(0o555)
        try:
            got = finetuned_path(parent, slide, data_folder=data)
        finally:
            models.chmod(0o755)
            slides.chmod(0o755)
        assert got == data / "small.finetuned-1.safetensors"


def test_save_needs_a_finetuned_model(tmp_path):
    model = build_model(get_config("razn-small").with_(patch_size=64))
    model.training_record = {"iteration": 3}
    with pytest.raises(ValueError, match="not a fine-tuned model"):
        save_finetuned(model, tmp_path / "x.safetensors")


def test_a_missing_device_is_refused_before_training(slide, model):
    session = _segmented(slide, model)
    labels, corrected = _corrections(session)
    with pytest.raises(RaznError, match="not available"):
        next(finetune_from_corrections(model, slide, labels, corrected,
                                       session.grid.downsample, device="cuda:7"))  # fmt: skip
