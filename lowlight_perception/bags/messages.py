"""rosbags message construction shared by the bag writer, repair and the tests: the typestore,
headers, Image and CameraInfo messages."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from ..camera import Intrinsics
from ..imagemsg import HOST_IS_BIGENDIAN
from ..topics import FRAME_ID

IMAGE_TYPE = "sensor_msgs/msg/Image"
INFO_TYPE = "sensor_msgs/msg/CameraInfo"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"


@lru_cache(maxsize=1)
def typestore() -> Any:
    """The ROS 2 Kilted typestore of rosbags (the distribution of the rclpy wheels)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def header(stamp_ns: int) -> Any:
    """A rosbags std_msgs/Header with ``stamp_ns`` and :data:`FRAME_ID`."""
    types = typestore().types
    stamp = types["builtin_interfaces/msg/Time"](
        sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000
    )
    return types["std_msgs/msg/Header"](stamp=stamp, frame_id=FRAME_ID)


def image_message(header: Any, array: np.ndarray, encoding: str) -> Any:
    """A rosbags Image holding ``array`` (made C-contiguous; no padding, host byte order)."""
    image = np.ascontiguousarray(array)
    channels = image.shape[2] if image.ndim == 3 else 1
    return typestore().types[IMAGE_TYPE](
        header=header,
        height=image.shape[0],
        width=image.shape[1],
        encoding=encoding,
        is_bigendian=int(HOST_IS_BIGENDIAN and image.itemsize > 1),
        step=image.shape[1] * channels * image.itemsize,
        data=image.reshape(-1).view(np.uint8),
    )


def camera_info_message(header: Any, K: Intrinsics) -> Any:
    """A rosbags CameraInfo of a pinhole camera: K, P, R = I, plumb_bob with zero distortion."""
    types = typestore().types
    projection = np.array([[K.fx, 0, K.cx, 0], [0, K.fy, K.cy, 0], [0, 0, 1, 0]], np.float64)
    return types[INFO_TYPE](
        header=header,
        height=K.height,
        width=K.width,
        distortion_model="plumb_bob",
        d=np.zeros(5, np.float64),
        k=K.matrix.reshape(-1),
        r=np.eye(3, dtype=np.float64).reshape(-1),
        p=projection.reshape(-1),
        binning_x=0,
        binning_y=0,
        roi=types["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        ),
    )
