"""sensor_msgs Image / CameraInfo <-> numpy, without cv_bridge.

Why our own: cv_bridge is compiled against NumPy 1 and breaks under NumPy 2, and it copies where
a view would do. These codecs read ``msg.data`` (an ``array.array('B')`` in rclpy messages, also
bytes-like objects) with ``np.frombuffer``: a decoded image is a zero-copy, possibly strided view
over the message buffer, honouring ``step`` padding. Only data in the other byte order than the
host (``is_bigendian``) is copied, to swap it.

Writing: the generated ``data`` setter stores an ``array.array('B')`` as it is (it copies
anything else, element by element when ``ROS_PYTHON_CHECK_FIELDS=1``), so encoders fill one
with ``array.frombytes`` from the contiguous numpy buffer: one memcpy.

Invalid messages raise :class:`ImageError` / :class:`CameraInfoError` with a message naming the
problem, so the node can log it and skip the frame.
"""

from __future__ import annotations

import array
import math
import sys
from typing import Any

import numpy as np
from sensor_msgs.msg import Image

from ..camera import Intrinsics
from ..errors import LowlightError

HOST_IS_BIGENDIAN = sys.byteorder == "big"

# encoding -> (element dtype, channels); 16UC1/mono16/32FC1 are single-channel.
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
}

# rgb_view: encoding -> index expression giving R, G, B in that order (all views).
_RGB_INDEX: dict[str, Any] = {
    "rgb8": np.s_[...],
    "bgr8": np.s_[..., ::-1],
    "rgba8": np.s_[..., :3],
    "bgra8": np.s_[..., 2::-1],
}

DEPTH_MM_ENCODINGS = ("16UC1", "mono16")


class ImageError(LowlightError):
    """A sensor_msgs/Image cannot be decoded or encoded (encoding, sizes, step, data)."""


class CameraInfoError(LowlightError):
    """A sensor_msgs/CameraInfo carries no usable calibration."""


def _spec(encoding: str) -> tuple[np.dtype, int]:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ImageError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(ENCODINGS)}"
        ) from None


def to_byte_array(array_: np.ndarray) -> array.array:
    """The bytes of ``array_`` (made C-contiguous if needed) as the ``array.array('B')`` that
    rclpy's ``uint8[]`` fields hold: one memcpy, no per-element conversion in the setter."""
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(array_).reshape(-1).view(np.uint8).data)
    return out


