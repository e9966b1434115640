"""Image corruptions for robustness tests: the paper's four kinds at four levels, plus darkness.

The four regular degradations and their levels are those of the degradation benchmark in
[Xia] (README, References): Gaussian blur, Gaussian noise, JPEG, chromatic aberration; ``darken``
and ``motion_blur`` are this project's additions for a robot that flies through dark rooms. Every
function takes an (H, W, 3) uint8 RGB image (the blur, noise, JPEG and darken functions also take
(H, W) grey), returns a new array of the same shape and dtype and never modifies its input.
Random corruptions are deterministic given ``seed``. Only numpy and Pillow are used, so the
corruptions run on a robot or CI box without scipy or OpenCV.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

PAPER_KINDS: tuple[str, ...] = ("gaussian_blur", "gaussian_noise", "jpeg", "chromatic_aberration")
"""The four regular degradations of [Xia] (section 4.1.1)."""

KINDS: tuple[str, ...] = (*PAPER_KINDS, "darken", "motion_blur")
"""Every kind :func:`degrade` accepts."""

DARKNESS_LEVELS: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125, 0.0625)
"""Exposure factors of a darkness sweep, one stop apart (1.0 = unchanged)."""

LEVELS: dict[str, tuple] = {
    # From the paper: blur sigma (px), noise variance ([0,1] scale), JPEG quality,
    # (R shift, B shift) in px.
    "gaussian_blur": (1.2, 2.5, 6.5, 15.2),
    "gaussian_noise": (0.05, 0.09, 0.13, 0.2),
    "jpeg": (43, 12, 7, 4),
    "chromatic_aberration": ((2, 1), (6, 3), (10, 5), (14, 7)),
    # Project choices, not from the paper: exposure factor, horizontal blur length (px)
    # (a robot yawing smears the image sideways).
    "darken": DARKNESS_LEVELS[1:],
    "motion_blur": (5, 9, 15, 25),
}
"""Parameter of each level 1..4 (index 0 = level 1) for every kind in :data:`KINDS`."""


def _check_image(image: np.ndarray, *, allow_grey: bool = True) -> np.ndarray:
    """Return ``image`` as an ndarray after checking it is uint8 (H, W, 3) or, if allowed, (H, W).

    Raises:
        ValueError: on any other dtype or shape.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    rgb = image.ndim == 3 and image.shape[2] == 3
    if not (rgb or (allow_grey and image.ndim == 2)):
        shapes = "(H, W, 3) or (H, W)" if allow_grey else "(H, W, 3)"
        raise ValueError(f"image must have shape {shapes}, got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty: shape {image.shape}")
    return image


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Round half to even, clip to 0..255 and cast: the one way every corruption quantises."""
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _reflect_index(index: np.ndarray, n: int) -> np.ndarray:
    """Map any integer index into 0..n-1 by half-sample symmetric reflection (``d c b a | a b``).

    Repeats the reflection as often as needed, so a kernel wider than the image is still valid.
    """
    period = 2 * n
    index = np.mod(index, period)
    return np.where(index < n, index, period - 1 - index)


def _conv_matrix(n: int, kernel: np.ndarray) -> np.ndarray:
    """(n, n) matrix M with ``row @ M`` = ``row`` convolved with a symmetric ``kernel``.

    Reflect padding is folded into the matrix, so one BLAS product filters every row at once and
    the cost does not depend on the kernel width (sigma 15.2 is as fast as sigma 1.2).
    """
    radius = (len(kernel) - 1) // 2
    dst = np.repeat(np.arange(n), len(kernel))
    offsets = np.tile(np.arange(-radius, radius + 1), n)
    src = _reflect_index(dst + offsets, n)
    matrix = np.zeros((n, n), dtype=np.float32)
    np.add.at(matrix, (src, dst), np.tile(kernel.astype(np.float32), n))
    return matrix


def gaussian_kernel(sigma: float, truncate: float = 3.0) -> np.ndarray:
    """Normalised 1-D Gaussian of std ``sigma`` sampled on ``[-r, r]``, r = ceil(truncate * sigma).

    Raises:
        ValueError: if ``sigma`` is not positive.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    radius = max(1, math.ceil(truncate * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(image: np.ndarray, sigma: float, *, truncate: float = 3.0) -> np.ndarray:
    """2-D circularly symmetric Gaussian blur (separable), reflect padding at the borders.

    Args:
        image: (H, W, 3) or (H, W) uint8.
        sigma: standard deviation in pixels (paper levels 1.2, 2.5, 6.5, 15.2).
        truncate: kernel radius in sigmas; the truncated kernel is renormalised to sum 1.

    Returns:
        The blurred image, same shape, uint8 (rounded).
    """
    image = _check_image(image)
    kernel = gaussian_kernel(sigma, truncate)
    height, width = image.shape[:2]
    x = image.astype(np.float32).reshape(height, width, -1)
    x = np.moveaxis(x, 1, -1) @ _conv_matrix(width, kernel)  # (H, C, W), rows filtered
    x = np.moveaxis(x, 0, -1) @ _conv_matrix(height, kernel)  # (C, W, H), columns filtered
    return _to_uint8(x.transpose(2, 1, 0).reshape(image.shape))


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """JPEG encode then decode in memory with Pillow (libjpeg quality scale, 4:2:0 chroma).

    Args:
        image: (H, W, 3) or (H, W) uint8.
        quality: 1..100 (paper levels 43, 12, 7, 4).
    """
    image = _check_image(image)
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality), subsampling=2)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        out = np.asarray(decoded.convert("RGB" if image.ndim == 3 else "L"))
    return out.copy()


