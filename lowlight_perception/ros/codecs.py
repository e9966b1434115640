"""sensor_msgs Image / CameraInfo <-> numpy, without cv_bridge.

Why our own: cv_bridge is compiled against NumPy 1 and breaks under NumPy 2, and it copies where
a view would do. Decoding is ROS-free and lives in :mod:`lowlight_perception.imagemsg` (the bag
tools decode rosbags' messages with the same functions); it is re-exported here so the node
imports every codec from one place. Decoded images are zero-copy, possibly strided views over
``msg.data``, honouring ``step`` padding; only data in the other byte order than the host
(``is_bigendian``) is copied, to swap it.

Writing (this module: it builds rclpy messages): the generated ``data`` setter stores an
``array.array('B')`` as it is (it copies anything else, element by element when
``ROS_PYTHON_CHECK_FIELDS=1``), so encoders fill one with ``array.frombytes`` from the
contiguous numpy buffer: one memcpy.

Invalid messages raise :class:`ImageError` / :class:`CameraInfoError` with a message naming the
problem, so the node can log it and skip the frame.
"""

from __future__ import annotations

import array
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from sensor_msgs.msg import CameraInfo, Image

from ..camera import Intrinsics
from ..imagemsg import (
    DEPTH_MM_ENCODINGS,
    ENCODINGS,
    HOST_IS_BIGENDIAN,
    CameraInfoError,
    ImageError,
    camera_info_to_intrinsics,
    depth_to_metres,
    depth_view,
    distortion_warning,
    encoding_spec,
    image_to_numpy,
    rgb_view,
)

__all__ = [
    "DEPTH_MM_ENCODINGS",
    "ENCODINGS",
    "HOST_IS_BIGENDIAN",
    "CameraInfoError",
    "ImageError",
    "camera_info_to_intrinsics",
    "depth_to_metres",
    "depth_view",
    "distortion_warning",
    "image_cdr",
    "image_from_cdr",
    "image_to_numpy",
    "numpy_to_image",
    "rgb_view",
    "to_byte_array",
]


def to_byte_array(array_: np.ndarray) -> array.array:
    """The bytes of ``array_`` (made C-contiguous if needed) as the ``array.array('B')`` that
    rclpy's ``uint8[]`` fields hold: one memcpy, no per-element conversion in the setter."""
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(array_).reshape(-1).view(np.uint8).data)
    return out


def _image_layout(array_: np.ndarray, encoding: str) -> tuple[np.ndarray, int]:
    """``array_`` as the native-order array an ``encoding`` image holds, and its channels.

    Raises:
        ImageError: unknown encoding, or a shape or dtype that does not fit it.
    """
    dtype, channels = encoding_spec(encoding)
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
    return image.astype(dtype, copy=False), channels  # native byte order


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
    image, channels = _image_layout(array_, encoding)
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(HOST_IS_BIGENDIAN and image.itemsize > 1)
    msg.step = msg.width * channels * image.itemsize
    msg.data = to_byte_array(image)
    return msg


class CdrWriter:
    """A ROS 2 message serialized by hand: OMG CDR (XCDR1) little endian behind the 4-byte
    encapsulation header 00 01 00 00, each field aligned to its size from the end of that
    header; what rmw_fastrtps and rmw_cyclonedds publish, and what ``publish(bytes)`` sends
    as it is (rclpy humble and jazzy, rclpy/publisher.py: ``publish_raw`` for ``bytes``).
    Checked byte for byte against ``rclpy.serialization.serialize_message``
    (test/test_ros_codecs.py)."""

    def __init__(self) -> None:
        self.buf = bytearray(b"\x00\x01\x00\x00")

    def _align(self, size: int) -> None:
        self.buf += bytes(-(len(self.buf) - 4) % size)

    def u8(self, value: int) -> None:
        self.buf.append(value)

    def u32(self, value: int) -> None:
        self._align(4)
        self.buf += struct.pack("<I", value)

    def i32(self, value: int) -> None:
        self._align(4)
        self.buf += struct.pack("<i", value)

    def string(self, text: str) -> None:
        data = text.encode()
        self.u32(len(data) + 1)
        self.buf += data + b"\x00"

    def header(self, header: Any) -> None:
        """std_msgs/Header: stamp (int32 sec, uint32 nanosec), frame_id."""
        self.i32(int(header.stamp.sec))
        self.u32(int(header.stamp.nanosec))
        self.string(header.frame_id)

    def bytes_of(self, data: np.ndarray, *tail: bytes) -> bytes:
        """The message so far, then ``data`` as a uint8[] sequence (length, bytes) and
        ``tail``: one copy of the array's bytes."""
        flat = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        self.u32(flat.size)
        return b"".join((self.buf, flat.data, *tail))


