"""Procedural low-light RGB-D indoor scenes with a normal-light twin of every view.

LLRGBD-synthetic (LISU paper §4.1) was rendered with a single light on the camera and a
normal-light twin of each view; we cannot download it, so we render our own, the same way:

* a room (floor, walls, ceiling, windows, paintings) and furniture/objects for all 13 classes,
  built from oriented boxes and vertical cylinders with per-class procedural albedo textures,
  placed on the floor without overlap;
* vectorised numpy ray casting through a pinhole camera (D435i-like intrinsics, any size), with a
  z-buffer over primitives and screen-space culling of each primitive's projected bounds;
* two lightings: normal (ceiling lights + ambient, auto-exposed) and low (only a point LED at the
  camera: inverse-square falloff, Lambert cosine, a few lux, fixed high-gain exposure);
* a sensor model: shot + read noise, 8-bit quantisation, clipped specular hot spots on glossy
  classes (tv, window, painting glass, table varnish), as in the paper's failure cases.

Images are linear (no tone curve), so ``image ~= albedo * shading`` holds before specular, noise
and clipping: the ground truth of a Retinex decomposition. Depth is z-depth in uint16 mm with 0
for invalid (REP 118 / D435i): windows (IR passes through glass) and closer than the D435i's
minimum range. Everything is deterministic from a seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..camera import Intrinsics
from ..classes import load_classes
from .sample import Sample

D435I_MIN_DEPTH_M = 0.28  # D435i minimum z at 640x480
D435I_MAX_DEPTH_M = 10.0

# Class ids by name, resolved once from config/classes.yaml.
_C = {name: i for i, name in enumerate(load_classes().names)}


@dataclass
class Material:
    """Procedural albedo texture + specular response of one primitive."""

    pattern: str
    color: np.ndarray  # base linear RGB albedo in [0, 1]
    color2: np.ndarray  # second colour (stripes, tiles, frame, ...)
    scale: float = 1.0  # pattern frequency in cycles per metre
    specular: float = 0.0  # peak specular reflectance (0 = matte)
    shininess: float = 40.0
    seed: int = 0


@dataclass
class Primitive:
    """An oriented box (yaw about +z) or a vertical cylinder, in world metres (z up)."""

    kind: str  # "box" | "cylinder"
    center: np.ndarray  # (3,)
    half: np.ndarray  # (3,) half extents; cylinder: (radius, radius, half height)
    yaw: float
    label: int
    material: Material

    def corners(self) -> np.ndarray:
        """(8, 3) world corners of the bounding box, for screen-space culling."""
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        local = signs * self.half
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        return local @ rot.T + self.center


@dataclass
class Room:
    """A furnished room: interior box [0, size] plus primitives and ceiling lights."""

    size: np.ndarray  # (3,) Lx, Ly, Lz
    wall: Material
    floor: Material
    ceiling: Material
    primitives: list[Primitive] = field(default_factory=list)
    lights: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # ceiling light positions
    light_power: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ambient: float = 0.3


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


@dataclass(frozen=True)
class LowLight:
    """The robot's LED and camera settings for the dark view.

    ``led_gain`` is the shading (image units) of a surface 1 m away facing the camera; a few
    lux on a high-gain sensor. ``electrons`` is the full-scale signal in photo-electrons at
    that gain (lower = more shot noise); ``read_noise`` in DN. ``hotspot_gain`` scales the
    LED's specular lobe: a small, bright emitter's mirror image outshines its diffuse light, so
    glossy surfaces seen head-on clip.
    """

    led_gain: tuple[float, float] = (0.12, 0.40)
    ambient: tuple[float, float] = (0.0, 0.004)
    electrons: tuple[float, float] = (300.0, 900.0)
    read_noise: tuple[float, float] = (0.8, 2.0)
    hotspot_gain: tuple[float, float] = (3.0, 8.0)


LOW_LIGHT_DOMAINS: dict[str, LowLight] = {
    "led": LowLight(),
    # a weaker LED (a third of the power) on a noisier sensor: a domain shift for adaptation
    # (``lowlight adapt``) that models trained on "led" never saw
    "dim-noisy": LowLight(led_gain=(0.04, 0.13), electrons=(120.0, 360.0), read_noise=(2.0, 3.5)),
}
"""Named dark-view settings for ``lowlight synth --low-light``; "led" is the default."""


@dataclass(frozen=True)
class NormalLight:
    """Ceiling lights + ambient, auto-exposed to ``target_mean`` like a camera's AE."""

    target_mean: tuple[float, float] = (0.35, 0.5)
    electrons: float = 8000.0
    read_noise: float = 0.5


# ----------------------------------------------------------------------------- textures


