"""``lowlight train``: train a registry model from a preset, single process or under torchrun."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..training.config import STAGES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (LISU two-stage, DLv3p-joint, ...) from a config preset",
        description="Train from a YAML preset (config/train/*.yaml) with key=value overrides. "
        "Multi-GPU: torchrun --nproc_per_node N $(which lowlight) train ...",
    )
    p.add_argument(
        "--config",
        default="lisu_small_cpu",
        help="preset name in config/train or a YAML path (default lisu_small_cpu)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set epochs=3 --set data.size=[160,112]",
    )
    p.add_argument("--data", help="dataset path (shortcut for --set data.path=...)")
    p.add_argument("--out", help="run directory (shortcut for --set out=...)")
    p.add_argument("--stage", choices=STAGES, help="stage(s) to train")
    p.add_argument("--resume", type=Path, help="continue from a run's last.pt")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..training.config import load_config
    from ..training.loop import train

    shortcuts: dict = {}  # exact strings (paths), not parsed as YAML like --set values
    if args.out is not None:
        shortcuts["out"] = args.out
    if args.stage is not None:
        shortcuts["stage"] = args.stage
    if args.data is not None:
        shortcuts["data"] = {"path": args.data}
    config = load_config(args.config, shortcuts, assignments=args.overrides)
    result = train(config, resume=str(args.resume) if args.resume else None)
    if result.get("best") is not None:
        print(
            f"done in {result['seconds']} s on {result['processes']} process(es) "
            f"({result['device']}); best: {json.dumps(result['best'])}"
        )
        spread = result.get("val_mIoU_spread")
        if spread:
            print(
                f"val mIoU over the last {spread['epochs']} epoch(s): {spread['mean']:.3f} ± "
                f"{spread['std']:.3f} ({spread['min']:.3f} to {spread['max']:.3f}; mean change "
                f"between epochs {spread['mean_epoch_change']:.3f})"
            )
        if "majority_baseline_mIoU" in result:
            print(f"majority-class baseline val mIoU: {result['majority_baseline_mIoU']:.3f}")
        print(f"checkpoints, metrics.csv/json and curves.png in {result['out']}")
    return 0
