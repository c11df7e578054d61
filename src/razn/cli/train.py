"""`razn train`: train RAZN or a baseline on slides with labels (Algorithm 1 for RAZN)."""

from __future__ import annotations

import argparse

HELP = "Train RAZN or a baseline on slides and their labels; checkpoints and metrics in --out."


def add_arguments(parser) -> None:
    from razn.cli._arguments import add_labelled_slides, add_quiet, add_seed

    parser.add_argument(
        "--config",
        default="razn-small",
        help="model configuration name (razn, razn-small, scale1, ...)",
    )
    add_labelled_slides(parser, many=True)
    parser.add_argument("--out", required=True, help="folder for checkpoints and metrics.jsonl")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument(
        "--decay-every", type=int, help="lr x0.1 every N steps (default: a quarter of the run)"
    )
    parser.add_argument("--alpha", type=float, default=0.8, help="zoom sampling bound")
    parser.add_argument(
        "--cost", type=float, default=0.0, help="price of one zoom in the reward (0: the paper)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="RAZN: first N steps train every net on every field, policy waiting (0: paper)",
    )
    parser.add_argument(
        "--warmup-policy",
        action="store_true",
        help="RAZN: the policy learns during the warm-up too (it waits by default)",
    )
    parser.add_argument(
        "--baseline",
        choices=("none", "batch-mean", "moving-average", "self-critical"),
        default="none",
        help="RAZN: reward baseline of the policy's REINFORCE step (none: the paper)",
    )
    parser.add_argument(
        "--reward-scale",
        choices=("relative", "symmetric"),
        default="relative",
        help="RAZN: (J0-J1)/J0 as the paper, or (J0-J1)/max(J0,J1), bounded (not in the paper)",
    )
    parser.add_argument(
        "--normalise-advantage",
        action="store_true",
        help="RAZN: advantage to zero mean, unit spread per batch (not in the paper)",
    )
    parser.add_argument(
        "--balanced",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="class-balanced sampling of fields (default on)",
    )
    parser.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="flips, 90-degree turns, colour jitter (default on)",
    )
    add_seed(parser)
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps; a run may resume on another",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--resume", action="store_true", help="continue from --out's checkpoint")
    add_quiet(parser)


def run(args) -> int:
    import torch
    from tqdm import tqdm

    from razn.classes import NORMAL, UNLABELLED
    from razn.errors import RaznError
    from razn.inference import pick_device
    from razn.models import get_config
    from razn.training import FieldSampler, SlideFields, TrainingConfig, open_labelled, train

    if len(args.slides) != len(args.labels):
        raise RaznError(f"{len(args.slides)} slides but {len(args.labels)} label files")
    pick_device(args.device)  # a missing GPU is reported before any slide is opened
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model_config = get_config(args.config)
    except KeyError as error:
        raise RaznError(str(error.args[0])) from None
    fill = NORMAL if args.unannotated == "normal" else UNLABELLED
    labelled = [
        open_labelled(s, lab, mpp=args.mpp, unannotated=fill)
        for s, lab in zip(args.slides, args.labels, strict=True)
    ]
    config = TrainingConfig(
        model=args.config, iterations=args.iterations, batch_size=args.batch_size,
        lr=args.lr, decay_every=args.decay_every, alpha=args.alpha, cost=args.cost, warmup=args.warmup,
        warmup_policy=args.warmup_policy, baseline=args.baseline,
        normalise_advantage=args.normalise_advantage, reward_scale=args.reward_scale,
        balanced=args.balanced, augment=args.augment, seed=args.seed, device=args.device,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every,
        data={"slides": list(args.slides), "labels": list(args.labels),
              "unannotated": args.unannotated},
    )  # fmt: skip
    source = SlideFields(FieldSampler(labelled, model_config, args.balanced), args.augment)
    steps = train(config, source, args.out, resume=args.resume)
    with tqdm(total=config.iterations, disable=args.quiet, unit="step") as bar:
        for progress in steps:
            if bar.n == 0:
                bar.update(progress.iteration - 1)  # a resumed run starts part-way
            bar.update(1)
            loss = progress.metrics.get("segmentation_loss")
            if loss is not None:
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
    print(f"model written to {args.out}/model.safetensors")
    return 0