def _hash2(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random value in [0, 1) per integer lattice point."""
    h = ix.astype(np.int64) * 374761393 + iy.astype(np.int64) * 668265263 + seed * 2246822519
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 0xFFFF).astype(np.float32) / 65536.0


def _value_noise(u: np.ndarray, v: np.ndarray, seed: int) -> np.ndarray:
    """Smooth value noise in [0, 1] (bilinear lattice interpolation with smoothstep)."""
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
    a = _hash2(iu, iv, seed)
    b = _hash2(iu + 1, iv, seed)
    c = _hash2(iu, iv + 1, seed)
    d = _hash2(iu + 1, iv + 1, seed)
    return (a + (b - a) * fu) * (1 - fv) + (c + (d - c) * fu) * fv


def _texture(
    m: Material, u: np.ndarray, v: np.ndarray, extent: tuple[float, float], front: np.ndarray
) -> np.ndarray:
    """Albedo (N, 3) of material ``m`` at face coordinates (u, v) in metres.

    ``extent`` is the face's (width, height); ``front`` marks pixels on the primitive's main
    face (for framed/screen patterns).
    """
    s = m.scale
    n = _value_noise(u * s * 4, v * s * 4, m.seed)[:, None]
    base, alt = m.color[None, :], m.color2[None, :]
    p = m.pattern
    if p == "plain":
        out = base * (0.92 + 0.16 * n)
    elif p == "wood":
        grain = 0.5 + 0.5 * np.sin(u * s * 40 + 3 * _value_noise(u * s * 2, v * s * 8, m.seed))
        out = base * (0.75 + 0.35 * grain[:, None]) * (0.9 + 0.2 * n)
    elif p == "tiles":
        tu, tv = np.floor(u * s), np.floor(v * s)
        checker = ((tu + tv) % 2)[:, None]
        grout = (np.abs(u * s - np.round(u * s)) < 0.03) | (np.abs(v * s - np.round(v * s)) < 0.03)
        out = (base * (1 - checker) + alt * checker) * (0.9 + 0.2 * n)
        out = np.where(grout[:, None], alt * 0.5 + 0.4, out)
    elif p == "fabric":
        weave = 0.5 + 0.25 * (np.sin(u * s * 300) + np.sin(v * s * 300))
        out = base * (0.8 + 0.2 * weave[:, None]) * (0.85 + 0.3 * n)
    elif p == "stripes":
        band = (np.floor(u * s * 6) % 2)[:, None]
        out = base * (1 - band) + alt * band
    elif p == "art":
        r = _value_noise(u * s * 3, v * s * 3, m.seed + 1)
        g = _value_noise(u * s * 3, v * s * 3, m.seed + 2)
        b = _value_noise(u * s * 3, v * s * 3, m.seed + 3)
        art = np.stack([r, g, b], axis=1) * 0.8 + 0.1
        out = np.where(_framed(u, v, extent, 0.05, front)[:, None], art, alt)
    elif p == "screen":
        out = np.where(_framed(u, v, extent, 0.02, front)[:, None], base * (0.9 + 0.2 * n), alt)
    elif p == "window":
        mu, mv = extent[0] / 2, extent[1] / 2
        bars = (np.abs(u - mu) < 0.03) | (np.abs(v - mv) < 0.03)
        glass = _framed(u, v, extent, 0.06, front) & ~bars
        out = np.where(glass[:, None], base * (0.8 + 0.4 * n), alt)
    else:
        raise ValueError(f"unknown texture pattern {p!r}")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _framed(
    u: np.ndarray, v: np.ndarray, extent: tuple[float, float], border: float, front: np.ndarray
) -> np.ndarray:
    """True inside a frame of width ``border`` metres on the front face."""
    return front & (u > border) & (u < extent[0] - border) & (v > border) & (v < extent[1] - border)


# ----------------------------------------------------------------------------- scene generation

_WOODS = np.array([[0.45, 0.30, 0.18], [0.60, 0.45, 0.30], [0.30, 0.20, 0.12], [0.75, 0.62, 0.45]])
_WALLS = np.array(
    [
        [0.80, 0.78, 0.72],
        [0.70, 0.75, 0.80],
        [0.85, 0.80, 0.65],
        [0.65, 0.72, 0.62],
        [0.78, 0.66, 0.62],
    ]
)
_FABRICS = np.array(
    [
        [0.25, 0.30, 0.55],
        [0.55, 0.20, 0.20],
        [0.35, 0.45, 0.30],
        [0.50, 0.50, 0.50],
        [0.60, 0.55, 0.45],
        [0.20, 0.20, 0.25],
    ]
)


def _pick(rng: np.random.Generator, table: np.ndarray, jitter: float = 0.06) -> np.ndarray:
    return np.clip(table[rng.integers(len(table))] + rng.uniform(-jitter, jitter, 3), 0.02, 0.95)


def _mat(
    rng: np.random.Generator,
    pattern: str,
    color: np.ndarray,
    color2: np.ndarray | None = None,
    scale: float = 1.0,
    specular: float = 0.0,
    shininess: float = 40.0,
) -> Material:
    c2 = color2 if color2 is not None else np.clip(color * 0.6, 0, 1)
    return Material(
        pattern,
        np.asarray(color, np.float32),
        np.asarray(c2, np.float32),
        scale,
        specular,
        shininess,
        int(rng.integers(1 << 30)),
    )


class _Placer:
    """Rejection-samples non-overlapping floor footprints (oriented rectangles as AABBs)."""

    def __init__(self, size: np.ndarray, keep_free: np.ndarray, clearance: float):
        self.size = size
        self.taken: list[tuple[float, float, float, float]] = []
        self.keep_free = keep_free
        self.clearance = clearance

    def place(
        self, rng: np.random.Generator, hx: float, hy: float, against_wall: bool, tries: int = 40
    ) -> tuple[float, float, float] | None:
        """(x, y, yaw) of a free footprint with half extents (hx, hy), or None."""
        lx, ly = self.size[0], self.size[1]
        for _ in range(tries):
            if against_wall:
                wall = rng.integers(4)
                yaw = [0.0, math.pi / 2, math.pi, -math.pi / 2][wall]
                # the footprint's back (-y local) touches the wall
                if wall == 0:
                    x, y = rng.uniform(hx, lx - hx), hy + 0.01
                elif wall == 1:
                    x, y = lx - hy - 0.01, rng.uniform(hx, ly - hx)
                elif wall == 2:
                    x, y = rng.uniform(hx, lx - hx), ly - hy - 0.01
                else:
                    x, y = hy + 0.01, rng.uniform(hx, ly - hx)
            else:
                yaw = rng.uniform(-math.pi, math.pi)
                r = math.hypot(hx, hy)
                if lx - 2 * r <= 0 or ly - 2 * r <= 0:
                    continue
                x, y = rng.uniform(r, lx - r), rng.uniform(r, ly - r)
            c, s = abs(math.cos(yaw)), abs(math.sin(yaw))
            ex, ey = hx * c + hy * s, hx * s + hy * c
            box = (x - ex, y - ey, x + ex, y + ey)
            if box[0] < 0 or box[1] < 0 or box[2] > lx or box[3] > ly:
                continue
            if any(
                box[0] < t[2] and t[0] < box[2] and box[1] < t[3] and t[1] < box[3]
                for t in self.taken
            ):
                continue
            if len(self.keep_free):
                px = np.clip(self.keep_free[:, 0], box[0], box[2]) - self.keep_free[:, 0]
                py = np.clip(self.keep_free[:, 1], box[1], box[3]) - self.keep_free[:, 1]
                if np.min(px * px + py * py) < self.clearance**2:
                    continue
            self.taken.append(box)
            return x, y, yaw
        return None


def _local_to_world(x: float, y: float, yaw: float, lx: float, ly: float) -> tuple[float, float]:
    c, s = math.cos(yaw), math.sin(yaw)
    return x + c * lx - s * ly, y + s * lx + c * ly


def _box(
    label: str,
    x: float,
    y: float,
    yaw: float,
    local: tuple[float, float, float],
    half: tuple[float, float, float],
    mat: Material,
) -> Primitive:
    """A box whose centre is at ``local`` in the footprint frame (x, y, yaw)."""
    wx, wy = _local_to_world(x, y, yaw, local[0], local[1])
    return Primitive("box", np.array([wx, wy, local[2]]), np.array(half), yaw, _C[label], mat)


def _furniture(
    rng: np.random.Generator,
    kind: str,
    x: float,
    y: float,
    yaw: float,
    dims: tuple[float, float, float],
) -> list[Primitive]:
    """Primitives of one piece of furniture: footprint half extents dims[:2], height dims[2]."""
    hx, hy, h = dims
    prims: list[Primitive] = []
    if kind == "bed":
        fabric = _mat(rng, "fabric", _pick(rng, _FABRICS), scale=1.0)
        frame = _mat(rng, "wood", _pick(rng, _WOODS), scale=1.0)
        prims.append(_box("bed", x, y, yaw, (0, 0, 0.15), (hx, hy, 0.15), frame))
        prims.append(_box("bed", x, y, yaw, (0, 0.05, 0.40), (hx - 0.03, hy - 0.08, 0.10), fabric))
        prims.append(_box("bed", x, y, yaw, (0, -hy + 0.04, 0.5), (hx, 0.04, 0.5), frame))
    elif kind == "sofa":
        fabric = _mat(rng, "fabric", _pick(rng, _FABRICS), scale=1.0)
        prims.append(_box("sofa", x, y, yaw, (0, 0.05, 0.22), (hx, hy - 0.05, 0.22), fabric))
        prims.append(_box("sofa", x, y, yaw, (0, -hy + 0.1, 0.45), (hx, 0.1, 0.45), fabric))
        for side in (-1, 1):
            prims.append(
                _box(
                    "sofa",
                    x,
                    y,
                    yaw,
                    (side * (hx - 0.08), 0.05, 0.32),
                    (0.08, hy - 0.05, 0.32),
                    fabric,
                )
            )
    elif kind in ("table", "chair"):
        wood = _mat(
            rng,
            "wood",
            _pick(rng, _WOODS),
            scale=1.0,
            specular=0.25 if kind == "table" else 0.0,
            shininess=150,
        )
        top = 0.72 if kind == "table" else 0.45
        legs = 0.025
        prims.append(_box(kind, x, y, yaw, (0, 0, top), (hx, hy, 0.025), wood))
        for sx in (-1, 1):
            for sy in (-1, 1):
                prims.append(
                    _box(
                        kind,
                        x,
                        y,
                        yaw,
                        (sx * (hx - legs), sy * (hy - legs), top / 2),
                        (legs, legs, top / 2),
                        wood,
                    )
                )
        if kind == "chair":
            prims.append(
                _box("chair", x, y, yaw, (0, -hy + 0.02, top + 0.22), (hx, 0.02, 0.22), wood)
            )
    elif kind == "furniture":  # cabinet / wardrobe / shelf
        wood = _mat(rng, rng.choice(["wood", "plain"]), _pick(rng, _WOODS), scale=1.0)
        prims.append(_box("furniture", x, y, yaw, (0, 0, h / 2), (hx, hy, h / 2), wood))
    else:
        raise ValueError(kind)
    return prims


def _on_top(rng: np.random.Generator, surface: Primitive, out: list[Primitive]) -> None:
    """Books, a tv or small objects standing on a table/cabinet top."""
    top = surface.center[2] + surface.half[2]
    hx, hy = surface.half[0], surface.half[1]
    choice = rng.choice(["books", "objects", "tv"], p=[0.45, 0.4, 0.15])
    x0, y0, yaw = surface.center[0], surface.center[1], surface.yaw
    if choice == "books":
        n = int(rng.integers(2, 7))
        width = 0.025 + 0.02 * rng.random()
        start = rng.uniform(-hx + 0.05, max(-hx + 0.06, hx - n * width * 2 - 0.05))
        for k in range(n):
            bh = rng.uniform(0.08, 0.14)
            mat = _mat(rng, "stripes", rng.uniform(0.1, 0.9, 3), rng.uniform(0.1, 0.9, 3), scale=8)
            out.append(
                _box(
                    "books",
                    x0,
                    y0,
                    yaw,
                    (start + k * width * 2.05, 0, top + bh),
                    (width, min(hy * 0.6, 0.11), bh),
                    mat,
                )
            )
    elif choice == "tv":
        w = min(hx * 0.8, rng.uniform(0.3, 0.6))
        screen = _mat(
            rng,
            "screen",
            np.array([0.03, 0.03, 0.035]),
            np.array([0.08, 0.08, 0.08]),
            specular=0.8,
            shininess=400,
        )
        out.append(_box("tv", x0, y0, yaw, (0, 0, top + 0.02), (0.12, 0.06, 0.02), screen))
        out.append(
            _box("tv", x0, y0, yaw, (0, 0, top + 0.04 + w * 0.3), (w, 0.025, w * 0.3), screen)
        )
    else:
        for _ in range(int(rng.integers(1, 4))):
            lx, ly = rng.uniform(-hx * 0.7, hx * 0.7), rng.uniform(-hy * 0.6, hy * 0.6)
            wx, wy = _local_to_world(x0, y0, yaw, lx, ly)
            mat = _mat(rng, "plain", rng.uniform(0.1, 0.9, 3), specular=rng.choice([0.0, 0.4]))
            r, hh = rng.uniform(0.03, 0.08), rng.uniform(0.04, 0.15)
            kind = rng.choice(["box", "cylinder"])
            out.append(
                Primitive(
                    kind,
                    np.array([wx, wy, top + hh]),
                    np.array([r, r, hh]),
                    rng.uniform(0, math.pi),
                    _C["objects"],
                    mat,
                )
            )


def _on_wall(
    rng: np.random.Generator,
    size: np.ndarray,
    label: str,
    out: list[Primitive],
    taken: list[tuple[int, float, float]],
) -> None:
    """A window or painting flush on a random wall, not overlapping another one."""
    lx, ly, lz = size
    for _ in range(20):
        wall = int(rng.integers(4))
        length = lx if wall in (0, 2) else ly
        if label == "window":
            w, h, z = rng.uniform(0.4, 0.9), rng.uniform(0.5, 0.8), rng.uniform(1.3, 1.6)
            mat = _mat(
                rng,
                "window",
                np.array([0.10, 0.12, 0.16]),
                np.array([0.85, 0.85, 0.82]),
                specular=0.9,
                shininess=500,
            )
        else:
            w, h, z = rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.45), rng.uniform(1.3, 1.8)
            mat = _mat(
                rng,
                "art",
                np.array([0.5, 0.5, 0.5]),
                _pick(rng, _WOODS),
                scale=2,
                specular=0.3,
                shininess=300,
            )
        if length < 2 * w + 0.4 or z + h > lz - 0.05:
            continue
        s = rng.uniform(w + 0.2, length - w - 0.2)
        if any(t[0] == wall and abs(t[1] - s) < t[2] + w + 0.1 for t in taken):
            continue
        taken.append((wall, s, w))
        d = 0.02
        center = {0: (s, d, z), 1: (lx - d, s, z), 2: (s, ly - d, z), 3: (d, s, z)}[wall]
        yaw = 0.0 if wall in (0, 2) else math.pi / 2
        out.append(Primitive("box", np.array(center), np.array([w, d, h]), yaw, _C[label], mat))
        return


_ROOM_TYPES = {  # furniture pieces per room type: (kind, count range, against wall)
    "bedroom": [
        ("bed", (1, 1), True),
        ("furniture", (1, 2), True),
        ("chair", (0, 1), False),
        ("table", (0, 1), True),
    ],
    "living": [
        ("sofa", (1, 2), True),
        ("table", (1, 1), False),
        ("chair", (1, 2), False),
        ("furniture", (1, 2), True),
    ],
    "office": [
        ("table", (1, 2), False),
        ("chair", (1, 3), False),
        ("furniture", (1, 3), True),
        ("sofa", (0, 1), True),
    ],
}
_DIMS = {  # footprint half extents (x, y) ranges and height
    "bed": ((0.7, 1.0), (0.9, 1.05), 0.6),
    "sofa": ((0.7, 1.1), (0.4, 0.5), 0.9),
    "table": ((0.4, 0.8), (0.3, 0.5), 0.75),
    "chair": ((0.2, 0.25), (0.2, 0.25), 0.9),
    "furniture": ((0.3, 0.7), (0.2, 0.3), 1.8),
}


def room_size(rng: np.random.Generator) -> np.ndarray:
    """Random interior size (Lx, Ly, Lz) in metres: bedrooms to small offices."""
    return np.array([rng.uniform(3.5, 6.5), rng.uniform(3.5, 6.5), rng.uniform(2.4, 3.0)])


def generate_room(
    rng: np.random.Generator,
    size: np.ndarray,
    keep_free: np.ndarray | None = None,
    clearance: float = 0.45,
) -> Room:
    """A random furnished room of ``size``; floor footprints stay ``clearance`` m away from the
    ``keep_free`` (N, 2) camera positions so the camera is never inside furniture."""
    floor_pattern = rng.choice(["wood", "tiles"])
    room = Room(
        size=size,
        wall=_mat(rng, "plain", _pick(rng, _WALLS), scale=1.0),
        floor=_mat(
            rng,
            floor_pattern,
            _pick(rng, _WOODS) if floor_pattern == "wood" else _pick(rng, _WALLS),
            _pick(rng, _WOODS),
            scale=1.5,
            specular=0.15,
            shininess=30,
        ),
        ceiling=_mat(rng, "plain", np.array([0.88, 0.88, 0.86]), scale=0.5),
        ambient=float(rng.uniform(0.15, 0.3)),
    )
    keep = np.zeros((0, 2)) if keep_free is None else np.asarray(keep_free)[:, :2]
    placer = _Placer(size, keep, clearance)
    prims = room.primitives
    surfaces: list[Primitive] = []
    room_type = rng.choice(list(_ROOM_TYPES))
    for kind, (lo, hi), wall in _ROOM_TYPES[room_type]:
        for _ in range(int(rng.integers(lo, hi + 1))):
            (ax, bx), (ay, by), h = _DIMS[kind]
            hx, hy = rng.uniform(ax, bx), rng.uniform(ay, by)
            spot = placer.place(rng, hx, hy, wall)
            if spot is None:
                continue
            pieces = _furniture(rng, kind, *spot, (hx, hy, h * rng.uniform(0.85, 1.1)))
            prims += pieces
            if kind in ("table", "furniture"):
                surfaces.append(pieces[0])
    for surface in surfaces:
        if rng.random() < 0.85:
            _on_top(rng, surface, prims)
    for _ in range(int(rng.integers(1, 4))):  # objects and unlabelled clutter on the floor
        r, hh = rng.uniform(0.1, 0.25), rng.uniform(0.1, 0.4)
        spot = placer.place(rng, r, r, False)
        if spot is not None:
            label = _C["objects"] if rng.random() < 0.75 else 0
            prims.append(
                Primitive(
                    str(rng.choice(["box", "cylinder"])),
                    np.array([spot[0], spot[1], hh]),
                    np.array([r, r, hh]),
                    spot[2],
                    label,
                    _mat(rng, "plain", rng.uniform(0.1, 0.9, 3)),
                )
            )
    taken: list[tuple[int, float, float]] = []
    for _ in range(int(rng.integers(1, 3))):
        _on_wall(rng, size, "window", prims, taken)
    for _ in range(int(rng.integers(1, 4))):
        _on_wall(rng, size, "painting", prims, taken)
    nl = int(rng.integers(1, 5))
    room.lights = np.stack(
        [
            rng.uniform(0.2, 0.8, nl) * size[0],
            rng.uniform(0.2, 0.8, nl) * size[1],
            np.full(nl, size[2] - 0.05),
        ],
        axis=1,
    )
    room.light_power = rng.uniform(2.0, 5.0, nl) / nl
    return room


# ----------------------------------------------------------------------------- ray casting


@dataclass
class _Hits:
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


def _rows_times(v: np.ndarray, M: np.ndarray) -> np.ndarray:
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


def _cast(room: Room, pose: Pose, K: Intrinsics, dirs: np.ndarray) -> _Hits:
    """Nearest hit of every pixel's ray against the room shell and all primitives."""
    half_room = (room.size / 2).astype(np.float32)
    o_room = (pose.position - room.size / 2).astype(np.float32)
    t, axis = _slabs(o_room, dirs, half_room, inside=True)
    normal, point = _box_surface(o_room, dirs, t, axis)
    hits = _Hits(
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


# ----------------------------------------------------------------------------- shading + sensor


def _albedo_and_labels(
    room: Room, hits: _Hits, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel albedo, label, specular strength and shininess from the hit primitive."""
    albedo = np.empty((n, 3), np.float32)
    label = np.empty(n, np.uint8)
    spec = np.zeros(n, np.float32)
    shin = np.ones(n, np.float32)
    order = np.argsort(hits.prim, kind="stable")
    ids, starts = np.unique(hits.prim[order], return_index=True)
    groups = np.split(order, starts[1:])
    for pid, idx in zip(ids.tolist(), groups, strict=True):
        uv, axis = hits.uv[idx], hits.axis[idx]
        if pid < 0:  # room shell: split by face
            nz = hits.normal[idx, 2]
            for mat, cls, mask in (
                (room.floor, "floor", nz > 0.5),
                (room.ceiling, "ceiling", nz < -0.5),
                (room.wall, "wall", np.abs(nz) <= 0.5),
            ):
                sub = idx[mask]
                albedo[sub] = _texture(
                    mat, uv[mask, 0], uv[mask, 1], (0.0, 0.0), np.zeros(len(sub), bool)
                )
                label[sub] = _C[cls]
                spec[sub], shin[sub] = mat.specular, mat.shininess
            continue
        prim = room.primitives[pid]
        m = prim.material
        thin = int(np.argmin(prim.half))  # main face of thin boxes (paintings, windows, screens)
        extent = tuple(2 * prim.half[[a for a in range(3) if a != thin]])
        albedo[idx] = _texture(
            m, uv[:, 0], uv[:, 1], (float(extent[0]), float(extent[1])), axis == thin
        )
        label[idx] = prim.label
        spec[idx], shin[idx] = m.specular, m.shininess
    return albedo, label, spec, shin


def apply_sensor(
    signal: np.ndarray, electrons: float, read_noise_dn: float, rng: np.random.Generator | None
) -> np.ndarray:
    """Shot noise (Gaussian approx. of Poisson with ``electrons`` at full scale), read noise in
    DN, clipping and 8-bit quantisation. ``rng=None`` renders noise-free."""
    x = np.clip(signal, 0.0, None)
    if rng is not None:
        noise = rng.standard_normal(x.shape, dtype=np.float32)
        x = x + noise * np.sqrt(x / electrons + (read_noise_dn / 255.0) ** 2)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def render(
    room: Room,
    pose: Pose,
    K: Intrinsics,
    rng: np.random.Generator,
    name: str = "view",
    *,
    noise: bool = True,
    low: LowLight | None = None,
    normal: NormalLight | None = None,
) -> Sample:
    """Render one view of ``room`` in both lightings with full ground truth.

    Args:
        room: the scene.
        pose: camera pose.
        K: intrinsics (image size included).
        rng: draws the exposure, LED power and sensor noise of this view.
        name: sample name.
        noise: False renders noise-free images (for tests and relighting checks).
        low: LED/camera settings of the dark view; defaults to ``LowLight()``.
        normal: settings of the normal-light view; defaults to ``NormalLight()``.

    Returns:
        A Sample with low, normal, label, depth (uint16 mm), albedo, shading_low,
        shading_normal and intrinsics.
    """
    low = low or LowLight()
    normal = normal or NormalLight()
    h, w = K.height, K.width
    n = h * w
    rot = pose.rotation()
    dirs = _rows_times(K.rays().reshape(-1, 3), rot.T.astype(np.float32))
    hits = _cast(room, pose, K, dirs)
    albedo, label, spec, shin = _albedo_and_labels(room, hits, n)
    points = pose.position.astype(np.float32) + hits.depth[:, None] * dirs
    nrm = hits.normal

    # low light: LED at the camera; view and light directions coincide
    to_cam = pose.position.astype(np.float32) - points
    dist2 = np.einsum("ij,ij->i", to_cam, to_cam)
    cos_led = np.clip(np.einsum("ij,ij->i", nrm, to_cam) / np.sqrt(dist2), 0, 1)
    led = rng.uniform(*low.led_gain)
    shading_low = led * cos_led / dist2 + rng.uniform(*low.ambient)
    # energy-normalised Blinn-Phong: a sharp lobe peaks at (shin + 8) / (8 pi) x its reflectance,
    # which is what saturates glossy surfaces facing the LED (the paper's failure cases)
    spec = spec * (shin + 8) / (8 * np.pi)
    spec_low = spec * led * rng.uniform(*low.hotspot_gain) * cos_led**shin / dist2

    # normal light: ceiling point lights (Lambert + Blinn-Phong) + ambient, then auto-exposure
    shading_n = np.full(n, room.ambient, np.float32)
    spec_n = np.zeros(n, np.float32)
    view = to_cam / np.sqrt(dist2)[:, None]
    for pos, power in zip(room.lights.astype(np.float32), room.light_power, strict=True):
        to_l = pos - points
        d2 = np.einsum("ij,ij->i", to_l, to_l)
        ldir = to_l / np.sqrt(d2)[:, None]
        shading_n += power * np.clip(np.einsum("ij,ij->i", nrm, ldir), 0, 1) / d2
        half = ldir + view
        half /= np.linalg.norm(half, axis=1, keepdims=True)
        spec_n += spec * power * np.clip(np.einsum("ij,ij->i", nrm, half), 0, 1) ** shin / d2
    exposure = rng.uniform(*normal.target_mean) / float(np.mean(albedo * shading_n[:, None]))
    shading_n *= exposure
    spec_n *= exposure

    noise_rng = rng if noise else None
    low_img = apply_sensor(
        albedo * shading_low[:, None] + spec_low[:, None],
        rng.uniform(*low.electrons),
        rng.uniform(*low.read_noise),
        noise_rng,
    )
    normal_img = apply_sensor(
        albedo * shading_n[:, None] + spec_n[:, None],
        normal.electrons,
        normal.read_noise,
        noise_rng,
    )

    depth = hits.depth
    valid = (depth >= D435I_MIN_DEPTH_M) & (depth <= D435I_MAX_DEPTH_M) & (label != _C["window"])
    depth_mm = np.where(valid, np.rint(depth * 1000.0), 0).astype(np.uint16)
    return Sample(
        name=name,
        low=low_img.reshape(h, w, 3),
        normal=normal_img.reshape(h, w, 3),
        label=label.reshape(h, w),
        depth=depth_mm.reshape(h, w),
        albedo=np.rint(albedo * 255).astype(np.uint8).reshape(h, w, 3),
        shading_low=shading_low.astype(np.float32).reshape(h, w),
        shading_normal=shading_n.astype(np.float32).reshape(h, w),
        intrinsics=K,
    )


# ----------------------------------------------------------------------------- views and sequences


def _look(position: np.ndarray, yaw: float, pitch: float) -> Pose:
    f = np.array(
        [math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)]
    )
    return Pose(np.asarray(position, np.float64), f)


def random_view(
    seed: int, index: int, intrinsics: Intrinsics, low: LowLight | None = None
) -> Sample:
    """View ``index`` of the procedural set ``seed``: its own random room and camera pose;
    ``low`` the dark view's settings (default ``LowLight()``).

    Deterministic: the same (seed, index, intrinsics, low) always gives the same sample.
    """
    rng = np.random.default_rng([seed, index])
    # camera first, then furniture kept clear of it (a robot is never inside a cabinet)
    size = room_size(rng)
    xy = rng.uniform(0.5, size[:2] - 0.5)
    room = generate_room(rng, size, keep_free=xy[None, :])
    position = np.array([xy[0], xy[1], rng.uniform(0.6, 1.8)])
    center = room.size[:2] / 2
    to_center = math.atan2(center[1] - xy[1], center[0] - xy[0])
    pose = _look(position, to_center + rng.uniform(-0.9, 0.9), rng.uniform(-0.45, 0.3))
    return render(room, pose, intrinsics, rng, name=f"{seed:04d}_{index:06d}", low=low)


def trajectory(
    room_size: np.ndarray, num_frames: int, rng: np.random.Generator, step_m: float = 0.02
) -> list[Pose]:
    """A smooth closed loop around the room centre, looking across the room.

    The camera advances ``step_m`` metres per frame (0.02 m at 30 Hz is 0.6 m/s, a slow drone),
    bobs gently in height and pans smoothly; consecutive poses differ by a few centimetres and
    about a degree, as a replayed camera stream does.
    """
    center = room_size[:2] / 2
    a, b = 0.28 * room_size[0], 0.28 * room_size[1]
    phase = rng.uniform(0, 2 * math.pi)
    height = rng.uniform(0.8, 1.4)
    wobble = rng.uniform(0, 2 * math.pi, 3)
    dpsi = step_m / max(0.5 * (a + b), 0.5)
    poses = []
    for i in range(num_frames):
        psi = phase + i * dpsi
        pos = np.array(
            [
                center[0] + a * math.cos(psi),
                center[1] + b * math.sin(psi),
                height + 0.1 * math.sin(3 * psi + wobble[0]),
            ]
        )
        yaw = psi + math.pi + 0.6 * math.sin(2 * psi + wobble[1])  # look across, panning
        pitch = -0.2 + 0.12 * math.sin(psi + wobble[2])
        poses.append(_look(pos, yaw, pitch))
    return poses


@lru_cache(maxsize=4)
def _sequence_setup(
    seed: int, room_index: int, num_frames: int, step_m: float
) -> tuple[Room, list[Pose], int]:
    """Room, trajectory and camera-settings seed of one sequence (cached: frames share them)."""
    rng = np.random.default_rng([seed, room_index])
    size = room_size(rng)
    poses = trajectory(size, num_frames, rng, step_m)
    room = generate_room(rng, size, keep_free=np.array([p.position[:2] for p in poses]))
    return room, poses, int(rng.integers(1 << 31))


def sequence_frame(
    seed: int,
    room_index: int,
    frame: int,
    num_frames: int,
    intrinsics: Intrinsics,
    step_m: float = 0.02,
    low: LowLight | None = None,
) -> Sample:
    """Frame ``frame`` of a smooth ``num_frames``-frame trajectory through one room; ``low``
    the ranges the dark view's settings are drawn from (default ``LowLight()``).

    The trajectory is drawn first and furniture is kept clear of it. Room, lights, LED power
    and exposure settings stay fixed along the sequence, as they do on a robot; each frame draws
    its own sensor noise. Frames can be rendered independently (e.g. in worker processes).
    """
    if not 0 <= frame < num_frames:
        raise ValueError(f"frame {frame} outside 0..{num_frames - 1}")
    room, poses, settings_seed = _sequence_setup(seed, room_index, num_frames, step_m)
    return _render_with(
        room,
        poses[frame],
        intrinsics,
        np.random.default_rng(settings_seed),
        np.random.default_rng([seed, room_index, frame, 1]),
        name=f"{room_index:04d}_{frame:06d}",
        low=low,
    )


def sequence(
    seed: int, room_index: int, num_frames: int, intrinsics: Intrinsics, step_m: float = 0.02
) -> Iterator[Sample]:
    """All frames of one room's trajectory, in order (see ``sequence_frame``)."""
    for frame in range(num_frames):
        yield sequence_frame(seed, room_index, frame, num_frames, intrinsics, step_m)


def tour_rooms(
    seed: int,
    num_rooms: int,
    frames_per_room: int,
    num_classes: int,
    *,
    candidates: int = 40,
    probe_frames: int = 8,
) -> list[int]:
    """Room indices for a tour whose frames show as many classes as possible: rooms are taken
    greedily (most classes not yet seen first), judging each by the labels of ``probe_frames``
    frames of its trajectory rendered at 80x60 (a few ms each). ``num_classes`` counts void."""
    probe = Intrinsics.d435i(80, 60)
    step = max(1, frames_per_room // probe_frames)
    seen_in: dict[int, set[int]] = {}
    for room in range(candidates):
        labels: set[int] = set()
        for frame in range(0, frames_per_room, step):
            view = sequence_frame(seed, room, frame, frames_per_room, probe)
            labels.update(np.unique(view.label).tolist())
        seen_in[room] = labels - {0}
    chosen: list[int] = []
    covered: set[int] = set()
    while len(chosen) < min(num_rooms, candidates):
        room = max(
            (r for r in seen_in if r not in chosen),
            key=lambda r: (len(seen_in[r] - covered), -r),
        )
        chosen.append(room)
        covered |= seen_in[room]
    return chosen


def tour(
    seed: int, num_frames: int, intrinsics: Intrinsics, frames_per_room: int = 30
) -> Iterator[Sample]:
    """A drone's flight through several rooms, ``frames_per_room`` frames of each trajectory
    (fewer of the last): the rooms of :func:`tour_rooms`, so the sequence shows as many of the
    classes as the generator's rooms hold."""
    from ..classes import load_classes

    per_room = max(1, min(frames_per_room, num_frames))
    rooms = tour_rooms(seed, -(-num_frames // per_room), per_room, load_classes().num_classes)
    for i, room in enumerate(rooms):
        for frame in range(min(per_room, num_frames - i * per_room)):
            yield sequence_frame(seed, room, frame, per_room, intrinsics)


def _render_with(
    room: Room,
    pose: Pose,
    K: Intrinsics,
    settings_rng: np.random.Generator,
    noise_rng: np.random.Generator,
    name: str,
    low: LowLight | None = None,
) -> Sample:
    """Render with exposure/LED drawn from ``settings_rng`` (from ``low``'s ranges) and noise
    from ``noise_rng``."""
    low, normal = low or LowLight(), NormalLight()
    ranges = (low.led_gain, low.ambient, low.electrons, low.read_noise, low.hotspot_gain)
    fixed_low = LowLight(*[(v, v) for v in (settings_rng.uniform(*r) for r in ranges)])
    target = settings_rng.uniform(*normal.target_mean)
    fixed_normal = NormalLight((target, target), normal.electrons, normal.read_noise)
    return render(room, pose, K, noise_rng, name, low=fixed_low, normal=fixed_normal)
