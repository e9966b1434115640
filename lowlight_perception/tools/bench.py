"""``lowlight bench``: speed benchmarks, written as JSON + a Markdown table under ``--out``
(default out/bench/; the committed results: ``--out bench/results``, as ``make bench`` does).

Speed targets live here, not in timed tests. Every result names the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ..camera import Intrinsics
from ..data.relight import check_on_procedural
from ..data.synth import render_dataset
from ..data.synthetic import random_view
from ..latency import p50_p99, seconds_to_ms
from ..ros.interface import OUTPUTS
from ..training.compare import compare_runs
from .common import add_size_args, machine, size_arg


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
    render_p50, render_p99 = p50_p99(seconds_to_ms(times))
    return {
        "benchmark": "synth",
        "size": f"{size[0]}x{size[1]}",
        "views": views,
        "render_ms_p50": render_p50,
        "render_ms_p99": render_p99,
        "render_views_per_s_1_process": round(views / sum(times), 2),
        "synth_writer_views_per_s": round(views / writer_s, 2),
        "synth_writer_workers": workers or os.cpu_count(),
        "target_views_per_s": 20,
        "machine": machine(),
    }


def _p50_ms(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return p50_p99(seconds_to_ms(times))[0]


def bench_models(names: list[str], sizes: list[tuple[int, int]], runs: int, threads: int) -> dict:
    """Latency of the deployed graph (uint8 frame in, published images out) per model and size:
    PyTorch eager vs ONNX Runtime CPU, same frames, same thread count, in one run."""
    import torch

    from ..metadata import ModelMetadata
    from ..models.export import FusedGraph, ort_session, random_init_model, write_graph

    torch.set_num_threads(threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            model = random_init_model(name)
            for size in sizes:
                fused = FusedGraph(model, size)
                frame = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), np.uint8)
                tensor = torch.from_numpy(frame)
                with torch.no_grad():
                    eager = _p50_ms(lambda fused=fused, tensor=tensor: fused(tensor), runs)
                path = Path(tmp) / f"{name}_{size[0]}x{size[1]}.onnx"
                meta = ModelMetadata(name, (), (), size, size)
                write_graph(fused, path, meta, opset=17)
                session = ort_session(path, threads)
                ort = _p50_ms(lambda s=session, f=frame: s.run(None, {"frame": f}), runs)
                rows.append(
                    {
                        "model": name,
                        "size": f"{size[0]}x{size[1]}",
                        "torch_ms_p50": eager,
                        "ort_ms_p50": ort,
                        "torch_over_ort": round(eager / ort, 2),
                    }
                )
                print(
                    f"  {name:12s} {size[0]}x{size[1]}: torch {eager:8.1f} ms, "
                    f"onnxruntime {ort:8.1f} ms, ratio {eager / ort:.2f}"
                )
    return {
        "benchmark": "models",
        "threads": threads,
        "runs": runs,
        "rows": rows,
        "machine": machine(),
    }


SEGMENT_BACKENDS = {  # bench name -> (Segmenter backend, device, options)
    "onnxruntime": ("onnxruntime", "cpu", {}),
    "onnxruntime-cuda": ("onnxruntime", 0, {}),
    "tensorrt": ("tensorrt", 0, {"precision": "fp16"}),
    "tensorrt-fp32": ("tensorrt", 0, {"precision": "fp32"}),
    "torch": ("torch", "cpu", {}),
    "torch-cuda": ("torch", 0, {}),
}


def bench_segment(
    names: list[str], sizes: list[tuple[int, int]], backends: list[str], frames: int, threads: int
) -> dict:
    """``Segmenter.segment`` vs the bare backend execute, per model, size and backend, in one
    run: p50/p99 latency, throughput and the host-overhead ratio segment/execute (goal <= 1.10).
    Models are random-init (speed does not depend on the weights); the network runs at the
    frame size."""
    from ..inference import Segmenter
    from ..models.checkpoint import save_checkpoint
    from ..models.export import export_onnx, random_init_model

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            model = random_init_model(name)
            ckpt = Path(tmp) / f"{name}.pt"
            save_checkpoint(ckpt, model)
            for size in sizes:
                onnx_path = Path(tmp) / f"{name}_{size[0]}x{size[1]}.onnx"
                export_onnx(model, onnx_path, camera_size=size, net_size=size, frames=1)
                frame = random_view(1234, 0, Intrinsics.d435i(*size)).low
                for bench_name in backends:
                    backend, device, options = SEGMENT_BACKENDS[bench_name]
                    path = ckpt if backend == "torch" else onnx_path
                    extra = {"camera_size": size, "net_size": size} if backend == "torch" else {}
                    seg = Segmenter(path, backend, device, threads=threads, **options, **extra)
                    for _ in range(3):
                        seg.segment(frame)  # warm-up (engine build, allocations)
                    # interleaved, so both see the same machine state (clock, caches, load)
                    exec_times, seg_times = [], []
                    for _ in range(frames):
                        t0 = time.perf_counter()
                        seg.backend.execute(frame)
                        t1 = time.perf_counter()
                        seg.segment(frame)
                        t2 = time.perf_counter()
                        exec_times.append(t1 - t0)
                        seg_times.append(t2 - t1)
                    wall = sum(seg_times)
                    seg.close()
                    e50, e99 = p50_p99(seconds_to_ms(exec_times))
                    s50, s99 = p50_p99(seconds_to_ms(seg_times))
                    rows.append(
                        {
                            "model": name,
                            "size": f"{size[0]}x{size[1]}",
                            "backend": bench_name,
                            "device": seg.backend.device,
                            "execute_ms_p50": e50,
                            "execute_ms_p99": e99,
                            "segment_ms_p50": s50,
                            "segment_ms_p99": s99,
                            "fps": round(frames / wall, 2),
                            "segment_over_execute": round(s50 / e50, 3),
                        }
                    )
                    print(
                        f"  {name:11s} {size[0]}x{size[1]} {bench_name:16s} segment {s50:8.2f} "
                        f"ms p50 ({s99:.2f} p99), execute {e50:8.2f} ms, ratio {s50 / e50:.3f}"
                    )
    return {
        "benchmark": "segment",
        "frames": frames,
        "threads": threads,
        "goal_ratio": 1.10,
        "rows": rows,
        "machine": machine(),
    }


NETWORK_SCOPE = "/model/"
"""Node-name prefix of the network inside an exported graph (torch.onnx names nodes by module
path; the export wraps the network as ``model``): everything else is the graph's own frame
pre-processing (cast, layout, resize, /255) and output post-processing (upsampling, argmax,
casts)."""


def profile_trace(trace: Path, runs: int) -> dict[str, object]:
    """ONNX Runtime's profiler JSON (a Chrome trace) -> per-run milliseconds of the last ``runs``
    ``model_run`` events (means): total, network kernels, pre/post-processing kernels, the
    kernels ONNX Runtime inserted itself (names without the exporter's leading "/": layout
    reorders around its blocked convolutions), and the costliest pre/post-processing nodes."""
    events = json.loads(trace.read_text(encoding="utf-8"))
    model_runs = [e for e in events if e.get("name") == "model_run"][-runs:]
    if not model_runs:
        raise ValueError(f"{trace}: no model_run events")
    spans = [(e["ts"], e["ts"] + e["dur"]) for e in model_runs]
    kernels = [
        e
        for e in events
        if e.get("cat") == "Node"
        and e["name"].endswith("_kernel_time")
        and any(a <= e["ts"] <= b for a, b in spans)
    ]
    per_node: dict[str, float] = {}
    for e in kernels:
        node = e["name"][: -len("_kernel_time")]
        per_node[node] = per_node.get(node, 0.0) + e["dur"] / 1000.0 / len(model_runs)
    network = sum(v for k, v in per_node.items() if k.startswith(NETWORK_SCOPE))
    wrapper = {
        k: v for k, v in per_node.items() if k.startswith("/") and not k.startswith(NETWORK_SCOPE)
    }
    inserted = sum(v for k, v in per_node.items() if not k.startswith("/"))
    top = sorted(wrapper.items(), key=lambda kv: -kv[1])[:6]
    return {
        "run_ms": round(float(np.mean([e["dur"] for e in model_runs])) / 1000.0, 3),
        "network_kernels_ms": round(network, 3),
        "pre_post_kernels_ms": round(sum(wrapper.values()), 3),
        "pre_post_nodes": len(wrapper),
        "runtime_inserted_kernels_ms": round(inserted, 3),
        "costliest_pre_post": ", ".join(f"{k} {v:.2f}" for k, v in top),
    }


def bench_graph(
    name: str,
    camera: tuple[int, int],
    net: tuple[int, int],
    runs: int,
    threads: int,
    spin_wait: bool = True,
) -> dict:
    """Where an exported graph's time goes, from ONNX Runtime's own profiler: for the labels +
    confidence session and the whole graph, per run, the network's kernels against the graph's
    pre/post-processing around it (:data:`NETWORK_SCOPE`), and its costliest nodes."""
    from ..inference.backend import CORE_OUTPUTS
    from ..inference.onnxruntime_backend import OnnxRuntimeBackend
    from ..models.export import export_onnx, random_init_model

    frame = random_view(1234, 0, Intrinsics.d435i(*camera)).low
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / f"{name}.onnx"
        export_onnx(random_init_model(name), model, camera_size=camera, net_size=net, frames=1)
        backend = OnnxRuntimeBackend(
            model, threads=threads, spin=spin_wait, profile=Path(tmp) / "trace"
        )
        passes = {"labels + confidence": CORE_OUTPUTS, "all outputs": None}
        for outputs in passes.values():
            for _ in range(3 + runs):  # 3 warm-up runs, left out of the figures
                backend.execute(frame, outputs)
        traces = backend.end_profiling()  # the whole graph's, then the core session's
        backend.close()
        for label, trace in zip(passes, reversed(traces), strict=True):
            rows.append({"pass": label, **profile_trace(trace, runs)})
            print(f"  {label:20s} {rows[-1]}")
    return {
        "benchmark": "graph",
        "model": name,
        "camera": f"{camera[0]}x{camera[1]}",
        "net": f"{net[0]}x{net[1]}",
        "backend": "onnxruntime cpu (its profiler)",
        "threads": threads,
        "spin_wait": spin_wait,
        "runs": runs,
        "rows": rows,
        "machine": machine(),
    }


def bench_refine(model: Path, size: tuple[int, int], views: int, threads: int) -> dict:
    """Depth-aware refinement on procedural views with their exact labels and depth: its cost
    per frame (``segment()`` with and without it, interleaved) and what it does to mIoU."""
    from ..evaluation.metrics import ConfusionMatrix
    from ..inference import Segmenter
    from ..inference.refine import RefineConfig

    intrinsics = Intrinsics.d435i(*size)
    config = RefineConfig()
    with Segmenter(model, "onnxruntime", "cpu", threads=threads) as seg:
        classes = seg.classes
        plain_cm = ConfusionMatrix(classes.num_classes, ignore_index=classes.void_index)
        refined_cm = ConfusionMatrix(classes.num_classes, ignore_index=classes.void_index)
        plain_ms, refined_ms = [], []
        seg.warm_up()
        for i in range(views):
            view = random_view(4321, i, intrinsics)
            seg.refine = None
            plain = seg.segment(view.low, view.depth, outputs=("labels", "confidence"))
            plain_ms.append(plain.timings["total"])
            plain_cm.update(plain.labels, view.label)
            seg.refine = config
            refined = seg.segment(view.low, view.depth, outputs=("labels", "confidence"))
            refined_ms.append(refined.timings["total"])
            refined_cm.update(refined.labels, view.label)
    p50 = p50_p99(plain_ms)[0]
    r50, r99 = p50_p99(refined_ms)
    result = {
        "benchmark": "refine",
        "model": model.name,
        "size": f"{size[0]}x{size[1]}",
        "views": views,
        "refine": str(config),
        "segment_ms_p50": p50,
        "segment_refined_ms_p50": r50,
        "segment_refined_ms_p99": r99,
        "refine_ms_p50": round(r50 - p50, 3),
        "mIoU": round(plain_cm.compute().mIoU, 4),
        "mIoU_refined": round(refined_cm.compute().mIoU, 4),
        "OA": round(plain_cm.compute().OA, 4),
        "OA_refined": round(refined_cm.compute().OA, 4),
        "machine": machine(),
    }
    print(
        f"  {model.name} {result['size']}: segment() {p50} ms p50, with refinement {r50} ms "
        f"(+{result['refine_ms_p50']}); mIoU {result['mIoU']} -> {result['mIoU_refined']}, "
        f"OA {result['OA']} -> {result['OA_refined']} on {views} procedural views"
    )
    return result


NODE_PASSES = {
    "labels + confidence": ("labels", "confidence"),
    "all outputs": tuple(o.name for o in OUTPUTS),
}
"""The subscriptions ``bench node`` measures: what Nav2's costmap layer takes, and everything
(RViz with every display on)."""


def bench_node(
    name: str,
    camera: tuple[int, int],
    net: tuple[int, int],
    frames: int,
    threads: int,
    spin_wait: bool = True,
) -> dict:
    """perception_node in its own process, fed colour + aligned depth + camera_info from this
    process over real DDS, closed loop (the next frame once every subscribed output came): per
    pass (:data:`NODE_PASSES`), the latency from publishing colour to the first and to the last
    output, and the node's own per-stage p50s from its diagnostics (``queue``: arrival to the
    worker; ``publish_<output>``: build + serialise + publish of each output); against the bare
    ``Segmenter.segment`` of the same frame in this process computing what the pass needs, and
    the floor of the same round trip through a node that does no work (``echo_main``)."""
    import signal

    import rclpy

    from ..inference import Segmenter
    from ..inference.backend import CORE_OUTPUTS
    from ..models.export import export_onnx, random_init_model
    from ..ros.loopback import ECHO_NAME, new_context, start_echo, start_node

    domain = 101 + os.getpid() % 100
    intrinsics = Intrinsics.d435i(*camera)
    view = random_view(1234, 0, intrinsics)
    rows = []
    context = new_context(domain)
    try:
        echo = start_echo(domain)
        try:
            run, _ = _closed_loop(context, ECHO_NAME, ("labels",), view, intrinsics, frames)
        finally:
            echo.send_signal(signal.SIGINT)
            echo.wait(timeout=30)
        rows.append(_node_row("round trip, no work (echo)", run, {}, 0.0))
        with tempfile.TemporaryDirectory() as tmp:
            model = Path(tmp) / f"{name}.onnx"
            export_onnx(random_init_model(name), model, camera_size=camera, net_size=net, frames=1)
            with Segmenter(model, "onnxruntime", "cpu", threads=threads, spin=spin_wait) as seg:
                seg.warm_up()
                bare = {
                    label: [
                        seg.segment(
                            view.low, outputs=CORE_OUTPUTS if len(outs) == 2 else None
                        ).timings["total"]
                        for _ in range(frames)
                    ]
                    for label, outs in NODE_PASSES.items()
                }
            proc = start_node(model, domain, threads=threads, use_depth=True, spin_wait=spin_wait)
            try:
                for label, outputs in NODE_PASSES.items():
                    run, stages = _closed_loop(
                        context, "lowlight_perception", outputs, view, intrinsics, frames
                    )
                    rows.append(_node_row(label, run, stages, p50_p99(bare[label])[0]))
            finally:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=30)
    finally:
        rclpy.shutdown(context=context)
    return {
        "benchmark": "node",
        "model": name,
        "camera": f"{camera[0]}x{camera[1]}",
        "net": f"{net[0]}x{net[1]}",
        "backend": "onnxruntime cpu",
        "threads": threads,
        "spin_wait": spin_wait,
        "frames": frames,
        "rows": rows,
        "machine": machine(),
    }


def _closed_loop(
    context, node_name: str, outputs: tuple[str, ...], view, intrinsics: Intrinsics, frames: int
) -> tuple[dict, dict[str, str]]:
    """A fresh raw client of ``node_name``'s ``outputs``: warm-up until every output answers,
    then ``frames`` closed-loop frames; returns the run and the node's diagnostics values
    (empty for a node without them)."""
    from ..ros.loopback import LoopbackClient, Spinner, measure_outputs

    client = LoopbackClient(context, outputs=outputs, raw=True, node_name=node_name)
    spinner = Spinner(context, client)
    base = 100_000 * (1 + len(outputs))
    try:
        client.wait_connected(timeout=60)
        for attempt in range(100):  # until the node sees every subscription
            warm = measure_outputs(
                client,
                view.low,
                view.depth,
                intrinsics,
                outputs=outputs,
                count=2,
                timeout=1.0,
                first_index=base + 2 * attempt,
            )
            if warm["answered"] == 2:
                break
        run = measure_outputs(
            client,
            view.low,
            view.depth,
            intrinsics,
            outputs=outputs,
            count=frames,
            first_index=base + 500,
        )
        time.sleep(1.5)  # one diagnostics period: the p50s cover this pass
        status = client.last_status()
    finally:
        spinner.stop()
        client.destroy_node()
    return run, ({} if status is None else status[1])


def _node_row(label: str, run: dict, stages: dict[str, str], bare_p50: float) -> dict:
    """One pass: latencies, host overhead (latency over the bare segment()), node stages."""
    first_p50, first_p99 = p50_p99(run["first_ms"])
    last_p50, last_p99 = p50_p99(run["last_ms"])
    row = {
        "pass": label,
        "answered": f"{run['answered']}/{run['sent']}",
        "segment_ms_p50": round(bare_p50, 2),
        "first_output_ms_p50": first_p50,
        "first_output_ms_p99": first_p99,
        "last_output_ms_p50": last_p50,
        "last_output_ms_p99": last_p99,
        "overhead_first_ms_p50": round(first_p50 - bare_p50, 3),
        "overhead_last_ms_p50": round(last_p50 - bare_p50, 3),
        "fps": round(run["answered"] / run["wall_s"], 2) if run["wall_s"] else 0.0,
    }
    node_stages = {k[: -len("_ms_p50")]: v for k, v in stages.items() if k.endswith("_ms_p50")}
    row["node_stages_ms_p50"] = ", ".join(f"{k} {v}" for k, v in node_stages.items())
    return row


def write_result(result: dict, out_dir: Path, name: str) -> Path:
    """JSON (raw) + Markdown (table) side by side; returns the JSON path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    tables = {
        k: v
        for k, v in result.items()
        if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)
    }
    rows = [(k, v) for k, v in result.items() if k != "machine" and k not in tables]
    rows += [(f"machine.{k}", v) for k, v in result["machine"].items()]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    text = f"# {result['benchmark']} benchmark\n\n| metric | value |\n|---|---|\n{table}\n"
    for title, cases in tables.items():  # per-case results (rows, ...) get a table each
        keys = list(dict.fromkeys(k for r in cases for k in r))
        text += f"\n{title}:\n\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n"
        text += "".join("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |\n" for r in cases)
    (out_dir / f"{name}.md").write_text(text, encoding="utf-8")
    return path