def chromatic_aberration(image: np.ndarray, r_shift: int, b_shift: int) -> np.ndarray:
    """Lateral chromatic aberration: R moved right by ``r_shift`` px, B left by ``b_shift`` px.

    G is untouched; the columns uncovered at the border repeat the edge column of the shifted
    channel. A negative shift moves that channel the other way. Paper levels (R, B):
    (2, 1), (6, 3), (10, 5), (14, 7).

    Args:
        image: (H, W, 3) uint8 RGB.
        r_shift: rightward shift of the red channel in whole pixels.
        b_shift: leftward shift of the blue channel in whole pixels.
    """
    image = _check_image(image, allow_grey=False)
    width = image.shape[1]
    cols = np.arange(width)
    out = image.copy()
    out[:, :, 0] = image[:, np.clip(cols - int(r_shift), 0, width - 1), 0]
    out[:, :, 2] = image[:, np.clip(cols + int(b_shift), 0, width - 1), 2]
    return out


def gaussian_noise(image: np.ndarray, variance: float, *, seed: int | None = None) -> np.ndarray:
    """Additive zero-mean Gaussian noise, as MATLAB ``imnoise(I, 'gaussian', 0, variance)``.

    ``variance`` is on the [0, 1] intensity scale, so the standard deviation in uint8 units is
    ``sqrt(variance) * 255`` (paper levels 0.05..0.2 are 57..114 grey levels). Each pixel and
    channel gets an independent sample; the result is clipped to 0..255 and rounded.

    Args:
        image: (H, W, 3) or (H, W) uint8.
        variance: noise variance on the [0, 1] scale, >= 0.
        seed: seed of ``numpy.random.default_rng``; None draws fresh entropy.
    """
    image = _check_image(image)
    if not variance >= 0:
        raise ValueError(f"noise variance must be >= 0, got {variance}")
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(image.shape) * (math.sqrt(variance) * 255.0)
    return _to_uint8(image + noise)


