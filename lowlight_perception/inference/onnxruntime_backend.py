"""ONNX Runtime backend: CPU everywhere, CUDA where onnxruntime-gpu is installed.

On CUDA the frame is bound once per call and the outputs are bound to host memory through IO
binding, so ONNX Runtime does the transfers inside one ``run`` and the host does no extra copies.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

import numpy as np

from ..errors import one_line
from ..metadata import MetadataError, ModelMetadata
from .backend import CORE_OUTPUTS, INPUT_NAME, OUTPUT_NAMES, BackendError, ModelError
from .graph_subset import subset_model

log = logging.getLogger("lowlight_perception.inference")


def cuda_available() -> bool:
    """True when onnxruntime offers the CUDA execution provider (onnxruntime-gpu)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def session_device(providers: list[str], asked: int | str) -> str:
    """The device a session really runs on: ONNX Runtime silently drops a CUDA provider that
    fails to load and runs on the CPU, so read ``session.get_providers()``, not the request."""
    if asked != "cpu" and "CUDAExecutionProvider" in providers:
        return f"cuda:{int(asked)}"
    return "cpu"


OUTPUT_RANKS = {"labels": 2, "confidence": 2, "reflectance": 3, "illumination": 2}


def check_graph_io(
    meta: ModelMetadata,
    inputs: list[tuple[str, str, list]],
    outputs: list[tuple[str, str, list]],
    path: Path,
) -> tuple[tuple[str, ...], tuple[int, int] | None]:
    """Check a graph's I/O against the fused-graph contract.

    Args:
        meta: the graph's metadata.
        inputs, outputs: (name, type, shape) as ONNX Runtime reports them; a dynamic
            dimension is a string (or None).
        path: the file, for messages.

    Returns:
        (output names in order, the (W, H) the input is fixed at or None for any size).

    Raises:
        ModelError: naming what differs.
    """
    if len(inputs) != 1 or inputs[0][0] != INPUT_NAME:
        raise ModelError(f"{path}: expected one input named {INPUT_NAME!r}, got {inputs}")
    _, dtype, shape = inputs[0]
    fixed = [d if isinstance(d, int) else None for d in shape]
    if dtype != "tensor(uint8)" or len(shape) != 3 or fixed[2] != 3:
        raise ModelError(
            f"{path}: input {INPUT_NAME} is {dtype} {list(shape)}, expected uint8 (H, W, 3)"
        )
    frame_size = None
    if fixed[0] is not None and fixed[1] is not None:
        frame_size = (fixed[1], fixed[0])
        if frame_size != tuple(meta.camera_size):
            raise ModelError(
                f"{path}: input {INPUT_NAME} is fixed at {frame_size[0]}x{frame_size[1]} but "
                f"the metadata says {meta.camera_size[0]}x{meta.camera_size[1]}"
            )
    names = [name for name, _, _ in outputs]
    unknown = [o for o in names if o not in OUTPUT_NAMES]
    if unknown or not {"labels", "confidence"} <= set(names) or len(set(names)) != len(names):
        raise ModelError(f"{path}: outputs {names} do not follow the lowlight contract")
    for name, kind, dims in outputs:
        channels_ok = name != "reflectance" or (len(dims) == 3 and dims[2] in (3, None, "3"))
        if kind != "tensor(uint8)" or len(dims) != OUTPUT_RANKS[name] or not channels_ok:
            want = "(H, W, 3)" if name == "reflectance" else "(H, W)"
            raise ModelError(f"{path}: output {name} is {kind} {list(dims)}, expected uint8 {want}")
    return tuple(names), frame_size


class _Session:
    """One ONNX Runtime session and the outputs it returns (with IO binding on CUDA)."""

    def __init__(self, session, outputs: tuple[str, ...], on_gpu: bool):
        self.session = session
        self.outputs = outputs
        self.binding = None
        if on_gpu:
            self.binding = session.io_binding()
            for name in outputs:
                self.binding.bind_output(name, "cpu")

    def run(self, frame: np.ndarray) -> dict[str, np.ndarray]:
        if self.binding is None:
            return dict(zip(self.outputs, self.session.run(None, {INPUT_NAME: frame}), strict=True))
        self.binding.bind_cpu_input(INPUT_NAME, frame)
        self.session.run_with_iobinding(self.binding)
        values = self.binding.get_outputs()
        return {name: value.numpy() for name, value in zip(self.outputs, values, strict=True)}


