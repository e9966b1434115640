"""Relight a normal-light RGB-D frame as the same robot's LED-lit dark frame.

Turns any labelled RGB-D set (NYUv2 shares LLRGBD's 13 classes) into LISU training pairs. The
model matches the procedural renderer's low light: a point LED at the camera, inverse-square
falloff, Lambert cosine with normals from depth, a fixed exposure, then the same sensor model
(shot + read noise, 8-bit). Albedo is estimated from the normal-light image by dividing out a
smooth illumination estimate (Retinex); that estimate is where most of the error comes from,
and ``check_on_procedural`` measures it against frames rendered with the true albedo.
"""

from __future__ import annotations

import numpy as np

from ..camera import Intrinsics
from .synthetic import apply_sensor

ALBEDO_MEAN = 0.5  # prior mean albedo of indoor scenes: fixes the scale a single image lacks


def fill_depth(depth_m: np.ndarray) -> np.ndarray:
    """Fill invalid (0) depth by push-pull: average valid neighbours at coarser scales."""
    valid = depth_m > 0
    if valid.all():
        return depth_m.astype(np.float32)
    if not valid.any():
        raise ValueError("depth image has no valid pixel to relight from")
    levels = [(np.where(valid, depth_m, 0).astype(np.float32), valid.astype(np.float32))]
    while min(levels[-1][0].shape) > 1 and levels[-1][1].min() == 0:
        value, weight = levels[-1]
        h, w = (value.shape[0] + 1) // 2 * 2, (value.shape[1] + 1) // 2 * 2
        value = np.pad(value, ((0, h - value.shape[0]), (0, w - value.shape[1])))
        weight = np.pad(weight, ((0, h - weight.shape[0]), (0, w - weight.shape[1])))
        value = value.reshape(h // 2, 2, w // 2, 2).sum(axis=(1, 3))
        weight = weight.reshape(h // 2, 2, w // 2, 2).sum(axis=(1, 3))
        levels.append((value, weight))
    filled = levels[-1][0] / np.maximum(levels[-1][1], 1e-6)
    for value, weight in reversed(levels[:-1]):
        up = np.repeat(np.repeat(filled, 2, axis=0), 2, axis=1)[: value.shape[0], : value.shape[1]]
        filled = np.where(weight > 0, value / np.maximum(weight, 1e-6), up)
    return filled.astype(np.float32)


def normals_from_depth(points: np.ndarray) -> np.ndarray:
    """Unit surface normals (H, W, 3) from optical-frame points, facing the camera."""
    du = np.gradient(points, axis=1)
    dv = np.gradient(points, axis=0)
    n = np.cross(du, dv)
    n /= np.maximum(np.linalg.norm(n, axis=2, keepdims=True), 1e-9)
    facing = np.einsum("hwc,hwc->hw", n, points) > 0
    n[facing] *= -1  # towards the camera (which sits at the origin)
    return n


def led_shading(
    depth_mm: np.ndarray, intrinsics: Intrinsics, led_gain: float, ambient: float = 0.0
) -> np.ndarray:
    """Shading (H, W) of an LED at the camera: ``led_gain`` at 1 m facing the camera, Lambert
    cosine and inverse-square falloff, plus ``ambient``. Invalid depth is filled first."""
    depth_m = fill_depth(depth_mm.astype(np.float32) / 1000.0)
    points = intrinsics.backproject(depth_m)
    dist2 = np.einsum("hwc,hwc->hw", points, points)
    normals = normals_from_depth(points)
    cos = np.clip(-np.einsum("hwc,hwc->hw", normals, points) / np.sqrt(dist2), 0.0, 1.0)
    return (led_gain * cos / dist2 + ambient).astype(np.float32)


def estimate_albedo(
    normal_rgb: np.ndarray, input_gamma: float = 1.0, smooth_px: float | None = None
) -> np.ndarray:
    """Albedo (H, W, 3) in [0, 1] from a normal-light image: divide out a smooth illumination.

    Args:
        normal_rgb: (H, W, 3) uint8.
        input_gamma: 1.0 for linear images (ours); 2.2 for sRGB camera JPEGs (NYUv2).
        smooth_px: scale of the illumination estimate (default: 1/8 of the image width); the
            illumination is the max-RGB (as in LISU's Eq. 4 prior) box-averaged at that scale.
    """
    linear = (normal_rgb.astype(np.float32) / 255.0) ** input_gamma
    h, w = linear.shape[:2]
    k = max(2, int(smooth_px or w / 8))
    lum = linear.max(axis=2)
    # block average at scale k, then bilinear-ish upsample by repetition + blur of the blocks
    hb, wb = -(-h // k), -(-w // k)
    padded = np.pad(lum, ((0, hb * k - h), (0, wb * k - w)), mode="edge")
    blocks = padded.reshape(hb, k, wb, k).mean(axis=(1, 3))
    ys = (np.arange(h) + 0.5) / k - 0.5
    xs = (np.arange(w) + 0.5) / k - 0.5
    y0 = np.clip(np.floor(ys).astype(int), 0, hb - 1)
    x0 = np.clip(np.floor(xs).astype(int), 0, wb - 1)
    y1, x1 = np.minimum(y0 + 1, hb - 1), np.minimum(x0 + 1, wb - 1)
    fy = np.clip(ys - y0, 0, 1)[:, None]
    fx = np.clip(xs - x0, 0, 1)[None, :]
    illum = (blocks[y0][:, x0] * (1 - fx) + blocks[y0][:, x1] * fx) * (1 - fy) + (
        blocks[y1][:, x0] * (1 - fx) + blocks[y1][:, x1] * fx
    ) * fy
    albedo = linear / np.maximum(illum, 1e-3)[..., None]
    albedo *= ALBEDO_MEAN / max(float(albedo.mean()), 1e-6)
    return np.clip(albedo, 0.0, 1.0).astype(np.float32)


def relight(
    normal_rgb: np.ndarray,
    depth_mm: np.ndarray,
    intrinsics: Intrinsics,
    *,
    led_gain: float = 0.2,
    ambient: float = 0.002,
    electrons: float = 600.0,
    read_noise: float = 1.2,
    input_gamma: float = 1.0,
    seed: int | None = 0,
    noise: bool = True,
) -> np.ndarray:
    """The LED-lit dark twin (H, W, 3) uint8 of a normal-light RGB-D frame.

    Args:
        normal_rgb: (H, W, 3) uint8 RGB under normal light.
        depth_mm: (H, W) uint16 aligned z-depth in millimetres, 0 = invalid.
        intrinsics: the colour camera (size must match the images).
        led_gain: shading of a surface 1 m away facing the camera (see synthetic.LowLight).
        ambient: residual shading where the LED does not reach.
        electrons: full-scale photo-electrons (shot noise); read_noise: DN.
        input_gamma: 2.2 to linearise sRGB inputs; the output is linear like our renders.
        seed: noise seed; noise: False returns the noise-free frame.

    Raises:
        ValueError: on mismatched shapes or a depth image with no valid pixel.
    """
    if normal_rgb.ndim != 3 or normal_rgb.shape[2] != 3 or normal_rgb.dtype != np.uint8:
        raise ValueError(
            f"normal_rgb must be (H, W, 3) uint8, got {normal_rgb.shape} {normal_rgb.dtype}"
        )
    if depth_mm.shape != normal_rgb.shape[:2]:
        raise ValueError(f"depth {depth_mm.shape} does not match image {normal_rgb.shape[:2]}")
    if (intrinsics.height, intrinsics.width) != depth_mm.shape:
        raise ValueError(
            f"intrinsics are {intrinsics.width}x{intrinsics.height}, images are "
            f"{depth_mm.shape[1]}x{depth_mm.shape[0]}"
        )
    albedo = estimate_albedo(normal_rgb, input_gamma)
    shading = led_shading(depth_mm, intrinsics, led_gain, ambient)
    rng = np.random.default_rng(seed) if noise else None
    return apply_sensor(albedo * shading[..., None], electrons, read_noise, rng)


def check_on_procedural(
    views: int = 20, size: tuple[int, int] = (320, 240), seed: int = 7, led_gain: float = 0.2
) -> dict:
    """Relight noise-free procedural normal frames and compare with the rendered dark frames.

    Returns mean absolute errors in 8-bit DN over all pixels and over valid-depth pixels, the
    ratio of mean intensities, and the same errors with the TRUE albedo (shading model only),
    which separates the LED/normals model error from the albedo-estimation error.
    """
    from .raycast import Pose
    from .scene import generate_room, room_size
    from .synthetic import LowLight, render

    K = Intrinsics.d435i(*size)
    # the LED model relight() inverts: no colour, beam, vignetting or blur of a real robot
    fixed = LowLight(
        led_gain=(led_gain, led_gain),
        ambient=(0.0, 0.0),
        led_warmth=(0.0, 0.0),
        beam_exponent=(0.0, 0.0),
        vignetting=(0.0, 0.0),
        motion_blur=(0.0, 0.0),
    )
    err_all, err_valid, err_model, ratio, means = [], [], [], [], []
    for i in range(views):
        rng = np.random.default_rng([seed, i])
        dims = room_size(rng)
        xy = rng.uniform(0.5, dims[:2] - 0.5)
        room = generate_room(rng, dims, keep_free=xy[None, :])
        yaw = rng.uniform(-np.pi, np.pi)
        pose = Pose(np.array([xy[0], xy[1], 1.2]), np.array([np.cos(yaw), np.sin(yaw), -0.3]))
        truth = render(room, pose, K, rng, noise=False, low=fixed)
        relit = relight(truth.normal, truth.depth, K, led_gain=led_gain, ambient=0.0, noise=False)
        model = apply_sensor(
            truth.albedo.astype(np.float32)
            / 255.0
            * led_shading(truth.depth, K, led_gain)[..., None],
            1.0,
            0.0,
            None,
        )
        diff = np.abs(relit.astype(np.float32) - truth.low.astype(np.float32))
        valid = truth.depth > 0
        err_all.append(float(diff.mean()))
        err_valid.append(float(diff[valid].mean()))
        err_model.append(float(np.abs(model.astype(np.float32) - truth.low)[valid].mean()))
        means.append(float(truth.low.mean()))
        ratio.append(float(relit.mean()) / max(means[-1], 1e-6))
    return {
        "views": views,
        "size": f"{size[0]}x{size[1]}",
        "led_gain": led_gain,
        "mae_dn_all": round(float(np.mean(err_all)), 3),
        "mae_dn_valid_depth": round(float(np.mean(err_valid)), 3),
        "mae_dn_true_albedo": round(float(np.mean(err_model)), 3),
        "truth_mean_dn": round(float(np.mean(means)), 3),
        "relative_mae": round(float(np.mean(err_all) / np.mean(means)), 3),
        "mean_intensity_ratio": round(float(np.mean(ratio)), 3),
    }
