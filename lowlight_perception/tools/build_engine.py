"""``lowlight build-engine``: build the TensorRT engine of an exported ONNX ahead of time.

Why: a TensorRT build takes seconds to minutes and must run on the target's GPU and TensorRT
version; a drone image builds its engine once at image build time, and the node then finds it in
the cache on every start instead of building in the air. This command goes through the same
cache as the node (``inference.engine_cache``): it builds only when the cached engine is missing,
stale or corrupt (``--build always`` rebuilds; ``--build never`` only checks), then prints the
engine's I/O, precision, build time and path. tensorrt is imported only when the command runs,
never at ``lowlight`` start-up.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import LowlightError
from ..inference.engine_cache import BUILD_POLICIES


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``build-engine`` on the ``lowlight`` subcommands."""
    p = sub.add_parser(
        "build-engine",
        help="build the TensorRT engine of an exported ONNX (cached; needs an NVIDIA GPU)",
        description="Build the TensorRT engine of a fused lowlight ONNX on this machine's GPU, "
        "or find it in the engine cache (keyed on the ONNX hash, TensorRT version, GPU and "
        "precision), and print its inputs and outputs, precision, build time and path. The "
        "engine and its .engine.json sidecar are written next to the ONNX unless --cache-dir.",
    )
    p.add_argument("--onnx", type=Path, required=True, help="exported .onnx (lowlight export)")
    p.add_argument(
        "--precision",
        choices=("fp16", "fp32"),
        default="fp16",
        help="fp16 (default; fp32 layers may use TF32) or fp32 (TF32 off); INT8 is not supported",
    )
    p.add_argument(
        "--cache-dir", type=Path, default=None, help="engine directory (default: ONNX's)"
    )
    p.add_argument(
        "--build",
        choices=BUILD_POLICIES,
        default="if_missing",
        help="if_missing (default): build unless a valid engine is cached; always: rebuild; "
        "never: only check that a valid one is cached (exit 2 if not)",
    )
    p.add_argument("--device", type=int, default=0, help="CUDA device index (default 0)")
    p.add_argument(
        "--workspace-gb", type=float, default=2.0, help="builder workspace limit in GiB (default 2)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build or load the engine, print its summary; errors surface as LowlightError."""
    if args.onnx.suffix.lower() != ".onnx":
        raise LowlightError(f"--onnx expects an exported .onnx file, got {args.onnx}")
    from ..inference.tensorrt_backend import TensorRTBackend, describe

    backend = TensorRTBackend(
        args.onnx,
        device=args.device,
        precision=args.precision,
        cache_dir=args.cache_dir,
        build_policy=args.build,
        workspace_gb=args.workspace_gb,
    )
    try:
        print(describe(backend))
    finally:
        backend.close()
    return 0
