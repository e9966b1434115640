"""Export a LowlightModel as one fused ONNX graph: camera frame in, published images out.

Why fused: the node, the bag evaluator and a TensorRT engine should get exactly what they
publish from one graph call, so pre- and post-processing run on the accelerator and the host
only copies bytes (the README's "Exporting ONNX" states this contract). The graph takes the
uint8 RGB frame ``(height, width, 3)`` of ANY size (both are dynamic axes: one model serves a
320x240 bag, a 640x480 D435i and a 1280x720 stream) and does, inside the graph: the cast and
scaling to [0, 1], a bilinear resize to the fixed net size, the network, softmax, argmax, the
resize back to the frame's size (sizes computed from the frame's shape) and the casts to uint8
(labels and confidence nearest from net size, reflectance and illumination bilinear). Outputs
(TensorRT 10 accepts uint8 network I/O; no int64 leaves the graph), at the frame's size:

* ``labels`` (H, W) uint8 class ids;
* ``confidence`` (H, W) uint8 = round(max softmax x 255);
* ``reflectance`` (H, W, 3) uint8, restored reflectance x 255 (only if the model produces it);
* ``illumination`` (H, W) uint8, illumination x 255 (only if the model produces it).

Seg-only models (lisu-seg, dlv3p) simply have no ``reflectance`` / ``illumination`` outputs; the
graph's output list is the record of what exists (a depth head, if built, is not exported).
Confidence is computed as 1 / sum(exp(logits - max)) rather than a full softmax: the same value,
but ORT's channel-axis Softmax was the slowest op of the graph (lisu-small, 640x480 "logits":
~174 -> ~57 ms on 2 CPU cores). Every file carries ``ModelMetadata`` in its
``metadata_props``, keeps TensorRT's ONNX rules (:mod:`.tensorrt_rules`) and verifies
itself after writing: ONNX Runtime must reproduce the PyTorch fused module on procedural frames
at the camera size and at every size of :data:`CHECK_SIZES`, or the file is deleted and
``ExportError`` raised.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812  (the universal torch idiom)
from torch import nn

from .. import __version__, atomic
from ..camera import Intrinsics
from ..classes import load_classes
from ..errors import LowlightError
from ..latency import p50_p99, seconds_to_ms
from ..metadata import UPSAMPLE_MODES, ModelMetadata
from . import tensorrt_rules

MIN_OPSET = 17
MAX_OPSET = 20  # the newest opset torch's TorchScript (dynamo=False) exporter writes
MIN_LABEL_AGREEMENT = 0.999
INPUT_NAME = "frame"
PRODUCER = "lowlight_perception"
SAMPLE_SEED = 20240  # procedural frames used for the parity check
CHECK_SIZES = ((320, 240), (640, 480), (848, 480), (1280, 720))
"""Frame sizes (W, H) every export is also checked at: the D435i colour profiles users run."""


class ExportError(LowlightError):
    """The model cannot be exported as asked, or the written graph failed verification."""


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, shape and numpy dtype name."""

    name: str
    shape: tuple[int | str, ...]  # "H" / "W": the frame's height / width (any size)
    dtype: str = "uint8"


@dataclass(frozen=True)
class ParityReport:
    """ONNX Runtime versus the PyTorch fused module on the same uint8 frames.

    ``label_agreement`` is the worst frame's fraction of equal labels; the diffs are maxima over
    all frames in DN (0-255); ``None`` where the output does not exist.
    """

    frames: int
    label_agreement: float
    confidence_max_diff: int
    reflectance_max_diff: int | None
    illumination_max_diff: int | None
    ort_ms: float  # median ONNX Runtime time per frame of the first frame's size (CPU)
    sizes: tuple[tuple[int, int], ...] = ()  # (W, H) of the frames checked, in order

    @property
    def passed(self) -> bool:
        return self.label_agreement >= MIN_LABEL_AGREEMENT


@dataclass(frozen=True)
class ExportReport:
    """What ``export_onnx`` wrote and how well it matched PyTorch."""

    path: Path
    metadata: ModelMetadata
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    opset: int
    file_bytes: int
    parity: ParityReport


