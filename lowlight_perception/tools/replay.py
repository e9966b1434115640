"""``lowlight replay``: replay a bag into perception_node over real DDS and measure latency,
throughput and drops (and the peak throughput with ``--peak``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="replay a bag into perception_node over DDS: latency, throughput, drops",
        description="Publish a bag's camera topics with their recorded timing (x --rate) into "
        "perception_node and measure colour-published -> labels-received latency, output FPS and "
        "drops. With --model the node is started in its own process; without, a node already "
        "running on this ROS_DOMAIN_ID is used.",
    )
    p.add_argument("--bag", type=Path, required=True, help="rosbag2 directory (mcap or sqlite3)")
    p.add_argument("--model", type=Path, help="start perception_node with this model")
    p.add_argument("--rate", type=float, default=1.0, help="playback rate factor (default 1.0)")
    p.add_argument(
        "--peak",
        action="store_true",
        help="then double the rate until drops appear; report the peak FPS",
    )
    p.add_argument("--max-frames", type=int, help="replay at most N colour frames")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads of the node")
    p.add_argument("--out", type=Path, help="also write the results as JSON here")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import LowlightError
    from ..ros.replay import replay

    if args.rate <= 0:
        raise LowlightError("--rate must be > 0")
    result = replay(
        args.bag,
        model=args.model,
        rate=args.rate,
        peak=args.peak,
        max_frames=args.max_frames,
        threads=args.threads,
    )
    if result.get("peak"):
        print(
            f"peak without drops: x{result['peak']['rate']:g} playback, "
            f"{result['peak']['output_fps']} FPS"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"-> {args.out}")
    return 0
