"""Depth-to-colour registration of a RealSense camera: the rule of ``rs2::align`` as the x86
pyrealsense2 wheels (2.58+) run it.

We align in numpy instead of calling ``rs2::align`` because ``align`` needs a frameset, and
librealsense's syncer does not reliably pair a recording's (or a software device's) depth and
colour frames; we pair them by timestamp ourselves (``capture.views``). The rule is
realsenseai/librealsense master ``src/proc/sse/sse-align.cpp`` (``pre_compute_x_y_map``,
``get_texture_map_sse``, ``align_depth_to_other_sse``, ``move_depth_to_other``): each valid
depth pixel's top-left corner (x - 0.5, y - 0.5) is deprojected at its depth, moved by the
depth-to-colour extrinsics and projected into the colour image, in float32, then
``_mm_cvttps_epi32(v + 0.5)`` (truncation). Only when the depth stream has fewer pixels per
degree than the colour stream (or the two special resolution pairs) is the bottom-right corner
mapped too and the rectangle between them filled; otherwise each depth pixel lands on one colour
pixel. Pixels outside the colour image are skipped; where several land, the nearest depth wins.
The value kept is the raw depth (the depth sensor's z, in its units). ``test_capture`` checks
this pixel for pixel against ``rs.align`` itself. The ARM NEON build (Jetson) follows the same
rule; librealsense's scalar fallback (``src/proc/align.cpp``) always fills rectangles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..camera import Intrinsics
from ..errors import LowlightError


@dataclass(frozen=True)
class StreamGeometry:
    """A camera's colour and depth streams and how they relate.

    ``rotation`` and ``translation`` take a point in the depth sensor's frame (metres) to the
    colour sensor's: p_color = rotation @ p_depth + translation. ``depth_units`` is metres per
    unit of the raw z16 depth (the ``depth_units`` option, 0.001 on a D435i).
    """

    color: Intrinsics
    depth: Intrinsics
    rotation: np.ndarray
    translation: np.ndarray
    depth_units: float

    @classmethod
    def from_realsense(
        cls, depth_intrinsics, color_intrinsics, extrinsics, depth_units: float
    ) -> StreamGeometry:
        """From pyrealsense2's ``rs.intrinsics`` of both streams and the depth-to-colour
        ``rs.extrinsics`` (whose ``rotation`` is column-major, librealsense ``rs_sensor.h``).

        Raises:
            LowlightError: if a stream has lens distortion (non-zero coefficients), which this
                registration does not model.
        """
        for name, intr in (("depth", depth_intrinsics), ("colour", color_intrinsics)):
            if any(abs(c) > 0 for c in intr.coeffs):
                raise LowlightError(
                    f"the {name} stream reports {intr.model} distortion {list(intr.coeffs)}; "
                    "depth-to-colour registration supports undistorted streams only "
                    "(a D435i's colour and depth streams report zero coefficients)"
                )
        return cls(
            color=_intrinsics(color_intrinsics),
            depth=_intrinsics(depth_intrinsics),
            rotation=np.array(extrinsics.rotation, np.float32).reshape(3, 3).T,
            translation=np.array(extrinsics.translation, np.float32),
            depth_units=float(depth_units),
        )

    def same_camera(self, other: StreamGeometry) -> bool:
        """Both streams, their relation and the depth units agree (one camera, one mode)."""
        return (
            self.color == other.color
            and self.depth == other.depth
            and np.allclose(self.rotation, other.rotation, atol=1e-6)
            and np.allclose(self.translation, other.translation, atol=1e-7)
            and abs(self.depth_units - other.depth_units) < 1e-9
        )


def _intrinsics(intr) -> Intrinsics:
    return Intrinsics(int(intr.width), int(intr.height), intr.fx, intr.fy, intr.ppx, intr.ppy)


def _corner_pixels(
    xs: np.ndarray, ys: np.ndarray, z: np.ndarray, g: StreamGeometry, offset: float
) -> tuple[np.ndarray, np.ndarray]:
    """Colour pixel of each depth pixel's corner, in float32 and ``get_texture_map_sse``'s
    order of operations."""
    d, c, f32 = g.depth, g.color, np.float32
    x = (xs.astype(f32) + f32(offset) - f32(d.cx)) / f32(d.fx)
    y = (ys.astype(f32) + f32(offset) - f32(d.cy)) / f32(d.fy)
    px, py = z * x, z * y
    r, t = g.rotation.astype(f32), g.translation.astype(f32)  # r[i, j]: row i, column j
    o = [r[i, 0] * px + (r[i, 1] * py + (r[i, 2] * z + t[i])) for i in range(3)]
    u = (o[0] / o[2]) * f32(c.fx) + f32(c.cx)
    v = (o[1] / o[2]) * f32(c.fy) + f32(c.cy)
    return np.trunc(u + f32(0.5)).astype(np.int64), np.trunc(v + f32(0.5)).astype(np.int64)


def _pixels_per_degree(k: Intrinsics) -> tuple[float, float]:
    """Width and height over ``rs2_fov`` (``src/rs.cpp``), in float32 like librealsense."""
    f32 = np.float32

    def fov(pp: float, f: float, size: int) -> np.float32:
        edge = f32(pp) + f32(0.5)
        return (np.arctan2(edge, f32(f)) + np.arctan2(f32(size) - edge, f32(f))) * f32(57.2957795)

    return f32(k.width) / fov(k.cx, k.fx, k.width), f32(k.height) / fov(k.cy, k.fy, k.height)


def _fills_rectangles(g: StreamGeometry) -> bool:
    depth, color = _pixels_per_degree(g.depth), _pixels_per_degree(g.color)
    special = ((g.depth.width, g.depth.height), (g.color.width, g.color.height)) in (
        ((640, 240), (320, 180)),
        ((640, 480), (640, 360)),
    )
    return depth[0] < color[0] or depth[1] < color[1] or special


def align_depth_to_color(depth: np.ndarray, g: StreamGeometry) -> np.ndarray:
    """Raw z16 ``depth`` (depth sensor's geometry) registered to the colour image: (H, W)
    uint16 in the same units, 0 where no depth pixel lands (librealsense's rule, above)."""
    if depth.shape != (g.depth.height, g.depth.width):
        raise LowlightError(
            f"depth frame {depth.shape[1]}x{depth.shape[0]} does not match its stream "
            f"{g.depth.width}x{g.depth.height}"
        )
    ys, xs = np.nonzero(depth)
    raw = depth[ys, xs]
    z = raw.astype(np.float32) * np.float32(g.depth_units)
    x0, y0 = _corner_pixels(xs, ys, z, g, -0.5)
    x1, y1 = _corner_pixels(xs, ys, z, g, 0.5) if _fills_rectangles(g) else (x0, y0)
    w, h = g.color.width, g.color.height
    empty = np.iinfo(np.uint16).max
    out = np.full(h * w, empty, np.uint16)
    if raw.size:
        spans = (np.clip(x1 - x0, -1, w).max(), np.clip(y1 - y0, -1, h).max())
        for dy in range(int(spans[1]) + 1):
            for dx in range(int(spans[0]) + 1):
                x, y = x0 + dx, y0 + dy
                inside = (x <= x1) & (y <= y1) & (x >= 0) & (y >= 0) & (x < w) & (y < h)
                np.minimum.at(out, y[inside] * w + x[inside], raw[inside])
    out[out == empty] = 0
    return out.reshape(h, w)
