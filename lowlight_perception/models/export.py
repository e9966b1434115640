"""Export a LowlightModel as one fused ONNX graph: camera frame in, published images out.

Why fused: the node, the bag evaluator and a TensorRT engine should get exactly what they
publish from one graph call, so pre- and post-processing run on the accelerator and the host
only copies bytes (DESIGN.md, "Network contract"). The graph takes the uint8 RGB frame
``(H, W, 3)`` at the fixed camera size and does, inside the graph: scaling to [0, 1], a bilinear
resize to the net size, the network, softmax, argmax, the resize back to camera size and the
casts to uint8. Outputs (TensorRT 10 accepts uint8 network I/O; no int64 leaves the graph):

* ``labels`` (H, W) uint8 class ids;
* ``confidence`` (H, W) uint8 = round(max softmax x 255);
* ``reflectance`` (H, W, 3) uint8, restored reflectance x 255 (only if the model produces it);
* ``illumination`` (H, W) uint8, illumination x 255 (only if the model produces it).

Seg-only models (lisu-seg, dlv3p) simply have no ``reflectance`` / ``illumination`` outputs; the
graph's output list is the record of what exists (a depth head, if built, is not exported).
Confidence is computed as 1 / sum(exp(logits - max)) rather than a full softmax: the same value,
but ORT's channel-axis Softmax was the slowest op of the graph (lisu-small, 640x480 "logits":
~174 -> ~57 ms on 2 CPU cores). Every file carries ``ModelMetadata`` in its
``metadata_props`` and verifies itself after writing: ONNX Runtime must reproduce the PyTorch
fused module on procedural frames, or the file is deleted and ``ExportError`` raised.
"""

from __future__ import annotations

import json
import os
import tempfile
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
from ..metadata import ModelMetadata

UPSAMPLE_MODES = ("labels", "logits")
MIN_OPSET = 17
MAX_OPSET = 20  # the newest opset torch's TorchScript (dynamo=False) exporter writes
MIN_LABEL_AGREEMENT = 0.999
INPUT_NAME = "frame"
PRODUCER = "lowlight_perception"
SAMPLE_SEED = 20240  # procedural frames used for the parity check


