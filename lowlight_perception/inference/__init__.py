"""Inference: one Segmenter over TensorRT, ONNX Runtime and PyTorch backends."""

from .backend import Backend, BackendError
from .segmenter import FrameError, Result, Segmenter, open_backend

__all__ = ["Backend", "BackendError", "FrameError", "Result", "Segmenter", "open_backend"]
