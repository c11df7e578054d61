"""Table 1's metrics, and scoring a model on a labelled synthetic slide."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from razn.classes import DEFAULT_CLASSES
from razn.cli import main
from razn.evaluation import (
    _predict,
    confusion_matrix,
    evaluate,
    field_grid,
    iou_per_class,
    scores,
    time_in_batches,
)
from razn.models import build_model, save_checkpoint
from razn.models.normalise import to_views
from razn.models.razn import Prediction
from razn.training import FieldSampler

pytestmark = pytest.mark.usefixtures("one_thread")


def test_scores_of_a_hand_counted_example():
    truth = np.array([1, 1, 2, 2, 3, 4, 0])
    predicted = np.array([1, 2, 2, 2, 3, 3, 4])  # the last pixel is unlabelled: ignored
    confusion = confusion_matrix(truth, predicted, 4)
    assert confusion.sum() == 6
    result = scores(confusion, DEFAULT_CLASSES)
    assert list(result["per_class_iou"].values()) == pytest.approx([1 / 2, 2 / 3, 1 / 2, 0])
    assert result["miou"] == pytest.approx((1 / 2 + 2 / 3 + 1 / 2) / 4)
    # Inverse frequencies 1/2, 1/2, 1, 1 normalised: 1/6, 1/6, 1/3, 1/3.
    assert result["weighted_iou"] == pytest.approx(1 / 12 + 1 / 9 + 1 / 6)
    # Mistakes inside a group do not count against the group.
    assert result["non_carcinoma_iou"] == 1.0 and result["carcinoma_iou"] == 1.0


def test_a_class_absent_from_truth_and_prediction_is_left_out_of_the_mean():
    confusion = confusion_matrix(np.array([1, 1, 2]), np.array([1, 2, 2]), 4)
    iou = iou_per_class(confusion)
    assert np.isnan(iou[2:]).all()
    result = scores(confusion, DEFAULT_CLASSES)
    assert result["per_class_iou"]["In situ carcinoma"] is None
    assert result["miou"] == pytest.approx((1 / 2 + 1 / 2) / 2)


def test_evaluate_scores_tissue_fields_against_the_label_grid(labelled, monkeypatch):
    model = build_model("scale1-small")

    def always_normal(views, threshold=0.5):
        probs = torch.zeros(len(views[0]), 4, *views[0].shape[-2:])
        probs[:, 0] = 1
        return Prediction(probs, patches=len(views[0]))

    monkeypatch.setattr(model, "predict", always_normal)
    (result,) = evaluate(model, labelled, timing_fields=0)
    corners = field_grid(labelled, model.config)
    assert 0 < len(corners) < 9  # 3 x 3 fields of 512 px; glass-only ones skipped
    assert result.fields == len(corners)
    # Every scored label pixel is predicted normal: only column 0 is filled.
    assert result.confusion[:, 1:].sum() == 0
    assert result.confusion.sum() > 0
    report = result.to_dict()
    normal_share = result.confusion[0, 0] / result.confusion.sum()
    assert report["per_class_iou"]["Normal"] == pytest.approx(normal_share)
    assert report["zoom_fraction"] == 0.0 and report["relative_time"] is None


def test_one_pass_threshold_sweep_equals_predicting_at_each_threshold(labelled):
    torch.manual_seed(0)
    model = build_model("razn-small").eval()
    batch = FieldSampler([labelled], model.config).sample(6, np.random.default_rng(0))
    views = to_views(batch.images)
    with torch.no_grad():
        p = model.predict(views, threshold=2.0).zoom_p
        threshold = float(p.median())  # some fields zoom, some do not
        ((swept, zoomed),) = list(_predict(model, views, [threshold]))
        direct = model.predict(views, threshold=threshold)
    assert 0 < int(zoomed) < 6 and int(zoomed) == int(direct.zoomed.sum())
    torch.testing.assert_close(swept, direct.probs)


def test_relative_time_is_measured_against_scale1(labelled):
    model = build_model("scale2-small")
    (result,) = evaluate(model, labelled, timing_fields=12)
    report = result.to_dict()
    assert report["timed_fields"] == 12
    assert report["relative_time"] > 0 and report["relative_time_sd"] >= 0
    assert report["zoom_fraction"] == 1.0  # Scale 2 reads every field at the fine level


def test_batched_timing_gives_one_ratio_per_group_and_threshold(labelled, monkeypatch):
    import razn.evaluation as evaluation

    model = build_model("razn-small")
    calls = []
    real = evaluation._timed
    monkeypatch.setattr(
        evaluation, "_timed", lambda m, v, t: calls.append(len(v[0])) or real(m, v, t)
    )
    times = time_in_batches(model, labelled, thresholds=(0.0, 1.0), batch=4, fields=13)
    assert set(times) == {0.0, 1.0}
    assert [len(v) for v in times.values()] == [3, 3]  # 13 fields: 3 whole groups of 4
    assert all(r > 0 for v in times.values() for r in v)
    # Warm-up, then per group: the reference and the model at each threshold.
    assert calls == [4] * (2 + 3 * 3)


def test_cli_evaluate_json(tiny, tmp_path, capsys):
    checkpoint = save_checkpoint(build_model("razn-small"), tmp_path / "m.safetensors")
    code = main(["evaluate", "--model", str(checkpoint), "--slide", str(tiny.image),
                 "--labels", str(tiny.labels), "--json", "--timing-fields", "3"])  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert {"per_class_iou", "miou", "weighted_iou", "zoom_fraction"} <= set(report)
    assert set(report["per_class_iou"]) == {c.name for c in DEFAULT_CLASSES}
    assert report["timed_fields"] == 3 and 0 <= report["zoom_fraction"] <= 1
