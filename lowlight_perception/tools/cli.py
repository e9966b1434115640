"""The ``lowlight`` command: one entry point, one subcommand per tool.

Every tool module exposes ``add_parser(subparsers)`` and ``run(args) -> int``. Errors the user
can fix (bad paths, bad values) surface as one readable line and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from .. import __version__
from ..errors import LowlightError, Terminated, exit_status, stop_reason
from . import (
    adapt,
    bag,
    bench,
    build_engine,
    capture,
    demo,
    eval,
    export,
    replay,
    synth,
    train,
)

TOOLS = (demo, capture, synth, train, adapt, export, build_engine, bench, bag, eval, replay)


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (plus a pointer to --help), like every other CLI error; no
    abbreviated flags (``--camera`` is not ``--camera-size``: one spelling per flag)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="lowlight",
        description="Low-light indoor scene understanding for ROS 2 robots: data, training, "
        "export, evaluation and benchmarks.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"lowlight {__version__} ({Path(__file__).resolve().parents[1]})",
    )
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=OneLineParser
    )
    for tool in TOOLS:
        tool.add_parser(sub)
    return parser


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = None
    if threading.current_thread() is threading.main_thread():  # signals go to the main thread
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.run(args) or 0)
    except LowlightError as err:
        print(f"lowlight {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"lowlight {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(f"lowlight {args.command}: {stop_reason(err)}", file=sys.stderr)
        return exit_status(err)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
