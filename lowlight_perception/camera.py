"""Pinhole intrinsics shared by the renderer, relighting, datasets and (later) camera_info."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

# A D435i colour stream at 640x480 reports fx = fy ~ 615, i.e. ~42 deg vertical FOV with square
# pixels. The datasheet's 69 deg x 42 deg is the sensor's full 16:9 width; at 4:3 the horizontal
# FOV is ~55 deg. We keep square pixels and the 42 deg vertical FOV at every size.
D435I_VFOV_DEG = 42.0


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole camera (no distortion, as RealSense publishes for the aligned colour stream)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def d435i(cls, width: int = 640, height: int = 480) -> Intrinsics:
        """D435i-like colour intrinsics at any size (square pixels, 42 deg vertical FOV)."""
        f = (height / 2.0) / math.tan(math.radians(D435I_VFOV_DEG) / 2.0)
        return cls(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)

    def scaled(self, width: int, height: int) -> Intrinsics:
        """The same camera resampled to ``width`` x ``height`` (pixel-centre convention)."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(
            width,
            height,
            self.fx * sx,
            self.fy * sy,
            (self.cx + 0.5) * sx - 0.5,
            (self.cy + 0.5) * sy - 0.5,
        )

    @property
    def matrix(self) -> np.ndarray:
        """3x3 K matrix (the ``k`` field of sensor_msgs/CameraInfo, row-major)."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    @property
    def fov_deg(self) -> tuple[float, float]:
        """Horizontal and vertical field of view in degrees."""
        return (
            math.degrees(2 * math.atan(self.width / (2 * self.fx))),
            math.degrees(2 * math.atan(self.height / (2 * self.fy))),
        )

    def rays(self) -> np.ndarray:
        """Per-pixel viewing directions in the optical frame (x right, y down, z forward), with
        z = 1 so that ``depth * ray`` is the 3-D point for a z-depth image. Shape (H, W, 3)."""
        u = (np.arange(self.width, dtype=np.float32) - self.cx) / self.fx
        v = (np.arange(self.height, dtype=np.float32) - self.cy) / self.fy
        out = np.empty((self.height, self.width, 3), dtype=np.float32)
        out[..., 0] = u[None, :]
        out[..., 1] = v[:, None]
        out[..., 2] = 1.0
        return out

    def backproject(self, depth_m: np.ndarray) -> np.ndarray:
        """3-D points (H, W, 3) in the optical frame from a z-depth image in metres."""
        return self.rays() * depth_m[..., None].astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict) -> Intrinsics:
        return cls(
            int(doc["width"]),
            int(doc["height"]),
            float(doc["fx"]),
            float(doc["fy"]),
            float(doc["cx"]),
            float(doc["cy"]),
        )