OUT = Path("out/bench")
"""Where results go unless ``--out`` says otherwise: untracked (the committed ones are written
with ``--out bench/results``)."""
OUT_HELP = "result directory (default out/bench; the committed results: bench/results)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="speed benchmarks (results under out/bench/ unless --out)")
    benches = p.add_subparsers(dest="bench", metavar="BENCH", required=True, parser_class=type(p))
    s = benches.add_parser("synth", help="procedural views per second (goal >= 20 at 320x240)")
    s.add_argument("--size", type=size_arg, default=(320, 240), help="WxH (default 320x240)")
    s.add_argument("--views", type=int, default=40, help="views to time (default 40)")
    s.add_argument("--workers", type=int, default=None, help="writer processes (default: cores)")
    s.add_argument("--out", type=Path, default=OUT, help=OUT_HELP)
    s.set_defaults(run=run)
    r = benches.add_parser(
        "relight", help="relighting error against rendered procedural dark frames"
    )
    r.add_argument("--size", type=size_arg, default=(320, 240), help="WxH (default 320x240)")
    r.add_argument("--views", type=int, default=20, help="views to compare (default 20)")
    r.add_argument("--out", type=Path, default=OUT, help=OUT_HELP)
    r.set_defaults(run=run_relight)
    m = benches.add_parser(
        "models", help="forward latency per model: PyTorch eager vs ONNX Runtime (CPU)"
    )
    m.add_argument(
        "--models",
        nargs="+",
        default=[
            "lisu-tiny",
            "lisu-small",
            "lisu",
            "lisu-seg",
            "lisu-semi",
            "dlv3p",
            "dlv3p-joint",
        ],
    )
    m.add_argument("--sizes", nargs="+", type=size_arg, default=[(320, 240), (640, 480)])
    m.add_argument("--runs", type=int, default=5, help="timed runs per case (default 5)")
    m.add_argument("--threads", type=int, default=2, help="threads for both runtimes")
    m.add_argument("--out", type=Path, default=OUT, help=OUT_HELP)
    m.set_defaults(run=run_models)
    g = benches.add_parser(
        "segment", help="Segmenter.segment vs bare backend execute (host overhead, FPS)"
    )
    g.add_argument("--models", nargs="+", default=["lisu-small"])
    g.add_argument("--sizes", nargs="+", type=size_arg, default=[(320, 240), (640, 480)])
    g.add_argument(
        "--backends", nargs="+", choices=sorted(SEGMENT_BACKENDS), default=["onnxruntime"]
    )
    g.add_argument("--frames", type=int, default=50, help="timed frames per case (default 50)")
    g.add_argument("--threads", type=int, default=2, help="ONNX Runtime CPU threads")
    g.add_argument("--name", default="segment", help="result file stem (default segment)")
    g.add_argument("--out", type=Path, default=OUT, help=OUT_HELP)
    g.set_defaults(run=run_segment)
    n = benches.add_parser(
        "node",
        help="perception_node's own cost per frame over real DDS: latency to the first and last "
        "output, per-stage p50s, against bare segment()",
    )
    n.add_argument(
        "--arch",
        default="lisu-tiny",
        help="registry model, random init (default lisu-tiny: "
        "near-free at --net-size 32x32, so the node's own work shows)",
    )
    add_size_args(n, (640, 480), (32, 32))
    n.add_argument(
        "--frames",
        type=int,
        default=60,
        help="frames per pass (default 60: the node's stage p50s cover the last 60 frames)",
    )
    n.add_argument("--name", default="node", help="result file stem (default node)")
    n.add_argument(
        "--no-spin-wait",
        action="store_true",
        help="run the node (and the bare segment()) with spin_wait false",
    )
    n.add_argument("--threads", type=int, default=2, help="ONNX Runtime CPU threads")
    n.add_argument("--out", type=Path, default=OUT, help=OUT_HELP)
    n.set_defaults(run=run_node)
    p_graph = benches.add_parser(
        "graph",
        help="where an exported graph's time goes (ONNX Runtime's profiler): network kernels "
        "against the graph's own pre/post-processing, labels + confidence and all outputs",
    )
    p_graph.add_argument(
        "--arch", default="lisu-tiny", help="registry model, random init (default lisu-tiny)"
    )
    add_size_args(
        p_graph,
        (640, 480),
        (32, 32),
        net_help="network WxH (small, so the pre/post-processing shows)",
    )
    p_graph.add_argument("--runs", type=int, default=30, help="profiled runs per pass")
    p_graph.add_argument("--no-spin-wait", action="store_true", help="spin_wait false")
    p_graph.add_argument("--threads", type=int, default=2, help="ONNX Runtime CPU threads")
    p_graph.add_argument("--name", default="graph", help="result file stem (default graph)")
    p_graph.add_argument("--out", type=Path, default=OUT, help=OUT_HELP)
    p_graph.set_defaults(run=run_graph)
    f = benches.add_parser(
        "refine",
        help="depth-aware refinement: its cost per frame and its effect on mIoU, procedural "
        "views with exact labels and depth",
    )
    f.add_argument(
        "--model", type=Path, default=None, help="exported .onnx (default: the shipped demo model)"
    )
    f.add_argument("--size", type=size_arg, default=(640, 480), help="WxH (default 640x480)")
    f.add_argument("--views", type=int, default=20, help="views (default 20)")
    f.add_argument("--threads", type=int, default=2, help="ONNX Runtime CPU threads")
    f.add_argument("--name", default=None, help="result file stem (default refine_WxH)")
    f.add_argument("--out", type=Path, default=OUT, help=OUT_HELP)
    f.set_defaults(run=run_refine)
    t = benches.add_parser(
        "seeds",
        help="finished training runs compared over seeds: val mIoU and restoration mean ± std "
        "per model, paired gaps to a reference model (bench/training/seeds.sh makes the runs)",
    )
    t.add_argument(
        "--runs",
        nargs="+",
        type=Path,
        required=True,
        metavar="RUN_DIR",
        help="training run directories (each with config.yaml and metrics.json)",
    )
    t.add_argument(
        "--reference",
        default="lisu-small",
        help="model the others are compared to, seed by seed (default lisu-small)",
    )
    t.add_argument("--name", default="training_seeds", help="result file stem")
    t.add_argument("--out", type=Path, default=OUT, help=OUT_HELP)
    t.set_defaults(run=run_seeds)
    from . import bench_adapt, bench_gpu

    bench_gpu.add_parser(benches)  # `bench gpu`: the prepared GPU validation run
    bench_adapt.add_parser(benches)  # `bench adapt`: lowlight adapt on a generated shift


