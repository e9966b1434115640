"""``lowlight eval``: score a model (or recorded predictions) on a bag or a dataset directory.

A thin argument layer over ``evaluation.evaluate``: it picks the frame source, runs the one
evaluation loop, optionally the robustness grid, and prints a short summary. Options that do not
fit together fail in one line before anything runs. A run that stops early (Ctrl-C, a SIGTERM,
a bag that breaks off) still leaves its report, and says so: exit status 130 when interrupted,
143 when terminated, 1 when the bag broke off, 2 when nothing at all could be scored.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..data.degrade import KINDS
from ..errors import LowlightError
from ..evaluation.report import pct
from ..inference.backend import BackendError
from ..inference.refine import RefineConfig
from ..inference.segmenter import BACKENDS, parse_device
from .common import size_arg

TOPIC_OPTIONS = ("color_topic", "depth_topic", "info_topic", "gt_topic")
"""``iter_frames`` topic overrides the command passes through."""


def _device_arg(text: str) -> int | str:
    """argparse type for ``--device``: auto, cpu (or -1) or a CUDA index."""
    try:
        return parse_device(text)
    except BackendError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a model (or recorded predictions) on a rosbag or a dataset",
        description="Run the Segmenter on every colour frame of a rosbag2 (mcap or sqlite3) or "
        "on a dataset split, or score predictions recorded in the bag, against the ground "
        "truth; write metrics.json, per_frame.csv, report.md, confusion.png, timeline.png and "
        "side-by-side samples/ under --out. Results are written as they come: an interrupted "
        "run keeps its partial report, marked incomplete.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--bag", type=Path, help="rosbag2 directory (or .mcap/.db3 file)")
    src.add_argument("--dataset", type=Path, metavar="DIR", help="dataset root (or NYUv2 .mat)")
    p.add_argument("--kind", help="with --dataset: dataset kind (default llrgbd-real)")
    p.add_argument("--split", help="with --dataset: split (default val)")
    p.add_argument("--size", type=size_arg, metavar="WxH", help="with --dataset: resize views")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", type=Path, help="exported .onnx, .engine or .pt checkpoint")
    what.add_argument(
        "--predictions-topic",
        metavar="TOPIC",
        help="with --bag: score the labels recorded on TOPIC (e.g. /lowlight_perception/labels) "
        "instead of running a model",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help="default auto")
    p.add_argument(
        "--device",
        type=_device_arg,
        default="auto",
        help="auto (GPU 0 when the backend can use one, else the CPU; default), cpu or a CUDA "
        "index",
    )
    p.add_argument("--max-frames", type=_positive, help="stop after N colour frames")
    p.add_argument(
        "--degrade",
        metavar="all|KIND",
        choices=("all", *KINDS),
        help="also run the robustness grid: every degradation (all) or one kind at levels "
        f"1..4; kinds: {', '.join(KINDS)}",
    )
    p.add_argument("--samples", type=int, default=6, help="side-by-side images (default 6)")
    p.add_argument(
        "--refine",
        action="store_true",
        help="depth-aware refinement of the model's labels and confidence on frames with "
        "aligned depth (what the node's refine_with_depth does)",
    )
    for option in TOPIC_OPTIONS:
        p.add_argument(
            "--" + option.replace("_", "-"), metavar="TOPIC", help="with --bag: topic override"
        )
    p.set_defaults(run=run)


def _check(args: argparse.Namespace) -> dict[str, str]:
    """Option combinations argparse cannot express; returns the bag topic overrides.

    Raises:
        LowlightError: naming the offending option.
    """
    topics = {k: getattr(args, k) for k in TOPIC_OPTIONS if getattr(args, k)}
    if args.bag is not None:
        for name in ("kind", "split", "size"):
            if getattr(args, name) is not None:
                raise LowlightError(f"--{name} applies to --dataset, not --bag")
        if not args.bag.exists():
            raise LowlightError(f"bag not found: {args.bag}")
    else:
        if args.predictions_topic:
            raise LowlightError("--predictions-topic needs --bag (a dataset records no outputs)")
        if topics:
            raise LowlightError("topic options apply to --bag, not --dataset")
    if args.refine and args.predictions_topic:
        raise LowlightError("--refine needs --model: recorded predictions are scored as recorded")
    if args.degrade and args.predictions_topic:
        raise LowlightError("--degrade needs --model: recorded predictions cannot be re-run")
    if args.model is not None and not args.model.exists():
        raise LowlightError(f"model not found: {args.model}")
    if args.samples < 0:
        raise LowlightError("--samples must be >= 0")
    return topics


def summary(metrics: dict, out: Path, seconds: float) -> str:
    """The few lines printed after an evaluation."""
    from ..evaluation.report import skipped_text

    backend = metrics["backend"] + (f" on {metrics['device']}" if metrics.get("device") else "")
    lines = [
        f"evaluated {metrics['frames']} frames of {metrics['source']} with {metrics['model']} "
        f"({backend}) in {seconds:.1f} s",
        f"mIoU {pct(metrics['mIoU'])}   OA {pct(metrics['OA'])}   mAcc {pct(metrics['mAcc'])}"
        f"   FWIoU {pct(metrics['FWIoU'])}",
        f"skipped: {skipped_text(metrics['skipped'])}",
    ]
    if metrics.get("latency_ms"):
        lat = metrics["latency_ms"]
        lines.append(f"latency of segment(): p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms")
    if metrics.get("refine") is not None:
        lines.append(
            f"depth-aware refinement: {metrics['refined_frames']} of {metrics['frames']} "
            "frames had aligned depth and were refined"
        )
    scores = metrics.get("restoration") or {}
    for ref in ("albedo", "normal"):
        if f"psnr_restored_vs_{ref}" in scores:
            lines.append(
                f"restored reflectance vs {ref}: PSNR {scores[f'psnr_restored_vs_{ref}']:.2f} dB "
                f"(baselines: gain {scores[f'psnr_gain_vs_{ref}']:.2f}, max-RGB "
                f"{scores[f'psnr_max_rgb_vs_{ref}']:.2f})"
            )
    if not metrics["complete"]:
        lines.append(f"INCOMPLETE: {metrics['incomplete_reason']}; the report covers those frames")
    lines.append(f"report: {out / 'report.md'}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate as ev
    from .common import machine

    topics = _check(args)
    common = {
        "backend": args.backend,
        "device": args.device,
        "max_frames": args.max_frames,
        "samples": args.samples,
        "machine": machine(),
        "refine": RefineConfig() if args.refine else None,
    }
    start = time.perf_counter()
    if args.bag is not None:
        metrics = ev.evaluate_bag(
            args.bag,
            args.model,
            args.out,
            predictions_topic=args.predictions_topic,
            topics=topics,
            **common,
        )
    else:
        kind, split = args.kind or "llrgbd-real", args.split or "val"
        metrics = ev.evaluate_dataset(
            kind, args.dataset, split, args.model, args.out, size=args.size, **common
        )
    if metrics["frames"] == 0:  # no "mIoU nan %" summary first: the one error line says it
        raise LowlightError(
            f"no frame could be scored (skipped: {', '.join(metrics['skipped']) or 'none'}); "
            f"see {args.out / 'report.md'}"
        )
    print(summary(metrics, args.out, time.perf_counter() - start))
    if not metrics["complete"]:
        return _stopped_status(metrics["incomplete_reason"])
    if args.degrade:
        return _robustness(args, topics, common["machine"])
    return 0


def _robustness(args: argparse.Namespace, topics: dict[str, str], machine: dict) -> int:
    """The degradation grid on the same frames; links it from report.md."""
    from ..data.datasets import open_dataset
    from ..evaluation import evaluate as ev
    from ..inference import Segmenter

    kinds = KINDS if args.degrade == "all" else (args.degrade,)
    if args.bag is not None:
        source = str(args.bag)

        def frames():
            return ev.bag_frames(args.bag, max_frames=args.max_frames, topics=topics)

        total = ev.bag_length(args.bag, topics.get("color_topic"), args.max_frames)
    else:
        kind, split = args.kind or "llrgbd-real", args.split or "val"
        source = f"{kind}:{args.dataset} ({split})"
        dataset = open_dataset(kind, args.dataset, split, size=args.size)
        total = len(dataset) if args.max_frames is None else min(len(dataset), args.max_frames)

        def frames():
            return ev.dataset_frames(dataset, args.max_frames)

    refine = RefineConfig() if args.refine else None
    with Segmenter(args.model, args.backend, args.device, refine=refine) as seg:
        doc = ev.robustness(
            frames, seg, args.out, kinds=kinds, source=source, total=total, machine=machine
        )
    with open(args.out / "report.md", "a", encoding="utf-8") as handle:
        handle.write("Robustness grid: [robustness.md](robustness.md)\n")
    clean = doc["clean"].get("mIoU")
    worst = min(
        (
            (r["mIoU"], f"{k} {r['level']}")
            for k, rows in doc["grid"].items()
            for r in rows
            if r["mIoU"] is not None and r["mIoU"] == r["mIoU"]
        ),
        default=None,
    )
    print(
        f"robustness: clean mIoU {pct(clean)}"
        + (f", worst {pct(worst[0])} ({worst[1]})" if worst else "")
        + f"; table: {args.out / 'robustness.md'}"
    )
    if not doc["complete"]:
        print(f"INCOMPLETE: {doc['incomplete_reason']}")
        return _stopped_status(doc["incomplete_reason"])
    return 0


def _stopped_status(reason: str) -> int:
    """143 after a SIGTERM, 130 after Ctrl-C, 1 when the data broke off."""
    if reason.startswith("terminated"):
        return 143
    return 130 if reason.startswith("interrupted") else 1