def image_to_numpy(msg: Image) -> np.ndarray:
    """Decode an Image into (H, W) or (H, W, C) numpy, zero-copy where possible.

    Supports rgb8, bgr8, rgba8, bgra8, mono8 (uint8), 16UC1 / mono16 (uint16) and 32FC1
    (float32). Channels are returned in the order of the encoding (see :func:`rgb_view`).

    Args:
        msg: the image message.

    Returns:
        A view over ``msg.data`` (it shares the message's buffer: writing to it changes the
        message; with ``step`` padding it is not C-contiguous), or a native-order copy when
        ``is_bigendian`` differs from the host for 16/32-bit data.

    Raises:
        ImageError: unknown encoding, zero height or width, ``step`` shorter than a row,
            ``data`` shorter than ``step * height``, or data that is not a byte buffer.
    """
    dtype, channels = _spec(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise ImageError(f"{msg.encoding} image has zero size ({width}x{height})")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageError(
            f"{msg.encoding} image step {step} is smaller than a row: width {width} x "
            f"{channels} channel(s) x {dtype.itemsize} byte(s) = {row_bytes}"
        )
    try:
        buf = np.frombuffer(msg.data, dtype=np.uint8)
    except (TypeError, ValueError) as err:
        raise ImageError(f"{msg.encoding} image data is not a byte buffer ({err})") from None
    if buf.size < step * height:
        raise ImageError(
            f"{msg.encoding} image data is truncated: {buf.size} bytes, step {step} x height "
            f"{height} = {step * height} expected"
        )
    wire = dtype.newbyteorder(">" if msg.is_bigendian else "<")  # no-op for uint8
    # Rows of ``step`` bytes, cut to the pixel bytes: the last axis stays contiguous, so the
    # byte view can be reinterpreted as the element type without a copy.
    rows = buf[: step * height].reshape(height, step)[:, :row_bytes]
    image = rows.view(wire).reshape((height, width, channels) if channels > 1 else (height, width))
    if not wire.isnative:
        image = image.astype(dtype)  # swap to host order: a copy
    return image


def rgb_view(msg: Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an rgb8, bgr8, rgba8 or bgra8 image.

    Always a VIEW over ``msg.data`` (no copy): for bgr8/bgra8 the channels are reversed with a
    negative stride, for rgba8/bgra8 alpha is sliced off, and ``step`` padding remains. It is
    therefore C-contiguous only for unpadded rgb8; a consumer that needs a contiguous frame
    (the Segmenter) calls ``np.ascontiguousarray`` on it once, which copies only when needed.

    Raises:
        ImageError: as :func:`image_to_numpy`, or a non-colour encoding (mono8, depth).
    """
    _spec(msg.encoding)  # an unknown encoding is named as such
    if msg.encoding not in _RGB_INDEX:
        raise ImageError(
            f"image encoding {msg.encoding!r} is not colour; expected one of "
            f"{', '.join(_RGB_INDEX)}"
        )
    return image_to_numpy(msg)[_RGB_INDEX[msg.encoding]]


def depth_to_metres(msg: Image) -> np.ndarray:
    """Depth image as a new (H, W) float32 array in metres, 0.0 marking invalid pixels.

    REP 118: 16UC1 (and mono16) hold millimetres with 0 = no measurement (the D435i's aligned
    depth); 32FC1 holds metres, where NaN, +-inf and values <= 0 are all mapped to 0.0. One
    invalid marker keeps consumers to a single ``depth > 0`` test.

    Raises:
        ImageError: as :func:`image_to_numpy`, or an encoding that is not depth.
    """
    _spec(msg.encoding)
    if msg.encoding not in (*DEPTH_MM_ENCODINGS, "32FC1"):
        raise ImageError(
            f"image encoding {msg.encoding!r} is not depth; expected 16UC1, mono16 (mm) or "
            "32FC1 (m)"
        )
    raw = image_to_numpy(msg)
    if msg.encoding in DEPTH_MM_ENCODINGS:
        return np.true_divide(raw, np.float32(1000.0), dtype=np.float32)
    metres = np.array(raw, dtype=np.float32)  # a copy: never write into the message
    metres[~(metres > 0) | ~np.isfinite(metres)] = 0.0
    return metres


def numpy_to_image(array_: np.ndarray, encoding: str, header: Any) -> Image:
    """Encode a numpy image as an Image message.

    Args:
        array_: (H, W) for single-channel encodings (also (H, W, 1)), (H, W, C) otherwise, of
            the encoding's dtype (uint8, uint16 for 16UC1/mono16, float32 for 32FC1); any
            strides or byte order (a contiguous native copy is made when needed).
        encoding: one of :data:`ENCODINGS`.
        header: the std_msgs/Header to publish with, kept as given (the input frame's stamp
            and frame_id, never ``now()``).

    Returns:
        The message: ``step = width * channels * itemsize`` (no padding), ``is_bigendian`` the
        host's for 16/32-bit data, ``data`` an ``array.array('B')`` of the pixels.

    Raises:
        ImageError: unknown encoding, or a shape or dtype that does not fit it.
    """
    dtype, channels = _spec(encoding)
    image = np.asarray(array_)
    if channels == 1 and image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    expected = "(H, W)" if channels == 1 else f"(H, W, {channels})"
    if image.ndim != (2 if channels == 1 else 3) or (channels > 1 and image.shape[2] != channels):
        raise ImageError(f"{encoding} needs an array of shape {expected}, got {image.shape}")
    if image.dtype.kind != dtype.kind or image.dtype.itemsize != dtype.itemsize:
        raise ImageError(f"{encoding} needs {dtype.name} data, got {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"{encoding} image has zero size ({image.shape[1]}x{image.shape[0]})")
    image = image.astype(dtype, copy=False)  # native byte order
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(HOST_IS_BIGENDIAN and dtype.itemsize > 1)
    msg.step = msg.width * channels * dtype.itemsize
    msg.data = to_byte_array(image)
    return msg


def camera_info_to_intrinsics(msg: Any) -> Intrinsics:
    """Pinhole intrinsics from a sensor_msgs/CameraInfo.

    Uses ``k`` (row-major 3x3: fx = k[0], cx = k[2], fy = k[4], cy = k[5]), ``width`` and
    ``height``. Distortion (``d``), skew (k[1]), ``binning`` and ``roi`` are ignored: the D435i
    publishes "plumb_bob" with all-zero coefficients for the colour stream that depth is aligned
    to, which is a pure pinhole.

    Raises:
        CameraInfoError: zero width or height, or a K that is all zeros (an uncalibrated
            camera), non-finite, or has fx/fy <= 0.
    """
    width, height = int(msg.width), int(msg.height)
    if width == 0 or height == 0:
        raise CameraInfoError(f"camera_info has zero size ({width}x{height})")
    k = [float(v) for v in msg.k]
    if len(k) != 9 or not all(math.isfinite(v) for v in k):
        raise CameraInfoError(f"camera_info K is not 9 finite numbers: {k}")
    if not any(k):
        raise CameraInfoError("camera_info K is all zeros (camera not calibrated)")
    fx, cx, fy, cy = k[0], k[2], k[4], k[5]
    if fx <= 0 or fy <= 0:
        raise CameraInfoError(f"camera_info K has non-positive focal length fx={fx}, fy={fy}")
    return Intrinsics(width, height, fx, fy, cx, cy)
