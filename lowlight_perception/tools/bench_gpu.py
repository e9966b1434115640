"""``lowlight bench gpu``: the prepared GPU validation run (issue 11), one command, one report.

Why one command: GPU time is scarce and lent in short slots, so everything that must be proven
on a CUDA machine runs in one go and writes one JSON + Markdown naming the machine: (a) the
suite's ``gpu`` tests, (b) LISU inference latency in the fused graph (eager fp32 / fp16 / bf16
autocast, each also under a CUDA graph, plus torch.compile within a time budget) with label
agreement against ONNX Runtime on the CPU, (c) AMP training throughput and one epoch of the real
two-stage training, (d) TensorRT FP16/FP32 engines when ``tensorrt`` imports. Each stage (and
each inference configuration) is isolated: an exception is recorded and the rest still runs.
``--dry-run`` runs the same code on the CPU at tiny sizes so the run cannot rot before a GPU
is lent. Goals are judged only from figures measured in this run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..errors import LowlightError, one_line
from ..latency import p50_p99, seconds_to_ms
from .bench import write_result
from .common import machine, size_arg

REPO = Path(__file__).resolve().parents[2]
STAGES = ("tests", "inference", "training", "tensorrt")
PRECISIONS = ("fp32", "fp16", "bf16")
FRAME_SEED = 20240  # procedural frames for timing and agreement (the export parity seed)
GOAL_LATENCY_MS = 2.0
GOAL_AGREEMENT = 0.99
GOAL_TRAIN_IMAGES_S = 300.0
GPU_MARK = re.compile(r"pytest\.mark\.gpu\b|pytestmark\s*=.*\bgpu\b")

ROW_KEYS = (
    "model",
    "camera",
    "net",
    "runtime",
    "precision",
    "cuda_graph",
    "device",
    "status",
    "p50_ms",
    "p99_ms",
    "host_p50_ms",
    "runs",
    "agreement_min",
    "agreement_mean",
    "note",
)
"""Every inference row has exactly these keys (one table, one schema)."""


@dataclass
class Settings:
    """Sizes, counts and switches of one run (``--dry-run`` fills in tiny ones)."""

    device: str
    dry_run: bool
    models: list[str]
    sizes: list[tuple[int, int]]
    net_size: tuple[int, int] | None  # None: the network runs at the camera size
    runs: int
    warmup: int
    agreement_frames: int
    ort_runs: int
    ort_threads: int
    seed: int
    compile_cases: str
    compile_budget_s: float
    compile_mode: str
    compile_backend: str
    train_model: str
    train_size: tuple[int, int]
    train_batch: int
    train_steps: int
    train_warmup: int
    train_views: int
    train_workers: int
    tests: list[str]
    tests_timeout_s: float
    tensorrt_cases: str
    stages: list[str]
    cudnn_benchmark: bool

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["sizes"] = [_wh(s) for s in self.sizes]
        out["net_size"] = _wh(self.net_size) if self.net_size else "camera size"
        out["train_size"] = _wh(self.train_size)
        return out


@dataclass
class Workspace:
    """Per-run temporary files and what stages share (ONNX files, frames, ORT labels), made
    on first use so a stage still runs when an earlier one failed."""

    root: Path
    settings: Settings
    cases: dict[tuple[str, tuple[int, int]], dict[str, Any]] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)  # output tails of failed child processes

    def case(self, name: str, size: tuple[int, int]) -> dict[str, Any]:
        """Model, fused graph, ONNX path, frames and ONNX Runtime labels of one (model, size)."""
        key = (name, size)
        if key not in self.cases:
            self.cases[key] = _make_case(self, name, size)
        return self.cases[key]


def _wh(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _typed(err: BaseException) -> str:
    """``Type: message`` on one line (the message through ``errors.one_line``)."""
    return f"{type(err).__name__}: {one_line(err)}"


def _error(err: BaseException) -> dict[str, Any]:
    """An exception as JSON: one line plus the tail of the traceback."""
    tail = traceback.format_exception(type(err), err, err.__traceback__)
    return {"error": _typed(err), "traceback_tail": "".join(tail)[-2000:]}


def _row(**values: Any) -> dict[str, Any]:
    unknown = set(values) - set(ROW_KEYS)
    if unknown:
        raise KeyError(f"unknown row keys {sorted(unknown)}")
    return {key: values.get(key) for key in ROW_KEYS}


def _failed(
    rows: list[dict[str, Any]],
    errors: list[dict[str, Any]],
    case: str,
    err: BaseException,
    **keys: Any,
) -> None:
    """A configuration that failed: its traceback in ``errors``, an error row in ``rows``."""
    errors.append({"case": case, **_error(err)})
    rows.append(_row(**keys, status="error", note=_typed(err)))


# --------------------------------------------------------------------------- machine


def _nvidia_smi() -> dict[str, str]:
    """Driver version, name and memory from nvidia-smi (empty where it is missing)."""
    query = "name,driver_version,memory.total"
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    first = out.strip().splitlines()[0] if out.strip() else ""
    parts = [p.strip() for p in first.split(",")]
    return dict(zip(("name", "driver_version", "memory_total"), parts, strict=False))


def gpu_machine(device: Any) -> dict[str, Any]:
    """``machine()`` plus the accelerator and the versions a GPU figure depends on."""
    import onnxruntime
    import torch

    info = machine()
    info.update(
        device=str(device),
        torch=torch.__version__,
        torch_cuda_build=torch.version.cuda or "none (CPU build)",
        cudnn=str(torch.backends.cudnn.version() or "none"),
        onnxruntime=onnxruntime.__version__,
        onnx=_version_of("onnx"),
        tensorrt=_version_of("tensorrt"),
    )
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        smi = _nvidia_smi()
        driver_cuda = "unknown"
        with contextlib.suppress(Exception):
            v = int(torch._C._cuda_getDriverVersion())
            driver_cuda = f"{v // 1000}.{v % 1000 // 10}"
        info.update(
            device_name=props.name,
            compute_capability=f"{props.major}.{props.minor}",
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            driver_version=smi.get("driver_version", "unknown (no nvidia-smi)"),
            cuda_driver_api=driver_cuda,
            cuda_version=torch.version.cuda,
        )
    else:
        info.update(
            device_name=f"CPU: {info['cpu']}",
            compute_capability="none (CPU run)",
            gpu_memory_gib="none (CPU run)",
            driver_version="none (CPU run)",
            cuda_driver_api="none (CPU run)",
            cuda_version=torch.version.cuda or "none (CPU build of torch)",
        )
    return info


def _version_of(module: str) -> str:
    try:
        if importlib.util.find_spec(module) is None:
            return "not installed"
        return str(__import__(module).__version__)
    except Exception as err:  # a broken install still lets the run go on
        return f"import fails: {_typed(err)}"


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown (no git checkout)"
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()
    return out.stdout.strip() + (" (modified)" if dirty else "")


# --------------------------------------------------------------------------- subprocesses


def _run_group(cmd: list[str], timeout: float, cwd: Path) -> tuple[int | None, str]:
    """Run ``cmd`` in its own process group; on timeout kill that group (inductor and pytest
    start children) and return (None, output so far)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out or ""


