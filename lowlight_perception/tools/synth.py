"""``lowlight synth``: render a procedural low-light RGB-D dataset (``data.synth``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..data.synth import render_dataset, summarize
from ..data.synthetic import LOW_LIGHT_DOMAINS
from .common import size_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="render a procedural low-light RGB-D dataset (LLRGBD-real layout)",
        description="Render paired low-/normal-light RGB-D views of procedural rooms lit only "
        "by a camera LED, with labels, depth (uint16 mm), albedo and shading ground truth, into "
        "the LLRGBD-real layout (train_rgb_l/, train_rgb_h/, train_lbl/, val_*, ...).",
    )
    p.add_argument(
        "--out", type=Path, required=True, help="output directory (must not hold a dataset)"
    )
    p.add_argument("--views", type=int, default=200, help="number of views (default 200)")
    p.add_argument("--size", type=size_arg, default=(640, 480), help="WxH (default 640x480)")
    p.add_argument("--seed", type=int, default=0, help="seed; same seed, same dataset")
    p.add_argument(
        "--sequence",
        action="store_true",
        help="smooth camera trajectories through rooms (for bag replay) instead of "
        "independent random views",
    )
    p.add_argument(
        "--frames-per-room",
        type=int,
        default=100,
        help="with --sequence: frames per room trajectory (default 100)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of views (random) or rooms (sequence) in val (default 0.1)",
    )
    p.add_argument(
        "--low-light",
        choices=tuple(LOW_LIGHT_DOMAINS),
        default="led",
        help="the dark views' LED power and sensor noise: led (default) or dim-noisy (a third "
        "of the LED power on a noisier sensor: a domain shift for lowlight adapt)",
    )
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    stats = render_dataset(
        args.out,
        views=args.views,
        size=args.size,
        seed=args.seed,
        sequence=args.sequence,
        frames_per_room=args.frames_per_room,
        val_fraction=args.val_fraction,
        workers=args.workers,
        low_light=args.low_light,
    )
    print(summarize(stats, time.perf_counter() - start, args.out))
    return 0
