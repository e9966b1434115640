"""Inference: one Segmenter over TensorRT, ONNX Runtime and PyTorch backends."""

from .backend import Backend, BackendError, ModelError
from .segmenter import FrameError, Result, Segmenter, open_backend

__all__ = [
    "Backend",
    "BackendError",
    "FrameError",
    "ModelError",
    "Result",
    "Segmenter",
    "open_backend",
]
