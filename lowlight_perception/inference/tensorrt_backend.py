"""TensorRT backend: the fused ONNX graph as a cached TensorRT engine on one CUDA stream.

Why: on a Jetson or a desktop GPU the fused graph (uint8 frame in, uint8 images out) runs fastest
as a TensorRT engine, and because resize, softmax, argmax and casts are inside it, the host only
copies bytes: one host->device copy of the frame, ``execute_async_v3``, one device->host copy per
output, one stream synchronisation. Buffers are allocated once (device memory and pinned host
memory, through cuda-python, not torch); outputs are numpy views of the pinned buffers, valid
until the next ``execute`` or ``close``. Optionally the copy + execute + copy sequence is captured
once as a CUDA graph after a warm-up run and replayed per frame (fewer launches on a Jetson CPU).

Loading follows named steps, as isaac_ros_tensor_rt does (``_init_cuda``,
``_load_or_build_engine`` / ``_load_engine_file``, ``_setup_bindings``, ``_capture_graph``),
after parameters are validated once in the constructor. Unlike it, plans are cached by
``engine_cache`` (keyed on ONNX hash, TensorRT version, GPU, precision and shape profile; built
only as the build policy allows) and the precision logged is the one the builder config really
holds.

Precision, as the TensorRT 10 API has it: "fp32" builds a strongly typed network (the
recommended mode since TensorRT 10.12: the graph's own fp32 types, no precision flags) with TF32
disabled (TensorRT enables it by default). "fp16" needs ``BuilderFlag.FP16`` on a weakly typed
network: deprecated since 10.12 ("superseded by strong typing") but working throughout TensorRT
10; TensorRT 11 removed it, and there "fp16" fails with a clear error (a strongly typed fp16
graph is not exported yet) while "fp32" builds.

Status: written against the TensorRT 10 Python API (names checked against the 10.16 bindings)
and cuda-python's runtime bindings, and NOT yet run on a GPU with TensorRT; the GPU tests skip
elsewhere. INT8 is not implemented.

tensorrt and cuda-python are imported lazily, so importing this module costs nothing on a
machine without them; ``available()`` says whether they and a CUDA device are present.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import one_line
from ..metadata import ModelMetadata
from .backend import INPUT_NAME, OUTPUT_NAMES, BackendError, ModelError
from .engine_cache import (
    BUILD_POLICIES,
    ENGINE_SUFFIXES,
    PRECISIONS,
    CacheEvent,
    EngineKey,
    load_engine_file,
    load_or_build,
    read_onnx_metadata,
    read_sidecar,
)

log = logging.getLogger("lowlight_perception.inference")

INSTALL_HINT = "pip install '.[tensorrt-cu12]' (CUDA 12 driver) or '.[tensorrt-cu13]' (CUDA 13)"
PROFILE_MIN = (32, 32)  # (W, H) smallest frame an engine of an any-size graph takes
PROFILE_MAX = (1920, 1080)  # largest: the D435i's biggest colour profile (or the camera size)
# What each precision means for the builder config (checked against the config's flags).
PRECISION_TEXT = {
    "fp16": "fp16 (FP16 kernels allowed; layers kept in fp32 may use TF32)",
    "fp32": "fp32 (strongly typed, TF32 disabled)",
}


@dataclass(frozen=True)
class IOTensor:
    """One engine input or output as TensorRT reports it."""

    name: str
    mode: str  # "input" or "output"
    shape: tuple[int, ...]
    dtype: str  # e.g. "uint8"

    def __str__(self) -> str:
        return f"{self.name} {self.dtype} {self.shape}"


def _import_runtime() -> tuple[Any, Any]:
    """(tensorrt, cudart) modules.

    Raises:
        BackendError: naming the missing package and how to install it.
    """
    try:
        import tensorrt as trt
    except Exception as err:  # ImportError, or OSError when libnvinfer cannot be loaded
        raise BackendError(
            f"TensorRT unavailable: cannot import tensorrt ({one_line(err)}); {INSTALL_HINT}"
        ) from err
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except Exception as err:
            raise BackendError(
                f"TensorRT unavailable: cuda-python is not installed ({one_line(err)}); "
                f"{INSTALL_HINT}"
            ) from err
    return trt, cudart


def _error_text(cudart: Any, err: Any) -> str:
    try:
        name = cudart.cudaGetErrorName(err)[1]
        text = cudart.cudaGetErrorString(err)[1]
        return f"{name.decode()} ({text.decode()})"
    except Exception:  # keep the original error readable whatever the bindings do
        return repr(err)


def _check(cudart: Any, result: Any, what: str) -> Any:
    """Unpack a cuda-python call's ``(error, *values)``; raise BackendError on an error.

    Returns:
        None, the single value, or the tuple of values.
    """
    if not isinstance(result, tuple):
        result = (result,)
    err, values = result[0], result[1:]
    if err != cudart.cudaError_t.cudaSuccess:
        raise BackendError(f"{what} failed: {_error_text(cudart, err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _device_count(cudart: Any) -> int:
    try:
        return int(_check(cudart, cudart.cudaGetDeviceCount(), "cudaGetDeviceCount"))
    except BackendError as err:
        raise BackendError(f"no usable CUDA device: {err}") from err


def available(device: int = 0) -> tuple[bool, str]:
    """Whether this backend can run here: (True, "") or (False, a readable reason).

    Args:
        device: the CUDA device index that would be used.
    """
    try:
        _, cudart = _import_runtime()
        count = _device_count(cudart)
    except BackendError as err:
        return False, str(err)
    if count < 1:
        return False, "no CUDA device found"
    if not 0 <= device < count:
        return False, f"CUDA device {device} asked for, {count} present"
    try:
        _check(cudart, cudart.cudaGetDeviceProperties(device), f"CUDA device {device}")
    except BackendError as err:
        return False, str(err)
    return True, ""


def _make_logger(trt: Any) -> Any:
    """A TensorRT logger forwarding to Python logging and keeping the error messages."""

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            sev = trt.ILogger.Severity
            if severity in (sev.INTERNAL_ERROR, sev.ERROR):
                self.errors.append(one_line(msg))
                log.error("TensorRT: %s", msg)
            elif severity == sev.WARNING:
                log.warning("TensorRT: %s", msg)
            elif severity == sev.INFO:
                log.debug("TensorRT: %s", msg)
            # VERBOSE (thousands of lines per build) is dropped

    return _Logger()


class TensorRTBackend:
    """A fused lowlight graph as a TensorRT engine on one CUDA device and stream.

    Args:
        model_path: an exported ``.onnx`` (the engine is loaded from the cache or built) or a
            ``.engine`` / ``.plan`` with its ``.json`` sidecar (from ``lowlight build-engine``).
        device: CUDA device index.
        precision: "fp16" (default) or "fp32" (TF32 off) when building from ONNX; an engine
            file keeps the precision it was built with.
        cache_dir: where built engines go; default: next to the ONNX, or the user cache when
            that directory is read-only (``engine_cache.cache_dirs``).
        build_policy: "if_missing" (build when no valid engine is cached), "never" (no valid
            cached engine is an error: a read-only image never builds by surprise) or "always".
        cuda_graph: capture copy + execute + copy as a CUDA graph after a warm-up run.
        workspace_gb: builder workspace memory limit in GiB.

    Attributes:
        name: "tensorrt".
        device: e.g. "cuda:0 (NVIDIA H100 80GB HBM3, sm90)".
        metadata: the model's ModelMetadata (from the ONNX, or the engine's sidecar).
        outputs: output names, in OUTPUT_NAMES order.
        io: every engine tensor (name, mode, shape, dtype).
        precision: "fp16" or "fp32"; ``precision_text`` says what the builder was told.
        engine_path: the plan on disk.
        cache_event: what the cache did ("hit", "built (missing)", ...).
        cuda_graph: whether a CUDA graph is in use (capture can fall back, with a log line).

    Raises:
        BackendError: bad parameters, no TensorRT / cuda-python / CUDA device, unreadable model,
            failed build, engine I/O not matching the metadata.
    """

    name = "tensorrt"

    def __init__(
        self,
        model_path: str | Path,
        *,
        device: int = 0,
        precision: str = "fp16",
        cache_dir: str | Path | None = None,
        build_policy: str = "if_missing",
        cuda_graph: bool = False,
        workspace_gb: float = 2.0,
    ) -> None:
        # everything close() touches exists before anything can fail
        self._closed = True
        self._stream: Any = None
        self._graph_exec: Any = None
        self._device_ptrs: list[int] = []
        self._host_ptrs: list[int] = []
        self._host: dict[str, np.ndarray] = {}  # views of _flat at the current shape
        self._flat: dict[str, np.ndarray] = {}  # pinned buffers for the largest frame
        self._order: list[tuple[str, int, int]] = []  # (name, device ptr, nbytes now)
        self._shape: tuple[int, int, int] | None = None
        self._context: Any = None
        self.engine: Any = None
        self._runtime: Any = None
        self._cudart: Any = None

        path = Path(model_path)
        self._validate_params(path, device, precision, build_policy, workspace_gb)
        if path.suffix.lower() in ENGINE_SUFFIXES:
            read_sidecar(path)  # a missing sidecar is a readable error before any GPU work
        self._trt, self._cudart = _import_runtime()
        self._closed = False
        try:
            self._init_cuda(device)
            if path.suffix.lower() == ".onnx":
                self._load_or_build_engine(path, precision, cache_dir, build_policy, workspace_gb)
            else:
                self._load_engine_file(path)
            self._setup_bindings()
            self.cuda_graph = bool(cuda_graph) and self._capture_graph()
        except BackendError:
            self.close()
            raise
        except Exception as err:  # TensorRT/cuda-python raise many types; one readable line
            self.close()
            raise BackendError(
                f"TensorRT setup of {path.name} failed: {type(err).__name__}: {one_line(err)}"
            ) from err
        log.info(
            "TensorRT engine %s on %s: %s, %s, cuda graph %s",
            self.engine_path.name,
            self.device,
            self.cache_event,
            self.precision_text,
            "on" if self.cuda_graph else "off",
        )

    # -- named steps -----------------------------------------------------------------------

    @staticmethod
    def _validate_params(
        path: Path, device: int, precision: str, build_policy: str, workspace_gb: float
    ) -> None:
        """Check the arguments once, before touching TensorRT or the GPU."""
        if precision not in PRECISIONS:
            extra = " (INT8 is not implemented)" if str(precision).lower() == "int8" else ""
            raise BackendError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}{extra}"
            )
        if not isinstance(device, int) or isinstance(device, bool) or device < 0:
            raise BackendError(f"device must be a CUDA device index >= 0, got {device!r}")
        if build_policy not in BUILD_POLICIES:
            raise BackendError(
                f"build_policy must be one of {', '.join(BUILD_POLICIES)}, got {build_policy!r}"
            )
        if not workspace_gb > 0:
            raise BackendError(f"workspace_gb must be > 0, got {workspace_gb}")
        if path.suffix.lower() not in (".onnx", *ENGINE_SUFFIXES):
            raise BackendError(f"{path}: expected an .onnx or a TensorRT .engine/.plan")
        if not path.is_file():
            raise BackendError(f"model not found: {path}")

    def _init_cuda(self, device: int) -> None:
        """Select the device, read its name and compute capability, create the stream."""
        cudart, trt = self._cudart, self._trt
        count = _device_count(cudart)
        if not 0 <= device < count:
            raise BackendError(f"CUDA device {device} asked for, {count} present")
        _check(cudart, cudart.cudaSetDevice(device), f"cudaSetDevice({device})")
        prop = _check(cudart, cudart.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
        name = prop.name
        name = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
        self.gpu_name = name.rstrip("\x00").strip()
        self.compute_capability = (int(prop.major), int(prop.minor))
        major, minor = self.compute_capability
        self.device = f"cuda:{device} ({self.gpu_name}, sm{major}{minor})"
        self._stream = _check(  # non-blocking: no implicit sync with the legacy default stream
            cudart,
            cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking),
            "cudaStreamCreateWithFlags",
        )
        self._logger = _make_logger(trt)
        self._runtime = trt.Runtime(self._logger)
        self.trt_version = str(trt.__version__)

    def _load_or_build_engine(
        self,
        path: Path,
        precision: str,
        cache_dir: str | Path | None,
        build_policy: str,
        workspace_gb: float,
    ) -> None:
        """Engine of an ONNX: from the cache, or built (and cached)."""
        trt = self._trt
        if precision == "fp16" and not hasattr(trt.BuilderFlag, "FP16"):
            raise BackendError(
                f"TensorRT {trt.__version__} has no FP16 builder flag (TensorRT 11 builds "
                "strongly typed networks only): use precision fp32, or TensorRT 10 for fp16"
            )
        self.metadata: ModelMetadata = read_onnx_metadata(path)
        any_size = self.metadata.format_version >= 2  # format 1 graphs have a fixed size
        key = EngineKey.for_onnx(
            path,
            trt_version=trt.__version__,
            gpu_name=self.gpu_name,
            compute_capability=self.compute_capability,
            precision=precision,
            profile=profile_shapes(self.metadata.camera_size) if any_size else (),
        )
        self.engine, self.cache_event = load_or_build(
            path,
            key,
            build=lambda: self._build_plan(path, precision, workspace_gb),
            deserialize=self._deserialize,
            metadata=self.metadata,
            cache_dir=cache_dir,
            policy=build_policy,
        )
        self.engine_path = self.cache_event.path
        self.precision = precision
        self.precision_text = PRECISION_TEXT[precision]

    def _load_engine_file(self, path: Path) -> None:
        """Engine given directly: its sidecar supplies metadata and build key."""
        self.engine, info = load_engine_file(
            path,
            self._deserialize,
            trt_version=self._trt.__version__,
            compute_capability=self.compute_capability,
            gpu_name=self.gpu_name,
        )
        self.metadata = info.metadata
        self.engine_path = path
        self.cache_event = CacheEvent("hit", path)
        self.precision = info.key.precision
        self.precision_text = PRECISION_TEXT[self.precision]

    def _build_plan(self, path: Path, precision: str, workspace_gb: float) -> bytes:
        """Parse the ONNX and build a serialized plan.

        Raises:
            BackendError: with the parser's or builder's messages.
        """
        trt = self._trt
        self._logger.errors.clear()
        builder = trt.Builder(self._logger)
        network = builder.create_network(network_flags(trt, precision))
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse_from_file(str(path)):
            errors = [one_line(parser.get_error(i)) for i in range(parser.num_errors)]
            raise BackendError(
                f"TensorRT cannot parse {path.name}: {'; '.join(errors) or 'no parser message'}"
            )
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
        frame = network.get_input(0)
        if any(int(d) < 0 for d in frame.shape):  # any-size graph: one shape profile
            low, opt, high = profile_shapes(self.metadata.camera_size)
            profile = builder.create_optimization_profile()
            profile.set_shape(frame.name, low, opt, high)
            config.add_optimization_profile(profile)
        if precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        else:
            config.clear_flag(trt.BuilderFlag.TF32)  # TensorRT allows TF32 by default
        fp16 = hasattr(trt.BuilderFlag, "FP16") and config.get_flag(trt.BuilderFlag.FP16)
        tf32 = config.get_flag(trt.BuilderFlag.TF32)
        if (precision == "fp16") != bool(fp16) or (precision == "fp32" and tf32):
            raise BackendError(
                f"builder config does not hold {precision} (FP16 {fp16}, TF32 {tf32}); refusing "
                "to build an engine whose precision would be misreported"
            )
        log.info(
            "building TensorRT %s engine for %s: %s, workspace %.1f GiB (large models: minutes)",
            trt.__version__,
            path.name,
            PRECISION_TEXT[precision],
            workspace_gb,
        )
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            why = "; ".join(self._logger.errors[-3:]) or "no message; see the TensorRT log"
            raise BackendError(f"TensorRT could not build {path.name}: {why}")
        return bytes(plan)

    def _deserialize(self, data: bytes) -> Any:
        """Plan bytes -> ICudaEngine (None when TensorRT rejects them)."""
        return self._runtime.deserialize_cuda_engine(data)

    def _setup_bindings(self) -> None:
        """Check the engine's I/O against the metadata, allocate device and pinned host
        buffers once (for the largest frame its shape profile takes), and bind them to a new
        execution context at the metadata's camera size.

        Raises:
            BackendError: naming every tensor that differs from the fused-graph contract.
        """
        trt, engine = self._trt, self.engine
        w, h = self.metadata.camera_size
        tensors = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            shape = tuple(int(d) for d in engine.get_tensor_shape(name))
            dtype = engine.get_tensor_dtype(name)
            tensors.append(
                IOTensor(name, "input" if is_input else "output", shape, _dtype_name(dtype))
            )
        self.io = tuple(tensors)
        problems = _io_problems(self.io, self.metadata.camera_size)
        if problems:
            raise ModelError(
                f"engine {self.engine_path.name} does not match its metadata "
                f"({self.metadata.model}, camera {w}x{h}): {'; '.join(problems)}"
            )
        names = {t.name for t in self.io if t.mode == "output"}
        self.outputs = tuple(n for n in OUTPUT_NAMES if n in names)
        frame = next(t for t in self.io if t.mode == "input")
        if any(d < 0 for d in frame.shape):
            low, _, high = (
                tuple(int(d) for d in s) for s in engine.get_tensor_profile_shape(INPUT_NAME, 0)
            )
            self.frame_size = None
            self.size_range = ((low[1], low[0]), (high[1], high[0]))
        else:
            self.frame_size = (frame.shape[1], frame.shape[0])
            self.size_range = (self.frame_size, self.frame_size)
        max_w, max_h = self.size_range[1]

        self._context = engine.create_execution_context()
        if self._context is None:
            raise BackendError("TensorRT could not create an execution context (GPU memory?)")
        for tensor in (t for t in self.io if t.mode == "input"):
            self._allocate(tensor.name, max_h * max_w * 3)
        for name in self.outputs:
            self._allocate(name, max_h * max_w * (3 if name == "reflectance" else 1))
        self._set_shape(h, w)

    def _allocate(self, name: str, nbytes: int) -> None:
        """Device and pinned host buffers of ``nbytes`` for tensor ``name`` (all uint8), bound
        to the context once: shapes change, addresses never do."""
        cudart = self._cudart
        device_ptr = _check(cudart, cudart.cudaMalloc(nbytes), f"cudaMalloc({name})")
        self._device_ptrs.append(int(device_ptr))
        host_ptr = _check(cudart, cudart.cudaMallocHost(nbytes), f"cudaMallocHost({name})")
        self._host_ptrs.append(int(host_ptr))
        buffer = (ctypes.c_uint8 * nbytes).from_address(int(host_ptr))
        self._flat[name] = np.ctypeslib.as_array(buffer)
        self._order.append((name, int(device_ptr), 0))
        if not self._context.set_tensor_address(name, int(device_ptr)):
            raise BackendError(f"TensorRT refused the address of tensor {name}")

    def _set_shape(self, height: int, width: int) -> None:
        """Make the context run frames of ``height`` x ``width``: input shape, output shapes
        and host views; a CUDA graph (captured for one shape) is captured again.

        Raises:
            BackendError: a size outside the engine's shape profile.
        """
        (low_w, low_h), (high_w, high_h) = self.size_range
        if not (low_w <= width <= high_w and low_h <= height <= high_h):
            raise BackendError(
                f"frame {width}x{height} is outside this engine's range {low_w}x{low_h} .. "
                f"{high_w}x{high_h}"
            )
        if not self._context.set_input_shape(INPUT_NAME, (height, width, 3)):
            raise BackendError(f"TensorRT refused input shape ({height}, {width}, 3)")
        order = []
        for name, device_ptr, _ in self._order:
            shape = tuple(int(d) for d in self._context.get_tensor_shape(name))
            nbytes = int(np.prod(shape))
            self._host[name] = self._flat[name][:nbytes].reshape(shape)
            order.append((name, device_ptr, nbytes))
        self._order = order
        self._shape = (height, width, 3)
        if self._graph_exec is not None:
            self._cudart.cudaGraphExecDestroy(self._graph_exec)
            self._graph_exec = None
            self.cuda_graph = self._capture_graph()

    def _capture_graph(self) -> bool:
        """Warm up, then capture copy + execute + copy as a CUDA graph.

        Returns:
            True when a graph is ready; False (with one log line) when capture failed and
            ``execute`` uses plain stream launches instead.
        """
        cudart = self._cudart
        self._host[INPUT_NAME][...] = 0
        self._enqueue()  # warm-up outside capture: TensorRT finishes deferred setup here
        _check(cudart, cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        graph = None
        try:
            _check(cudart, cudart.cudaStreamBeginCapture(self._stream, mode), "begin capture")
            try:
                self._enqueue()
            finally:  # always end capture, or the stream stays unusable
                graph = _check(cudart, cudart.cudaStreamEndCapture(self._stream), "end capture")
            self._graph_exec = _check(
                cudart, cudart.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate"
            )
            _check(cudart, cudart.cudaGraphLaunch(self._graph_exec, self._stream), "graph launch")
            _check(cudart, cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        except BackendError as err:
            log.warning("CUDA graph capture failed, running without it: %s", err)
            if self._graph_exec is not None:
                cudart.cudaGraphExecDestroy(self._graph_exec)
                self._graph_exec = None
            return False
        finally:
            if graph is not None:
                cudart.cudaGraphDestroy(graph)  # the instantiated graph no longer needs it
        return True

    # -- Backend protocol ------------------------------------------------------------------

    def execute(
        self, frame: np.ndarray, outputs: Collection[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Run the engine on one uint8 RGB frame (H, W, 3) of any size its shape profile
        takes (a change of size re-shapes the context once, then runs as fast). Every output
        is computed whatever ``outputs`` asks: on a GPU the upsampling costs little.

        Returns:
            {output name: uint8 array}; the arrays are views of pinned buffers that the next
            ``execute`` (or ``close``) overwrites: copy what you keep.

        Raises:
            BackendError: closed backend, wrong frame shape or dtype, CUDA or TensorRT failure.
        """
        if self._closed:
            raise BackendError("TensorRT backend is closed")
        ok = isinstance(frame, np.ndarray) and frame.dtype == np.uint8
        if not ok or frame.ndim != 3 or frame.shape[2] != 3:
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame)
            raise BackendError(f"frame must be uint8 (H, W, 3), got {got}")
        if frame.shape != self._shape:
            self._set_shape(frame.shape[0], frame.shape[1])
        cudart = self._cudart
        np.copyto(self._host[INPUT_NAME], frame)
        if self._graph_exec is not None:
            _check(cudart, cudart.cudaGraphLaunch(self._graph_exec, self._stream), "graph launch")
        else:
            self._enqueue()
        _check(cudart, cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return {name: self._host[name] for name in self.outputs}

    def _enqueue(self) -> None:
        """Queue frame copy, inference and output copies on the stream (no synchronisation)."""
        cudart = self._cudart
        to_device = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        to_host = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name, device_ptr, nbytes in self._order:
            if name == INPUT_NAME:
                host_ptr = self._host[name].ctypes.data
                result = cudart.cudaMemcpyAsync(
                    device_ptr, host_ptr, nbytes, to_device, self._stream
                )
                _check(cudart, result, "copy frame to device")
        if not self._context.execute_async_v3(int(self._stream)):
            why = "; ".join(self._logger.errors[-3:]) or "see the TensorRT log"
            raise BackendError(f"TensorRT execute_async_v3 failed: {why}")
        for name, device_ptr, nbytes in self._order:
            if name != INPUT_NAME:
                host_ptr = self._host[name].ctypes.data
                result = cudart.cudaMemcpyAsync(host_ptr, device_ptr, nbytes, to_host, self._stream)
                _check(cudart, result, f"copy {name} to host")

    def close(self) -> None:
        """Free the CUDA graph, context, engine, buffers and stream. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        cudart = self._cudart
        if self._stream is not None:
            cudart.cudaStreamSynchronize(self._stream)
        if self._graph_exec is not None:
            cudart.cudaGraphExecDestroy(self._graph_exec)
            self._graph_exec = None
        self._context = None  # TensorRT objects go before the memory they point into
        self.engine = None
        self._runtime = None
        self._host.clear()
        self._flat.clear()
        for ptr in self._device_ptrs:
            cudart.cudaFree(ptr)
        for ptr in self._host_ptrs:
            cudart.cudaFreeHost(ptr)
        self._device_ptrs.clear()
        self._host_ptrs.clear()
        self._order.clear()
        if self._stream is not None:
            cudart.cudaStreamDestroy(self._stream)
            self._stream = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # at interpreter exit the CUDA bindings may already be gone
            pass

    def __enter__(self) -> TensorRTBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _dtype_name(dtype: Any) -> str:
    """TensorRT DataType -> numpy-style name ("uint8", "float", "half", ...)."""
    name = getattr(dtype, "name", str(dtype).rsplit(".", 1)[-1])
    return str(name).lower()


def network_flags(trt: Any, precision: str) -> int:
    """``create_network`` flags for ``precision``: strongly typed for fp32 (TensorRT 10's
    recommended mode), weakly typed (0; explicit batch is the only mode) for fp16, which
    needs the FP16 builder flag."""
    if precision == "fp32" and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return 0


def profile_shapes(camera_size: tuple[int, int]) -> tuple[tuple[int, int, int], ...]:
    """(min, opt, max) input shapes (H, W, 3) of the shape profile for an any-size graph made
    for ``camera_size``: from PROFILE_MIN to PROFILE_MAX (or the camera size, if larger),
    tuned for the camera size."""
    w, h = camera_size
    high_w, high_h = max(PROFILE_MAX[0], w), max(PROFILE_MAX[1], h)
    low_w, low_h = min(PROFILE_MIN[0], w), min(PROFILE_MIN[1], h)
    return (low_h, low_w, 3), (h, w, 3), (high_h, high_w, 3)


def _io_problems(io: tuple[IOTensor, ...], camera_size: tuple[int, int]) -> list[str]:
    """Every way the engine's tensors differ from the fused-graph contract: height and width
    dynamic (-1) or, for a fixed graph, the camera size; uint8 everywhere."""
    w, h = camera_size
    expected = {
        INPUT_NAME: (h, w, 3),
        "labels": (h, w),
        "confidence": (h, w),
        "reflectance": (h, w, 3),
        "illumination": (h, w),
    }
    problems = []
    inputs = [t for t in io if t.mode == "input"]
    outputs = [t for t in io if t.mode == "output"]
    if [t.name for t in inputs] != [INPUT_NAME]:
        problems.append(f"inputs {[t.name for t in inputs]}, expected [{INPUT_NAME!r}]")
    unknown = [t.name for t in outputs if t.name not in OUTPUT_NAMES]
    if unknown:
        problems.append(f"unknown outputs {unknown} (known: {', '.join(OUTPUT_NAMES)})")
    if "labels" not in {t.name for t in outputs}:
        problems.append("no 'labels' output")
    for t in io:
        if t.name not in expected:
            continue
        want = expected[t.name]
        dynamic = len(t.shape) == len(want) and all(d == -1 for d in t.shape[:2])
        if dynamic:
            if t.shape[2:] != want[2:]:
                problems.append(f"{t.name} shape {t.shape}, expected (-1, -1, {want[2]})")
        elif t.shape != want:
            problems.append(f"{t.name} shape {t.shape}, expected {want} or dynamic H, W")
        if t.dtype != "uint8":
            problems.append(f"{t.name} dtype {t.dtype}, expected uint8")
    return problems


def describe(backend: TensorRTBackend) -> str:
    """Multi-line summary of a loaded engine (what ``lowlight build-engine`` prints)."""
    event = backend.cache_event
    built = f" in {event.build_seconds:.1f} s" if event.status == "built" else ""
    lines = [
        f"engine: {backend.engine_path}",
        f"cache: {event}{built}"
        + ("" if event.cached else " (not cached: directory not writable)"),
        f"precision: {backend.precision_text}",
        f"TensorRT {backend.trt_version} on {backend.device}",
        f"model: {backend.metadata.model}, camera {backend.metadata.camera_size[0]}x"
        f"{backend.metadata.camera_size[1]}, net {backend.metadata.net_size[0]}x"
        f"{backend.metadata.net_size[1]}",
        "frames: {}x{} .. {}x{}".format(*backend.size_range[0], *backend.size_range[1]),
    ]
    lines += [f"{t.mode:6s}  {t}" for t in backend.io]
    return "\n".join(lines)
