"""The one Segmenter: an RGB frame (+ optional aligned depth) in, a Result out.

The node, the bag evaluator, the benchmark and the demo all call ``Segmenter.segment``; nothing
else touches a backend. The model's own metadata (classes, palette, sizes) travels with it, so a
model can never be shown with another model's palette.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..classes import ClassSet
from ..data.transforms import resize_array
from ..errors import LowlightError
from .backend import Backend, BackendError

log = logging.getLogger("lowlight_perception.inference")

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
ENGINE_SUFFIXES = (".engine", ".plan")
CHECKPOINT_SUFFIXES = (".pt", ".pth")


class FrameError(LowlightError):
    """A frame (or its depth) cannot be segmented: wrong dtype, shape or size."""


@dataclass
class Result:
    """What one frame produced, at the frame's size.

    ``labels`` (H, W) uint8 class ids; ``confidence`` (H, W) uint8 max softmax x 255;
    ``reflectance`` (H, W, 3) and ``illumination`` (H, W) uint8 for decomposing models, else
    None; ``depth`` the aligned depth passed in (or None); ``timings`` in milliseconds
    (``preprocess``, ``execute``, ``postprocess``, ``total``). Arrays may be views of backend
    buffers reused by the next ``segment`` call: ``copy()`` what you keep.
    """

    labels: np.ndarray
    confidence: np.ndarray
    reflectance: np.ndarray | None = None
    illumination: np.ndarray | None = None
    depth: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def copy(self) -> Result:
        def own(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a.copy()

        return Result(own(self.labels), own(self.confidence), own(self.reflectance),
                      own(self.illumination), own(self.depth), dict(self.timings))


def choose_backend(model_path: Path, backend: str, device: int | str) -> tuple[str, int | str, str]:
    """(backend, device, reason) for ``backend="auto"``: TensorRT if importable with a GPU,
    else ONNX Runtime CUDA, else ONNX Runtime CPU; checkpoints run on PyTorch.

    Raises:
        BackendError: for an unknown backend name or a file type no backend reads.
    """
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    suffix = model_path.suffix.lower()
    if suffix not in (".onnx", *ENGINE_SUFFIXES, *CHECKPOINT_SUFFIXES):
        raise BackendError(
            f"{model_path}: expected an .onnx, a TensorRT .engine/.plan or a .pt checkpoint"
        )
    if backend != "auto":
        return backend, device, "asked for"
    if suffix in CHECKPOINT_SUFFIXES:
        from .torch_backend import cuda_available

        return "torch", device if device != "cpu" and cuda_available() else "cpu", "checkpoint"
    if suffix in ENGINE_SUFFIXES:
        return "tensorrt", device, "TensorRT engine file"
    if device != "cpu":
        from .onnxruntime_backend import cuda_available as ort_cuda
        from .tensorrt_backend import available as trt_available

        ok, why_not = trt_available()
        if ok:
            return "tensorrt", device, "TensorRT and a CUDA GPU are present"
        if ort_cuda():
            return "onnxruntime", device, f"no TensorRT ({why_not}); ONNX Runtime has CUDA"
        return "onnxruntime", "cpu", f"no TensorRT ({why_not}) and no ONNX Runtime CUDA"
    return "onnxruntime", "cpu", "CPU asked for"


def open_backend(model_path: str | Path, backend: str = "auto", device: int | str = 0,
                 **options) -> Backend:
    """Load ``model_path`` on the chosen backend, logging the choice and why.

    ``options`` go to the backend: ``threads`` (onnxruntime), ``precision``, ``cache_dir``,
    ``force_rebuild``, ``cuda_graph`` (tensorrt), ``camera_size``, ``net_size`` (torch).
    """
    path = Path(model_path)
    if not path.exists():
        raise BackendError(f"model not found: {path}")
    name, device, reason = choose_backend(path, backend, device)
    known = {
        "onnxruntime": ("threads",),
        "tensorrt": ("precision", "cache_dir", "force_rebuild", "cuda_graph", "workspace_gb"),
        "torch": ("camera_size", "net_size", "upsample"),
    }[name]
    kwargs = {k: v for k, v in options.items() if k in known and v is not None}
    if name == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeBackend

        loaded: Backend = OnnxRuntimeBackend(path, device=device, **kwargs)
    elif name == "tensorrt":
        from .tensorrt_backend import TensorRTBackend

        loaded = TensorRTBackend(path, device=0 if device == "cpu" else int(device), **kwargs)
    else:
        from .torch_backend import TorchBackend

        loaded = TorchBackend(path, device=device, **kwargs)
    log.info("backend %s on %s for %s (%s)", loaded.name, loaded.device, path.name, reason)
    return loaded


class Segmenter:
    """Segment camera frames with an exported model on the best available runtime.

    Args:
        model_path: exported .onnx, TensorRT .engine/.plan (with its .json sidecar), or a
            training checkpoint .pt (PyTorch backend).
        backend: "auto", "tensorrt", "onnxruntime" or "torch".
        device: CUDA device index, or "cpu".
        host_resize: frames whose size differs from the model's camera size are resized on the
            host (and outputs resized back: labels nearest, the rest bilinear). Off by default:
            such frames are refused, never silently mis-segmented; export the model at the
            camera's size instead (``lowlight export --camera-size WxH``).
        **options: backend options (see ``open_backend``).

    Raises:
        BackendError: the model cannot be loaded on the chosen backend (readable reason).
    """

    def __init__(self, model_path: str | Path, backend: str = "auto", device: int | str = 0, *,
                 host_resize: bool = False, **options):
        self.backend = open_backend(model_path, backend, device, **options)
        self.metadata = self.backend.metadata
        if not self.metadata.class_names or len(self.metadata.palette) != len(
            self.metadata.class_names
        ):
            raise BackendError(f"{model_path}: metadata lacks a class list with its palette")
        self.classes = ClassSet(
            names=tuple(self.metadata.class_names),
            palette=np.array(self.metadata.palette, dtype=np.uint8),
        )
        self.camera_size = tuple(self.metadata.camera_size)
        self.host_resize = host_resize

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.backend.outputs

    def segment(self, rgb: np.ndarray, depth: np.ndarray | None = None) -> Result:
        """Segment one RGB frame.

        Args:
            rgb: (H, W, 3) uint8 RGB (not BGR: convert first).
            depth: optional aligned depth (H, W), returned in the Result for consumers such as
                the point cloud; current graphs do not consume it.

        Raises:
            FrameError: wrong dtype/shape, a size the model was not exported for (unless
                ``host_resize``), or depth of another size.
        """
        t0 = time.perf_counter()
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or (
            rgb.shape[2] != 3
        ):
            desc = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
            raise FrameError(f"expected an (H, W, 3) uint8 RGB frame, got {desc}")
        h, w = rgb.shape[:2]
        if depth is not None and depth.shape[:2] != (h, w):
            raise FrameError(f"depth is {depth.shape[1]}x{depth.shape[0]} but the frame is {w}x{h}")
        resized = (w, h) != self.camera_size
        if resized:
            if not self.host_resize:
                cw, ch = self.camera_size
                raise FrameError(
                    f"frame is {w}x{h} but the model was exported for {cw}x{ch}; export it with "
                    f"--camera-size {w}x{h} or enable host_resize"
                )
            rgb = resize_array(rgb, *self.camera_size, nearest=False)
        frame = np.ascontiguousarray(rgb)  # no copy for a contiguous frame
        t1 = time.perf_counter()
        out = self.backend.execute(frame)
        t2 = time.perf_counter()
        if resized:
            out = {k: resize_array(v, w, h, nearest=k == "labels") for k, v in out.items()}
        result = Result(out["labels"], out["confidence"], out.get("reflectance"),
                        out.get("illumination"), depth)
        t3 = time.perf_counter()
        result.timings = {
            "preprocess": 1000 * (t1 - t0),
            "execute": 1000 * (t2 - t1),
            "postprocess": 1000 * (t3 - t2),
            "total": 1000 * (t3 - t0),
        }
        return result

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

