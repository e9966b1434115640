"""``lowlight export``: write a trained (or seeded random-init) model as a fused ONNX graph.

The graph takes the uint8 camera frame and returns what the node publishes, carries its
metadata, and is verified against PyTorch on ONNX Runtime before the file appears; this command
is a thin argument layer over ``models.export.export_onnx`` plus a readable summary.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..errors import LowlightError

if TYPE_CHECKING:
    from ..models.export import ExportReport

from ..metadata import UPSAMPLE_MODES
from .common import add_size_args

# Mirrors of models.export's constants (a test keeps them equal): importing that module here
# would load torch on every `lowlight` start, and the base install has no torch.
MIN_OPSET, MAX_OPSET = 17, 20


def _config_item(text: str) -> tuple[str, Any]:
    """argparse type for ``KEY=VALUE`` model config overrides (VALUE parsed as YAML)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model as a fused uint8-in/uint8-out ONNX graph (verified on ORT)",
        description="Export a checkpoint (or a seeded random-init model) as one ONNX graph whose "
        "input is the uint8 RGB camera frame (H, W, 3) and whose outputs are what the node "
        "publishes: labels, confidence and, for joint models, reflectance and illumination "
        "(all uint8 at the frame's size). The frame may have any size. Resize, scaling, "
        "softmax, argmax and casts run inside the graph. The file is checked on ONNX Runtime "
        "against PyTorch on procedural frames at the camera size and at 320x240, 640x480, "
        "848x480 and 1280x720, and deleted if labels agree on fewer than 99.9 % of pixels.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="training checkpoint (.pt) to export")
    src.add_argument(
        "--random-init",
        action="store_true",
        help="export an untrained, seeded model (needs --arch); for tests and smoke runs",
    )
    p.add_argument("--arch", help="with --random-init: registry name (e.g. lisu, lisu-tiny)")
    p.add_argument("--seed", type=int, default=0, help="with --random-init: weight seed")
    p.add_argument(
        "--model-config",
        type=_config_item,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --random-init: build option of the model (repeatable)",
    )
    p.add_argument("--out", type=Path, required=True, help="output .onnx path")
    add_size_args(
        p,
        (640, 480),
        (320, 240),
        camera_help="camera WxH the model is made for: the graph takes frames of any size; "
        "this one is checked first and is a TensorRT engine's optimum",
        net_help="WxH the network runs at (LISU: multiples of 16)",
    )
    p.add_argument(
        "--upsample",
        choices=UPSAMPLE_MODES,
        default="labels",
        help="labels: argmax at net size then nearest (fast, default); logits: bilinear "
        "logits to camera size before argmax (sharper boundaries, slower)",
    )
    p.add_argument(
        "--opset",
        type=int,
        default=MIN_OPSET,
        help=f"ONNX opset, {MIN_OPSET}..{MAX_OPSET} (default {MIN_OPSET})",
    )
    p.add_argument(
        "--frames", type=int, default=4, help="procedural frames for the parity check (default 4)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..models.checkpoint import load_model
    from ..models.export import export_onnx, random_init_model, training_note

    if args.random_init:
        if not args.arch:
            raise LowlightError("--random-init needs --arch NAME")
        try:
            model = random_init_model(args.arch, args.seed, **dict(args.model_config))
        except (KeyError, TypeError, ValueError) as err:
            raise LowlightError(f"cannot build model {args.arch!r}: {err.args[0]}") from err
        training = f"random init (seed {args.seed})"
    else:
        if args.arch or args.model_config:
            raise LowlightError("--arch/--model-config only go with --random-init")
        model, state = load_model(args.checkpoint)
        training = training_note(state)
    report = export_onnx(
        model,
        args.out,
        camera_size=args.camera_size,
        net_size=args.net_size,
        upsample=args.upsample,
        opset=args.opset,
        frames=args.frames,
        training=training,
    )
    print(summarize(report))
    return 0


def summarize(report: ExportReport) -> str:
    """One paragraph: outputs, file size, parity figures and metadata."""
    meta, parity = report.metadata, report.parity

    def specs(items: tuple) -> str:
        return ", ".join(f"{s.name} {s.dtype}{list(s.shape)}" for s in items)

    diffs = [f"confidence {parity.confidence_max_diff} DN"]
    for name in ("reflectance", "illumination"):
        value = getattr(parity, f"{name}_max_diff")
        if value is not None:
            diffs.append(f"{name} {value} DN")
    return (
        f"wrote {report.path} ({report.file_bytes / 1e6:.2f} MB, opset {report.opset}): "
        f"{meta.model} at net {meta.net_size[0]}x{meta.net_size[1]}, frames of any size "
        f"(made for {meta.camera_size[0]}x{meta.camera_size[1]}), upsample={meta.upsample}; "
        f"input {specs(report.inputs)}; outputs {specs(report.outputs)}. "
        f"ONNX Runtime vs PyTorch on {parity.frames} procedural frame(s) at "
        f"{', '.join(f'{w}x{h}' for w, h in parity.sizes)}: labels agree "
        f"{100 * parity.label_agreement:.3f} %, max diff {', '.join(diffs)}; "
        f"ORT CPU {parity.ort_ms:.1f} ms/frame. Metadata: {len(meta.class_names)} classes, "
        f"package {meta.package_version}, training: {meta.training}."
    )
