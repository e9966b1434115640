"""The Backend protocol: what every runtime (TensorRT, ONNX Runtime, PyTorch) offers the
Segmenter. A backend runs one exported fused graph (``models/export.py``): a uint8 RGB frame
``(H, W, 3)`` at the model's camera size in, the published uint8 images out. Backends import
their runtime (tensorrt, onnxruntime, torch) lazily, so a machine needs only the one it uses."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import LowlightError
from ..metadata import ModelMetadata

OUTPUT_NAMES = ("labels", "confidence", "reflectance", "illumination")
INPUT_NAME = "frame"


class BackendError(LowlightError):
    """A backend cannot load or run the model (missing runtime, bad file, no GPU...)."""


@runtime_checkable
class Backend(Protocol):
    """One loaded model on one runtime and device.

    Attributes:
        name: "tensorrt", "onnxruntime" or "torch".
        device: human description, e.g. "cpu", "cuda:0 (NVIDIA H100)".
        metadata: the model's ModelMetadata (classes, palette, sizes).
        outputs: names of the outputs ``execute`` returns, a subset of OUTPUT_NAMES in order.
    """

    name: str
    device: str
    metadata: ModelMetadata
    outputs: tuple[str, ...]

    def execute(self, frame: np.ndarray) -> dict[str, np.ndarray]:
        """Run the graph on one contiguous uint8 frame of shape (H, W, 3) at
        ``metadata.camera_size``. Returned arrays may be views of buffers the backend reuses on
        the next call: copy what you keep."""
        ...

    def close(self) -> None:
        """Release sessions, engines and device memory."""
        ...
