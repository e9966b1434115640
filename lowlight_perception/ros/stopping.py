"""Stopping a node process on SIGINT / SIGTERM without racing rclpy.

Why: rclpy's own SIGINT handler chains to Python's, whose KeyboardInterrupt can land inside
rclpy's C++ message conversion and surface as a RuntimeError out of ``take_message`` (rclpy
jazzy, src/rclpy/signal_handler.cpp: ``call_signal_handler`` of the original handler, then
``shutdown_contexts``; seen in CI). So the processes this package starts init rclpy with
``SignalHandlerOptions.NO`` (rclpy humble and jazzy, rclpy/__init__.py ``init``), the signals
only set a flag, the executor finishes the callback it is in, and the caller shuts down in order.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import rclpy

POLL_S = 0.1
"""How soon a stop is seen when no message arrives."""


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event that SIGINT and SIGTERM set (instead of raising); the previous handlers are
    restored on exit."""
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def spin_until(executor: Any, stop: threading.Event) -> None:
    """Spin ``executor`` until ``stop`` is set or the context shuts down."""
    while not stop.is_set() and rclpy.ok():
        executor.spin_once(timeout_sec=POLL_S)
