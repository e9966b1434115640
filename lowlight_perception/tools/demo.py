"""``lowlight demo``: the whole system on this machine, in one command.

Renders a procedural low-light sequence, writes it as a rosbag2, starts ``perception_node`` on
ONNX Runtime (CPU) with the shipped model, replays the bag into it over real ROS 2 with its
recorded timing, evaluates what the node published against the ground truth, and writes a report
(metrics, latency, FPS, drops, side-by-side images, a GIF of the sequence).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..camera import Intrinsics
from ..config import DEMO_MODEL, demo_model
from ..errors import LowlightError
from ..evaluation.report import pct
from .common import size_arg


def _gif(frames: list, path: Path, classes, every: int = 2) -> None:
    """Input (brightened) | node labels | node reflectance, titled, every ``every``-th frame,
    15 fps."""
    from ..evaluation.report import brighten, side_by_side

    images = []
    for frame in frames[::every]:
        rec = frame.recorded
        panels = [
            ("input (brightened)", brighten(frame.rgb)),
            ("labels (node)", classes.colorize(frame.prediction)),
            ("reflectance (node)", None if rec is None else rec.reflectance),
        ]
        images.append(side_by_side(panels, caption=f"frame {frame.index}"))
    if images:
        images[0].save(path, save_all=True, append_images=images[1:], duration=1000 // 15, loop=0)


def run_demo(
    out: Path,
    *,
    model: Path | None = None,
    frames: int = 120,
    size: tuple[int, int] = (320, 240),
    seed: int = 3,
    rate: float = 1.0,
) -> dict:
    """Run the demo into ``out`` and return its summary (also written as ``demo.json``)."""
    from ..bags import iter_frames, write_bag
    from ..data.synthetic import tour
    from ..evaluation.evaluate import evaluate
    from ..evaluation.metrics import majority_class_miou
    from ..frame import Frame
    from ..imagemsg import image_to_numpy
    from ..inference.engine_cache import read_onnx_metadata
    from ..inference.segmenter import Result
    from ..ros.replay import replay
    from .common import machine

    model = Path(model) if model else demo_model()
    if not model.is_file():
        raise LowlightError(f"demo model not found: {model}")
    meta = read_onnx_metadata(model)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    K = Intrinsics.d435i(*size)
    views = list(tqdm(tour(seed, frames, K), total=frames, desc="rendering sequence", unit="frame"))
    bag = out / "bag"
    shutil.rmtree(bag, ignore_errors=True)
    write_bag(views, bag, storage="mcap", fps=30.0, progress=False)
    print(
        f"wrote {frames} frames ({size[0]}x{size[1]}, 30 Hz) to {bag}; replaying into "
        f"perception_node ({model.name}, ONNX Runtime CPU)"
    )
    run = replay(
        bag,
        model=model,
        rate=rate,
        outputs=("labels", "confidence", "reflectance"),
        record=True,
        node_params={"use_depth": True},
    )
    recorded, replayed = run.pop("recorded"), run["passes"][0]

    from ..classes import ClassSet

    classes = ClassSet(tuple(meta.class_names), np.array(meta.palette, np.uint8))
    scored: list[Frame] = []
    for f in iter_frames(bag):
        outputs = recorded.get(f.stamp_ns, {})
        images = {k: image_to_numpy(v).copy() for k, v in outputs.items()}
        labels = images.get("labels")
        result = (
            None
            if labels is None
            else Result(labels, images.get("confidence"), images.get("reflectance"), None)
        )
        scored.append(
            Frame(
                f.index,
                f.rgb.copy(),
                f.label,
                prediction=labels,
                stamp_ns=f.stamp_ns,
                recorded=result,
            )
        )
    report_dir = out / "report"
    metrics = evaluate(
        scored,
        report_dir,
        classes=classes,
        model_name=meta.model,
        backend_name="perception_node (onnxruntime cpu)",
        source=str(bag),
        predictions_topic="/lowlight_perception/labels",
        machine=machine(),
        progress=False,
    )
    _gif([f for f in scored if f.prediction is not None], out / "demo.gif", classes)
    hist = np.sum(
        [np.bincount(v.label.ravel(), minlength=classes.num_classes) for v in views], axis=0
    )
    majority = majority_class_miou(hist, classes.void_index)
    summary = {
        "frames": frames,
        "size": f"{size[0]}x{size[1]}",
        "model": meta.model,
        "model_file": str(model),
        "replay": replayed,
        "mIoU": metrics.get("mIoU"),
        "OA": metrics.get("OA"),
        "mAcc": metrics.get("mAcc"),
        "majority_class_mIoU": round(float(majority), 4),
        "classes_present": int((np.delete(hist, classes.void_index) > 0).sum()),
        "classes": classes.num_classes - 1,
        "frames_scored": metrics.get("frames"),
        "seconds": round(time.perf_counter() - t_start, 1),
        "report": str(report_dir / "report.md"),
        "gif": str(out / "demo.gif"),
        "bag": str(bag),
    }
    (out / "demo.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / "demo.md").write_text(_markdown(summary), encoding="utf-8")
    return summary


def _markdown(s: dict) -> str:
    r = s["replay"]
    return f"""# lowlight_perception demo

