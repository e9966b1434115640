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
from typing import Any

import numpy as np
from sensor_msgs.msg import Image

from ..imagemsg import (
    DEPTH_MM_ENCODINGS,
    ENCODINGS,
    HOST_IS_BIGENDIAN,
    CameraInfoError,
    ImageError,
    camera_info_to_intrinsics,
    depth_to_metres,
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
    "distortion_warning",
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
    image = image.astype(dtype, copy=False)  # native byte order
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(HOST_IS_BIGENDIAN and dtype.itemsize > 1)
    msg.step = msg.width * channels * dtype.itemsize
    msg.data = to_byte_array(image)
    return msg
