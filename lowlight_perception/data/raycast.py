"""Vectorised ray casting of a procedural room through a pinhole camera: nearest hits over
the room shell, boxes and vertical cylinders, with a z-buffer and screen-space culling of each
primitive's projected bounds."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..camera import Intrinsics
from .scene import Primitive, Room


@dataclass(frozen=True)
class Pose:
    """Camera position and viewing direction in the world (z up)."""

    position: np.ndarray
    forward: np.ndarray

    def rotation(self) -> np.ndarray:
        """World-from-optical rotation: columns are the optical x (right), y (down), z (fwd)."""
        f = self.forward / np.linalg.norm(self.forward)
        right = np.cross(f, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(f, right)
        return np.stack([right, down, f], axis=1)


# ----------------------------------------------------------------------------- ray casting


@dataclass
class Hits:
    """Per-pixel nearest-hit buffers (flattened)."""

    depth: np.ndarray  # z-depth (ray parameter with optical z = 1)
    prim: np.ndarray  # primitive index, -1 = room shell
    normal: np.ndarray  # (N, 3) world normal
    uv: np.ndarray  # (N, 2) face coordinates in metres
    axis: np.ndarray  # face normal axis in the primitive frame (0, 1, 2)


def _slabs(
    o: np.ndarray, d: np.ndarray, half: np.ndarray, inside: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Slab test of rays from one origin ``o`` (3,) along ``d`` (N, 3) against the box
    [-half, half]. Returns the hit parameter (inf on a miss) and the hit face's axis.

    ``inside``: the origin is inside the box (the room shell) and the exit face is wanted.
    Per-axis column arithmetic: reductions over a length-3 axis are slow in numpy.
    """
    lo, hi = [], []
    with np.errstate(divide="ignore", invalid="ignore"):
        for a in range(3):
            inv = 1.0 / np.where(d[:, a] == 0, np.float32(1e-12), d[:, a])
            t1, t2 = (-half[a] - o[a]) * inv, (half[a] - o[a]) * inv
            lo.append(np.minimum(t1, t2))
            hi.append(np.maximum(t1, t2))
    if inside:
        t = np.minimum(np.minimum(hi[0], hi[1]), hi[2])
        axis = np.where(hi[0] == t, 0, np.where(hi[1] == t, 1, 2))
        return t, axis.astype(np.int8)
    t = np.maximum(np.maximum(lo[0], lo[1]), lo[2])
    far = np.minimum(np.minimum(hi[0], hi[1]), hi[2])
    axis = np.where(lo[0] == t, 0, np.where(lo[1] == t, 1, 2)).astype(np.int8)
    return np.where((t <= far) & (t > 1e-4), t, np.inf), axis


