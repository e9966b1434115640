"""The one latency summary: median and 99th percentile, in milliseconds, to the microsecond.
Every report (evaluation, replay, node diagnostics, benchmarks) states latency this way."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def p50_p99(ms: Iterable[float]) -> tuple[float, float]:
    """(p50, p99) of latencies in milliseconds, rounded to 0.001 ms; NaN for none (a row
    that measured nothing says so instead of failing)."""
    values = np.asarray(list(ms), dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    p50, p99 = np.percentile(values, [50, 99])
    return round(float(p50), 3), round(float(p99), 3)


def seconds_to_ms(times: Iterable[float]) -> list[float]:
    """``time.perf_counter`` differences (seconds) as milliseconds."""
    return [1000.0 * t for t in times]
