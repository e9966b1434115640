"""Topic names the package reads and writes, in a module with no ROS import: the node
(:mod:`lowlight_perception.ros.interface`), the bag tools and evaluation all take them from here.
"""

from __future__ import annotations

from collections.abc import Iterable

# RealSense (realsense2_camera, align_depth.enable:=true) topic names; remap to change them.
COLOR_TOPIC = "/camera/camera/color/image_raw"
DEPTH_TOPIC = "/camera/camera/aligned_depth_to_color/image_raw"
CAMERA_INFO_TOPIC = "/camera/camera/color/camera_info"
FRAME_ID = "camera_color_optical_frame"
"""realsense-ros's colour optical frame; depth is aligned to it."""

GT_TOPIC = "/ground_truth/labels"
"""Ground-truth class ids (mono8) in bags, stamped like the colour frame they belong to."""
NORMAL_TOPIC = "/ground_truth/normal/image_raw"
"""The normal-light twin of each colour frame (rgb8) in bags written with ``include_normal``."""

COLOUR_TRANSPORT = "compressed"
"""compressed_image_transport's sub-topic name (``<base>/compressed``: its publisher's
getTransportName(), ros-perception/image_transport_plugins humble/rolling)."""
DEPTH_TRANSPORT = "compressedDepth"
"""compressed_depth_image_transport's sub-topic name (``<base>/compressedDepth``)."""


def camera_topic(topics: Iterable[str], base: str, transport: str) -> str | None:
    """The topic a camera stream is read from: ``base`` (raw sensor_msgs/Image) when the bag
    has it, else image_transport's ``base/transport`` (sensor_msgs/CompressedImage, what a
    drone records to save disk), else None."""
    names = set(topics)
    if base in names:
        return base
    compressed = f"{base.rstrip('/')}/{transport}"
    return compressed if compressed in names else None
