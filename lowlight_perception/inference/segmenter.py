"""The one Segmenter: an RGB frame (+ optional aligned depth) in, a Result out.

The node, the bag evaluator, the benchmark and the demo all call ``Segmenter.segment``; nothing
else touches a backend. The model's own metadata (classes, palette, sizes) travels with it, so a
model can never be shown with another model's palette.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..classes import ClassSet
from ..errors import LowlightError, one_line
from .backend import CORE_OUTPUTS, Backend, BackendError, ModelError
from .engine_cache import ENGINE_SUFFIXES
from .refine import RefineConfig, refine_labels

log = logging.getLogger("lowlight_perception.inference")

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
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

        return Result(
            own(self.labels),
            own(self.confidence),
            own(self.reflectance),
            own(self.illumination),
            own(self.depth),
            dict(self.timings),
        )


def parse_device(device: int | str) -> int | str:
    """``device`` as "auto", "cpu" or a CUDA index: accepts -1 (the CPU) and digit strings.

    Raises:
        BackendError: anything else.
    """
    text = str(device).strip().lower()
    if text in ("auto", "cpu"):
        return text
    try:
        index = int(text)
    except ValueError:
        index = -2
    if index < -1 or isinstance(device, bool):
        raise BackendError(f"device must be auto, cpu (or -1) or a CUDA index, got {device!r}")
    return "cpu" if index == -1 else index


def choose_backend(model_path: Path, backend: str, device: int | str) -> tuple[str, int | str, str]:
    """(backend, device, reason): what runs ``model_path`` here, and why.

    ``backend="auto"``: TensorRT if it imports with a GPU, else ONNX Runtime with CUDA, else
    ONNX Runtime on the CPU; checkpoints run on PyTorch, engines on TensorRT. ``device="auto"``
    takes GPU 0 when the chosen runtime can use one, else the CPU; "cpu" (or -1) and an index
    are taken as asked.

    Raises:
        BackendError: for an unknown backend or device, or a file type no backend reads.
    """
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    device = parse_device(device)
    suffix = model_path.suffix.lower()
    if suffix not in (".onnx", *ENGINE_SUFFIXES, *CHECKPOINT_SUFFIXES):
        raise BackendError(
            f"{model_path}: expected an .onnx, a TensorRT .engine/.plan or a .pt checkpoint"
        )
    why = "asked for"
    if backend == "auto" and suffix in CHECKPOINT_SUFFIXES:
        backend, why = "torch", "a checkpoint"
    elif backend == "auto" and suffix in ENGINE_SUFFIXES:
        backend, why = "tensorrt", "a TensorRT engine file"
    elif backend == "auto" and device == "cpu":
        return "onnxruntime", "cpu", "the CPU asked for"
    elif backend == "auto":
        from .onnxruntime_backend import cuda_available as ort_cuda
        from .tensorrt_backend import available as trt_available

        gpu = 0 if device == "auto" else device
        ok, why_not = trt_available(gpu)
        if ok:
            return "tensorrt", gpu, "TensorRT and a CUDA GPU are present"
        if ort_cuda():
            return "onnxruntime", gpu, f"no TensorRT ({why_not}); ONNX Runtime has CUDA"
        return "onnxruntime", "cpu", f"no TensorRT ({why_not}) and no ONNX Runtime CUDA"
    if device != "auto":
        return backend, device, why
    if backend == "tensorrt":
        return backend, 0, f"{why}, on GPU 0"
    if backend == "torch":
        from .torch_backend import cuda_available as torch_cuda

        on_gpu = torch_cuda()
        return (
            backend,
            0 if on_gpu else "cpu",
            (f"{why}, {'on GPU 0' if on_gpu else 'on the CPU: PyTorch sees no CUDA device'}"),
        )
    from .onnxruntime_backend import cuda_available as ort_cuda

    on_gpu = ort_cuda()
    return (
        backend,
        0 if on_gpu else "cpu",
        (f"{why}, {'on GPU 0' if on_gpu else 'on the CPU: ONNX Runtime has no CUDA here'}"),
    )


def open_backend(
    model_path: str | Path, backend: str = "auto", device: int | str = "auto", **options
) -> tuple[Backend, str]:
    """Load ``model_path`` on the chosen backend, logging the choice and why.

    ``options`` go to the backend: ``threads``, ``spin`` (onnxruntime), ``precision``,
    ``cache_dir``, ``build_policy``, ``cuda_graph`` (tensorrt), ``camera_size``, ``net_size``
    (torch).
    """
    path = Path(model_path)
    if not path.exists():
        raise BackendError(f"model not found: {path}")
    name, device, reason = choose_backend(path, backend, device)
    known = {
        "onnxruntime": ("threads", "spin"),
        "tensorrt": ("precision", "cache_dir", "build_policy", "cuda_graph", "workspace_gb"),
        "torch": ("camera_size", "net_size", "upsample"),
    }[name]
    kwargs = {k: v for k, v in options.items() if k in known and v is not None}
    if name == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeBackend

        loaded: Backend = OnnxRuntimeBackend(path, device=device, **kwargs)
    elif name == "tensorrt":
        from .tensorrt_backend import TensorRTBackend

        if device == "cpu":
            raise BackendError("the tensorrt backend runs on a CUDA GPU, not on device cpu")
        try:
            loaded = TensorRTBackend(path, device=int(device), **kwargs)
        except BackendError as err:
            if backend != "auto" or path.suffix.lower() != ".onnx":
                raise
            from .onnxruntime_backend import cuda_available as ort_cuda

            log.warning("TensorRT failed (%s); backend auto falls back to ONNX Runtime", err)
            ort_options = {
                k: v for k, v in options.items() if k in ("threads", "spin") and v is not None
            }
            loaded, reason = open_backend(
                path, "onnxruntime", device if ort_cuda() else "cpu", **ort_options
            )
            return loaded, f"TensorRT failed ({err}); ONNX Runtime instead ({reason})"
    else:
        from .torch_backend import TorchBackend

        loaded = TorchBackend(path, device=device, **kwargs)
    log.info("backend %s on %s for %s (%s)", loaded.name, loaded.device, path.name, reason)
    return loaded, reason


class Segmenter:
    """Segment camera frames of any size with an exported model on the best available runtime.

    Args:
        model_path: exported .onnx, TensorRT .engine/.plan (with its .json sidecar), or a
            training checkpoint .pt (PyTorch backend).
        backend: "auto", "tensorrt", "onnxruntime" or "torch".
        device: "auto" (GPU 0 when the runtime can use one, else the CPU), "cpu" (or -1), or
            a CUDA device index.
        refine: depth-aware refinement of labels and confidence (:mod:`.refine`), applied by
            :meth:`segment` to frames that come with aligned depth; None (default): off. May
            be changed between frames.
        **options: backend options (see ``open_backend``).

    Raises:
        BackendError: the model cannot be loaded on the chosen backend (readable reason).
        ModelError: its metadata is unusable (see ``ModelMetadata.problem``).
    """

    def __init__(
        self,
        model_path: str | Path,
        backend: str = "auto",
        device: int | str = "auto",
        refine: RefineConfig | None = None,
        **options,
    ):
        self.refine = refine
        self.backend, self.reason = open_backend(model_path, backend, device, **options)
        self.metadata = self.backend.metadata
        problem = self.metadata.problem()
        if problem:
            self.backend.close()
            raise ModelError(f"{Path(model_path).name}: {problem}")
        self.classes = ClassSet(
            names=tuple(self.metadata.class_names),
            palette=np.array(self.metadata.palette, dtype=np.uint8),
        )
        self.camera_size = tuple(self.metadata.camera_size)
        self.frame_size = self.backend.frame_size  # None: any size

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.backend.outputs

    def warm_up(self) -> Result:
        """Segment one black frame at the model's camera size, with every output and with
        labels + confidence alone (a backend may run those apart): allocations, engine set-up
        and the output contract are checked before the first real frame.

        Raises:
            ModelError: outputs of the wrong dtype or shape; BackendError: the run failed.
        """
        w, h = self.camera_size
        try:
            frame = np.zeros((h, w, 3), np.uint8)
            self.segment(frame, outputs=CORE_OUTPUTS)
            return self.segment(frame)
        except LowlightError:
            raise
        except Exception as err:  # runtimes raise their own types: one readable line
            raise BackendError(
                f"warm-up run of {self.metadata.model} on {self.backend.name} failed: "
                f"{type(err).__name__}: {one_line(err)}"
            ) from err

    def segment(
        self,
        rgb: np.ndarray,
        depth: np.ndarray | None = None,
        outputs: Collection[str] | None = None,
    ) -> Result:
        """Segment one RGB frame of any size.

        Args:
            rgb: (H, W, 3) uint8 RGB (not BGR: convert first).
            depth: optional aligned depth (H, W) (any unit; 0 / NaN = none), returned in the
                Result for consumers such as the point cloud, and the guide of ``refine`` when
                that is on; the graphs do not consume it.
            outputs: the graph outputs wanted (None: all). Labels and confidence always come;
                reflectance / illumination not asked for may be None in the Result (ONNX
                Runtime then skips computing them: the node asks only for what is subscribed).

        Raises:
            FrameError: wrong dtype/shape, depth of another size, or a size a fixed-size
                (format 1) model was not exported for.
            ModelError: the model returned outputs of the wrong dtype or shape.
        """
        t0 = time.perf_counter()
        if (
            not isinstance(rgb, np.ndarray)
            or rgb.dtype != np.uint8
            or rgb.ndim != 3
            or (rgb.shape[2] != 3)
        ):
            desc = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
            raise FrameError(f"expected an (H, W, 3) uint8 RGB frame, got {desc}")
        h, w = rgb.shape[:2]
        if depth is not None and depth.shape[:2] != (h, w):
            raise FrameError(f"depth is {depth.shape[1]}x{depth.shape[0]} but the frame is {w}x{h}")
        if self.frame_size is not None and (w, h) != self.frame_size:
            fw, fh = self.frame_size
            raise FrameError(
                f"frame is {w}x{h} but this model only takes {fw}x{fh} (exported by "
                "lowlight_perception 0.1); export it again (lowlight export) to take any size"
            )
        frame = np.ascontiguousarray(rgb)  # no copy for a contiguous frame
        t1 = time.perf_counter()
        out = self.backend.execute(frame, outputs)
        t2 = time.perf_counter()
        for name, value in out.items():
            want = (h, w, 3) if name == "reflectance" else (h, w)
            if value.dtype != np.uint8 or value.shape != want:
                raise ModelError(
                    f"model output {name} is {value.dtype} {value.shape} for a {w}x{h} frame, "
                    f"expected uint8 {want}"
                )
        labels, confidence = out["labels"], out["confidence"]
        if self.refine is not None and depth is not None:
            labels, confidence = refine_labels(
                labels,
                confidence,
                depth,
                out.get("reflectance"),
                self.refine,
                self.classes.num_classes,
            )
        result = Result(labels, confidence, out.get("reflectance"), out.get("illumination"), depth)
        t3 = time.perf_counter()
        result.timings = {
            "preprocess": 1000 * (t1 - t0),
            "execute": 1000 * (t2 - t1),
            "postprocess": 1000 * (t3 - t2),  # with the refinement, when it ran
            "total": 1000 * (t3 - t0),
        }
        return result

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
