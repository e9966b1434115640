"""Procedural low-light RGB-D views with a normal-light twin of every view.

LLRGBD-synthetic (LISU paper §4.1) was rendered with a single light on the camera and a
normal-light twin of each view; we cannot download it, so we render our own, the same way: rooms
from ``data.scene`` (all 13 classes), ray cast by ``data.raycast``, then lit here:

* two lightings: normal (ceiling lights + ambient, auto-exposed) and low (only a point LED at the
  camera: inverse-square falloff, Lambert cosine, a few lux, fixed high-gain exposure; the LED's
  colour and beam, the lens' vignetting and motion blur vary from robot to robot);
* a sensor model: shot + read noise, 8-bit quantisation, clipped specular hot spots on glossy
  classes (tv, window, painting glass, table varnish), as in the paper's failure cases;
* random views, smooth trajectories through one room, and tours through several.

Images are linear (no tone curve), so ``image ~= albedo * shading`` holds before specular, noise
and clipping: the ground truth of a Retinex decomposition. Depth is z-depth in uint16 mm with 0
for invalid (REP 118 / D435i): windows (IR passes through glass) and closer than the D435i's
minimum range. Everything is deterministic from a seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np

from ..camera import Intrinsics
from .raycast import Hits, Pose, cast, rows_times
from .sample import Sample
from .scene import CLASS_IDS, Room, generate_room, room_size, texture

D435I_MIN_DEPTH_M = 0.28  # D435i minimum z at 640x480
D435I_MAX_DEPTH_M = 10.0


@dataclass(frozen=True)
class LowLight:
    """The robot's LED and camera settings for the dark view.

    ``led_gain`` is the shading (image units) of a surface 1 m away facing the camera; a few
    lux on a high-gain sensor. ``electrons`` is the full-scale signal in photo-electrons at
    that gain (lower = more shot noise); ``read_noise`` in DN. ``hotspot_gain`` scales the
    LED's specular lobe: a small, bright emitter's mirror image outshines its diffuse light, so
    glossy surfaces seen head-on clip.

    What differs between robots and lenses: ``led_warmth`` the LED's colour (-1 a cool white
    of about 6500 K, +1 a warm white of about 2700 K); ``beam_exponent`` m of its beam, intensity
    cos^m of the angle off the optical axis (0 uniform, 1 a bare 120-degree LED, 3 half power at
    37 degrees); ``vignetting`` the lens' relative falloff at the image corners, 1 - v r^2 (both
    views: one lens); ``motion_blur`` the streak of the long dark exposure while the robot moves,
    in image widths along a random direction (the dark view only: the lit one is short).
    """

    led_gain: tuple[float, float] = (0.12, 0.40)
    ambient: tuple[float, float] = (0.0, 0.004)
    electrons: tuple[float, float] = (300.0, 900.0)
    read_noise: tuple[float, float] = (0.8, 2.0)
    hotspot_gain: tuple[float, float] = (3.0, 8.0)
    led_warmth: tuple[float, float] = (-1.0, 1.0)
    beam_exponent: tuple[float, float] = (0.0, 3.0)
    vignetting: tuple[float, float] = (0.0, 0.4)
    motion_blur: tuple[float, float] = (0.0, 0.01)

    def fixed(self, rng: np.random.Generator) -> LowLight:
        """One draw of every setting, as ranges of zero width (a sequence's fixed camera)."""
        return LowLight(
            **{f.name: (v, v) for f in fields(self) for v in [rng.uniform(*getattr(self, f.name))]}
        )


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


# ----------------------------------------------------------------------------- shading + sensor


def _albedo_and_labels(
    room: Room, hits: Hits, n: int
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
                albedo[sub] = texture(
                    mat, uv[mask, 0], uv[mask, 1], (0.0, 0.0), np.zeros(len(sub), bool)
                )
                label[sub] = CLASS_IDS[cls]
                spec[sub], shin[sub] = mat.specular, mat.shininess
            continue
        prim = room.primitives[pid]
        m = prim.material
        thin = int(np.argmin(prim.half))  # main face of thin boxes (paintings, windows, screens)
        extent = tuple(2 * prim.half[[a for a in range(3) if a != thin]])
        albedo[idx] = texture(
            m, uv[:, 0], uv[:, 1], (float(extent[0]), float(extent[1])), axis == thin
        )
        label[idx] = prim.label
        spec[idx], shin[idx] = m.specular, m.shininess
    return albedo, label, spec, shin


def led_tint(warmth: float) -> np.ndarray:
    """Per-channel RGB gain of a white LED (mean 1): -1 cool (bluish), 0 neutral, +1 warm."""
    gain = np.array([1.0 + 0.12 * warmth, 1.0, 1.0 - 0.22 * warmth], np.float32)
    return gain / gain.mean()


def vignetting(K: Intrinsics, strength: float) -> np.ndarray:
    """(H, W) lens falloff 1 - strength * r^2, r the distance from the principal point over
    its distance to the farthest image corner (1 there)."""
    u = np.arange(K.width, dtype=np.float32) - K.cx
    v = np.arange(K.height, dtype=np.float32) - K.cy
    r2 = u[None, :] ** 2 + v[:, None] ** 2
    return (1.0 - strength * r2 / r2.max()).astype(np.float32)


def motion_blur(image: np.ndarray, length_px: float, angle: float) -> np.ndarray:
    """An (H, W, C) image averaged along a straight streak of ``length_px`` pixels at ``angle``
    (radians from the image x axis), centred on each pixel; edges clamp. Under half a pixel it
    is returned unchanged."""
    if length_px < 0.5:
        return image
    h, w = image.shape[:2]
    taps = math.ceil(length_px) + 1
    out = np.zeros_like(image)
    for t in np.linspace(-length_px / 2, length_px / 2, taps):
        ys = np.clip(np.arange(h) + round(t * math.sin(angle)), 0, h - 1)
        xs = np.clip(np.arange(w) + round(t * math.cos(angle)), 0, w - 1)
        out += image[ys][:, xs]
    return out / taps


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
    rays = K.rays().reshape(-1, 3)
    dirs = rows_times(rays, rot.T.astype(np.float32))
    hits = cast(room, pose, K, dirs)
    albedo, label, spec, shin = _albedo_and_labels(room, hits, n)
    points = pose.position.astype(np.float32) + hits.depth[:, None] * dirs
    nrm = hits.normal

    # low light: LED at the camera; view and light directions coincide
    to_cam = pose.position.astype(np.float32) - points
    dist2 = np.einsum("ij,ij->i", to_cam, to_cam)
    cos_led = np.clip(np.einsum("ij,ij->i", nrm, to_cam) / np.sqrt(dist2), 0, 1)
    led = rng.uniform(*low.led_gain)
    ambient_low = rng.uniform(*low.ambient)
    tint = led_tint(rng.uniform(*low.led_warmth))
    off_axis_cos = 1.0 / np.linalg.norm(rays, axis=1)  # cosine of the angle off the optical axis
    beam = off_axis_cos ** rng.uniform(*low.beam_exponent)
    vignette = vignetting(K, rng.uniform(*low.vignetting)).reshape(-1)
    blur_px = rng.uniform(*low.motion_blur) * w
    blur_angle = rng.uniform(0, math.pi)
    shading_low = (led * beam * cos_led / dist2 + ambient_low) * vignette
    # energy-normalised Blinn-Phong: a sharp lobe peaks at (shin + 8) / (8 pi) x its reflectance,
    # which is what saturates glossy surfaces facing the LED (the paper's failure cases)
    spec = spec * (shin + 8) / (8 * np.pi)
    spec_low = spec * led * rng.uniform(*low.hotspot_gain) * beam * vignette * cos_led**shin / dist2

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
    shading_n *= vignette
    spec_n *= vignette
    exposure = rng.uniform(*normal.target_mean) / float(np.mean(albedo * shading_n[:, None]))
    shading_n *= exposure
    spec_n *= exposure

    noise_rng = rng if noise else None
    dark = (albedo * shading_low[:, None] + spec_low[:, None]) * tint
    low_img = apply_sensor(
        motion_blur(dark.reshape(h, w, 3), blur_px, blur_angle).reshape(n, 3),
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
    valid = (
        (depth >= D435I_MIN_DEPTH_M) & (depth <= D435I_MAX_DEPTH_M) & (label != CLASS_IDS["window"])
    )
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
    fixed_low = low.fixed(settings_rng)
    target = settings_rng.uniform(*normal.target_mean)
    fixed_normal = NormalLight((target, target), normal.electrons, normal.read_noise)
    return render(room, pose, K, noise_rng, name, low=fixed_low, normal=fixed_normal)