class ExportError(LowlightError):
    """The model cannot be exported as asked, or the written graph failed verification."""


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, shape and numpy dtype name."""

    name: str
    shape: tuple[int, ...]
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
    ort_ms: float  # median ONNX Runtime time per frame (CPU, this machine)

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
    """uint8 camera frame ``(H, W, 3)`` -> the node's uint8 outputs, as a tuple.

    Args:
        model: a LowlightModel (``forward(rgb) -> dict`` with ``logits`` and optional
            ``reflectance`` / ``illumination``), in eval mode.
        camera_size: (W, H) of the input frame and of every output.
        net_size: (W, H) the network runs at.
        upsample: "labels" (argmax at net size, nearest labels / bilinear confidence to camera
            size: cheap) or "logits" (bilinear logits to camera size first: sharper, slower).
    """

    def __init__(
        self,
        model: nn.Module,
        camera_size: tuple[int, int],
        net_size: tuple[int, int],
        upsample: str = "labels",
    ) -> None:
        super().__init__()
        if upsample not in UPSAMPLE_MODES:
            raise ExportError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        self.model = model.eval()
        self.camera_hw = (int(camera_size[1]), int(camera_size[0]))
        self.net_hw = (int(net_size[1]), int(net_size[0]))
        self.upsample = upsample
        # nearest neighbour by pixel centres as exact integer gathers: identical in every runtime
        self.register_buffer("rows", _nearest_index(self.net_hw[0], self.camera_hw[0]), False)
        self.register_buffer("cols", _nearest_index(self.net_hw[1], self.camera_hw[1]), False)
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

    def output_specs(self) -> tuple[TensorSpec, ...]:
        """Names and shapes of the graph outputs, in order."""
        h, w = self.camera_hw
        shapes = {
            "labels": (h, w),
            "confidence": (h, w),
            "reflectance": (h, w, 3),
            "illumination": (h, w),
        }
        return tuple(TensorSpec(name, shapes[name]) for name in self.output_names)

    def forward(self, frame: torch.Tensor) -> tuple[torch.Tensor, ...]:
        rgb = frame.permute(2, 0, 1).unsqueeze(0).float() / 255.0
        if self.net_hw != self.camera_hw:
            rgb = F.interpolate(rgb, size=self.net_hw, mode="bilinear", align_corners=False)
        out = self.model(rgb)
        logits = out["logits"]
        if self.upsample == "logits":
            logits = self._to_camera(logits)
        # max softmax = 1 / sum(exp(logits - max)): no full softmax (ORT's Softmax over the
        # channel axis of NCHW is its slowest op here), and argmax of logits = argmax of softmax
        top, labels = logits.max(dim=1, keepdim=True)
        conf = 1.0 / torch.exp(logits - top).sum(dim=1)  # (1, h, w)
        labels = labels[:, 0].float()  # int64 ArgMax never leaves the graph
        if self.upsample == "labels" and self.net_hw != self.camera_hw:
            labels = labels[:, self.rows][:, :, self.cols]
            conf = self._to_camera(conf.unsqueeze(1)).squeeze(1)
        results = [labels[0].to(torch.uint8), _to_uint8(conf[0])]
        if "reflectance" in self.output_names:
            results.append(_to_uint8(self._to_camera(out["reflectance"])[0].permute(1, 2, 0)))
        if "illumination" in self.output_names:
            results.append(_to_uint8(self._to_camera(out["illumination"])[0, 0]))
        return tuple(results)

    def _to_camera(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == self.camera_hw:
            return x
        return F.interpolate(x, size=self.camera_hw, mode="bilinear", align_corners=False)


def _nearest_index(src: int, dst: int) -> torch.Tensor:
    """Source index of each of ``dst`` pixels, matching pixel centres (half-pixel nearest)."""
    idx = np.floor((np.arange(dst) + 0.5) * src / dst).astype(np.int64)
    return torch.from_numpy(np.minimum(idx, src - 1))


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] float -> round(x * 255) as uint8 (clamped first: out-of-range casts are UB)."""
    return torch.round(x * 255.0).clamp(0.0, 255.0).to(torch.uint8)


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
    """Write ``model`` as a fused uint8-in/uint8-out ONNX graph and verify it.

    The file appears at ``out`` only after it passed verification (written to a temporary
    file in the same directory, then renamed), so a bad export never replaces a good one.

    Args:
        model: a LowlightModel; it is put in eval mode.
        out: destination ``.onnx`` path.
        camera_size: (W, H) of the camera frames the graph takes.
        net_size: (W, H) the network runs at.
        upsample: "labels" or "logits" (see ``FusedGraph``).
        opset: ONNX opset (17..20).
        frames: procedural frames for the ONNX Runtime parity check (>= 1).
        training: note on how the weights were trained (see ``training_note``).

    Returns:
        What was written, its metadata and the parity figures.

    Raises:
        ExportError: bad options, a failing export, or parity below 99.9 % label agreement
            (nothing is left at ``out`` then).
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"opset {opset} unsupported: use {MIN_OPSET}..{MAX_OPSET}")
    if frames < 1:
        raise ExportError("parity check needs at least 1 frame")
    model = model.eval()
    check_net_size(model, net_size)
    fused = FusedGraph(model, camera_size, net_size, upsample).eval()
    meta = build_metadata(model, camera_size, net_size, upsample, training)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=out.name + ".", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write_graph(fused, tmp, meta, opset)
        parity = verify_onnx(tmp, fused, sample_frames(camera_size, frames))
        if not parity.passed:
            raise ExportError(
                f"ONNX Runtime disagrees with PyTorch: label agreement "
                f"{100 * parity.label_agreement:.3f} % < {100 * MIN_LABEL_AGREEMENT:.1f} % "
                f"(confidence max diff {parity.confidence_max_diff} DN); {out} not written"
            )
        atomic.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    h, w = fused.camera_hw
    return ExportReport(
        path=out,
        metadata=meta,
        inputs=(TensorSpec(INPUT_NAME, (h, w, 3)),),
        outputs=fused.output_specs(),
        opset=opset,
        file_bytes=out.stat().st_size,
        parity=parity,
    )


def write_graph(fused: FusedGraph, path: Path, meta: ModelMetadata, opset: int) -> None:
    """Trace ``fused`` to ONNX at ``path`` (legacy exporter) and stamp metadata and docs.

    Raises:
        ExportError: if tracing or the ONNX checker fails.
    """
    import onnx

    h, w = fused.camera_hw
    frame = torch.zeros(h, w, 3, dtype=torch.uint8)
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
                do_constant_folding=True,
            )
        proto = onnx.load(str(path))
        del proto.metadata_props[:]
        for key, value in meta.to_props().items():
            proto.metadata_props.add(key=key, value=value)
        proto.producer_name = PRODUCER
        proto.producer_version = __version__
        proto.doc_string = (
            f"lowlight_perception {meta.model}: uint8 RGB frame {INPUT_NAME} ({h}, {w}, 3) -> "
            f"{', '.join(fused.output_names)} (uint8, camera size {w}x{h}); network at "
            f"{meta.net_size[0]}x{meta.net_size[1]}, upsample={meta.upsample}."
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
    """Run ``path`` on ONNX Runtime and ``fused`` in PyTorch on the same frames and compare.

    Raises:
        ExportError: if the graph's outputs differ in names, shapes or dtypes from ``fused``.
    """
    session = ort_session(path)
    expected = fused.output_specs()
    got = tuple(o.name for o in session.get_outputs())
    if got != tuple(s.name for s in expected):
        raise ExportError(f"graph outputs {got} differ from {[s.name for s in expected]}")
    agreement, diffs, times = [], {name: 0 for name in fused.output_names[1:]}, []
    for frame in frames:
        start = time.perf_counter()
        onnx_out = session.run(None, {INPUT_NAME: frame})
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
        ort_ms=1000.0 * float(np.median(times)),
    )


def random_init_model(name: str, seed: int = 0, **config: Any) -> nn.Module:
    """An untrained registry model with deterministic weights (for tests and smoke exports)."""
    from .registry import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(name, **config)
    return model.eval()
