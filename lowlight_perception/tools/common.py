"""Pieces the ``lowlight`` subcommands share (argument types, the machine a figure was
measured on), in a module of their own so tool modules import them at the top without
importing the CLI entry point or each other."""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import numpy as np

from .. import __version__


def size_arg(text: str) -> tuple[int, int]:
    """argparse type for ``WxH`` image sizes (e.g. ``640x480``)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {text!r}") from None
    if w < 16 or h < 16 or w > 8192 or h > 8192:
        raise argparse.ArgumentTypeError(f"size {w}x{h} outside 16..8192 pixels per side")
    return w, h


def add_size_args(
    parser: argparse.ArgumentParser,
    camera: tuple[int, int],
    net: tuple[int, int],
    camera_help: str = "frame WxH",
    net_help: str = "network WxH",
) -> None:
    """``--camera-size`` and ``--net-size``, spelled and parsed one way in every command that
    takes them (export, bench node, bench graph); the defaults are appended to the help."""
    for flag, default, text in (
        ("--camera-size", camera, camera_help),
        ("--net-size", net, net_help),
    ):
        parser.add_argument(
            flag,
            type=size_arg,
            metavar="WxH",
            default=default,
            help=f"{text} (default {default[0]}x{default[1]})",
        )


def machine() -> dict:
    """The machine a figure was measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "lowlight_perception": __version__,
        "platform": platform.platform(),
    }