def run_segment(args: argparse.Namespace) -> int:
    result = bench_segment(args.models, args.sizes, args.backends, args.frames, args.threads)
    print(f"-> {write_result(result, args.out, args.name)}")
    return 0


def run_node(args: argparse.Namespace) -> int:
    result = bench_node(
        args.arch,
        args.camera_size,
        args.net_size,
        args.frames,
        args.threads,
        spin_wait=not args.no_spin_wait,
    )
    for row in result["rows"]:
        print(
            f"  {row['pass']:20s} answered {row['answered']}; segment() {row['segment_ms_p50']} "
            f"ms; first output {row['first_output_ms_p50']} ms (+{row['overhead_first_ms_p50']}),"
            f" last {row['last_output_ms_p50']} ms (+{row['overhead_last_ms_p50']}) p50\n"
            f"    node stages p50 (ms): {row['node_stages_ms_p50']}"
        )
    print(f"-> {write_result(result, args.out, args.name)}")
    return 0


def run_graph(args: argparse.Namespace) -> int:
    result = bench_graph(
        args.arch,
        args.camera_size,
        args.net_size,
        args.runs,
        args.threads,
        spin_wait=not args.no_spin_wait,
    )
    print(f"-> {write_result(result, args.out, args.name)}")
    return 0


def run_refine(args: argparse.Namespace) -> int:
    from ..config import demo_model

    result = bench_refine(args.model or demo_model(), args.size, args.views, args.threads)
    name = args.name or f"refine_{result['size']}"
    print(f"-> {write_result(result, args.out, name)}")
    return 0


