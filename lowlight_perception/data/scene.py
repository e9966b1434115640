"""Procedural furnished rooms: the scene description (materials, boxes and cylinders, rooms),
per-class procedural albedo textures and the random room generator (bedrooms, living rooms,
offices holding all 13 classes, placed without overlap and clear of the camera)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..classes import load_classes

# Class ids by name, resolved once from config/classes.yaml.
CLASS_IDS = {name: i for i, name in enumerate(load_classes().names)}


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


def texture(
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
    return Primitive(
        "box", np.array([wx, wy, local[2]]), np.array(half), yaw, CLASS_IDS[label], mat
    )


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
                    CLASS_IDS["objects"],
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
        out.append(
            Primitive("box", np.array(center), np.array([w, d, h]), yaw, CLASS_IDS[label], mat)
        )
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
            label = CLASS_IDS["objects"] if rng.random() < 0.75 else 0
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
