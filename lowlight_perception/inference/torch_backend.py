"""PyTorch backend: runs a training checkpoint through the same fused graph module that export
traces, for research and parity checks (CPU or CUDA). Imports torch only when used."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np

from .backend import BackendError


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


class TorchBackend:
    """A checkpoint (``best.pt``/``last.pt``) wrapped in ``models.export.FusedGraph``.

    Args:
        model_path: a lowlight_perception training checkpoint.
        device: "cpu" or a CUDA device index.
        camera_size: (W, H) of the camera, as ``lowlight export --camera-size``: recorded in the
            metadata (the warm-up size); frames of any size are segmented.
        net_size: (W, H) the network runs at; default: the checkpoint's training size.
        upsample: "labels" or "logits", as in ``lowlight export``.

    Raises:
        BackendError: torch missing, unreadable checkpoint, CUDA asked but unavailable.
    """

    name = "torch"

    def __init__(
        self,
        model_path: str | Path,
        *,
        device: int | str = "cpu",
        camera_size: tuple[int, int] = (640, 480),
        net_size: tuple[int, int] | None = None,
        upsample: str = "labels",
    ):
        try:
            import torch
        except ImportError as err:
            raise BackendError("the torch backend needs PyTorch (pip install '.[train]')") from err
        from ..errors import LowlightError
        from ..models.checkpoint import load_model
        from ..models.export import FusedGraph, build_metadata, training_note

        if device != "cpu" and not torch.cuda.is_available():
            raise BackendError("PyTorch sees no CUDA device; ask for device='cpu'")
        try:
            model, state = load_model(model_path)
        except LowlightError as err:
            raise BackendError(str(err)) from err
        if net_size is None:
            size = state.get("train_config", {}).get("data", {}).get("size", [320, 240])
            net_size = (int(size[0]), int(size[1]))
        self._torch = torch
        self._device = torch.device("cpu" if device == "cpu" else f"cuda:{int(device)}")
        self.graph = FusedGraph(model, net_size, upsample).to(self._device).eval()
        self.metadata = build_metadata(model, camera_size, net_size, upsample, training_note(state))
        self.outputs = tuple(self.graph.output_names)
        self.frame_size = None  # the fused module computes every resize from the frame
        self.device = str(self._device)

    def execute(
        self, frame: np.ndarray, outputs: Collection[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Every output, whatever ``outputs`` asks (the graph runs whole)."""
        torch = self._torch
        with torch.inference_mode():
            tensors = self.graph(torch.from_numpy(frame).to(self._device, non_blocking=True))
        return {name: t.cpu().numpy() for name, t in zip(self.outputs, tensors, strict=True)}

    def close(self) -> None:
        self.graph = None
