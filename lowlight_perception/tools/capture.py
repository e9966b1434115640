"""``lowlight capture``: paired low-/normal-light RGB-D views from a RealSense camera, or from
pairs of librealsense recordings of one pose, in the layout ``train``/``eval``/``bag write``
read."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..errors import LowlightError
from .common import size_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "capture",
        help="capture paired low-/normal-light RGB-D views from a RealSense camera "
        "(or two .db3 recordings per pose)",
        description="At each pose: a low-light burst (LED only: auto exposure off, fixed "
        "exposure and gain, IR emitter off) and a normal-light burst (room lights on, or auto "
        "exposure); keeps the sharpest low frame, averages the normal ones, takes the per-pixel "
        "median depth registered to colour (librealsense's align rule), and writes "
        "{split}_rgb_l/, {split}_rgb_h/, {split}_depth/, an empty {split}_lbl/ for your labels, "
        "intrinsics.yaml and capture.yaml (device, settings, exposure/gain metadata). "
        "Without --low/--normal it streams from a connected camera.",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="dataset directory (created; an existing one is added to, never overwritten)",
    )
    p.add_argument(
        "--low",
        type=Path,
        nargs="+",
        metavar="LOW.db3",
        help="recordings made with the room dark, one per pose (with --normal)",
    )
    p.add_argument(
        "--normal",
        type=Path,
        nargs="+",
        metavar="NORMAL.db3",
        help="recordings of the same poses with the room lit, in the same order",
    )
    p.add_argument("--split", default="train", help="train (default) or val")
    p.add_argument("--name", default="pose", help="file name prefix of the views (default pose)")
    p.add_argument(
        "--frames",
        type=int,
        default=5,
        help="frames per lighting and pose (default 5; recordings: the last N)",
    )
    p.add_argument("--poses", type=int, default=10, help="live: poses to capture (default 10)")
    p.add_argument(
        "--interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="live: wait this long before each step instead of asking for Enter",
    )
    p.add_argument(
        "--normal-light",
        default="lights",
        choices=("lights", "auto-exposure"),
        help="live: how the normal frame is lit: 'lights' (default) asks for the room "
        "lights between the bursts; 'auto-exposure' keeps the LED and lets the camera "
        "expose (nobody needs to touch anything)",
    )
    p.add_argument(
        "--exposure",
        type=float,
        default=330.0,
        help="live: low-light exposure, the sensor's units (D435i RGB: 0.1 ms; "
        "default 330 = 33 ms)",
    )
    p.add_argument(
        "--gain",
        type=float,
        default=128.0,
        help="live: low-light gain (D435i RGB 0..128; default 128)",
    )
    p.add_argument(
        "--settle",
        type=int,
        default=30,
        help="live: frames dropped after each change of settings (default 30)",
    )
    p.add_argument(
        "--size",
        type=size_arg,
        default=(640, 480),
        help="live: colour (and depth) size WxH (default 640x480)",
    )
    p.add_argument("--fps", type=int, default=30, help="live: stream rate (default 30)")
    p.add_argument(
        "--serial",
        default=None,
        help="live: the camera's serial number (default: the only one connected)",
    )
    p.set_defaults(run=run)


def _check(args: argparse.Namespace) -> None:
    if (args.low is None) != (args.normal is None):
        raise LowlightError("--low and --normal go together (one recording of each per pose)")
    if args.low is not None and len(args.low) != len(args.normal):
        raise LowlightError(
            f"{len(args.low)} --low recordings but {len(args.normal)} --normal: "
            "give one of each per pose, in the same order"
        )
    for name in ("frames", "poses"):
        if getattr(args, name) < 1:
            raise LowlightError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.settle < 0 or (args.interval is not None and args.interval < 0):
        raise LowlightError("--settle and --interval must not be negative")
    if args.split not in ("train", "val"):
        raise LowlightError(f"--split must be train or val, got {args.split!r}")


def _ask(message: str) -> None:
    try:
        input(message + " ")
    except EOFError:
        raise LowlightError("no terminal to answer the prompts: give --interval SECONDS") from None


def run(args: argparse.Namespace) -> int:
    from ..capture.realsense import RealsenseSource, load_pyrealsense2
    from ..capture.session import LowLightSettings, capture_live, capture_pair
    from ..capture.views import CaptureWriter

    _check(args)
    t0 = time.perf_counter()
    if args.low is not None:
        names, writer = [], None
        for low_path, normal_path in zip(args.low, args.normal, strict=True):
            pose, geometries = [], []
            for path in (low_path, normal_path):
                source = RealsenseSource.recording(path)
                try:
                    frames = source.play_all()
                finally:
                    source.close()
                if len(frames) < args.frames:
                    raise LowlightError(
                        f"{path}: {len(frames)} colour+depth frame pairs, "
                        f"fewer than --frames {args.frames}"
                    )
                pose.append(frames)
                geometries.append(source.geometry)
            if not geometries[0].same_camera(geometries[1]):
                raise LowlightError(
                    f"{low_path} and {normal_path} were recorded with different "
                    "cameras or stream settings; a pose needs one camera"
                )
            if writer is None:
                writer = CaptureWriter(
                    args.out,
                    args.split,
                    source.geometry,
                    {"source": "recordings", "device": source.info(), "frames": args.frames},
                    prefix=args.name,
                )
            names.append(capture_pair(*pose, writer, source.geometry, args.frames))
    else:
        rs = load_pyrealsense2()
        devices = list(rs.context().query_devices())
        if args.serial:
            devices = [
                d for d in devices if d.get_info(rs.camera_info.serial_number) == args.serial
            ]
        if len(devices) != 1:
            raise LowlightError(
                "no RealSense camera connected"
                if not devices and not args.serial
                else f"no camera with serial {args.serial}"
                if not devices
                else f"{len(devices)} cameras connected: choose one with --serial"
            )
        source = RealsenseSource(devices[0], size=args.size, fps=args.fps, rs=rs)
        low = LowLightSettings(exposure=args.exposure, gain=args.gain)
        try:
            writer = CaptureWriter(
                args.out,
                args.split,
                source.geometry,
                {
                    "source": "live",
                    "device": source.info(),
                    "low_light": low.options(),
                    "normal_light": args.normal_light,
                    "frames": args.frames,
                    "settle": args.settle,
                },
                prefix=args.name,
            )
            wait = _ask if args.interval is None else (lambda _msg: time.sleep(args.interval))
            names = capture_live(
                source,
                writer,
                poses=args.poses,
                frames=args.frames,
                settle=args.settle,
                low=low,
                normal_mode=args.normal_light,
                wait=wait,
            )
        finally:
            source.close()
    print(
        f"captured {len(names)} view(s) into {args.out} ({args.split}: {names[0]} .. "
        f"{names[-1]}) in {time.perf_counter() - t0:.1f} s; label them in "
        f"{args.out / (args.split + '_lbl')}/ (class-id PNGs of the same names) to train"
    )
    return 0