def _box_surface(
    o: np.ndarray, d: np.ndarray, t: np.ndarray, axis: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Outward-facing (towards the ray origin) normal and hit point of the slab hits."""
    normal = np.zeros_like(d)
    rows = np.arange(len(d))
    normal[rows, axis] = -np.sign(d[rows, axis])
    return normal, o + t[:, None] * d


def _intersect_cylinder(
    o: np.ndarray, d: np.ndarray, half: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rays from ``o`` (3,) against a vertical capped cylinder at the origin (radius half[0],
    half height half[2]). Returns t (inf on a miss), face axis, normal and surface point."""
    r, hh = half[0], half[2]
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = 2 * (o[0] * d[:, 0] + o[1] * d[:, 1])
    c = o[0] ** 2 + o[1] ** 2 - r * r
    disc = b * b - 4 * a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t_side = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
        z_side = o[2] + t_side * d[:, 2]
        t_side = np.where(
            (disc >= 0) & (a > 0) & (t_side > 1e-4) & (np.abs(z_side) <= hh), t_side, np.inf
        )
        cap_z = hh if o[2] > 0 else -hh
        t_cap = (cap_z - o[2]) / np.where(d[:, 2] == 0, 1e-12, d[:, 2])
    px = o[0] + t_cap * d[:, 0]
    py = o[1] + t_cap * d[:, 1]
    t_cap = np.where((t_cap > 1e-4) & (px * px + py * py <= r * r), t_cap, np.inf)
    cap = t_cap < t_side
    t = np.minimum(t_side, t_cap)
    point = o + np.where(np.isfinite(t), t, 0)[:, None] * d
    normal = np.zeros_like(d)
    normal[:, 0] = np.where(cap, 0, point[:, 0] / r)
    normal[:, 1] = np.where(cap, 0, point[:, 1] / r)
    normal[:, 2] = np.where(cap, np.sign(cap_z), 0)
    axis = np.where(cap, 2, 0).astype(np.int8)
    # unroll the side onto (arc length, z): store as a pseudo local point for uv
    arc = np.arctan2(point[:, 1], point[:, 0]) * r
    point = np.where(cap[:, None], point, np.stack([point[:, 2], arc, point[:, 2]], axis=1))
    return t, axis, normal, point


def rows_times(v: np.ndarray, M: np.ndarray) -> np.ndarray:
    """``v @ M`` for (N, 3) x (3, 3) without BLAS: a multi-threaded sgemm per primitive
    oversubscribes the cores when ``lowlight synth`` runs one renderer per core."""
    M = M.astype(v.dtype, copy=False)
    return v[:, 0:1] * M[0] + v[:, 1:2] * M[1] + v[:, 2:3] * M[2]


def _yaw_rotate(v: np.ndarray, yaw: float) -> np.ndarray:
    """``v @ _yaw_matrix(yaw)``: world vectors into the frame of a primitive turned by ``yaw``
    (and back with ``-yaw``), in place on a gathered copy."""
    c, s = np.float32(math.cos(yaw)), np.float32(math.sin(yaw))
    x = v[:, 0].copy()
    v[:, 0] = x * c + v[:, 1] * s
    v[:, 1] = v[:, 1] * c - x * s
    return v


def _yaw_matrix(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float32)


def _screen_bounds(
    prim: Primitive, pose: Pose, rot: np.ndarray, K: Intrinsics
) -> tuple[int, int, int, int] | None:
    """Pixel rectangle (u0, v0, u1, v1) covering the primitive, or None if it is off screen."""
    cam = (prim.corners() - pose.position) @ rot  # optical-frame corners
    z = cam[:, 2]
    if np.all(z <= 0.01):
        return None
    if np.any(z <= 0.01):
        return 0, 0, K.width, K.height
    u = K.fx * cam[:, 0] / z + K.cx
    v = K.fy * cam[:, 1] / z + K.cy
    u0, u1 = max(int(np.floor(u.min())), 0), min(int(np.ceil(u.max())) + 1, K.width)
    v0, v1 = max(int(np.floor(v.min())), 0), min(int(np.ceil(v.max())) + 1, K.height)
    if u0 >= u1 or v0 >= v1:
        return None
    return u0, v0, u1, v1


def cast(room: Room, pose: Pose, K: Intrinsics, dirs: np.ndarray) -> Hits:
    """Nearest hit of every pixel's ray against the room shell and all primitives."""
    half_room = (room.size / 2).astype(np.float32)
    o_room = (pose.position - room.size / 2).astype(np.float32)
    t, axis = _slabs(o_room, dirs, half_room, inside=True)
    normal, point = _box_surface(o_room, dirs, t, axis)
    hits = Hits(
        t.astype(np.float32),
        np.full(len(dirs), -1, np.int32),
        normal,
        _face_uv(point + half_room, axis),
        axis,
    )
    rot = pose.rotation()
    for k, prim in enumerate(room.primitives):
        bounds = _screen_bounds(prim, pose, rot, K)
        if bounds is None:
            continue
        u0, v0, u1, v1 = bounds
        idx = (np.arange(v0, v1)[:, None] * K.width + np.arange(u0, u1)[None, :]).ravel()
        R = _yaw_matrix(prim.yaw)
        half = prim.half.astype(np.float32)
        o_local = ((pose.position - prim.center) @ R).astype(np.float32)
        d_local = _yaw_rotate(dirs[idx], prim.yaw)
        if prim.kind == "box":
            t, axis = _slabs(o_local, d_local, half, inside=False)
            closer = t < hits.depth[idx]
            if not closer.any():
                continue
            d_sel, t, axis = d_local[closer], t[closer], axis[closer]
            normal, point = _box_surface(o_local, d_sel, t, axis)
        else:
            t, axis, normal, point = _intersect_cylinder(o_local, d_local, half)
            closer = t < hits.depth[idx]
            if not closer.any():
                continue
            t, axis, normal, point = t[closer], axis[closer], normal[closer], point[closer]
        sel = idx[closer]
        hits.depth[sel] = t
        hits.prim[sel] = k
        hits.normal[sel] = _yaw_rotate(normal, -prim.yaw)
        hits.axis[sel] = axis
        hits.uv[sel] = _face_uv(point + half, axis)
    return hits


def _face_uv(point: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Face coordinates: the two in-plane local coordinates, v vertical on side faces."""
    u = np.where(axis == 0, point[:, 1], point[:, 0])
    v = np.where(axis == 2, point[:, 1], point[:, 2])
    return np.stack([u, v], axis=1)