A procedural low-light flight through several rooms ({s["frames"]} frames, {s["size"]}, 30 per
room, lit only by the camera's LED; the rooms are chosen so every class appears) was written to
a rosbag2 and replayed at its recorded 30 Hz into `perception_node` running `{s["model"]}` on
ONNX Runtime (CPU); what the node published was scored against the ground truth.

| | |
|---|---|
| frames answered | {r["answered"]} / {r["sent"]} (dropped {r["dropped"]}) |
| input / output rate | {r["input_fps"]} / {r["output_fps"]} FPS |
| latency colour -> labels | p50 {r["latency_ms_p50"]} ms, p99 {r["latency_ms_p99"]} ms |
| mIoU / OA / mAcc | {pct(s["mIoU"])} / {pct(s["OA"])} / {pct(s["mAcc"])} |
| majority-class mIoU | {pct(s["majority_class_mIoU"])} |
| classes in the ground truth | {s["classes_present"]} of {s["classes"]} |

![sequence](demo.gif)

Full report: [report/report.md](report/report.md) (per-class IoU, confusion matrix, per-frame
mIoU, side-by-side samples). The model was trained on procedural scenes, not real rooms
(`models/README.md`).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the whole pipeline on this machine: synth -> bag -> node -> evaluation report",
        description="Render a procedural sequence through four rooms (all 13 classes), write it "
        "as a rosbag2, replay it at 30 Hz over real ROS 2 into perception_node (ONNX Runtime on "
        "the CPU, the shipped model unless --model), and evaluate: demo.md, demo.gif and a "
        "lowlight eval report under --out.",
    )
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output directory")
    p.add_argument("--model", type=Path, help=f"ONNX model (default: the shipped {DEMO_MODEL})")
    p.add_argument("--frames", type=int, default=120, help="sequence length (default 120)")
    p.add_argument("--size", type=size_arg, default=(320, 240), help="frame WxH (default 320x240)")
    p.add_argument("--seed", type=int, default=3, help="scene seed (default 3)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.frames < 2:
        raise LowlightError("--frames must be at least 2")
    s = run_demo(args.out, model=args.model, frames=args.frames, size=args.size, seed=args.seed)
    r = s["replay"]
    print(
        f"\ndemo: {r['answered']}/{r['sent']} frames answered at {r['output_fps']} FPS "
        f"(latency p50 {r['latency_ms_p50']} ms, dropped {r['dropped']}); mIoU "
        f"{pct(s['mIoU'])}, OA {pct(s['OA'])} (majority class: "
        f"{pct(s['majority_class_mIoU'])}); {s['seconds']} s"
    )
    print(f"report: {args.out / 'demo.md'}")
    return 0
