"""The Backend protocol: what every runtime (TensorRT, ONNX Runtime, PyTorch) offers the
Segmenter. A backend runs one exported fused graph (``models/export.py``): a uint8 RGB frame
``(H, W, 3)`` of any size in, the published uint8 images at that size out. Backends import
their runtime (tensorrt, onnxruntime, torch) lazily, so a machine needs only the one it uses."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import LowlightError
from ..metadata import ModelMetadata

OUTPUT_NAMES = ("labels", "confidence", "reflectance", "illumination")
CORE_OUTPUTS = ("labels", "confidence")
"""Always computed: every published output but the restored images derives from them."""
INPUT_NAME = "frame"


class BackendError(LowlightError):
    """A backend cannot load or run the model (missing runtime, bad file, no GPU...)."""


class ModelError(BackendError):
    """A model loads but breaks the fused-graph contract: unusable metadata (classes, palette,
    sizes) or outputs of the wrong dtype or shape. Raised at load / warm-up, never later."""


@runtime_checkable
class Backend(Protocol):
    """One loaded model on one runtime and device.

    Attributes:
        name: "tensorrt", "onnxruntime" or "torch".
        device: human description, e.g. "cpu", "cuda:0 (NVIDIA H100)".
        metadata: the model's ModelMetadata (classes, palette, sizes).
        outputs: names of the outputs ``execute`` returns, a subset of OUTPUT_NAMES in order.
        frame_size: (W, H) the graph is fixed at (format 1 exports), or None: any size.
    """

    name: str
    device: str
    metadata: ModelMetadata
    outputs: tuple[str, ...]
    frame_size: tuple[int, int] | None

    def execute(
        self, frame: np.ndarray, outputs: Collection[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Run the graph on one contiguous uint8 frame of shape (H, W, 3) (of ``frame_size``
        when that is set). ``outputs``: the names wanted (None: all); a backend may then skip
        the others (ONNX Runtime does), but always returns :data:`CORE_OUTPUTS` and may
        return more. Returned arrays may be views of buffers the backend reuses on the next
        call: copy what you keep."""
        ...

    def close(self) -> None:
        """Release sessions, engines and device memory."""
        ...
