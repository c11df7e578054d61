"""Every registered model builds, predicts the right shapes, and has no NaN."""

from __future__ import annotations

import pytest
import torch

from razn.models import (
    RAZN,
    ModelConfig,
    SegmentationNet,
    ZoomPolicy,
    build_model,
    get_config,
    list_configs,
)
from razn.models.views import merge_patches, split_levels, split_patches


def views_for(config: ModelConfig, batch: int = 1, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    size = config.patch_size
    return [
        torch.rand(batch, 3, size * config.zoom_rate**k, size * config.zoom_rate**k, generator=g)
        for k in range(config.zoom_levels + 1)
    ]


@pytest.mark.parametrize("name", list_configs())
def test_every_registered_model_predicts(name):
    torch.manual_seed(0)
    config = get_config(name)
    if config.width > 16:
        # The paper-sized nets at 64-pixel patches: the same layers and
        # tensors, a sixteenth of the arithmetic, so CPU CI stays quick.
        config = config.with_(patch_size=64)
    model = build_model(config).eval()
    with torch.no_grad():
        prediction = model.predict(views_for(config), threshold=0.0)
    side = config.patch_size * config.zoom_rate**config.finest_level
    assert prediction.probs.shape == (1, config.num_classes, side, side)
    assert torch.isfinite(prediction.probs).all()
    torch.testing.assert_close(prediction.probs.sum(1), torch.ones(1, side, side))


@pytest.mark.parametrize("reading", ["deeplab", "literal"])
def test_segmentation_net_has_output_stride_8(reading):
    net = SegmentationNet(4, width=8, stride_reading=reading).eval()
    assert net.trunk.output_stride == 8
    with torch.no_grad():
        features = net.forward_features(torch.zeros(1, 3, 128, 128))
        logits = net(torch.zeros(1, 3, 128, 128))
    assert features.shape[-2:] == (16, 16)
    assert logits.shape == (1, 4, 128, 128)


def test_policy_gives_one_scalar_per_patch():
    with torch.no_grad():
        out = ZoomPolicy(8).eval()(torch.rand(5, 3, 128, 128))
    assert out.shape == (5,)


def test_split_and_merge_are_inverse():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    patches = split_patches(x, 2)
    assert patches.shape == (8, 3, 4, 4)
    # Row-major: the second patch is the top-right quarter.
    torch.testing.assert_close(patches[1], x[0, :, :4, 4:])
    torch.testing.assert_close(merge_patches(patches, 2), x)


class TestThresholds:
    """The threshold is the speed/accuracy knob: 1 never zooms, 0 always does."""

    @pytest.fixture(scope="class")
    def model(self):
        torch.manual_seed(1)
        return RAZN(get_config("razn-small").with_(patch_size=64)).eval()

    def test_threshold_one_is_f0_alone(self, model):
        views = views_for(model.config, batch=3)
        with torch.no_grad():
            prediction = model.predict(views, threshold=1.0)
            coarse = torch.softmax(model.segmenters[0](views[0]), 1)
        assert not prediction.zoomed.any() and prediction.patches == 3
        expected = torch.nn.functional.interpolate(coarse, scale_factor=2, mode="bilinear")
        torch.testing.assert_close(prediction.probs, expected)

    def test_threshold_zero_is_f1_on_the_fine_patches(self, model):
        views = views_for(model.config, batch=3)
        with torch.no_grad():
            prediction = model.predict(views, threshold=0.0)
            fine = torch.softmax(model.segmenters[1](split_patches(views[1], 2)), 1)
        assert prediction.zoomed.all() and prediction.patches == 12  # f_0 skipped
        torch.testing.assert_close(prediction.probs, merge_patches(fine, 2))

    def test_in_between_mixes_per_field_of_view(self, model):
        views = views_for(model.config, batch=4)
        with torch.no_grad():
            p = torch.sigmoid(model.policies[0](views[0]))
            threshold = float(p.median())
            prediction = model.predict(views, threshold=threshold)
            always = model.predict(views, threshold=0.0)
            never = model.predict(views, threshold=1.0)
        zoomed = p > threshold
        assert 0 < int(zoomed.sum()) < 4
        torch.testing.assert_close(prediction.probs[zoomed], always.probs[zoomed])
        torch.testing.assert_close(prediction.probs[~zoomed], never.probs[~zoomed])


def test_two_zoom_levels_recurse():
    torch.manual_seed(2)
    model = RAZN(get_config("razn-m2-small").with_(patch_size=64)).eval()
    views = views_for(model.config, batch=2)
    with torch.no_grad():
        deepest = model.predict(views, threshold=0.0)
        fine = torch.softmax(model.segmenters[2](split_levels(views[2], 2, 2)), 1)
    # Always zooming twice: every level-2 patch is segmented by f_2.
    assert deepest.patches == 32  # only the deepest nets segment
    from razn.models.views import merge_levels

    torch.testing.assert_close(deepest.probs, merge_levels(fine, 2, 2))
    with torch.no_grad():
        shallow = model.predict(views, threshold=1.0)
    assert shallow.patches == 2


def test_config_validation_and_json_round_trip():
    config = get_config("razn-small")
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert config.level_mpp(1) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="zoom_rate"):
        config.with_(zoom_rate=1)
    with pytest.raises(ValueError, match="patch_size"):
        config.with_(patch_size=100)
    with pytest.raises(ValueError, match="unknown model configuration keys"):
        ModelConfig.from_dict({**config.to_dict(), "colour": "blue"})
    with pytest.raises(KeyError, match="known:"):
        get_config("resnet50")
