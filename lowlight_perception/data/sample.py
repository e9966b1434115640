"""The one sample shape every dataset source yields."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..camera import Intrinsics


@dataclass
class Sample:
    """A paired low-/normal-light view with its ground truth.

    Images are numpy arrays in camera layout: ``low``/``normal``/``albedo`` (H, W, 3) uint8 RGB,
    ``label`` (H, W) uint8 class ids (0 = void), ``depth`` (H, W) uint16 millimetres with 0 for
    invalid (REP 118), ``shading_low``/``shading_normal`` (H, W) float32 illumination such that
    ``image ~= albedo * shading`` before noise and clipping. Optional fields are None when the
    source has no such ground truth.
    """

    name: str
    low: np.ndarray
    normal: np.ndarray | None = None
    label: np.ndarray | None = None
    depth: np.ndarray | None = None
    albedo: np.ndarray | None = None
    shading_low: np.ndarray | None = None
    shading_normal: np.ndarray | None = None
    intrinsics: Intrinsics | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the view."""
        return self.low.shape[1], self.low.shape[0]
