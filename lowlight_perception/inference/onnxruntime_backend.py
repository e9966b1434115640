"""ONNX Runtime backend: CPU everywhere, CUDA where onnxruntime-gpu is installed.

On CUDA the frame is bound once per call and the outputs are bound to host memory through IO
binding, so ONNX Runtime does the transfers inside one ``run`` and the host does no extra copies.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..metadata import MetadataError, ModelMetadata
from .backend import INPUT_NAME, OUTPUT_NAMES, BackendError

log = logging.getLogger("lowlight_perception.inference")


def cuda_available() -> bool:
    """True when onnxruntime offers the CUDA execution provider (onnxruntime-gpu)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def check_graph_io(meta: ModelMetadata, inputs: list[tuple[str, str, list]],
                   outputs: list[str], path: Path) -> tuple[str, ...]:
    """Check a graph's I/O against the fused-graph contract; return its outputs in order.

    Raises:
        BackendError: naming what differs.
    """
    w, h = meta.camera_size
    if len(inputs) != 1 or inputs[0][0] != INPUT_NAME:
        raise BackendError(f"{path}: expected one input named {INPUT_NAME!r}, got {inputs}")
    _, dtype, shape = inputs[0]
    if dtype not in ("tensor(uint8)", "uint8") or list(shape) != [h, w, 3]:
        raise BackendError(
            f"{path}: input {INPUT_NAME} is {dtype} {list(shape)}, expected uint8 [{h}, {w}, 3]"
        )
    unknown = [o for o in outputs if o not in OUTPUT_NAMES]
    if unknown or not {"labels", "confidence"} <= set(outputs):
        raise BackendError(f"{path}: outputs {outputs} do not follow the lowlight contract")
    return tuple(outputs)


class OnnxRuntimeBackend:
    """One ONNX Runtime session over a fused lowlight graph.

    Args:
        model_path: the exported .onnx.
        device: "cpu", or a CUDA device index (needs onnxruntime-gpu).
        threads: intra-op threads on the CPU (0 = ONNX Runtime's default).

    Raises:
        BackendError: missing/unreadable file, missing metadata, CUDA asked but unavailable.
    """

    name = "onnxruntime"

    def __init__(self, model_path: str | Path, *, device: int | str = "cpu", threads: int = 0):
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
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as err:  # ORT raises its own Fail/InvalidProtobuf types
            first = (str(err).strip().splitlines() or [""])[0]
            raise BackendError(f"cannot load {path}: {first}") from err
        try:
            self.metadata = ModelMetadata.from_props(
                self.session.get_modelmeta().custom_metadata_map
            )
        except MetadataError as err:
            raise BackendError(f"{path}: {err}") from err
        inputs = [(i.name, i.type, i.shape) for i in self.session.get_inputs()]
        self.outputs = check_graph_io(
            self.metadata, inputs, [o.name for o in self.session.get_outputs()], path
        )
        self.device = f"cuda:{int(device)}" if on_gpu else "cpu"
        self._binding = None
        if on_gpu:
            self._binding = self.session.io_binding()
            for name in self.outputs:
                self._binding.bind_output(name, "cpu")

    def execute(self, frame: np.ndarray) -> dict[str, np.ndarray]:
        """Run the graph on one uint8 (H, W, 3) frame at the model's camera size."""
        if self._binding is None:
            return dict(zip(self.outputs, self.session.run(None, {INPUT_NAME: frame}), strict=True))
        self._binding.bind_cpu_input(INPUT_NAME, frame)
        self.session.run_with_iobinding(self._binding)
        values = self._binding.get_outputs()
        return {name: value.numpy() for name, value in zip(self.outputs, values, strict=True)}

    def close(self) -> None:
        self._binding = None
        self.session = None