# --------------------------------------------------------------------------- (a) tests


def gpu_test_files() -> list[str]:
    """Test files that use the ``gpu`` marker, relative to the repository root. Passing
    files explicitly keeps modules that need rclpy/rosbags out of the collection."""
    return sorted(
        str(p.relative_to(REPO))
        for p in (REPO / "test").glob("test_*.py")
        if GPU_MARK.search(p.read_text(encoding="utf-8"))
    )


def stage_tests(s: Settings) -> dict[str, Any]:
    """``pytest -m gpu`` on the gpu test files, counts and failure lines parsed."""
    if not (REPO / "test").is_dir():
        return {"status": "skipped", "reason": f"no test/ directory in {REPO}"}
    files = s.tests or gpu_test_files()
    if not files:
        return {"status": "skipped", "reason": "no test file uses the gpu marker"}
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rfEs", "-p", "no:cacheprovider"]
    cmd += ["--continue-on-collection-errors", *files]
    rc, out = _run_group(cmd, s.tests_timeout_s, REPO)
    lines = out.splitlines()
    counts: dict[str, int] = {}
    for line in reversed(lines):
        found = re.findall(r"(\d+) (passed|failed|skipped|deselected|errors?|xfailed)", line)
        if found and re.search(r"\bin [\d.]+s\b", line):
            for n, kind in found:
                counts["errors" if kind.startswith("error") else kind] = int(n)
            break
    result: dict[str, Any] = {
        "command": " ".join(["python", *cmd[1:]]),
        "files": files,
        "returncode": rc,
        **{k: counts.get(k, 0) for k in ("passed", "failed", "skipped", "errors", "deselected")},
        "failures": [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))][:50],
        "skip_reasons": sorted({ln for ln in lines if ln.startswith("SKIPPED")})[:20],
    }
    if rc is None:
        result.update(status="error", error=f"pytest did not finish in {s.tests_timeout_s:.0f} s")
    elif rc in (0, 5):  # 5: nothing selected
        result["status"] = "ok"
    elif rc == 1:
        result.update(
            status="failed",
            error=f"{counts.get('failed', 0)} failed, {counts.get('errors', 0)} errors",
        )
    else:
        result.update(status="error", error=f"pytest exited {rc}")
    if result["status"] != "ok":
        result["output_tail"] = out[-3000:]
    return result


# --------------------------------------------------------------------------- (b) inference


def _make_case(ws: Workspace, name: str, size: tuple[int, int]) -> dict[str, Any]:
    """Random-init model (seeded), its fused graph, its ONNX (traced, no slow parity sweep),
    procedural frames and ONNX Runtime CPU labels for them."""
    from ..camera import Intrinsics
    from ..data.synthetic import random_view
    from ..models.export import (
        FusedGraph,
        build_metadata,
        check_net_size,
        ort_session,
        random_init_model,
        write_graph,
    )

    s = ws.settings
    net = s.net_size or size
    model = random_init_model(name, seed=s.seed)
    check_net_size(model, net)
    fused = FusedGraph(model, net).eval()
    camera = Intrinsics.d435i(*size)
    frames = [random_view(FRAME_SEED, i, camera).low for i in range(s.agreement_frames)]
    onnx_path = ws.root / f"{name}_{_wh(size)}_net{_wh(net)}.onnx"
    meta = build_metadata(model, size, net, "labels", f"random init, seed {s.seed}")
    write_graph(fused, onnx_path, meta, opset=17)
    session = ort_session(onnx_path, s.ort_threads)
    labels = [session.run(None, {"frame": f})[0] for f in frames]
    times = []
    for i in range(s.ort_runs + 1):
        t0 = time.perf_counter()
        session.run(None, {"frame": frames[0]})
        if i:  # the first run is warm-up
            times.append(time.perf_counter() - t0)
    return {
        "fused": fused,
        "net": net,
        "onnx": onnx_path,
        "frames": frames,
        "ort_labels": labels,
        "ort_ms": seconds_to_ms(times),
    }


def _label(precision: str) -> str:
    """How a row names its precision: fp32, or "<dtype> autocast"."""
    return precision if precision == "fp32" else f"{precision} autocast"


def _dtype(precision: str) -> Any:
    import torch

    return {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


class Variant:
    """The fused graph on one device at one precision, eager or replayed as a CUDA graph,
    on a static uint8 input tensor (what a graph needs, and what eager reuses)."""

    def __init__(self, fused: Any, device: Any, precision: str, graph: bool, frame: np.ndarray):
        import torch

        self.fused, self.device, self.graph = fused, device, graph
        self.dtype = _dtype(precision)
        self.static_in = torch.from_numpy(frame).to(device)
        self.static_out: tuple[Any, ...] | None = None
        self._graph: Any = None
        if graph:
            stream = torch.cuda.Stream(device)
            stream.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(stream):
                for _ in range(3):  # warm-up on a side stream (cuDNN picks, allocator)
                    self._eager()
            torch.cuda.current_stream(device).wait_stream(stream)
            torch.cuda.synchronize(device)
            self._graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self._graph):
                self.static_out = self._eager()

    @contextlib.contextmanager
    def _context(self) -> Iterator[None]:
        import torch

        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.no_grad())
            if self.dtype is not None:
                stack.enter_context(
                    torch.autocast(self.device.type, dtype=self.dtype, cache_enabled=False)
                )
            yield

    def _eager(self) -> tuple[Any, ...]:
        with self._context():
            return tuple(self.fused(self.static_in))

    def run(self) -> tuple[Any, ...]:
        """One forward on the current static input; outputs stay on the device."""
        if self._graph is not None:
            self._graph.replay()
            return self.static_out  # type: ignore[return-value]
        return self._eager()

    def close(self) -> None:
        """Drop the graph and its memory pool (the next variant gets the memory)."""
        import torch

        self._graph = self.static_out = None
        self.static_in = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def load(self, frame: np.ndarray) -> None:
        import torch

        self.static_in.copy_(torch.from_numpy(frame))

    def labels(self, frame: np.ndarray) -> np.ndarray:
        self.load(frame)
        return self.run()[0].cpu().numpy()


