"""``lowlight bench``: speed benchmarks, written as JSON + a Markdown table under bench/results/.

Speed targets live here, not in timed tests. Every result names the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..camera import Intrinsics
from ..data.relight import check_on_procedural
from ..data.synthetic import random_view
from .synth import render_dataset


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


def bench_synth(size: tuple[int, int], views: int, workers: int | None) -> dict:
    """Procedural views per second: render only (one process) and the full ``synth`` writer."""
    K = Intrinsics.d435i(*size)
    random_view(1234, 0, K)  # warm-up (imports, caches)
    times = []
    for i in range(views):
        t0 = time.perf_counter()
        random_view(1234, i, K)
        times.append(time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        render_dataset(
            Path(tmp) / "ds", views=views, size=size, seed=1234, workers=workers, progress=False
        )
        writer_s = time.perf_counter() - t0
    ms = np.array(times) * 1000
    return {
        "benchmark": "synth",
        "size": f"{size[0]}x{size[1]}",
        "views": views,
        "render_ms_p50": round(float(np.percentile(ms, 50)), 2),
        "render_ms_p99": round(float(np.percentile(ms, 99)), 2),
        "render_views_per_s_1_process": round(views / (ms.sum() / 1000), 2),
        "synth_writer_views_per_s": round(views / writer_s, 2),
        "synth_writer_workers": workers or os.cpu_count(),
        "target_views_per_s": 20,
        "machine": machine(),
    }


def write_result(result: dict, out_dir: Path, name: str) -> Path:
    """JSON (raw) + Markdown (table) side by side; returns the JSON path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    rows = [(k, v) for k, v in result.items() if k != "machine"]
    rows += [(f"machine.{k}", v) for k, v in result["machine"].items()]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    (out_dir / f"{name}.md").write_text(
        f"# {result['benchmark']} benchmark\n\n| metric | value |\n|---|---|\n{table}\n",
        encoding="utf-8",
    )
    return path


def add_parser(sub: argparse._SubParsersAction) -> None:
    from .cli import size_arg

    p = sub.add_parser("bench", help="speed benchmarks (results under bench/results/)")
    benches = p.add_subparsers(
        dest="bench", metavar="BENCH", required=True, parser_class=type(p)
    )
    s = benches.add_parser("synth", help="procedural views per second (goal >= 20 at 320x240)")
    s.add_argument("--size", type=size_arg, default=(320, 240), help="WxH (default 320x240)")
    s.add_argument("--views", type=int, default=40, help="views to time (default 40)")
    s.add_argument("--workers", type=int, default=None, help="writer processes (default: cores)")
    s.add_argument("--out-dir", type=Path, default=Path("bench/results"))
    s.set_defaults(run=run)
    r = benches.add_parser(
        "relight", help="relighting error against rendered procedural dark frames"
    )
    r.add_argument("--size", type=size_arg, default=(320, 240), help="WxH (default 320x240)")
    r.add_argument("--views", type=int, default=20, help="views to compare (default 20)")
    r.add_argument("--out-dir", type=Path, default=Path("bench/results"))
    r.set_defaults(run=run_relight)


def run_relight(args: argparse.Namespace) -> int:
    result = {"benchmark": "relight", **check_on_procedural(args.views, args.size)}
    result["machine"] = machine()
    path = write_result(result, args.out_dir, f"relight_{result['size']}")
    print(
        f"relight {result['size']}: MAE {result['mae_dn_all']} DN on dark frames of mean "
        f"{result['truth_mean_dn']} DN (relative {result['relative_mae']}); with the true albedo "
        f"{result['mae_dn_true_albedo']} DN -> {path}"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    result = bench_synth(args.size, args.views, args.workers)
    path = write_result(result, args.out_dir, f"synth_{result['size']}")
    print(
        f"synth {result['size']}: render {result['render_ms_p50']} ms p50 "
        f"({result['render_views_per_s_1_process']} views/s, 1 process); "
        f"synth writer {result['synth_writer_views_per_s']} views/s with "
        f"{result['synth_writer_workers']} processes (goal >= 20) -> {path}"
    )
    return 0
