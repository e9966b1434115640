"""sensor_msgs/Image, CompressedImage and CameraInfo -> numpy, for any object with the
message's fields.

Why here and not in ``ros/``: the node decodes rclpy messages, while the bag tools decode the
dataclasses ``rosbags`` deserialises, and the evaluation layer must not import rclpy (only
``ros/`` does). Both kinds of message carry the same field names (``encoding``, ``width``,
``height``, ``step``, ``is_bigendian``, ``data``; ``k`` for CameraInfo), so one ROS-free
decoder serves both and there is no twin to drift apart. ``ros/codecs.py`` re-exports these
names and adds the encoders, which build rclpy messages.

``data`` may be an ``array.array('B')`` (rclpy), a uint8 numpy array (rosbags) or any other
bytes-like object: it is read with ``np.frombuffer``, so a decoded image is a zero-copy,
possibly strided view over the message buffer, honouring ``step`` padding. Only data in the
other byte order than the host (``is_bigendian``) is copied, to swap it.

CompressedImage (image_transport's ``compressed`` and ``compressedDepth`` streams, what a drone
records to save disk) is decoded with Pillow to the arrays the raw decoders give: RGB uint8 for
colour, uint16 mm or float32 m for depth; the rules followed are noted above
:func:`compressed_rgb`.

Invalid messages raise :class:`ImageError` / :class:`CameraInfoError` with a message naming the
problem, so callers can log it, count it and skip the frame.
"""

from __future__ import annotations

import io
import math
import struct
import sys
from typing import Any

import numpy as np

from .camera import Intrinsics
from .errors import LowlightError

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
DEPTH_ENCODINGS = (*DEPTH_MM_ENCODINGS, "32FC1")


class ImageError(LowlightError):
    """A sensor_msgs/Image cannot be decoded or encoded (encoding, sizes, step, data)."""


class CameraInfoError(LowlightError):
    """A sensor_msgs/CameraInfo carries no usable calibration."""


def encoding_spec(encoding: str) -> tuple[np.dtype, int]:
    """(element dtype, channels) of ``encoding``.

    Raises:
        ImageError: for an encoding not in :data:`ENCODINGS` (naming it and the supported ones).
    """
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ImageError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(ENCODINGS)}"
        ) from None


def image_to_numpy(msg: Any) -> np.ndarray:
    """Decode an Image into (H, W) or (H, W, C) numpy, zero-copy where possible.

    Supports rgb8, bgr8, rgba8, bgra8, mono8 (uint8), 16UC1 / mono16 (uint16) and 32FC1
    (float32). Channels are returned in the order of the encoding (see :func:`rgb_view`).

    Args:
        msg: the image message (rclpy or rosbags; ``data`` any byte buffer).

    Returns:
        A view over ``msg.data`` (it shares the message's buffer: writing to it changes the
        message; with ``step`` padding it is not C-contiguous), or a native-order copy when
        ``is_bigendian`` differs from the host for 16/32-bit data.

    Raises:
        ImageError: unknown encoding, zero height or width, ``step`` shorter than a row,
            ``data`` shorter than ``step * height``, or data that is not a byte buffer.
    """
    dtype, channels = encoding_spec(msg.encoding)
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


