"""Algorithm 1: the reward's sign, the policy-gradient step, and what a trained policy learns."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from razn.models import build_model, get_config
from razn.training.algorithm import (
    IGNORE,
    REWARD_BASELINES,
    REWARD_SCALES,
    _advantage,
    bounded_probability,
    field_losses,
    mean_loss,
    razn_losses,
    supervised_loss,
    training_step,
    zoom_reward,
)

P = 32  # the smallest patch a config allows: keeps every step in milliseconds


pytestmark = pytest.mark.usefixtures("one_thread")


class ConstantSegmenter(nn.Module):
    """Logits that favour class 0 by `margin` at every pixel, chosen per field."""

    def __init__(self, margin):
        super().__init__()
        self.margin = margin  # callable: fields (N, 3, H, W) -> (N,) margins

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 4, *x.shape[-2:])
        logits[:, 0] = self.margin(x)[:, None, None]
        return logits


def toy_razn(coarse_margin, fine_margin):
    torch.manual_seed(0)
    model = build_model(get_config("razn-small").with_(patch_size=P, name="toy"))
    model.segmenters[0] = ConstantSegmenter(coarse_margin)
    model.segmenters[1] = ConstantSegmenter(fine_margin)
    return model


def toy_batch(n, brightness=0.0):
    views = [torch.randn(n, 3, P, P) + brightness, torch.randn(n, 3, 2 * P, 2 * P) + brightness]
    targets = [
        torch.zeros(n, P, P, dtype=torch.long),
        torch.zeros(n, 2 * P, 2 * P, dtype=torch.long),
    ]
    return views, targets


def test_reward_pays_for_zooming_only_where_the_fine_net_does_better():
    j0 = torch.tensor([1.0, 1.0, 1.0])
    j1 = torch.tensor([0.5, 1.5, 0.5])
    a = torch.tensor([1.0, 1.0, 0.0])
    assert torch.allclose(zoom_reward(a, j0, j1), torch.tensor([0.5, -0.5, 0.0]))
    assert torch.allclose(zoom_reward(a, j0, j1, cost=0.2), torch.tensor([0.3, -0.7, 0.0]))


def test_the_symmetric_scale_keeps_the_sign_and_bounds_the_reward():
    j0 = torch.tensor([1.0, 0.05, 0.5])
    j1 = torch.tensor([0.5, 0.5, 0.5])
    a = torch.ones(3)
    # The paper's relative gain loses without bound where f_0 is nearly right.
    assert torch.allclose(zoom_reward(a, j0, j1), torch.tensor([0.5, -9.0, 0.0]))
    assert torch.allclose(
        zoom_reward(a, j0, j1, scale="symmetric"), torch.tensor([0.5, -0.9, 0.0])
    )
    with pytest.raises(ValueError, match="reward scale"):
        zoom_reward(a, j0, j1, scale="log")


def test_bounded_probability_stays_inside_alpha():
    p = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(bounded_probability(p, 0.8), torch.tensor([0.2, 0.5, 0.8]))


def test_each_baseline_subtracts_what_it_says():
    # Four fields: two zoomed (rewards 0.5 and -0.5), two not (reward 0);
    # zooming would have paid `gain` on each.
    reward = torch.tensor([0.5, -0.5, 0.0, 0.0])
    gain = torch.tensor([0.5, -0.5, 0.3, -0.2])
    p = torch.tensor([0.9, 0.2, 0.7, 0.1])
    valid = torch.ones(4)

    def advantage(baseline, state=None, normalise=False):
        return _advantage(reward, gain, p, valid, baseline, normalise, state, "reward_1")

    assert torch.equal(advantage("none"), reward)
    assert torch.allclose(advantage("batch-mean"), reward - reward.mean())
    # Self-critical: minus the reward of the greedy decision 1[p > 1/2].
    assert torch.allclose(advantage("self-critical"), torch.tensor([0.0, -0.5, -0.3, 0.0]))
    # Moving average: the first batch starts it, later ones move it by 10%.
    state = {}
    assert torch.allclose(advantage("moving-average", state), reward - 0.0)
    assert state["reward_1"] == pytest.approx(0.0)
    state["reward_1"] = 1.0
    assert torch.allclose(advantage("moving-average", state), reward - 1.0)
    assert state["reward_1"] == pytest.approx(0.9)
    normalised = advantage("none", normalise=True)
    assert float(normalised.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(normalised.pow(2).mean()) == pytest.approx(1.0, abs=1e-4)


def test_a_field_without_labels_gets_no_advantage():
    reward = torch.tensor([0.5, 0.0])
    valid = torch.tensor([1.0, 0.0])
    for baseline in ("batch-mean", "self-critical"):
        adv = _advantage(reward, reward, torch.tensor([0.9, 0.9]), valid, baseline, True, {}, "k")
        assert adv[1] == 0


def test_an_unknown_baseline_is_refused():
    views, targets = toy_batch(2)
    model = toy_razn(lambda x: torch.ones(len(x)), lambda x: torch.ones(len(x)))
    with pytest.raises(ValueError, match="baseline must be one of"):
        razn_losses(model, views, targets, baseline="critic")


@pytest.mark.parametrize("normalise", [False, True])
@pytest.mark.parametrize("baseline", REWARD_BASELINES)
@pytest.mark.parametrize(("fine_margin", "direction"), [(4.0, 1), (-4.0, -1)])
def test_every_baseline_still_moves_p_towards_the_better_net(
    fine_margin, direction, baseline, normalise
):
    model = toy_razn(lambda x: torch.ones(len(x)), lambda x: torch.full((len(x),), fine_margin))
    views, targets = toy_batch(16)
    policy = model.policies[0]
    policy.eval()
    with torch.no_grad():
        before = torch.sigmoid(policy(views[0]))
    # A mix of margins in one batch, so the batch mean differs from each reward.
    generator = torch.Generator().manual_seed(1)
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.05)
    policy_loss, _, metrics = razn_losses(
        model, views, targets, generator=generator, baseline=baseline,
        normalise_advantage=normalise, baseline_state={"reward_1": 0.0},
    )  # fmt: skip
    assert metrics["zoom_gain_1"] * direction > 0  # what zooming would have paid, everywhere
    policy_loss.backward()
    optimizer.step()
    with torch.no_grad():
        after = torch.sigmoid(policy(views[0]))
    assert direction * (after - before).mean().item() > 1e-5


@pytest.mark.parametrize(("fine_margin", "direction"), [(4.0, 1), (-4.0, -1)])
def test_one_policy_step_moves_p_towards_the_better_net(fine_margin, direction):
    # Coarse CE with margin 1 is ~0.74; fine with +4 is ~0.05 (zooming pays),
    # with -4 ~5.0 (zooming hurts).
    model = toy_razn(lambda x: torch.ones(len(x)), lambda x: torch.full((len(x),), fine_margin))
    views, targets = toy_batch(16)
    policy = model.policies[0]
    policy.eval()  # BN on running statistics, so p before and after is comparable
    with torch.no_grad():
        before = torch.sigmoid(policy(views[0]))
    generator = torch.Generator().manual_seed(1)
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.05)
    policy_loss, _, metrics = razn_losses(model, views, targets, generator=generator)
    assert metrics["zoom_action_1"] > 0  # some fields zoomed, so there is a signal
    policy_loss.backward()
    optimizer.step()
    with torch.no_grad():
        after = torch.sigmoid(policy(views[0]))
    change = (after - before).mean().item()
    assert direction * change > 1e-4


@pytest.mark.parametrize("baseline", REWARD_BASELINES)
def test_trained_policy_zooms_more_where_the_fine_net_is_better(baseline):
    # Bright fields: the fine net wins; dark fields: it loses. The policy sees
    # only the pixels, so it must learn brightness -> zoom from the reward.
    def fine_margin(x):
        return torch.where(x.mean(dim=(1, 2, 3)) > 0, 4.0, -4.0)

    model = toy_razn(lambda x: torch.ones(len(x)), fine_margin)
    optimizer = torch.optim.Adam(model.policies.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    state = {}
    for _ in range(40):
        bright, targets = toy_batch(8, brightness=1.0)
        dark, _ = toy_batch(8, brightness=-1.0)
        views = [torch.cat([b, d]) for b, d in zip(bright, dark, strict=True)]
        targets = [torch.cat([t, t]) for t in targets]
        optimizer.zero_grad()
        policy_loss, _, _ = razn_losses(
            model, views, targets, generator=generator, baseline=baseline, baseline_state=state
        )
        policy_loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        p_bright = torch.sigmoid(model.policies[0](toy_batch(32, 1.0)[0][0])).mean()
        p_dark = torch.sigmoid(model.policies[0](toy_batch(32, -1.0)[0][0])).mean()
    assert p_bright > 0.7 and p_dark < 0.3, (float(p_bright), float(p_dark))


@pytest.mark.parametrize("train_policy", [None, True])
def test_a_warm_up_step_trains_both_nets_and_the_policy_only_when_asked(train_policy):
    torch.manual_seed(0)
    model = build_model(get_config("razn-small").with_(patch_size=P, name="toy"))
    views, targets = toy_batch(4)
    targets = [t.random_(0, 4) for t in targets]
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters())
    training_step(model, optimizer, views, targets, generator=generator, route=False,
                  train_policy=train_policy)  # fmt: skip

    def learnt(module):
        return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())

    assert learnt(model.segmenters[0]) and learnt(model.segmenters[1])
    assert learnt(model.policies[0]) == bool(train_policy)


def test_only_the_net_a_field_was_routed_to_gets_a_gradient():
    torch.manual_seed(0)
    model = build_model(get_config("razn-small").with_(patch_size=P, name="toy"))
    views, targets = toy_batch(4)
    targets = [t.random_(0, 4) for t in targets]
    with torch.no_grad():  # make the policy certain never to zoom (p~ = 1 - alpha)
        model.policies[0].fc.bias.fill_(-50.0)
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters())
    # With p~ = 0.2 per field, some seed gives no zoom at all; find it.
    while True:
        state = generator.get_state()
        if not torch.bernoulli(torch.full((4,), 0.2), generator=generator).any():
            generator.set_state(state)
            break
    metrics = training_step(model, optimizer, views, targets, generator=generator)
    assert metrics["zoom_action_1"] == 0
    assert all(p.grad is None for p in model.segmenters[1].parameters())
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in model.segmenters[0].parameters()
    )


@pytest.mark.parametrize("name", ["scale1-small", "scale2-small", "ms-small", "attention-small"])
def test_baseline_losses_are_finite_and_reach_every_parameter_of_the_net(name):
    torch.manual_seed(0)
    model = build_model(get_config(name).with_(patch_size=P, name="toy"))
    views, targets = toy_batch(2)
    targets = [t.random_(-1, 4) for t in targets]
    loss, metrics = supervised_loss(model, views, targets)
    loss.backward()
    assert torch.isfinite(loss) and metrics["segmentation_loss"] > 0
    assert all(p.grad is not None for p in model.net.parameters())


def test_pixel_weights_make_a_weighted_mean():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 3, 3)
    targets = torch.randint(0, 4, (2, 3, 3))
    targets[0, 0, 0] = IGNORE
    ce = torch.nn.functional.cross_entropy(logits, targets, ignore_index=IGNORE, reduction="none")
    # All ones: exactly the unweighted loss and pixel count.
    plain_sum, plain_n = field_losses(logits, targets)
    ones_sum, ones_n = field_losses(logits, targets, torch.ones(2, 3, 3))
    assert torch.equal(plain_sum, ones_sum) and torch.equal(plain_n.float(), ones_n)
    # A weight counts a pixel that many times; an ignored pixel stays ignored.
    weights = torch.full((2, 3, 3), 0.3)
    weights[:, 1] = 1.0
    expected = (ce * weights)[targets != IGNORE].sum() / weights[targets != IGNORE].sum()
    assert torch.allclose(mean_loss(logits, targets, weights), expected)
    assert field_losses(logits, targets, weights)[1][0] == pytest.approx(0.3 * 5 + 3)


def test_the_command_line_offers_exactly_the_baselines_and_scales_the_trainer_knows():
    # `razn train` spells the choices out so that `razn --help` needs no torch;
    # they must not drift from the trainer's.
    import argparse

    from razn.cli.train import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    choices = {action.dest: action.choices for action in parser._actions}
    assert tuple(choices["baseline"]) == REWARD_BASELINES
    assert tuple(choices["reward_scale"]) == REWARD_SCALES