def run_seeds(args: argparse.Namespace) -> int:
    result = {
        "benchmark": "training over seeds",
        **compare_runs(args.runs, args.reference),
        "machine": machine(),
    }
    for entry in result["models"]:
        print(
            f"  {entry['model']:12s} seeds {entry['seeds']}: last val mIoU {entry['last_mIoU']}"
            f" (best {entry['best_mIoU']})"
        )
    for gap in result["gaps"]:
        print(f"  {gap['difference']}: {gap['mean_std']} over seeds {gap['seeds']}")
    print(f"-> {write_result(result, args.out, args.name)}")
    return 0


def run_models(args: argparse.Namespace) -> int:
    result = bench_models(args.models, args.sizes, args.runs, args.threads)
    path = write_result(result, args.out, "models")
    print(f"-> {path}")
    return 0


def run_relight(args: argparse.Namespace) -> int:
    result = {"benchmark": "relight", **check_on_procedural(args.views, args.size)}
    result["machine"] = machine()
    path = write_result(result, args.out, f"relight_{result['size']}")
    print(
        f"relight {result['size']}: MAE {result['mae_dn_all']} DN on dark frames of mean "
        f"{result['truth_mean_dn']} DN (relative {result['relative_mae']}); with the true albedo "
        f"{result['mae_dn_true_albedo']} DN -> {path}"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    result = bench_synth(args.size, args.views, args.workers)
    path = write_result(result, args.out, f"synth_{result['size']}")
    print(
        f"synth {result['size']}: render {result['render_ms_p50']} ms p50 "
        f"({result['render_views_per_s_1_process']} views/s, 1 process); "
        f"synth writer {result['synth_writer_views_per_s']} views/s with "
        f"{result['synth_writer_workers']} processes (goal >= 20) -> {path}"
    )
    return 0