def _sync(device: Any) -> Callable[[], None]:
    import torch

    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _timed(fn: Callable[[], Any], runs: int, warmup: int, sync: Callable[[], None]) -> list[float]:
    """Milliseconds of ``runs`` synced calls after ``warmup`` ones."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return seconds_to_ms(times)


def _agreement(variant: Variant, case: dict[str, Any]) -> tuple[float, float]:
    """(worst frame, all pixels) fraction of labels equal to ONNX Runtime CPU's."""
    fractions = [
        float(np.mean(variant.labels(f) == want))
        for f, want in zip(case["frames"], case["ort_labels"], strict=True)
    ]
    return round(min(fractions), 5), round(float(np.mean(fractions)), 5)


def _skip_reason(device: Any, precision: str, graph: bool) -> str | None:
    import torch

    if device.type != "cuda":
        if graph:
            return "skipped: CUDA graphs need a CUDA device"
        if precision == "fp16":
            return "skipped: fp16 autocast is measured on CUDA only (CPU autocast targets bf16)"
    elif precision == "bf16" and not torch.cuda.is_bf16_supported():
        return "skipped: this GPU has no bf16 support"
    return None


def _case_keys(
    name: str,
    size: tuple[int, int],
    case: dict[str, Any],
    device: Any,
    runtime: str,
    precision: str,
    graph: bool = False,
) -> dict[str, Any]:
    """The row keys that name one configuration of one case."""
    return dict(
        model=name,
        camera=_wh(size),
        net=_wh(case["net"]),
        runtime=runtime,
        precision=_label(precision),
        cuda_graph=graph,
        device=str(device),
    )


def _variant_row(
    s: Settings,
    device: Any,
    name: str,
    size: tuple[int, int],
    case: dict[str, Any],
    precision: str,
    graph: bool,
) -> dict[str, Any]:
    base = _case_keys(name, size, case, device, "torch", precision, graph)
    reason = _skip_reason(device, precision, graph)
    if reason:
        return _row(**base, status="skipped", note=reason)
    variant = Variant(case["fused"], device, precision, graph, case["frames"][0])
    try:
        figures = _measure(s, device, variant, case)
    finally:
        variant.close()
    return _row(**base, **figures)


