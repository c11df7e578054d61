"""One training step: Algorithm 1 of Dong et al. for RAZN, plain supervision for baselines.

RAZN (m = 1): J_0 = CE(f_0(x_0), y_0) and J_1 = the mean CE of f_1 over the
r*r fine patches; a ~ Bernoulli(p~) with the bounded p~ = alpha*p +
(1-alpha)*(1-p); the reward R(a) = a (J_0 - J_1) / J_0 - lambda*a, with the
sign docs/design.md corrects (the paper prints J_1 - J_0, which would reward
zooming where it hurts) and an optional cost lambda per zoom (0 is the
paper); a REINFORCE step on the policy, -R * d log P(a); and a step on f_1
where a = 1, on f_0 where a = 0. Three departures, all documented in
docs/demo-model.md: the step is batched (one action and one reward per
field, losses averaged over the batch) rather than one field at a time; the
policy and the segmentation nets are updated from one backward pass, which
is the same as alternating because their parameters are disjoint and the
reward is a constant to the policy; and by default no reward baseline is
used, as in the paper. For m > 1 every pair of adjacent levels (k, k+1) is
one such decision, taken on every level-k patch.

Optional, not in the paper (`REWARD_BASELINES`, docs/models.md): the
REINFORCE literature's variance reducers. The policy's step then uses the
advantage R(a) - b instead of R(a), with b the batch's mean reward, an
exponential moving average of past rewards, or the reward of the greedy
decision (self-critical: R(1[p > 1/2]), exact here because both losses are
computed for every field); the advantage can also be normalised to zero
mean and unit spread over the batch. A baseline that does not depend on the
action leaves the expected gradient unchanged: with R(0) = 0 that gradient
is (J_0 - J_1) / J_0 * dp~/dphi per field, whatever the baseline.

Every loss takes optional per-pixel weights (fine-tuning weighs the model's
own predictions below the pathologist's corrections): a loss is then the
weighted mean, and a "pixel count" the sum of the weights. Without weights
the arithmetic is exactly the unweighted one.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from razn.models.views import split_levels

IGNORE = -1

#: How the loss gap is scaled into a reward: "relative", (J_0 - J_1) / J_0 as
#: the paper; "symmetric", (J_0 - J_1) / max(J_0, J_1), bounded by -1 and 1
#: (not in the paper: see `zoom_reward`).
REWARD_SCALES = ("relative", "symmetric")
#: What the policy's REINFORCE step subtracts from the reward ("none": the paper).
REWARD_BASELINES = ("none", "batch-mean", "moving-average", "self-critical")
#: Weight of the newest batch in the "moving-average" baseline.
MOVING_AVERAGE_WEIGHT = 0.1


def targets_from_labels(labels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Label values (0 unlabelled, 1.. classes) to CE targets (IGNORE, 0..), on their device."""
    if not torch.is_tensor(labels):
        labels = torch.as_tensor(np.asarray(labels))
    return labels.long() - 1