def rgb_view(msg: Any) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an rgb8, bgr8, rgba8 or bgra8 image.

    Always a VIEW over ``msg.data`` (no copy): for bgr8/bgra8 the channels are reversed with a
    negative stride, for rgba8/bgra8 alpha is sliced off, and ``step`` padding remains. It is
    therefore C-contiguous only for unpadded rgb8; a consumer that needs a contiguous frame
    (the Segmenter) calls ``np.ascontiguousarray`` on it once, which copies only when needed.

    Raises:
        ImageError: as :func:`image_to_numpy`, or a non-colour encoding (mono8, depth).
    """
    encoding_spec(msg.encoding)  # an unknown encoding is named as such
    if msg.encoding not in _RGB_INDEX:
        raise ImageError(
            f"image encoding {msg.encoding!r} is not colour; expected one of "
            f"{', '.join(_RGB_INDEX)}"
        )
    return image_to_numpy(msg)[_RGB_INDEX[msg.encoding]]


def check_depth_encoding(encoding: str, what: str = "image") -> None:
    """The one test of a depth encoding (REP 118: 16UC1 / mono16 millimetres, 32FC1 metres).

    Raises:
        ImageError: naming ``what`` (image, compressedDepth) and the encodings expected.
    """
    if encoding not in DEPTH_ENCODINGS:
        raise ImageError(
            f"{what} encoding {encoding!r} is not depth; expected 16UC1, mono16 (mm) or 32FC1 (m)"
        )


def depth_view(msg: Any) -> np.ndarray:
    """A depth image as a zero-copy (H, W) view in its own units, validated like
    :func:`image_to_numpy` and by :func:`check_depth_encoding`.

    Raises:
        ImageError: on a non-depth encoding or a bad size, step or length.
    """
    encoding_spec(msg.encoding)
    check_depth_encoding(msg.encoding)
    return image_to_numpy(msg)


def depth_to_metres(msg: Any) -> np.ndarray:
    """Depth image as a new (H, W) float32 array in metres, 0.0 marking invalid pixels.

    REP 118: 16UC1 (and mono16) hold millimetres with 0 = no measurement (the D435i's aligned
    depth); 32FC1 holds metres, where NaN, +-inf and values <= 0 are all mapped to 0.0. One
    invalid marker keeps consumers to a single ``depth > 0`` test.

    Raises:
        ImageError: as :func:`image_to_numpy`, or an encoding that is not depth.
    """
    raw = depth_view(msg)
    if msg.encoding in DEPTH_MM_ENCODINGS:
        return np.true_divide(raw, np.float32(1000.0), dtype=np.float32)
    return valid_metres(np.array(raw, dtype=np.float32))  # a copy: never write into the message


def valid_metres(metres: np.ndarray) -> np.ndarray:
    """REP 118's invalid depth (NaN, +-inf, values <= 0) as the one marker 0.0, in place on a
    float32 array the caller owns; returns it."""
    metres[~(metres > 0) | ~np.isfinite(metres)] = 0.0
    return metres


MIN_FOCAL_PX = 1.0
"""Smallest focal length (pixels) taken as a calibration: below it rays overflow float32 (a
camera_info with fx = 1e-40 gave infinite coordinates)."""
PINHOLE_MODELS = ("plumb_bob", "rational_polynomial", "")
"""Distortion models back-projected as a pinhole without a word: realsense-ros 4.58.3
publishes "plumb_bob" for the colour stream depth is aligned to
(realsense2_camera/src/base_realsense_node.cpp, branch r/4.58.3), "equidistant" for fisheye
(Kannala-Brandt) lenses."""


def camera_info_to_intrinsics(msg: Any) -> Intrinsics:
    """Pinhole intrinsics from a sensor_msgs/CameraInfo.

    Uses ``k`` (row-major 3x3: fx = k[0], cx = k[2], fy = k[4], cy = k[5]), ``width`` and
    ``height``. Distortion (``d``), skew (k[1]), ``binning`` and ``roi`` are ignored: the D435i
    publishes "plumb_bob" for the colour stream that depth is aligned to, whose small
    distortion the pinhole back-projection neglects (:func:`distortion_warning` says when a
    model is not one of those).

    Raises:
        CameraInfoError: zero width or height, or a K that is all zeros (an uncalibrated
            camera), non-finite, or has fx/fy below :data:`MIN_FOCAL_PX`.
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
    if not (fx >= MIN_FOCAL_PX and fy >= MIN_FOCAL_PX):
        raise CameraInfoError(
            f"camera_info K has focal length fx={fx}, fy={fy}: not a calibration (needs "
            f">= {MIN_FOCAL_PX:g} pixel)"
        )
    return Intrinsics(width, height, fx, fy, cx, cy)


def distortion_warning(msg: Any) -> str | None:
    """Why the pinhole back-projection misplaces points for this CameraInfo, or None: a
    distortion model outside :data:`PINHOLE_MODELS` with non-zero coefficients."""
    model = str(msg.distortion_model)
    if model in PINHOLE_MODELS or not any(float(c) for c in msg.d):
        return None
    return (
        f"camera_info distortion model {model!r} is not supported: semantic_points are "
        "back-projected as a pinhole (publish rectified images with their camera_info)"
    )