class OnnxRuntimeBackend:
    """ONNX Runtime sessions over a fused lowlight graph: the whole graph, and, for a graph
    with reflectance / illumination, a second session of labels + confidence alone
    (:mod:`.graph_subset`), used whenever a run asks for no more (ONNX Runtime itself runs
    every node whatever outputs are asked for). The second session costs its weights' memory
    again.

    Args:
        model_path: the exported .onnx.
        device: "cpu", or a CUDA device index (needs onnxruntime-gpu).
        threads: intra-op threads on the CPU (0 = ONNX Runtime's default).
        spin: let idle intra-op threads spin-wait for the next run (ONNX Runtime's default:
            lowest latency when the cores are free); the node's ``spin_wait`` parameter. Off,
            the threads leave the cores to publishing and other processes (on 2 cores at
            640x480, all outputs: publishing 10.3 -> 5.4 ms).
        profile: ONNX Runtime's profiler on, its JSON traces written with this path prefix
            (``lowlight bench graph`` reads them; :meth:`end_profiling` returns the files).

    Raises:
        BackendError: missing/unreadable file, missing metadata, CUDA asked but unavailable.
    """

    name = "onnxruntime"

    def __init__(
        self,
        model_path: str | Path,
        *,
        device: int | str = "cpu",
        threads: int = 0,
        spin: bool = True,
        profile: str | Path | None = None,
    ):
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise BackendError("onnxruntime is not installed (pip install onnxruntime)") from err
        path = Path(model_path)
        if not path.is_file():
            raise BackendError(f"model not found: {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        if not spin:  # idle pool threads sleep instead of spin-waiting for the next run
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if profile is not None:
            options.enable_profiling = True
            options.profile_file_prefix = str(profile)
        on_gpu = device != "cpu"
        if on_gpu and not cuda_available():
            raise BackendError(
                "onnxruntime has no CUDAExecutionProvider here (install onnxruntime-gpu) "
                "or ask for device='cpu'"
            )
        providers = (
            [("CUDAExecutionProvider", {"device_id": int(device)}), "CPUExecutionProvider"]
            if on_gpu
            else ["CPUExecutionProvider"]
        )
        try:
            session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as err:  # ORT raises its own Fail/InvalidProtobuf types
            first = (str(err).strip().splitlines() or [""])[0]
            raise BackendError(f"cannot load {path}: {first}") from err
        try:
            self.metadata = ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map)
        except MetadataError as err:
            raise ModelError(f"{path}: {err}") from err
        self.outputs, self.frame_size = check_graph_io(
            self.metadata,
            [(i.name, i.type, i.shape) for i in session.get_inputs()],
            [(o.name, o.type, o.shape) for o in session.get_outputs()],
            path,
        )
        self.device = session_device(session.get_providers(), device)
        if on_gpu and self.device == "cpu":
            log.warning(
                "ONNX Runtime could not load its CUDA provider for %s (CUDA / cuDNN libraries "
                "missing or not matching onnxruntime-gpu?); running on the CPU",
                path.name,
            )
        on_gpu = self.device != "cpu"
        self._full = _Session(session, self.outputs, on_gpu)
        self._core = None
        if self.outputs != CORE_OUTPUTS:
            try:
                core = subset_model(path.read_bytes(), CORE_OUTPUTS)
                if profile is not None:  # trace names carry a 1 ms clock: one prefix each
                    options.profile_file_prefix = f"{profile}_core"
                self._core = _Session(
                    ort.InferenceSession(core, options, providers=session.get_providers()),
                    CORE_OUTPUTS,
                    on_gpu,
                )
            except Exception as err:  # e.g. external weights: every run computes every output
                log.info(
                    "%s: no labels + confidence session (%s); running the whole graph",
                    path.name,
                    one_line(err),
                )

    def execute(
        self, frame: np.ndarray, outputs: Collection[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Run the graph on one contiguous uint8 (H, W, 3) frame: only labels + confidence
        when ``outputs`` asks for no more and the graph has more."""
        if outputs is not None and self._core is not None and set(outputs) <= set(CORE_OUTPUTS):
            return self._core.run(frame)
        return self._full.run(frame)

    def end_profiling(self) -> list[Path]:
        """Stop the profiler of every session; the JSON trace files (see ``profile``)."""
        sessions = [s for s in (self._full, self._core) if s is not None]
        return [Path(s.session.end_profiling()) for s in sessions]

    def close(self) -> None:
        self._full = self._core = None