def darken(image: np.ndarray, factor: float) -> np.ndarray:
    """Scale the stored pixel values by ``factor`` in (0, 1] (a shorter exposure, in code values).

    The scaling is applied to the uint8 values as stored, without undoing the camera gamma; the
    sweep :data:`DARKNESS_LEVELS` halves the values per step.
    """
    image = _check_image(image)
    if not 0 < factor <= 1:
        raise ValueError(f"darken factor must be in (0, 1], got {factor}")
    return _to_uint8(image.astype(np.float32) * np.float32(factor))


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """Normalised 2-D kernel of a straight motion path of ``length`` px through the centre.

    ``angle_deg`` is counter-clockwise from the image +x axis as seen on screen (rows grow
    downwards, so 90 degrees is vertical and 45 degrees runs from lower-left to upper-right). The
    path is sampled densely and splatted bilinearly, so any angle and fractional length work.
    """
    if not length >= 1:
        raise ValueError(f"motion blur length must be >= 1 px, got {length}")
    half = (length - 1) / 2.0
    radius = math.ceil(half) + 1
    t = np.linspace(-half, half, max(2, 4 * math.ceil(length)))
    theta = math.radians(angle_deg)
    x = radius + t * math.cos(theta)
    y = radius - t * math.sin(theta)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    kernel = np.zeros((2 * radius + 1, 2 * radius + 1))
    for dy, dx, w in (
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ):
        np.add.at(kernel, (y0 + dy, x0 + dx), w)
    return kernel / kernel.sum()


def motion_blur(image: np.ndarray, length: float, angle_deg: float = 0.0) -> np.ndarray:
    """Linear motion blur: the average of the image along a path of ``length`` px at an angle.

    Args:
        image: (H, W, 3) or (H, W) uint8.
        length: path length in pixels (>= 1; 1 leaves the image unchanged).
        angle_deg: direction, counter-clockwise from +x on screen (see :func:`motion_kernel`).
    """
    image = _check_image(image)
    kernel = motion_kernel(length, angle_deg)
    radius = kernel.shape[0] // 2
    height, width = image.shape[:2]
    pad = [(radius, radius), (radius, radius)] + [(0, 0)] * (image.ndim - 2)
    padded = np.pad(image.astype(np.float32), pad, mode="symmetric")
    out = np.zeros(image.shape, dtype=np.float32)
    # The kernel is point-symmetric, so correlation equals convolution.
    for ky, kx in zip(*np.nonzero(kernel), strict=True):
        out += np.float32(kernel[ky, kx]) * padded[ky : ky + height, kx : kx + width]
    return _to_uint8(out)


def degrade(image: np.ndarray, kind: str, level: int, *, seed: int | None = None) -> np.ndarray:
    """Apply corruption ``kind`` at severity ``level`` (1..4) from :data:`LEVELS`.

    Args:
        image: (H, W, 3) uint8 RGB ((H, W) grey for every kind but chromatic aberration).
        kind: one of :data:`KINDS`.
        level: 1 (mild) .. 4 (severe).
        seed: seed for the random kinds (Gaussian noise); ignored by the others.

    Raises:
        ValueError: on an unknown kind or level, naming the valid ones, or a bad image.
    """
    if kind not in LEVELS:
        raise ValueError(f"unknown degradation {kind!r}; valid kinds: {', '.join(KINDS)}")
    levels = LEVELS[kind]
    if (
        isinstance(level, bool)
        or not isinstance(level, (int, np.integer))
        or not (1 <= level <= len(levels))
    ):
        raise ValueError(f"degradation level must be an integer in 1..{len(levels)}, got {level!r}")
    value = levels[int(level) - 1]
    if kind == "gaussian_blur":
        return gaussian_blur(image, sigma=value)
    if kind == "gaussian_noise":
        return gaussian_noise(image, variance=value, seed=seed)
    if kind == "jpeg":
        return jpeg(image, quality=value)
    if kind == "chromatic_aberration":
        return chromatic_aberration(image, r_shift=value[0], b_shift=value[1])
    if kind == "darken":
        return darken(image, factor=value)
    return motion_blur(image, length=value, angle_deg=0.0)