# --------------------------------------------------------------------------- CompressedImage
#
# What image_transport_plugins (ros-perception/image_transport_plugins, branches humble and
# rolling, the same in both for what is read here) puts in a sensor_msgs/CompressedImage:
#
# * compressed_image_transport (topic ``<base>/compressed``), compressed_publisher.cpp
#   CompressedPublisher::publish: ``format = <source encoding> + "; jpeg compressed " + "bgr8"``
#   for any colour source (rgb8 too: cv_bridge converts it to bgr8 before cv::imencode), or
#   ``"mono8"`` for grey ones; PNG likewise ``"; png compressed bgr8"`` (``"bgr" + bit depth``,
#   nothing after "compressed " for grey). cv::imencode reads a Mat as B, G, R and writes a
#   standard file, so the file holds the true colours.
# * compressed_subscriber.cpp CompressedSubscriber::internalCallback decodes with cv::imdecode
#   (codec from the bytes, not the string), then: no ';' in format (an older publisher) -> bgr8
#   for 3 channels; otherwise the source encoding before ';', and for a colour encoding it swaps
#   channels unless the rest contains "compressed bgr" (a Mat stored as "rgb" was written
#   swapped). We follow that rule: the file's RGB is the colour unless the tail names an rgb
#   layout, then it is reversed.
# * compressed_depth_image_transport (topic ``<base>/compressedDepth``), codec.cpp and
#   compression_common.h: ``data`` = ConfigHeader {enum compressionFormat format (int32,
#   INV_DEPTH = 0); float depthParam[2]} (12 bytes, memcpy'd in host order, little-endian on
#   every ROS 2 tier-1 machine) + the PNG. ``format = <encoding> + "; compressedDepth"`` (humble)
#   or ``"; compressedDepth png"`` / ``"; compressedDepth rvl"`` (rolling). 16UC1 depth is the
#   PNG itself (mm above depth_max zeroed by the publisher; depthParam left unset); 32FC1 is a
#   16-bit PNG of quantised inverse depth v, decoded as ``depthParam[0] / (v - depthParam[1])``
#   (float arithmetic) with v = 0 meaning no depth (NaN). The decoder checks
#   ``data.size() > sizeof(ConfigHeader)`` and ignores ``format`` in the header.

CONFIG_HEADER = struct.Struct("<i2f")
"""compressed_depth_image_transport's ConfigHeader: int32 format, float32 depthParam[2]."""
COMPRESSED_CODECS = ("JPEG", "PNG")
"""Codecs decoded from a compressed colour image (the compressed plugin's tiff is not)."""