class FusedGraph(nn.Module):
    """uint8 camera frame ``(H, W, 3)`` of any size -> the node's uint8 outputs at that size.

    The network runs at the fixed ``net_size``; the resize to it and every resize back to the
    frame's size are computed from the frame's shape inside the graph, so one exported model
    serves a 320x240 bag, a 640x480 D435i stream and a 1280x720 one alike.

    Args:
        model: a LowlightModel (``forward(rgb) -> dict`` with ``logits`` and optional
            ``reflectance`` / ``illumination``), in eval mode.
        net_size: (W, H) the network runs at.
        upsample: "labels" (argmax and confidence at net size, both upsampled nearest to the
            frame's size, so a pixel's confidence is its label's: cheap) or "logits"
            (bilinear logits to the frame's size first: sharper, slower).
    """

    def __init__(self, model: nn.Module, net_size: tuple[int, int], upsample: str = "labels"):
        super().__init__()
        if upsample not in UPSAMPLE_MODES:
            raise ExportError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        self.model = model.eval()
        self.net_hw = (int(net_size[1]), int(net_size[0]))
        self.upsample = upsample
        try:
            with torch.no_grad():
                probe = model(torch.zeros(1, 3, *self.net_hw))
        except RuntimeError as err:
            first = (str(err).strip().splitlines() or [""])[0]
            name = getattr(model, "name", type(model).__name__)
            raise ExportError(
                f"{name} cannot run at net size {net_size[0]}x{net_size[1]}: {first}"
            ) from err
        extra = [key for key in ("reflectance", "illumination") if probe.get(key) is not None]
        self.output_names = ("labels", "confidence", *extra)

    def output_specs(self, camera_size: tuple[int | str, int | str]) -> tuple[TensorSpec, ...]:
        """Names and shapes of the graph outputs for a frame of ``camera_size`` (W, H; or
        ("W", "H") for the graph's symbolic shapes)."""
        w, h = camera_size
        shapes = {
            "labels": (h, w),
            "confidence": (h, w),
            "reflectance": (h, w, 3),
            "illumination": (h, w),
        }
        return tuple(TensorSpec(name, shapes[name]) for name in self.output_names)

    def forward(self, frame: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # Cast first: TensorRT takes uint8 only as a network input feeding a Cast, or as an
        # output made by a Cast (onnx-tensorrt docs/operators.md)
        pixels = frame.float()
        size = (pixels.shape[0], pixels.shape[1])  # traced as Shape of the Cast: no If
        # Work at the frame's size is what a near-free network pays for (ONNX Runtime's
        # profiler at 640x480: whole-frame ops are most of the run), so everything that can
        # be done at net size is: /255 after the resize, *255 and the clamp before the
        # upsampling (a bilinear resize is a convex combination: it commutes with both).
        rgb = pixels.permute(2, 0, 1).unsqueeze(0)
        rgb = F.interpolate(rgb, size=self.net_hw, mode="bilinear", align_corners=False) / 255.0
        out = self.model(rgb)
        logits = out["logits"]
        if self.upsample == "logits":
            logits = _bilinear(logits, size)
        # max softmax = 1 / sum(exp(logits - max)): no full softmax (ORT's Softmax over the
        # channel axis of NCHW is its slowest op here), and argmax of logits = argmax of softmax
        top, labels = logits.max(dim=1, keepdim=True)
        conf = 1.0 / torch.exp(logits - top).sum(dim=1, keepdim=True)  # (1, 1, h, w)
        labels = labels[0, 0].float()  # int64 ArgMax never leaves the graph
        if self.upsample == "labels":
            rows = _nearest_index(self.net_hw[0], size[0], labels.device)
            cols = _nearest_index(self.net_hw[1], size[1], labels.device)
            labels = labels[:, cols][rows]  # columns at net height, then whole rows: cheap
            # each pixel's confidence is its label's, by the same gather, rounded at net size
            # (a bilinear upsample + round at 640x480 was 0.65 of the 3 ms near-free run); in
            # float, as TensorRT takes uint8 only out of a Cast
            conf = torch.round(_scaled(conf).flatten(0, 2))[:, cols][rows]
        else:
            conf = torch.round(_scaled(conf).flatten(0, 2))
        # (1, C, H, W) -> (H, W[, C]) by flatten (a Reshape, no copy), not by indexing [0]
        results = [labels.to(torch.uint8), conf.to(torch.uint8)]
        if "reflectance" in self.output_names:
            reflectance = _bilinear(_scaled(out["reflectance"]), size)
            results.append(_to_uint8(reflectance.permute(0, 2, 3, 1).flatten(0, 1)))
        if "illumination" in self.output_names:
            illumination = _bilinear(_scaled(out["illumination"]), size)
            results.append(_to_uint8(illumination.flatten(0, 2)))
        return tuple(results)


def _bilinear(x: torch.Tensor, size: tuple[Any, Any]) -> torch.Tensor:
    """Bilinear resize of NCHW ``x`` to ``size`` (H, W), half-pixel centres; traced sizes stay
    dynamic in the graph."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _nearest_index(src: int, dst: Any, device: torch.device) -> torch.Tensor:
    """Source index of each of ``dst`` pixels by pixel centres, floor((i + 0.5) * src / dst),
    in exact integer arithmetic: identical in every runtime, and ``dst`` may be a traced size.
    Never beyond ``src - 1``, as 2i + 1 < 2 dst. Made on ``device``: on CUDA no host->device
    copy per frame (which a CUDA graph capture also forbids)."""
    i = torch.arange(dst, device=device)
    return torch.div((2 * i + 1) * src, 2 * dst, rounding_mode="floor")


def _scaled(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] float -> [0, 255], clamped (at net size, before any upsampling)."""
    return (x * 255.0).clamp(0.0, 255.0)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[0, 255] float (from :func:`_scaled`, or a bilinear resize of it, which stays in range)
    -> rounded uint8; never out of range, as out-of-range casts are undefined."""
    return torch.round(x).to(torch.uint8)


def check_net_size(model: nn.Module, net_size: tuple[int, int]) -> None:
    """Reject net sizes the architecture cannot run at (LISU: multiples of 16).

    Raises:
        ExportError: naming the model and the nearest valid size.
    """
    w, h = net_size
    if str(getattr(model, "name", "")).startswith("lisu") and (w % 16 or h % 16):
        near = (max(16, round(w / 16) * 16), max(16, round(h / 16) * 16))
        raise ExportError(
            f"net size {w}x{h}: {model.name} needs width and height multiples of 16 "
            f"(e.g. {near[0]}x{near[1]})"
        )


def sample_frames(camera_size: tuple[int, int], count: int) -> list[np.ndarray]:
    """``count`` procedural low-light uint8 frames (H, W, 3) at camera size, deterministic."""
    from ..data.synthetic import random_view

    camera = Intrinsics.d435i(*camera_size)
    return [random_view(SAMPLE_SEED, i, camera).low for i in range(count)]


def build_metadata(
    model: nn.Module,
    camera_size: tuple[int, int],
    net_size: tuple[int, int],
    upsample: str,
    training: str,
) -> ModelMetadata:
    """The metadata an exported graph carries (classes and palette from config/classes.yaml)."""
    classes = load_classes()
    config = json.loads(json.dumps(getattr(model, "config", {}) or {}, default=str))
    return ModelMetadata(
        model=str(getattr(model, "name", type(model).__name__)),
        class_names=tuple(classes.names),
        palette=tuple(tuple(int(c) for c in rgb) for rgb in classes.palette.tolist()),
        camera_size=(int(camera_size[0]), int(camera_size[1])),
        net_size=(int(net_size[0]), int(net_size[1])),
        upsample=upsample,
        package_version=__version__,
        training=training,
        model_config=config,
    )


def training_note(state: dict[str, Any] | None) -> str:
    """One-line record of how the weights were made, from a checkpoint's state dict."""
    if not state:
        return "random init"
    for key in ("training", "train_config"):
        value = state.get(key)
        if isinstance(value, str) and value:
            return value
        if value:
            return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return "checkpoint without a training record"


def export_onnx(
    model: nn.Module,
    out: str | Path,
    *,
    camera_size: tuple[int, int] = (640, 480),
    net_size: tuple[int, int] = (320, 240),
    upsample: str = "labels",
    opset: int = MIN_OPSET,
    frames: int = 4,
    training: str = "random init",
) -> ExportReport:
    """Write ``model`` as a fused uint8-in/uint8-out ONNX graph for frames of any size and
    verify it.

    The file appears at ``out`` only after it passed verification (written to a temporary
    file in the same directory, then renamed), so a bad export never replaces a good one.

    Args:
        model: a LowlightModel; it is put in eval mode.
        out: destination ``.onnx`` path.
        camera_size: (W, H) of the camera the model is meant for: the parity check's main
            size and the optimum of a TensorRT engine's shape profile. The graph takes any
            size; it is also checked at every size of :data:`CHECK_SIZES`.
        net_size: (W, H) the network runs at.
        upsample: "labels" or "logits" (see ``FusedGraph``).
        opset: ONNX opset (17..20).
        frames: procedural frames at ``camera_size`` for the ONNX Runtime parity check (>= 1).
        training: note on how the weights were trained (see ``training_note``).

    Returns:
        What was written, its metadata and the parity figures.

    Raises:
        ExportError: bad options, a failing export, or parity below 99.9 % label agreement
            at any checked size (nothing is left at ``out`` then).
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"opset {opset} unsupported: use {MIN_OPSET}..{MAX_OPSET}")
    if frames < 1:
        raise ExportError("parity check needs at least 1 frame")
    if min(camera_size) < 1:
        raise ExportError(f"camera size must be positive, got {camera_size[0]}x{camera_size[1]}")
    model = model.eval()
    check_net_size(model, net_size)
    fused = FusedGraph(model, net_size, upsample).eval()
    meta = build_metadata(model, camera_size, net_size, upsample, training)
    out = Path(out)
    with atomic.writing(out) as tmp:
        write_graph(fused, tmp, meta, opset)
        parity = verify_onnx(tmp, fused, parity_frames(camera_size, frames))
        if not parity.passed:
            raise ExportError(
                f"ONNX Runtime disagrees with PyTorch: label agreement "
                f"{100 * parity.label_agreement:.3f} % < {100 * MIN_LABEL_AGREEMENT:.1f} % "
                f"(confidence max diff {parity.confidence_max_diff} DN); {out} not written"
            )
    return ExportReport(
        path=out,
        metadata=meta,
        inputs=(TensorSpec(INPUT_NAME, ("H", "W", 3)),),
        outputs=fused.output_specs(("W", "H")),
        opset=opset,
        file_bytes=out.stat().st_size,
        parity=parity,
    )


def parity_frames(camera_size: tuple[int, int], count: int) -> list[np.ndarray]:
    """``count`` procedural frames at ``camera_size``, then one at each other size of
    :data:`CHECK_SIZES` (the first frame, resized: rendering at 1280x720 costs more than
    checking)."""
    from ..data.transforms import resize_array

    frames = sample_frames(camera_size, count)
    for w, h in CHECK_SIZES:
        if (w, h) != tuple(camera_size):
            frames.append(np.array(resize_array(frames[0], w, h, nearest=False)))
    return frames


def write_graph(fused: FusedGraph, path: Path, meta: ModelMetadata, opset: int) -> None:
    """Trace ``fused`` to ONNX at ``path`` (legacy exporter) with the frame's height and width
    as dynamic axes, and stamp metadata and docs.

    Raises:
        ExportError: if tracing or the ONNX checker fails.
    """
    import onnx

    w, h = meta.camera_size
    frame = torch.zeros(h, w, 3, dtype=torch.uint8)
    dims = {0: "height", 1: "width"}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notices
            torch.onnx.export(
                fused,
                (frame,),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=list(fused.output_names),
                dynamic_axes={name: dims for name in (INPUT_NAME, *fused.output_names)},
                do_constant_folding=True,
            )
        proto = onnx.load(str(path))
        for value in proto.graph.output:  # the exporter leaves reflectance's 3 symbolic
            if value.name == "reflectance":
                value.type.tensor_type.shape.dim[2].ClearField("dim_param")
                value.type.tensor_type.shape.dim[2].dim_value = 3
        problems = tensorrt_rules.problems(proto)
        if problems:
            raise ExportError(f"graph breaks TensorRT's ONNX rules: {'; '.join(problems)}")
        del proto.metadata_props[:]
        for key, value in meta.to_props().items():
            proto.metadata_props.add(key=key, value=value)
        proto.producer_name = PRODUCER
        proto.producer_version = __version__
        proto.doc_string = (
            f"lowlight_perception {meta.model}: uint8 RGB frame {INPUT_NAME} (height, width, 3) "
            f"of any size -> {', '.join(fused.output_names)} (uint8, at the frame's size); "
            f"network at {meta.net_size[0]}x{meta.net_size[1]}, upsample={meta.upsample}; "
            f"made for a {w}x{h} camera."
        )
        proto.graph.doc_string = proto.doc_string
        onnx.checker.check_model(proto)
        onnx.save(proto, str(path))
    except ExportError:
        raise
    except Exception as err:  # torch/onnx raise many types; report one readable line
        first = (str(err).strip().splitlines() or [""])[0]
        raise ExportError(f"ONNX export failed: {type(err).__name__}: {first}") from err


def ort_session(path: str | Path, threads: int = 0) -> Any:
    """An ONNX Runtime CPU session (``threads`` = 0: ORT's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def verify_onnx(path: str | Path, fused: FusedGraph, frames: list[np.ndarray]) -> ParityReport:
    """Run ``path`` on ONNX Runtime and ``fused`` in PyTorch on the same frames (of any sizes)
    and compare.

    Raises:
        ExportError: if the graph's outputs differ in names, shapes or dtypes from ``fused``.
    """
    session = ort_session(path)
    names = tuple(o.name for o in session.get_outputs())
    if names != fused.output_names:
        raise ExportError(f"graph outputs {names} differ from {list(fused.output_names)}")
    agreement, diffs, times = [], {name: 0 for name in fused.output_names[1:]}, []
    for frame in frames:
        expected = fused.output_specs((frame.shape[1], frame.shape[0]))
        start = time.perf_counter()
        onnx_out = session.run(None, {INPUT_NAME: frame})
        if frame.shape == frames[0].shape:
            times.append(time.perf_counter() - start)
        with torch.no_grad():
            torch_out = [t.numpy() for t in fused(torch.from_numpy(frame))]
        for spec, a, b in zip(expected, onnx_out, torch_out, strict=True):
            if a.shape != spec.shape or a.dtype != np.dtype(spec.dtype):
                raise ExportError(
                    f"output {spec.name} is {a.dtype}{list(a.shape)}, "
                    f"expected {spec.dtype}{list(spec.shape)}"
                )
            if spec.name == "labels":
                agreement.append(float(np.mean(a == b)))
            else:
                diff = int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())
                diffs[spec.name] = max(diffs[spec.name], diff)
    return ParityReport(
        frames=len(frames),
        label_agreement=min(agreement),
        confidence_max_diff=diffs["confidence"],
        reflectance_max_diff=diffs.get("reflectance"),
        illumination_max_diff=diffs.get("illumination"),
        ort_ms=p50_p99(seconds_to_ms(times))[0],
        sizes=tuple(dict.fromkeys((f.shape[1], f.shape[0]) for f in frames)),
    )


def random_init_model(name: str, seed: int = 0, **config: Any) -> nn.Module:
    """An untrained registry model with deterministic weights (for tests and smoke exports)."""
    from .registry import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(name, **config)
    return model.eval()