def _measure(s: Settings, device: Any, variant: Variant, case: dict[str, Any]) -> dict[str, Any]:
    """Device latency, host-path latency (CUDA) and label agreement of one variant."""
    sync = _sync(device)
    p50, p99 = p50_p99(_timed(variant.run, s.runs, s.warmup, sync))
    host = None
    if device.type == "cuda":  # numpy frame in, every output back to numpy (pageable)
        frame = case["frames"][0]

        def host_call() -> None:
            variant.load(frame)
            _ = [o.cpu() for o in variant.run()]

        host = p50_p99(_timed(host_call, max(10, s.runs // 4), s.warmup, sync))[0]
    a_min, a_mean = _agreement(variant, case)
    return {
        "status": "ok",
        "p50_ms": p50,
        "p99_ms": p99,
        "host_p50_ms": host,
        "runs": s.runs,
        "agreement_min": a_min,
        "agreement_mean": a_mean,
        "note": "frame already on the device, outputs left there; host_p50_ms adds the copies",
    }


def _compile_row(
    ws: Workspace, device: Any, name: str, size: tuple[int, int], case: dict[str, Any]
) -> dict[str, Any]:
    """torch.compile in a child process with a hard time limit, so a slow or hung compile
    costs at most the budget and never the run."""
    s = ws.settings
    precision = "fp16" if device.type == "cuda" else "fp32"
    runtime = f"torch.compile ({s.compile_backend}, {s.compile_mode})"
    base = _case_keys(name, size, case, device, runtime, precision)
    stem = ws.root / f"compile_{name}_{_wh(size)}"
    np.savez(
        stem.with_suffix(".npz"),
        frames=np.stack(case["frames"]),
        labels=np.stack(case["ort_labels"]),
    )
    spec = {
        "model": name,
        "seed": s.seed,
        "net": list(case["net"]),
        "device": str(device),
        "precision": precision,
        "runs": s.runs,
        "warmup": s.warmup,
        "budget_s": s.compile_budget_s,
        "mode": s.compile_mode,
        "backend": s.compile_backend,
        "cudnn_benchmark": s.cudnn_benchmark,
        "data": str(stem.with_suffix(".npz")),
        "out": str(stem.with_suffix(".json")),
    }
    stem.with_suffix(".spec.json").write_text(json.dumps(spec))
    limit = s.compile_budget_s + 60  # + interpreter start, torch import, model build
    cmd = [sys.executable, "-m", __name__, "--compile-worker", str(stem.with_suffix(".spec.json"))]
    rc, out = _run_group(cmd, limit, REPO)
    if rc is None:
        return _row(
            **base,
            status="skipped",
            note=f"skipped: no result within {limit:.0f} s (compile budget "
            f"{s.compile_budget_s:.0f} s); the child was killed",
        )
    if rc != 0 or not stem.with_suffix(".json").is_file():
        ws.logs.append(f"torch.compile {name} {_wh(size)} (exit {rc}):\n{out[-3000:]}")
        lines = out.strip().splitlines() or ["no output"]
        errors = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception)\b", ln)]
        why = (errors or lines)[-1][:300]
        return _row(**base, status="skipped", note=f"skipped: compile failed: {why}")
    got = json.loads(stem.with_suffix(".json").read_text())
    return _row(**base, **got)


def _compile_worker(spec_path: str) -> int:
    """Child process of ``_compile_row``: compile, time, compare, write JSON."""
    import torch

    from ..models.export import FusedGraph, random_init_model

    spec = json.loads(Path(spec_path).read_text())
    torch.backends.cudnn.benchmark = bool(spec["cudnn_benchmark"])
    device = torch.device(spec["device"])
    data = np.load(spec["data"])
    frames, labels = list(data["frames"]), list(data["labels"])
    model = random_init_model(spec["model"], seed=spec["seed"])
    fused = FusedGraph(model, tuple(spec["net"])).eval().to(device)
    options: dict[str, Any] = {"backend": spec["backend"]}
    if spec["backend"] == "inductor" and spec["mode"] != "default":
        options["mode"] = spec["mode"]
    compiled = torch.compile(fused, **options)
    variant = Variant(compiled, device, spec["precision"], False, frames[0])
    sync = _sync(device)
    t0 = time.perf_counter()
    variant.run()
    sync()
    compile_s = round(time.perf_counter() - t0, 1)
    if compile_s > spec["budget_s"]:
        result = {
            "status": "skipped",
            "note": f"skipped: compile took {compile_s} s > budget {spec['budget_s']} s",
        }
    else:
        p50, p99 = p50_p99(_timed(variant.run, spec["runs"], spec["warmup"], sync))
        case = {"frames": frames, "ort_labels": labels}
        a_min, a_mean = _agreement(variant, case)
        result = {
            "status": "ok",
            "p50_ms": p50,
            "p99_ms": p99,
            "runs": spec["runs"],
            "agreement_min": a_min,
            "agreement_mean": a_mean,
            "note": f"compile (first call) {compile_s} s",
        }
    Path(spec["out"]).write_text(json.dumps(result))
    return 0


def stage_inference(ws: Workspace, device: Any) -> dict[str, Any]:
    """Every (model, size, precision, graph) row, each isolated; plus ORT CPU and compile."""
    import torch

    s = ws.settings
    cases = [(m, z) for m in s.models for z in s.sizes]
    per_case = 1 + 2 * len(PRECISIONS) + 1
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    bar = tqdm(total=len(cases) * per_case, desc="inference configs", unit="config")
    for index, (name, size) in enumerate(cases):
        bar.set_postfix_str(f"{name} {_wh(size)}")
        try:
            case = ws.case(name, size)
        except Exception as err:
            _failed(
                rows,
                errors,
                f"{name} {_wh(size)}",
                err,
                model=name,
                camera=_wh(size),
                runtime="setup",
            )
            bar.update(per_case)
            continue
        p50, p99 = p50_p99(case["ort_ms"])
        rows.append(
            _row(
                model=name,
                camera=_wh(size),
                net=_wh(case["net"]),
                runtime="onnxruntime",
                precision="fp32",
                cuda_graph=False,
                device="cpu",
                status="ok",
                p50_ms=p50,
                p99_ms=p99,
                runs=s.ort_runs,
                agreement_min="reference",
                agreement_mean="reference",
                note=f"ONNX Runtime CPU, {s.ort_threads or 'default'} threads: the labels compared",
            )
        )
        bar.update()
        case["fused"].to(device)
        for precision in PRECISIONS:
            for graph in (False, True):
                try:
                    rows.append(_variant_row(s, device, name, size, case, precision, graph))
                except Exception as err:
                    keys = _case_keys(name, size, case, device, "torch", precision, graph)
                    _failed(
                        rows, errors, f"{name} {_wh(size)} {precision} graph={graph}", err, **keys
                    )
                bar.update()
        wanted = {"all": True, "first": index == 0, "none": False}[s.compile_cases]
        if wanted:
            try:
                rows.append(_compile_row(ws, device, name, size, case))
            except Exception as err:
                errors.append({"case": f"{name} {_wh(size)} compile", **_error(err)})
        else:
            rows.append(
                _row(
                    model=name,
                    camera=_wh(size),
                    net=_wh(case["net"]),
                    runtime="torch.compile",
                    device=str(device),
                    status="skipped",
                    note=f"skipped: --compile {s.compile_cases}",
                )
            )
        bar.update()
        case["fused"].to("cpu")
    bar.close()
    return {
        "status": "error" if errors else "ok",
        "net_size": _wh(s.net_size) if s.net_size else "the camera size",
        "weights": f"random init (random_init_model, seed {s.seed}); speed does not depend on "
        "the weights, agreement of near-tied random logits is a pessimistic proxy",
        "frames": f"{s.agreement_frames} procedural views (data.synthetic.random_view, seed "
        f"{FRAME_SEED}) per size; timing on the first",
        "timing": f"{s.warmup} warm-up + {s.runs} runs, perf_counter around call + synchronize",
        "cudnn_benchmark": s.cudnn_benchmark,
        "fp32_math": f"cuDNN TF32 convolutions {torch.backends.cudnn.allow_tf32}, TF32 matmul "
        f"{torch.backends.cuda.matmul.allow_tf32} (torch defaults; they apply to CUDA only)",
        "rows": rows,
        "errors": errors,
        "child_output": ws.logs,
        **({"error": errors[0]["error"]} if errors else {}),
    }


# --------------------------------------------------------------------------- (c) training


def _throughput(s: Settings, device: Any, stage: str) -> dict[str, Any]:
    """Images/s of ``stage`` steps (the loop's step: autocast fp16 + GradScaler on CUDA) on
    procedural batches already on the device; one synchronize at the end."""
    import torch

    from ..camera import Intrinsics
    from ..data.datasets import collate
    from ..data.synthetic import random_view
    from ..models.export import random_init_model
    from ..training.config import DataConfig, TrainConfig, validate
    from ..training.loop import TrainStep, set_stage, to_tensors

    w, h = s.train_size
    config = TrainConfig(
        model=s.train_model, data=DataConfig(size=[w, h]), batch_size=s.train_batch
    )
    validate(config)  # the CLI's checks (e.g. LISU sizes are multiples of 16)
    camera = Intrinsics.d435i(w, h)
    samples = [random_view(FRAME_SEED + 1, i, camera) for i in range(s.train_batch)]
    batch = to_tensors(collate(samples), device)
    torch.manual_seed(s.seed)
    model = random_init_model(s.train_model, seed=s.seed).to(device)
    params = set_stage(model, stage, False)
    step = TrainStep(model, stage, config).train()
    if stage == "joint" and model.decomp is not None:
        model.decomp.eval()
    optimizer = torch.optim.Adam(params, lr=config.lr, betas=tuple(config.betas))
    amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    def one() -> None:
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            loss, _ = step(batch)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    sync = _sync(device)
    for _ in range(s.train_warmup):
        one()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in tqdm(range(s.train_steps), desc=f"train steps ({stage})", unit="step", leave=False):
        one()
    sync()
    seconds = time.perf_counter() - t0
    out = {
        "stage": stage,
        "model": s.train_model,
        "size": _wh(s.train_size),
        "batch": s.train_batch,
        "device": str(device),
        "amp": "fp16 autocast + GradScaler" if amp else "off (AMP is CUDA-only in the loop)",
        "warmup_steps": s.train_warmup,
        "steps": s.train_steps,
        "seconds": round(seconds, 3),
        "images_per_s": round(s.train_steps * s.train_batch / seconds, 1),
        "step_ms_mean": round(1000 * seconds / s.train_steps, 2),
    }
    if device.type == "cuda":
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return out


def _real_epoch(ws: Workspace, device: Any) -> dict[str, Any]:
    """One epoch of each stage (decomp, then joint) through ``training.train`` on a rendered
    procedural set: the real loader, loss, checkpoints and metrics."""
    from ..data.synth import render_dataset
    from ..training.config import DataConfig, TrainConfig, validate
    from ..training.loop import train

    s = ws.settings
    w, h = s.train_size
    run = ws.root / "train_run"
    config = TrainConfig(
        model=s.train_model,
        data=DataConfig(
            kind="llrgbd-real",
            path=str(ws.root / "train_data"),
            size=[w, h],
            workers=s.train_workers,
        ),
        stage="all",
        decomp_epochs=1,
        epochs=1,
        batch_size=s.train_batch,
        out=str(run),
        seed=s.seed,
        device=str(device),
        amp=True,
        training_note="bench gpu: one epoch per stage on procedural views",
    )
    # the CLI's checks on the size before anything is rendered (the path exists only after)
    validate(dataclasses.replace(config, data=DataConfig(size=[w, h])))
    t0 = time.perf_counter()
    stats = render_dataset(
        ws.root / "train_data",
        views=s.train_views,
        size=(w, h),
        seed=FRAME_SEED + 2,
        workers=1 if s.dry_run else None,
    )
    render_s = round(time.perf_counter() - t0, 2)
    validate(config)
    result = train(config)
    rows = json.loads((run / "metrics.json").read_text())
    baseline = result.get("majority_baseline_mIoU")
    keep = ("stage", "epoch", "loss", "val_loss", "mIoU", "OA", "mAcc", "seconds")
    return {
        "views": s.train_views,
        "train_views": sum(v.split == "train" for v in stats),
        "val_views": sum(v.split == "val" for v in stats),
        "render_seconds": render_s,
        "batch": s.train_batch,
        "loader_workers": s.train_workers,
        "seconds": result["seconds"],
        "device": result["device"],
        "epochs": [
            {k: (round(r[k], 4) if isinstance(r[k], float) else r[k]) for k in keep if k in r}
            for r in rows
        ],
        "best": result["best"],
        "majority_baseline_mIoU": None if baseline is None else round(baseline, 4),
    }


def stage_training(ws: Workspace, device: Any) -> dict[str, Any]:
    """Throughput per stage, then the real two-stage epoch; each part isolated."""
    out: dict[str, Any] = {"throughput": [], "errors": []}
    for stage in ("decomp", "joint"):
        try:
            out["throughput"].append(_throughput(ws.settings, device, stage))
        except Exception as err:
            out["errors"].append({"part": f"throughput {stage}", **_error(err)})
    try:
        out["epoch"] = _real_epoch(ws, device)
    except Exception as err:
        out["errors"].append({"part": "real epoch", **_error(err)})
    out["status"] = "error" if out["errors"] else "ok"
    if out["errors"]:
        out["error"] = out["errors"][0]["error"]
    return out


# --------------------------------------------------------------------------- (d) TensorRT


def stage_tensorrt(ws: Workspace, device: Any) -> dict[str, Any]:
    """FP16 and FP32 engines through TensorRTBackend: latency and agreement with ORT CPU."""
    if importlib.util.find_spec("tensorrt") is None:
        return {"status": "skipped", "reason": "skipped: tensorrt not installed"}
    from ..inference.tensorrt_backend import TensorRTBackend, available

    if device.type != "cuda":
        return {"status": "skipped", "reason": "skipped: TensorRT needs a CUDA device"}
    ok, why = available(device.index or 0)
    if not ok:
        return {"status": "skipped", "reason": f"skipped: {why}"}
    s = ws.settings
    cases = [(m, z) for m in s.models for z in s.sizes]
    if s.tensorrt_cases == "first":
        cases = cases[:1]
    rows, errors = [], []
    for name, size in cases:
        for precision in ("fp16", "fp32"):
            try:
                case = ws.case(name, size)
                t0 = time.perf_counter()
                with TensorRTBackend(
                    case["onnx"],
                    device=device.index or 0,
                    precision=precision,
                    cache_dir=ws.root / "engines",
                    cuda_graph=True,
                ) as trt:
                    build_s = round(time.perf_counter() - t0, 1)
                    frame = case["frames"][0]
                    p50, p99 = p50_p99(
                        _timed(lambda t=trt, f=frame: t.execute(f), s.runs, s.warmup, lambda: None)
                    )
                    fractions = [
                        float(np.mean(trt.execute(f)["labels"] == want))
                        for f, want in zip(case["frames"], case["ort_labels"], strict=True)
                    ]
                    graphed = trt.cuda_graph
                rows.append(
                    _row(
                        model=name,
                        camera=_wh(size),
                        net=_wh(case["net"]),
                        runtime="tensorrt",
                        precision=precision,
                        cuda_graph=graphed,
                        device=str(device),
                        status="ok",
                        p50_ms=p50,
                        p99_ms=p99,
                        host_p50_ms=p50,
                        runs=s.runs,
                        agreement_min=round(min(fractions), 5),
                        agreement_mean=round(float(np.mean(fractions)), 5),
                        note=f"TensorRTBackend.execute (numpy in/out); build or load {build_s} s",
                    )
                )
            except Exception as err:
                _failed(
                    rows,
                    errors,
                    f"{name} {_wh(size)} {precision}",
                    err,
                    model=name,
                    camera=_wh(size),
                    runtime="tensorrt",
                    precision=precision,
                )
    return {
        "status": "error" if errors else "ok",
        "tensorrt": _version_of("tensorrt"),
        "rows": rows,
        "errors": errors,
        **({"error": errors[0]["error"]} if errors else {}),
    }


# --------------------------------------------------------------------------- goals


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def judge_goals(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal with the figure measured in this run and whether it is met; a goal whose
    configuration did not run says so and is not judged."""
    stages = result["stages"]
    dev_name = result["machine"].get("device_name", "")
    rows = [r for st in ("inference", "tensorrt") for r in stages.get(st, {}).get("rows", [])]
    gpu_rows = [r for r in rows if r["status"] == "ok" and str(r["device"]).startswith("cuda")]
    why_not = (
        "not measured: dry run (tiny model and sizes)"
        if result["settings"]["dry_run"]
        else "not measured: no CUDA device in this run"
        if result["machine"]["device"] == "cpu"
        else None
    )
    goals = []

    lat = [
        r
        for r in gpu_rows
        if r["model"] == "lisu"
        and r["camera"] == "640x480"
        and r["cuda_graph"]
        and r["precision"] != "fp32"
    ]
    goal = {
        "goal": f"LISU 640x480, reduced precision under CUDA graphs, <= {GOAL_LATENCY_MS} ms "
        "p50 on H100/H200"
    }
    best = min(lat, key=lambda r: r["p50_ms"]) if lat else None
    if best:
        note = "" if re.search(r"H100|H200", dev_name) else f" (on {dev_name}, not H100/H200)"
        goal.update(
            measured=f"{best['p50_ms']} ms p50 ({best['runtime']}, {best['precision']}, "
            f"net {best['net']}){note}",
            met=best["p50_ms"] <= GOAL_LATENCY_MS,
        )
    else:
        goal.update(measured=why_not or "not measured: no such configuration succeeded", met=None)
    goals.append(goal)

    goal = {"goal": f"label agreement with ONNX Runtime >= {100 * GOAL_AGREEMENT:.0f} %"}
    if best is not None:
        worst = min(gpu_rows, key=lambda r: r["agreement_min"])
        goal.update(
            measured=f"{_pct(best['agreement_min'])} worst frame for the configuration above; "
            f"lowest over all GPU configurations {_pct(worst['agreement_min'])} "
            f"({worst['runtime']} {worst['precision']}, graph {worst['cuda_graph']}, "
            f"{worst['model']} {worst['camera']})",
            met=best["agreement_min"] >= GOAL_AGREEMENT,
        )
    else:
        goal.update(
            measured=why_not or "not measured: the latency configuration did not run", met=None
        )
    goals.append(goal)

    tp = [
        t
        for t in stages.get("training", {}).get("throughput", [])
        if t["stage"] == "joint"
        and t["model"] == "lisu"
        and t["size"] == "320x240"
        and t["batch"] == 12
        and t["device"].startswith("cuda")
    ]
    goal = {
        "goal": f"AMP training >= {GOAL_TRAIN_IMAGES_S:.0f} images/s at 320x240 (LISU, "
        "batch 12, joint stage)"
    }
    if tp:
        goal.update(
            measured=f"{tp[0]['images_per_s']} images/s ({tp[0]['amp']})",
            met=tp[0]["images_per_s"] >= GOAL_TRAIN_IMAGES_S,
        )
    else:
        goal.update(
            measured=why_not or "not measured: the training throughput did not run", met=None
        )
    goals.append(goal)
    return goals


# --------------------------------------------------------------------------- report


def _cell(v: Any) -> str:
    return "" if v is None else str(v).replace("|", "/").replace("\n", " ")


def _table(rows: list[dict[str, Any]], keys: list[str] | tuple[str, ...]) -> str:
    head = "| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n"
    return head + "".join("| " + " | ".join(_cell(r.get(k)) for k in keys) + " |\n" for r in rows)


def markdown(result: dict[str, Any]) -> str:
    """The human report: machine, goals, stage statuses, then each stage's figures."""
    m, st = result["machine"], result["stages"]
    met = {True: "yes", False: "**no**", None: "not judged"}
    kind = "dry run (CPU smoke run of the same code)" if result["settings"]["dry_run"] else "run"
    text = [
        f"# GPU validation {kind}: {m['device_name']}\n",
        f"{result['date']}, commit {result['commit']}, {result['wall_s']} s wall; "
        "settings in the JSON (`settings`)."
        + ("" if result.get("complete") else " **Incomplete**: only the stages below had run.")
        + "\n",
        "## Machine\n",
        _table([{"field": k, "value": v} for k, v in m.items()], ("field", "value")),
        "## Goals (figures measured in this run only)\n",
        _table([{**g, "met": met[g["met"]]} for g in result["goals"]], ("goal", "measured", "met")),
        "## Stages\n",
        _table(
            [
                {
                    "stage": name,
                    "status": s.get("status"),
                    "seconds": s.get("seconds"),
                    "note": s.get("error") or s.get("reason") or "",
                }
                for name, s in st.items()
            ],
            ("stage", "status", "seconds", "note"),
        ),
    ]
    tests = st.get("tests", {})
    if "returncode" in tests:
        text += [
            "## (a) CUDA tests\n",
            f"`{tests['command']}`: {tests['passed']} passed, {tests['failed']} failed, "
            f"{tests['skipped']} skipped, {tests['errors']} errors "
            f"({tests['deselected']} non-gpu deselected).\n",
            "".join(f"* {line}\n" for line in tests["failures"] + tests["skip_reasons"]),
        ]
    inf = st.get("inference", {})
    if inf.get("rows"):
        text += [
            "## (b) Inference: fused graph (uint8 frame in, uint8 outputs)\n",
            f"Network at {inf['net_size']}. Weights: {inf['weights']}. Frames: {inf['frames']}. "
            f"Timing: {inf['timing']}; cuDNN benchmark {inf['cudnn_benchmark']}; fp32: "
            f"{inf['fp32_math']}. agreement = "
            "fraction of label pixels equal to ONNX Runtime CPU on the same ONNX weights.\n",
            _table(inf["rows"], ROW_KEYS),
        ]
    tr = st.get("training", {})
    if tr.get("throughput"):
        keys = list(tr["throughput"][0])
        text += [
            "## (c) Training throughput (procedural batch on the device)\n",
            _table(tr["throughput"], keys),
        ]
    if tr.get("epoch"):
        ep = tr["epoch"]
        text += [
            "## (c) One epoch per stage of `training.train` (rendered procedural views)\n",
            f"{ep['train_views']} train + {ep['val_views']} val views, batch {ep['batch']}, "
            f"{ep['loader_workers']} loader workers, on {ep['device']}: {ep['seconds']} s "
            f"(render {ep['render_seconds']} s). Majority-class val mIoU "
            f"{ep['majority_baseline_mIoU']}.\n",
            _table(ep["epochs"], list(dict.fromkeys(k for r in ep["epochs"] for k in r))),
        ]
    trt = st.get("tensorrt", {})
    text += ["## (d) TensorRT\n"]
    if trt.get("rows"):
        text += [f"TensorRT {trt.get('tensorrt')}.\n", _table(trt["rows"], ROW_KEYS)]
    else:
        text += [f"{trt.get('reason') or trt.get('error') or trt.get('status')}\n"]
    errors = [(n, s) for n, s in st.items() if s.get("status") == "error"]
    if errors:
        lines = [
            f"* {name}: {e.get('case') or e.get('part') or ''} {e.get('error')}\n"
            for name, s in errors
            for e in s.get("errors") or [s]
        ]
        text += ["## Errors (tracebacks in the JSON)\n", "".join(lines)]
    return "\n".join(text)


# --------------------------------------------------------------------------- run


def _settings(args: argparse.Namespace, device: Any) -> Settings:
    dry = args.dry_run

    def pick(value: Any, dry_value: Any, real_value: Any) -> Any:
        return value if value is not None else (dry_value if dry else real_value)

    return Settings(
        device=str(device),
        dry_run=dry,
        models=pick(args.models, ["lisu-tiny"], ["lisu", "lisu-small"]),
        sizes=pick(args.sizes, [(64, 48)], [(640, 480), (320, 240)]),
        net_size=args.net_size,
        runs=pick(args.runs, 3, 200),
        warmup=pick(args.warmup, 1, 20),
        agreement_frames=pick(args.agreement_frames, 2, 4),
        ort_runs=pick(args.ort_runs, 3, 10),
        ort_threads=args.ort_threads,
        seed=args.seed,
        compile_cases=args.compile,
        compile_budget_s=pick(args.compile_budget, 60.0, 60.0),
        compile_mode=args.compile_mode,
        compile_backend=pick(args.compile_backend, "eager", "inductor"),
        train_model=pick(args.train_model, "lisu-tiny", "lisu"),
        train_size=pick(args.train_size, (64, 48), (320, 240)),
        train_batch=pick(args.train_batch, 2, 12),
        train_steps=pick(args.train_steps, 2, 50),
        train_warmup=pick(args.train_warmup, 1, 5),
        train_views=pick(args.train_views, 6, 48),
        train_workers=pick(args.train_workers, 0, 4),
        tests=args.tests or [],
        tests_timeout_s=pick(args.tests_timeout, 120.0, 180.0),
        tensorrt_cases=args.tensorrt_cases,
        stages=args.stages,
        cudnn_benchmark=not args.no_cudnn_benchmark,
    )


def _device(text: str, dry_run: bool) -> Any:
    """The torch device asked for, or one readable error (no CUDA, CPU without --dry-run)."""
    try:
        import torch
    except ImportError as err:
        raise LowlightError(f"bench gpu needs torch (the `train` extra): {err}") from None
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", text):
        raise LowlightError(f"--device must be auto, cpu or cuda[:N], got {text!r}")
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise LowlightError(
                f"--device {text}: no CUDA device available (torch {torch.__version__}, "
                f"CUDA build {torch.version.cuda}); for the CPU smoke run use --dry-run "
                "--device cpu"
            )
        index = int(text.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise LowlightError(
                f"--device {text}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
        return torch.device("cuda", index)
    if not dry_run:
        raise LowlightError(
            "no CUDA device: the full run is sized for a GPU; use --dry-run for the CPU smoke run"
        )
    return torch.device("cpu")


def bench_gpu(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """Run the selected stages, each isolated; write JSON + Markdown; return (result, path)."""
    import torch

    start = time.perf_counter()
    device = _device(args.device, args.dry_run)
    s = _settings(args, device)
    torch.backends.cudnn.benchmark = s.cudnn_benchmark
    if device.type == "cuda":
        torch.cuda.set_device(device)
    info = gpu_machine(device)
    print(
        f"bench gpu on {info['device_name']} (torch {info['torch']}, CUDA "
        f"{info['cuda_version']}, driver {info['driver_version']})"
        + (" [dry run]" if s.dry_run else "")
    )
    result: dict[str, Any] = {
        "benchmark": "gpu",
        "dry_run": s.dry_run,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "settings": s.to_dict(),
        "complete": False,  # True once every stage has run
        "stages": {},
        "machine": info,
    }
    stem = args.name or (
        "gpu_dry_run_" + device.type
        if s.dry_run
        else "gpu_" + re.sub(r"[^a-z0-9]+", "_", info["device_name"].lower()).strip("_")
    )
    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
        ws = Workspace(Path(tmp), s)
        runners: dict[str, Callable[[], dict[str, Any]]] = {
            "tests": lambda: stage_tests(s),
            "inference": lambda: stage_inference(ws, device),
            "training": lambda: stage_training(ws, device),
            "tensorrt": lambda: stage_tensorrt(ws, device),
        }
        for name in STAGES:
            if name not in s.stages:
                result["stages"][name] = {
                    "status": "skipped",
                    "reason": "not in --stages",
                    "seconds": 0.0,
                }
                continue
            tqdm.write(f"[{name}] ...")
            t0 = time.perf_counter()
            try:
                out = runners[name]()
            except Exception as err:
                out = {"status": "error", **_error(err)}
            out["seconds"] = round(time.perf_counter() - t0, 1)
            result["stages"][name] = out
            _write(result, args.out, stem, start)
            tqdm.write(
                f"[{name}] {out['status']} in {out['seconds']} s"
                + (f": {out.get('error') or out.get('reason')}" if out["status"] != "ok" else "")
            )
    result["complete"] = True
    return result, _write(result, args.out, stem, start)


def _write(result: dict[str, Any], out: Path, stem: str, start: float) -> Path:
    """JSON + Markdown of what has run so far (rewritten after every stage, so a run cut
    short by a time limit still leaves its figures)."""
    result["wall_s"] = round(time.perf_counter() - start, 1)
    result["goals"] = judge_goals(result)
    path = write_result(result, out, stem)
    path.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    return path


def print_summary(result: dict[str, Any], path: Path) -> None:
    """The end-of-run summary: stage statuses, key figures, goals, where the files are."""
    st = result["stages"]
    print(f"\nsummary ({result['machine']['device_name']}, {result['wall_s']} s):")
    for name, s in st.items():
        extra = s.get("error") or s.get("reason") or ""
        if name == "tests" and "returncode" in s:
            extra = (
                f"{s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped, "
                f"{s['errors']} errors"
            )
        print(f"  {name:10s} {s['status']:8s} {s.get('seconds', '')} s  {extra}")
    for r in st.get("inference", {}).get("rows", []) + st.get("tensorrt", {}).get("rows", []):
        if r["status"] == "ok":
            agree = r["agreement_min"]
            agree = _pct(agree) if isinstance(agree, float) else agree
            print(
                f"    {r['model']:10s} {r['camera']:>8s} {r['runtime'][:24]:24s} "
                f"{r['precision']:13s} graph={r['cuda_graph']!s:5s} p50 {r['p50_ms']:9.3f} ms "
                f"p99 {r['p99_ms']:9.3f} ms  agreement {agree}"
            )
    for t in st.get("training", {}).get("throughput", []):
        print(
            f"    train {t['stage']:6s} {t['model']} {t['size']} batch {t['batch']}: "
            f"{t['images_per_s']} images/s ({t['amp']})"
        )
    if st.get("training", {}).get("epoch"):
        ep = st["training"]["epoch"]
        print(f"    one epoch per stage: {ep['seconds']} s, best {json.dumps(ep['best'])}")
    for g in result["goals"]:
        verdict = {True: "MET", False: "NOT MET", None: "not judged"}[g["met"]]
        print(f"  goal: {g['goal']}: {g['measured']} -> {verdict}")
    print(f"-> {path} and {path.with_suffix('.md')}")


def add_parser(benches: argparse._SubParsersAction) -> None:
    """Register ``bench gpu`` under the ``bench`` subcommands."""
    g = benches.add_parser(
        "gpu",
        help="GPU validation: gpu tests, LISU latency (eager/autocast/CUDA graphs/compile) vs "
        "ORT labels, AMP training, TensorRT",
        description="The prepared GPU validation run (bench/gpu/run.sh calls it). --dry-run runs "
        "the same code on the CPU at tiny sizes.",
    )
    g.add_argument("--device", default="auto", help="auto (default), cuda, cuda:N or cpu")
    g.add_argument(
        "--dry-run",
        action="store_true",
        help="tiny sizes and counts (lisu-tiny, 64x48, 3 runs): the CPU smoke run",
    )
    g.add_argument(
        "--stages",
        nargs="+",
        choices=STAGES,
        default=list(STAGES),
        help="stages to run (default all)",
    )
    g.add_argument("--models", nargs="+", help="registry models (default lisu lisu-small)")
    g.add_argument(
        "--sizes", nargs="+", type=size_arg, help="camera frame sizes WxH (default 640x480 320x240)"
    )
    g.add_argument(
        "--net-size",
        type=size_arg,
        default=None,
        help="network WxH inside the graph (default: the camera size)",
    )
    g.add_argument("--runs", type=int, help="timed runs per configuration (default 200)")
    g.add_argument("--warmup", type=int, help="warm-up runs per configuration (default 20)")
    g.add_argument("--agreement-frames", type=int, help="procedural frames compared (default 4)")
    g.add_argument("--ort-runs", type=int, help="ONNX Runtime CPU timed runs (default 10)")
    g.add_argument("--ort-threads", type=int, default=0, help="ORT threads (0: ORT's default)")
    g.add_argument("--seed", type=int, default=0, help="weight seed of the random-init models")
    g.add_argument(
        "--compile",
        choices=("first", "all", "none"),
        default="first",
        help="torch.compile the first (model, size) case, all, or none",
    )
    g.add_argument("--compile-budget", type=float, help="seconds a compile may take (default 60)")
    g.add_argument(
        "--compile-mode",
        default="default",
        help="torch.compile mode (default, max-autotune-no-cudagraphs, ...)",
    )
    g.add_argument(
        "--compile-backend", help="torch.compile backend (default inductor; eager in a dry run)"
    )
    g.add_argument("--train-model", help="model of the training stage (default lisu)")
    g.add_argument("--train-size", type=size_arg, help="training WxH (default 320x240)")
    g.add_argument("--train-batch", type=int, help="training batch (default 12)")
    g.add_argument("--train-steps", type=int, help="timed training steps (default 50)")
    g.add_argument("--train-warmup", type=int, help="warm-up training steps (default 5)")
    g.add_argument("--train-views", type=int, help="views rendered for the epoch (default 48)")
    g.add_argument("--train-workers", type=int, help="DataLoader workers (default 4)")
    g.add_argument(
        "--tests",
        nargs="+",
        help="test files for pytest -m gpu (default: every test file using the gpu marker)",
    )
    g.add_argument("--tests-timeout", type=float, help="seconds for the test stage (default 180)")
    g.add_argument(
        "--tensorrt-cases",
        choices=("first", "all"),
        default="first",
        help="TensorRT engines for the first (model, size) case or all",
    )
    g.add_argument(
        "--no-cudnn-benchmark", action="store_true", help="leave torch.backends.cudnn.benchmark off"
    )
    g.add_argument(
        "--out",
        type=Path,
        default=Path("out/bench_gpu"),
        help="result directory (default out/bench_gpu)",
    )
    g.add_argument("--name", help="result file stem (default gpu_<device name>)")
    g.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for key in (
        "runs",
        "warmup",
        "agreement_frames",
        "ort_runs",
        "train_batch",
        "train_steps",
        "train_views",
    ):
        value = getattr(args, key)
        if value is not None and value < 1:
            raise LowlightError(f"--{key.replace('_', '-')} must be at least 1, got {value}")
    from ..models import list_models

    for name in [*(args.models or []), *([args.train_model] if args.train_model else [])]:
        if name not in list_models():
            raise LowlightError(f"unknown model {name!r}; valid: {', '.join(list_models())}")
    result, path = bench_gpu(args)
    print_summary(result, path)
    failed = [n for n, s in result["stages"].items() if s["status"] in ("error", "failed")]
    if failed:
        print(
            f"lowlight bench gpu: stages with errors or failures: {', '.join(failed)} "
            f"(details in {path})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["--compile-worker"]:
    sys.exit(_compile_worker(sys.argv[2]))