def field_losses(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed CE and labelled-pixel count per patch, each (N,); weighted if `weights`."""
    ce = F.cross_entropy(logits, targets, ignore_index=IGNORE, reduction="none")
    labelled = targets != IGNORE
    if weights is None:
        return ce.flatten(1).sum(1), labelled.flatten(1).sum(1)
    weights = weights * labelled
    return (ce * weights).flatten(1).sum(1), weights.flatten(1).sum(1)


def mean_loss(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean CE over labelled pixels (0, with a gradient, if none is labelled)."""
    total, counts = field_losses(logits, targets, weights)
    return total.sum() / counts.sum().clamp(min=1)


def bounded_probability(p: torch.Tensor, alpha: float) -> torch.Tensor:
    """p~ = alpha p + (1 - alpha)(1 - p): never 0 or 1, so both actions stay explored."""
    return alpha * p + (1 - alpha) * (1 - p)


def zoom_reward(
    action, loss_coarse, loss_fine, cost: float = 0.0, scale: str = "relative"
) -> torch.Tensor:
    """R(a) = a (J_coarse - J_fine) / J_coarse - cost * a (docs/design.md's sign).

    The paper's relative gain is lopsided: zooming can win at most 1 (a
    perfect fine net) but lose without bound where the coarse net is already
    nearly right (J_coarse 0.05 and J_fine 0.5 give -9), so where the two
    nets are about equally good on average the mean reward of zooming is
    well below 0. `scale="symmetric"` divides by max(J_coarse, J_fine)
    instead, which keeps the sign and bounds the reward by -1 and 1 (not in
    the paper).
    """
    if scale == "symmetric":
        denominator = torch.maximum(loss_coarse, loss_fine)
    elif scale == "relative":
        denominator = loss_coarse
    else:
        raise ValueError(f"reward scale must be one of {REWARD_SCALES}, not {scale!r}")
    return action * (loss_coarse - loss_fine) / denominator.clamp(min=1e-6) - cost * action


def razn_losses(
    model,
    views,
    targets,
    *,
    alpha: float = 0.8,
    cost: float = 0.0,
    generator=None,
    route=True,
    train_policy=None,
    weights=None,
    baseline: str = "none",
    normalise_advantage: bool = False,
    baseline_state: dict | None = None,
    reward_scale: str = "relative",
):
    """The policy and segmentation losses of one batched Algorithm 1 step.

    Parameters
    ----------
    model : RAZN
    views : list of (B, 3, P r^k, P r^k) float tensors, k = 0..m.
    targets : list of (B, P r^k, P r^k) long tensors (IGNORE where unlabelled).
    alpha : bound on the sampling probability (paper: 0.8).
    cost : lambda, the price of one zoom in the reward (paper: 0).
    generator : torch.Generator for the Bernoulli draws.
    route : False for a warm-up step: every segmentation net learns from
        every field (not only from those the action sends to it).
    train_policy : whether the policy takes its REINFORCE step; None: only
        when routing, so by default the policy waits out the warm-up and
        later compares nets that have both learnt something. True during a
        warm-up lets it learn which net does better while both nets see every
        field (TrainingConfig.warmup_policy).
    weights : None, or per-pixel loss weights shaped like `targets`.
    baseline : one of REWARD_BASELINES; "none" is the paper.
    normalise_advantage : scale the advantage to zero mean and unit standard
        deviation over the batch (not in the paper).
    baseline_state : for "moving-average", a dict that carries the average
        from step to step (key "reward_{k+1}" per decision level); the
        trainer keeps it in its checkpoints.
    reward_scale : one of REWARD_SCALES; "relative" is the paper.

    Returns
    -------
    policy_loss, segmentation_loss : scalar tensors (their parameters are disjoint).
    metrics : dict of floats (losses per level, zoom probability, actions, reward,
        and `zoom_gain_{k+1}`: the mean of (J_k - J_{k+1}) / J_k over every
        field, zoomed or not, which is what zooming would have paid).
    """
    if baseline not in REWARD_BASELINES:
        raise ValueError(f"baseline must be one of {REWARD_BASELINES}, not {baseline!r}")
    if baseline == "moving-average" and baseline_state is None:
        raise ValueError("the moving-average baseline needs a baseline_state dict")
    r = model.config.zoom_rate
    b = views[0].shape[0]
    policy_loss = views[0].new_zeros(())
    seg_total = views[0].new_zeros(())
    metrics = {}
    if train_policy is None:
        train_policy = route
    for k in range(model.config.zoom_levels):
        x, t = split_levels(views[k], r, k), _split(targets[k], r, k)
        xf, tf = split_levels(views[k + 1], r, k + 1), _split(targets[k + 1], r, k + 1)
        w = wf = None
        if weights is not None:
            w, wf = _split(weights[k], r, k), _split(weights[k + 1], r, k + 1)
        coarse_sum, coarse_n = field_losses(model.segmenters[k](x), t, w)
        fine_sum, fine_n = field_losses(model.segmenters[k + 1](xf), tf, wf)
        fine_sum = fine_sum.view(-1, r * r).sum(1)
        fine_n = fine_n.view(-1, r * r).sum(1)
        j_coarse = coarse_sum / coarse_n.clamp(min=1)
        j_fine = fine_sum / fine_n.clamp(min=1)
        p = torch.sigmoid(model.policies[k](x))
        p_bounded = bounded_probability(p, alpha)
        # Drawn on the CPU, where the (CPU) generator lives: the same draws
        # on every device, and a generator state any checkpoint can hold.
        draws = torch.bernoulli(p_bounded.detach().cpu(), generator=generator)
        action = draws.to(p_bounded.device)
        valid = ((coarse_n > 0) & (fine_n > 0)).float()
        j0, j1 = j_coarse.detach(), j_fine.detach()
        reward = zoom_reward(action, j0, j1, cost, reward_scale) * valid
        gain = zoom_reward(torch.ones_like(action), j0, j1, cost, reward_scale)
        advantage = _advantage(
            reward, gain, p.detach(), valid, baseline, normalise_advantage,
            baseline_state, f"reward_{k + 1}",
        )  # fmt: skip
        log_prob = torch.log(action * p_bounded + (1 - action) * (1 - p_bounded))
        if train_policy:
            policy_loss = policy_loss - (advantage * log_prob).sum() / b
        # f_{k+1} learns from the fields zoomed into, f_k from the others.
        # A net no field went to stays out of the graph, so it gets no
        # gradient at all (not a zero one, which Adam's momentum would use).
        routes = (action.bool(), ~action.bool()) if route else (valid.bool(), valid.bool())
        for chosen, total, count in ((routes[0], fine_sum, fine_n),
                                     (routes[1], coarse_sum, coarse_n)):  # fmt: skip
            if chosen.any():
                share = chosen.float().mean()
                seg_total = (
                    seg_total + total[chosen].sum() / count[chosen].sum().clamp(min=1) * share
                )
        metrics |= {
            f"loss_{k}": float(j_coarse.detach().mean()),
            f"loss_{k + 1}_fine": float(j_fine.detach().mean()),
            f"zoom_p_{k + 1}": float(p.detach().mean()),
            f"zoom_action_{k + 1}": float(action.mean()),
            f"reward_{k + 1}": float(reward.mean()),
            f"zoom_gain_{k + 1}": float((gain * valid).sum() / valid.sum().clamp(min=1)),
        }
    metrics["policy_loss"] = float(policy_loss.detach())
    metrics["segmentation_loss"] = float(seg_total.detach())
    return policy_loss, seg_total, metrics


def supervised_loss(model, views, targets, weights=None):
    """The baselines' loss: CE of the fused output, plus each scale's for MS and Attention.

    Supervising every scale as well as the fusion is what DeepLab's
    multi-scale training (MS) and Chen et al.'s attention model do.
    """
    arch = model.config.architecture
    level = model.config.finest_level
    w = None if weights is None else weights[level]
    if arch == "single-scale":
        logits, _ = model.logits(views)
        loss = mean_loss(logits, targets[level], w)
        return loss, {"segmentation_loss": float(loss.detach())}
    if arch == "multi-scale":
        per_scale, _ = model.scale_logits(views)
        fused = torch.stack(per_scale).amax(dim=0)
    elif arch == "attention":
        per_scale, attention, _ = model.scale_outputs(views)
        fused = sum(attention[:, s : s + 1] * logit for s, logit in enumerate(per_scale))
    else:
        raise ValueError(f"no supervised loss for architecture {arch!r}")
    fused_loss = mean_loss(fused, targets[level], w)
    loss = fused_loss + sum(mean_loss(logit, targets[level], w) for logit in per_scale)
    return loss, {
        "segmentation_loss": float(loss.detach()),
        "fused_loss": float(fused_loss.detach()),
    }


def training_step(
    model,
    optimizer,
    views,
    targets,
    *,
    alpha=0.8,
    cost=0.0,
    generator=None,
    route=True,
    train_policy=None,
    weights=None,
    baseline="none",
    normalise_advantage=False,
    baseline_state=None,
    reward_scale="relative",
):
    """One optimiser step for any architecture; returns the step's metrics.

    `weights`: None, or per-pixel loss weights, one tensor per level like
    `targets`. `baseline`, `normalise_advantage`, `baseline_state`,
    `reward_scale`: RAZN's policy step, as `razn_losses` takes them.
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    if model.config.architecture == "razn":
        policy_loss, seg_loss, metrics = razn_losses(
            model, views, targets, alpha=alpha, cost=cost, generator=generator, route=route,
            train_policy=train_policy, weights=weights, baseline=baseline,
            normalise_advantage=normalise_advantage, baseline_state=baseline_state,
            reward_scale=reward_scale,
        )  # fmt: skip
        loss = policy_loss + seg_loss
    else:
        loss, metrics = supervised_loss(model, views, targets, weights)
    loss.backward()
    optimizer.step()  # Adam skips parameters whose gradient is None
    return metrics


def _split(targets: torch.Tensor, rate: int, levels: int) -> torch.Tensor:
    return split_levels(targets[:, None], rate, levels)[:, 0]


def _advantage(reward, gain, p, valid, baseline, normalise, state, key):
    """R(a) - b per field (0 where a field has no labelled pixels at a level).

    `gain` is R(1) for every field, so the self-critical baseline, the
    reward of the greedy decision 1[p > 1/2], needs no second forward pass.
    """
    counted = valid.sum().clamp(min=1)
    if baseline == "batch-mean":
        advantage = reward - (reward * valid).sum() / counted
    elif baseline == "moving-average":
        previous = state.get(key)
        mean_reward = float((reward * valid).sum() / counted)
        # The first batch starts the average; later ones move it a little.
        base = mean_reward if previous is None else previous
        state[key] = base + MOVING_AVERAGE_WEIGHT * (mean_reward - base)
        advantage = reward - base
    elif baseline == "self-critical":
        advantage = reward - gain * (p > 0.5).float()
    else:
        advantage = reward
    advantage = advantage * valid
    if normalise and valid.sum() > 1:
        mean = (advantage * valid).sum() / counted
        spread = (((advantage - mean) * valid) ** 2).sum() / counted
        advantage = (advantage - mean) / (spread.sqrt() + 1e-6) * valid
    return advantage