@dataclass(frozen=True)
class CdrStamp:
    sec: int
    nanosec: int


@dataclass(frozen=True)
class CdrHeader:
    """std_msgs/Header as read from bytes (what the node reads of it and passes on)."""

    stamp: CdrStamp
    frame_id: str


@dataclass(frozen=True)
class CdrImage:
    """A sensor_msgs/Image read from its serialized bytes (a raw subscription): the fields the
    decoders read, ``data`` a zero-copy view of those bytes (read-only)."""

    header: CdrHeader
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: memoryview


class CdrReader:
    """The inverse of :class:`CdrWriter`, either byte order (the encapsulation header says).

    Raises:
        ImageError: bytes that end inside a field.
    """

    def __init__(self, data: bytes) -> None:
        if len(data) < 4 or data[0] != 0 or data[1] not in (0, 1):
            raise ImageError("not a serialized ROS 2 message (no CDR encapsulation header)")
        self.view = memoryview(data)
        self.order = "<" if data[1] == 1 else ">"
        self.pos = 4

    def _take(self, size: int, align: int = 1) -> int:
        self.pos += -(self.pos - 4) % align
        start, self.pos = self.pos, self.pos + size
        if self.pos > len(self.view):
            raise ImageError(f"serialized message is truncated ({len(self.view)} bytes)")
        return start

    def u8(self) -> int:
        return self.view[self._take(1)]

    def u32(self) -> int:
        return struct.unpack_from(self.order + "I", self.view, self._take(4, 4))[0]

    def i32(self) -> int:
        return struct.unpack_from(self.order + "i", self.view, self._take(4, 4))[0]

    def string(self) -> str:
        size = self.u32()
        start = self._take(size)
        return bytes(self.view[start : start + max(0, size - 1)]).decode(errors="replace")

    def header(self) -> CdrHeader:
        sec = self.i32()
        return CdrHeader(CdrStamp(sec, self.u32()), self.string())

    def u8_sequence(self) -> memoryview:
        size = self.u32()
        start = self._take(size)
        return self.view[start : start + size]


def image_from_cdr(data: bytes) -> CdrImage:
    """Read a serialized sensor_msgs/Image without building a message object: the node's
    colour and depth subscriptions are raw, so a camera frame is copied once (into the bytes
    rclpy hands over) instead of three times (C message, Python message, array).

    Raises:
        ImageError: truncated or malformed bytes.
    """
    cdr = CdrReader(data)
    header = cdr.header()
    height, width = cdr.u32(), cdr.u32()
    encoding = cdr.string()
    is_bigendian = cdr.u8()
    step = cdr.u32()
    return CdrImage(header, height, width, encoding, is_bigendian, step, cdr.u8_sequence())


def image_cdr(array_: np.ndarray, encoding: str, header: Any) -> bytes:
    """The serialized sensor_msgs/Image of :func:`numpy_to_image` (same fields, same bytes),
    built with one copy of the pixels: the node publishes this, skipping the message object
    and rclpy's conversion of it.

    Raises:
        ImageError: as :func:`numpy_to_image`.
    """
    image, channels = _image_layout(array_, encoding)
    height, width = int(image.shape[0]), int(image.shape[1])
    cdr = CdrWriter()
    cdr.header(header)
    cdr.u32(height)
    cdr.u32(width)
    cdr.string(encoding)
    cdr.u8(int(HOST_IS_BIGENDIAN and image.itemsize > 1))
    cdr.u32(width * channels * image.itemsize)
    return cdr.bytes_of(image)


def intrinsics_to_camera_info(intrinsics: Intrinsics, header: Any) -> CameraInfo:
    """A CameraInfo of a pinhole camera as realsense-ros publishes its aligned colour stream:
    K, P = [K | 0], R = I, plumb_bob with zero distortion (the inverse of
    :func:`camera_info_to_intrinsics`)."""
    K = intrinsics
    msg = CameraInfo(header=header, width=K.width, height=K.height, distortion_model="plumb_bob")
    msg.k = [K.fx, 0.0, K.cx, 0.0, K.fy, K.cy, 0.0, 0.0, 1.0]
    msg.p = [K.fx, 0.0, K.cx, 0.0, 0.0, K.fy, K.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.d = [0.0] * 5
    return msg
