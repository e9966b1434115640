"""``lowlight bag``: write a dataset as a rosbag2 bag the node can replay, or describe a bag.

Why: evaluation and the live replay work on bags, as they do on the drone; ``bag write`` turns
any dataset of the data layer (LLRGBD layouts, NYUv2, procedural views) into one with the
RealSense topics and the ground truth next to them, and ``bag info`` shows what a bag holds.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..bags import (
    GT_TOPIC,
    NORMAL_TOPIC,
    ROSBAG2_VERSION,
    STORAGES,
    BagError,
    inspect_bag,
    repair_bag,
    write_bag,
)
from ..data.datasets import DATASETS, open_dataset
from .common import size_arg


@dataclass
class _First:
    """The first ``n`` samples of a dataset, read lazily, with a length for the progress bar."""

    dataset: Any
    n: int

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Any:
        return (self.dataset[i] for i in range(self.n))


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bag",
        help="write a dataset as a rosbag2 bag (RealSense topics + ground truth), describe or "
        "repair one",
        description="Write datasets as rosbag2 bags that `ros2 bag play` replays into the node, "
        "show what a bag holds, and repair a recording that was cut off.",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=type(p))
    w = verbs.add_parser(
        "write",
        help="dataset -> rosbag2 (mcap or sqlite3)",
        description="Write a dataset split as a rosbag2 bag: the low-light frames on the RealSense "
        f"colour topic (rgb8), aligned depth (16UC1 mm) and camera_info when the dataset has "
        f"them, labels on {GT_TOPIC} (mono8) and, with --normal, the normal-light frames on "
        f"{NORMAL_TOPIC}; frame i is stamped t0 + i / fps. The bag is rosbag2 format "
        f"{ROSBAG2_VERSION}, which `ros2 bag play` reads on Humble and Jazzy.",
    )
    w.add_argument("--kind", required=True, choices=sorted(DATASETS), help="dataset kind")
    w.add_argument("--data", type=Path, default=None, help="dataset path (not for procedural)")
    w.add_argument("--split", default="val", help="split to write (default val)")
    w.add_argument("--out", type=Path, required=True, help="bag directory to create")
    w.add_argument(
        "--storage",
        choices=STORAGES,
        default="mcap",
        help="storage (default mcap; Humble's ros2 bag play needs ros-humble-rosbag2-storage-mcap "
        "for it, sqlite3 plays on a plain Humble install)",
    )
    w.add_argument("--fps", type=float, default=30.0, help="frame rate of the stamps (default 30)")
    w.add_argument("--size", type=size_arg, default=None, help="resize frames to WxH")
    w.add_argument("--normal", action="store_true", help=f"also write {NORMAL_TOPIC}")
    w.add_argument("--max-frames", type=int, default=None, help="write at most N frames")
    w.add_argument(
        "--no-labels",
        action="store_true",
        help=f"leave out {GT_TOPIC}: an unlabelled recording (for lowlight adapt)",
    )
    w.set_defaults(run=run_write)
    i = verbs.add_parser("info", help="topics, counts and duration of a bag")
    i.add_argument(
        "--bag", type=Path, required=True, help="bag directory (or a storage file in it)"
    )
    i.set_defaults(run=run_info)
    r = verbs.add_parser(
        "repair",
        help="copy what a cut-off or damaged bag still holds into a clean bag",
        description="Copy every complete message of a bag that `ros2 bag play` refuses (a killed "
        "`ros2 bag record`, a drone that lost power: an .mcap without its footer, a .db3 cut "
        "mid-page, no metadata.yaml) into a new bag, bytes, types and recorded QoS unchanged, as "
        "`ros2 bag reindex` and `mcap recover` do. The new bag is rosbag2 format "
        f"{ROSBAG2_VERSION}, which Humble and Jazzy play.",
    )
    r.add_argument(
        "--bag", type=Path, required=True, help="the damaged bag directory (or its storage file)"
    )
    r.add_argument("--out", type=Path, required=True, help="bag directory to create")
    r.add_argument(
        "--storage",
        choices=STORAGES,
        default=None,
        help="storage of the new bag (default: the source's)",
    )
    r.set_defaults(run=run_repair)


def run_write(args: argparse.Namespace) -> int:
    if args.max_frames is not None and args.max_frames < 1:
        raise BagError("--max-frames must be at least 1")
    if args.data is None and args.kind != "procedural":
        raise BagError(f"--data is required for --kind {args.kind}")
    options: dict[str, Any] = {} if args.size is None else {"size": args.size}
    if args.kind == "procedural" and args.max_frames is not None:
        options["num_views"] = args.max_frames
    dataset = open_dataset(args.kind, args.data, args.split, **options)
    count = len(dataset) if args.max_frames is None else min(len(dataset), args.max_frames)
    if count == 0:
        raise BagError(f"the {args.split} split of {args.data or args.kind} has no views")
    summary = write_bag(
        _First(dataset, count),
        args.out,
        storage=args.storage,
        fps=args.fps,
        include_normal=args.normal,
        include_labels=not args.no_labels,
    )
    source = f"{args.kind} {args.data}" if args.data is not None else args.kind
    topics = ", ".join(f"{topic} ({count})" for topic, count in summary.topics.items())
    print(
        f"wrote {summary.frames} frames of the {args.split} split of {source} to {summary.path} "
        f"({summary.storage}, {summary.size / 1e6:.1f} MB, {summary.duration:.2f} s at "
        f"{args.fps:g} fps). Topics: {topics}. Replay it with `ros2 bag play {summary.path}`."
    )
    return 0


def run_info(args: argparse.Namespace) -> int:
    from ..topics import COLOR_TOPIC, COLOUR_TRANSPORT, DEPTH_TOPIC, DEPTH_TRANSPORT, camera_topic

    info = inspect_bag(args.bag)
    print(f"{info.path}: {info.storage}, {info.messages} messages over {info.duration:.2f} s")
    if info.note:
        print(f"CUT SHORT: {info.note}")
        print(
            f"  a clean bag of what it holds: lowlight bag repair --bag {info.path} "
            "--out REPAIRED_DIR"
        )
    width = max((len(topic) for topic in info.topics), default=0)
    for topic, (msgtype, count) in sorted(info.topics.items()):
        fmt = f"  ({info.formats[topic]})" if topic in info.formats else ""
        print(f"  {topic:<{width}}  {count:>7}  {msgtype}{fmt}")
    # what `lowlight eval` and `lowlight replay` take as camera input (raw first, else compressed)
    colour = camera_topic(info.topics, COLOR_TOPIC, COLOUR_TRANSPORT)
    depth = camera_topic(info.topics, DEPTH_TOPIC, DEPTH_TRANSPORT)
    print(
        f"camera input for eval and replay: colour {colour or f'none (no {COLOR_TOPIC})'}, "
        f"depth {depth or 'none'}"
    )
    return 0


def run_repair(args: argparse.Namespace) -> int:
    summary = repair_bag(args.bag, args.out, storage=args.storage)
    print(summary)
    print(
        f"Replay it with `ros2 bag play {summary.path}`, score it with `lowlight eval --bag "
        f"{summary.path}`."
    )
    return 0