def is_compressed(msg: Any) -> bool:
    """Whether ``msg`` is a sensor_msgs/CompressedImage (``format`` and ``data``, no
    ``encoding``): the bag reader and the replay take either kind on a camera topic."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def split_format(format_: str) -> tuple[str | None, str]:
    """(source encoding, the rest) of a CompressedImage ``format``; encoding None for the
    old style without ';' (e.g. plain "jpeg"), whose whole string is the rest."""
    head, sep, tail = str(format_).partition(";")
    return (head.strip(), tail.strip()) if sep else (None, head.strip())


def _bytes(msg: Any, what: str) -> np.ndarray:
    try:
        return np.frombuffer(msg.data, dtype=np.uint8)
    except (TypeError, ValueError) as err:
        raise ImageError(f"compressed {what} data is not a byte buffer ({err})") from None


def _open_image(buf: np.ndarray, what: str, codecs: tuple[str, ...]) -> Any:
    """The Pillow image of ``buf`` (fully loaded), or an ImageError with a countable reason:
    no data, not one of ``codecs``, or corrupt / truncated."""
    from PIL import Image, UnidentifiedImageError

    if buf.size == 0:
        raise ImageError(f"compressed {what} has no data")
    try:
        image = Image.open(io.BytesIO(buf.tobytes()), formats=codecs)
        image.load()
    except UnidentifiedImageError:
        raise ImageError(
            f"compressed {what} is not {' or '.join(codecs)} data (corrupt, or another codec)"
        ) from None
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError, zlib errors...
        raise ImageError(
            f"compressed {what} is corrupt or truncated ({type(err).__name__})"
        ) from None
    return image


def compressed_rgb(msg: Any) -> np.ndarray:
    """(H, W, 3) uint8 RGB, C-contiguous, of a compressed colour image (JPEG or PNG).

    Follows compressed_image_transport's subscriber (see the notes above this function): the
    colour encoding before ';' must be one :func:`rgb_view` takes; channels are reversed when
    the rest names an rgb layout instead of "compressed bgr"; the old style (no ';') is read as
    the file's colours. Alpha is dropped, palette images are expanded.

    Raises:
        ImageError: a non-colour or unknown source encoding, data that is not JPEG or PNG,
            corrupt or truncated data, or a grey image.
    """
    encoding, tail = split_format(msg.format)
    if encoding is not None:
        encoding_spec(encoding)  # an unknown encoding is named as such
        if encoding not in _RGB_INDEX:
            raise ImageError(
                f"compressed image of encoding {encoding!r} is not colour; expected one of "
                f"{', '.join(_RGB_INDEX)}"
            )
    image = _open_image(
        _bytes(msg, "colour image"), f"colour image ({msg.format!r})", COMPRESSED_CODECS
    )
    if image.mode in ("L", "LA", "1", "I", "F") or image.mode.startswith("I;16"):
        raise ImageError(
            f"compressed colour image ({msg.format!r}) decodes to grey ({image.mode}), not colour"
        )
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    if encoding is not None and "compressed bgr" not in tail:
        rgb = rgb[..., ::-1]
    return np.ascontiguousarray(rgb)


def _depth_codec(format_: str) -> tuple[str, str]:
    """(depth encoding, "png" | "rvl") of a compressedDepth ``format``, after codec.cpp's
    decodeCompressedDepthImage (rolling): no ';' or a bare "compressedDepth" is png."""
    encoding, tail = split_format(format_)
    if encoding is None:
        return tail, "png"
    if "compressedDepth png" in tail:
        return encoding, "png"
    if "compressedDepth rvl" in tail:
        return encoding, "rvl"
    if "compressedDepth" in tail and "compressedDepth " not in tail:
        return encoding, "png"
    raise ImageError(f"unsupported compressedDepth format {format_!r}")


def compressed_depth_to_numpy(msg: Any) -> tuple[str, np.ndarray]:
    """(encoding, array) of a compressedDepth image: what the plugin's subscriber hands on.

    16UC1 / mono16: (H, W) uint16 millimetres (0 = invalid). 32FC1: (H, W) float32 metres,
    NaN where the quantised inverse depth is 0, exactly as codec.cpp computes it.

    Raises:
        ImageError: an encoding that is not 16UC1, mono16 or 32FC1; RVL (rolling's other
            codec, not supported); data no longer than the 12-byte ConfigHeader; a PNG that
            is corrupt, truncated or not 16-bit single-channel.
    """
    encoding, codec = _depth_codec(msg.format)
    check_depth_encoding(encoding, "compressedDepth")
    if codec == "rvl":
        raise ImageError("compressedDepth rvl is not supported (png is): republish as png")
    buf = _bytes(msg, "depth")
    if buf.size <= CONFIG_HEADER.size:
        raise ImageError(
            f"compressedDepth data is truncated: no longer than its {CONFIG_HEADER.size}-byte "
            "ConfigHeader"
        )
    _, quant_a, quant_b = CONFIG_HEADER.unpack_from(buf[: CONFIG_HEADER.size].tobytes())
    image = _open_image(buf[CONFIG_HEADER.size :], f"depth ({msg.format!r})", ("PNG",))
    if image.mode not in ("I", "I;16", "I;16B", "I;16L"):
        raise ImageError(
            f"compressedDepth PNG has mode {image.mode}; expected 16-bit single-channel"
        )
    values = np.asarray(image)
    if values.dtype != np.uint16:  # mode "I": int32 holding 16-bit values
        values = np.clip(values, 0, 65535).astype(np.uint16)
    if encoding != "32FC1":
        return encoding, np.ascontiguousarray(values)
    inverse = values.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        metres = np.float32(quant_a) / (inverse - np.float32(quant_b))
    metres[values == 0] = np.nan
    return encoding, metres.astype(np.float32, copy=False)
