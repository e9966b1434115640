"""``lowlight adapt``: self-train a checkpoint on unlabelled bags of a new building."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import LowlightError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "adapt",
        help="adapt a trained checkpoint to a new building from unlabelled bags (self-training)",
        description="Pseudo-label the colour frames of unlabelled bags with the model's confident "
        "predictions (a confidence threshold per class), fine-tune the task network on them "
        "(the decomposition stays frozen), for a few rounds. Writes adapted.pt (export it like "
        "any checkpoint), report.md, report.json and coverage.png.",
    )
    p.add_argument("--checkpoint", type=Path, required=True, help="a lowlight train checkpoint")
    p.add_argument(
        "--bag",
        type=Path,
        nargs="+",
        required=True,
        help="unlabelled bag(s): directories or .mcap/.db3 files",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--rounds", type=int, default=2, help="pseudo-label rounds (default 2)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per round (default 2)")
    p.add_argument(
        "--keep",
        type=float,
        default=0.5,
        help="per class, the most confident share of its pixels kept (default 0.5)",
    )
    p.add_argument(
        "--max-threshold",
        type=float,
        default=0.9,
        help="pixels at least this confident are always kept (default 0.9)",
    )
    p.add_argument("--seg-loss", default="ce", help="ce (default), focal or ce+focal")
    p.add_argument(
        "--ema-teacher",
        type=float,
        default=0.0,
        metavar="DECAY",
        help="pseudo-label from an EMA of the student with this decay after round 1 "
        "(e.g. 0.999; default 0: from the student at the start of each round)",
    )
    p.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate (default 2e-4)")
    p.add_argument("--batch-size", type=int, default=8, help="default 8")
    p.add_argument("--stride", type=int, default=1, help="use every n-th colour frame")
    p.add_argument("--max-frames", type=int, default=None, help="use at most N frames")
    p.add_argument("--seed", type=int, default=0, help="default 0")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..training.adapt import AdaptConfig, adapt

    for bag in args.bag:
        if not bag.exists():
            raise LowlightError(f"bag not found: {bag}")
    if not args.checkpoint.is_file():
        raise LowlightError(f"checkpoint not found: {args.checkpoint}")
    config = AdaptConfig(
        rounds=args.rounds,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        keep=args.keep,
        max_threshold=args.max_threshold,
        seg_loss=args.seg_loss,
        ema_teacher=args.ema_teacher,
        stride=args.stride,
        max_frames=args.max_frames,
        seed=args.seed,
        device=args.device,
    )
    report = adapt(args.checkpoint, args.bag, args.out, config)
    last = report["rounds"][-1]
    print(
        f"adapted in {report['seconds']} s on {report['frames']} frames; last round "
        f"pseudo-labelled {last['pseudo_labelled_%']} % of pixels; checkpoint "
        f"{args.out / 'adapted.pt'} (export it with lowlight export); report "
        f"{args.out / 'report.md'}"
    )
    return 0
