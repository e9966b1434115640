"""The one frame type: a colour frame to score, replay or adapt on, with what came with it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .camera import Intrinsics


@dataclass
class Frame:
    """One colour frame and its partners, from a bag (``bags.iter_frames``) or a dataset view
    (``evaluation.evaluate.dataset_frames``).

    Arrays read from a bag are views over its message buffers where no conversion was needed
    (they may be read-only); copy before writing into them.

    Attributes:
        index: position of the frame in its source (a bag: among its colour messages, counting
            skipped ones, so it names the same frame in every run).
        rgb: (H, W, 3) uint8 RGB, C-contiguous.
        label: (H, W) uint8 ground-truth class ids (0 = void), or None.
        depth_mm: aligned depth, (H, W) uint16 millimetres, 0 = invalid, or None.
        prediction: (H, W) uint8 class ids a node recorded (``--predictions-topic``), or None.
        stamp_ns: header stamp in nanoseconds (bags), or None.
        intrinsics: the colour camera (a bag's camera_info of the same stamp, else the latest),
            or None.
        name: a readable name (a dataset file stem), or "".
        recorded: the node's other published images for this frame (an ``inference.Result``:
            reflectance, confidence), shown in the samples when scoring recorded predictions.
        normal: (H, W, 3) uint8 normal-light twin (paired datasets), or None.
        albedo: (H, W, 3) uint8 true reflectance (procedural views), or None; with ``normal``
            the restored reflectance is scored.
    """

    index: int
    rgb: np.ndarray
    label: np.ndarray | None = None
    depth_mm: np.ndarray | None = None
    prediction: np.ndarray | None = None
    stamp_ns: int | None = None
    intrinsics: Intrinsics | None = None
    name: str = ""
    recorded: Any = None
    normal: np.ndarray | None = None
    albedo: np.ndarray | None = None
