"""rosbag2 bags, the one way every command opens, reads, writes, pairs and repairs them.

Why: users evaluate on bags recorded on the drone, and the tests and the live replay need bags
with ground truth that ``ros2 bag play`` can republish into the node. ``rosbags`` (pure Python)
reads and writes rosbag2 mcap and sqlite3 without a ROS install, and this module imports no
rclpy (only ``ros/`` does), so evaluation runs on any machine. Images are decoded by
:mod:`lowlight_perception.imagemsg`, the same decoder the node uses.

Written bags (:func:`write_bag`), every message of frame ``i`` stamped ``T0_NS + i / fps`` in its
header and as its bag timestamp, ``frame_id`` :data:`FRAME_ID`:

* :data:`~lowlight_perception.topics.COLOR_TOPIC`: the low-light frame, rgb8;
* :data:`~lowlight_perception.topics.DEPTH_TOPIC`: 16UC1 millimetres, 0 = invalid
  (when the sample has depth);
* :data:`~lowlight_perception.topics.CAMERA_INFO_TOPIC`: K of the sample, plumb_bob
  with zero distortion (when the sample has intrinsics);
* :data:`GT_TOPIC`: mono8 class ids (when the sample has labels);
* :data:`NORMAL_TOPIC`: the normal-light twin, rgb8 (``include_normal=True``).

What ``ros2 bag play`` (rosbag2) needs, and gets here: the metadata.yaml of rosbag2 format
version 8 (:data:`ROSBAG2_VERSION`, which Humble and Jazzy both play; Humble cannot read 9);
each type's message definition and RIHS01 type hash (from the ROS 2 Kilted typestore, equal
to the hashes of the Kilted ``sensor_msgs`` the node runs with); CDR
serialisation; and per topic the offered QoS profiles, from which the player builds its
publishers (same reliability, durability, deadline and liveliness as recorded; history reset to
keep-last 10). We record what a realsense-ros publisher offers by default: reliable, volatile,
keep-last.

Reading (:func:`iter_frames`) pairs depth, ground truth and recorded predictions with each
colour frame by header stamp (within :data:`PAIR_TOLERANCE_NS`), waiting at most
:data:`PAIR_WINDOW_NS` of bag time for a partner. A bag recorded with image_transport's
compressed streams instead of the raw ones (colour on ``<colour topic>/compressed``, depth on
``<depth topic>/compressedDepth``) is read from those, decoded by ``imagemsg`` to the same
arrays as raw images. Bad frames are counted skips in
:class:`ReadStats`, and a bag that breaks off mid-way ends the frames cleanly with
``stats.error`` set: what was read before is never lost. A recording cut off before rosbags
can open it (no mcap footer, no metadata.yaml) is salvaged (:mod:`.salvage`): its complete
messages are read and ``stats.error`` says it was cut short; :func:`repair_bag` writes them
to a clean bag.

Modules: :mod:`.messages` (typestore, message construction), :mod:`.write`, :mod:`.reader`
(:func:`open_bag`, :func:`inspect_bag`), :mod:`.frames` (:func:`iter_frames`, pairing),
:mod:`.salvage`, :mod:`.repair`. Topic names are in the ROS-free :mod:`lowlight_perception.topics`.
"""

from ..errors import BagError
from ..topics import FRAME_ID, GT_TOPIC, NORMAL_TOPIC
from .frames import PAIR_TOLERANCE_NS, PAIR_WINDOW_NS, ReadStats, iter_frames
from .messages import (
    COMPRESSED_TYPE,
    IMAGE_TYPE,
    INFO_TYPE,
    camera_info_message,
    header,
    image_message,
    typestore,
)
from .reader import BagInfo, bag_dir, bag_topics, inspect_bag, open_bag
from .repair import RepairSummary, repair_bag
from .write import (
    ROSBAG2_VERSION,
    STORAGES,
    T0_NS,
    BagSummary,
    frame_messages,
    offered_qos,
    write_bag,
)

__all__ = [
    "COMPRESSED_TYPE",
    "FRAME_ID",
    "GT_TOPIC",
    "IMAGE_TYPE",
    "INFO_TYPE",
    "NORMAL_TOPIC",
    "PAIR_TOLERANCE_NS",
    "PAIR_WINDOW_NS",
    "ROSBAG2_VERSION",
    "STORAGES",
    "T0_NS",
    "BagError",
    "BagInfo",
    "BagSummary",
    "ReadStats",
    "RepairSummary",
    "bag_dir",
    "bag_topics",
    "camera_info_message",
    "frame_messages",
    "header",
    "image_message",
    "inspect_bag",
    "iter_frames",
    "offered_qos",
    "open_bag",
    "repair_bag",
    "typestore",
    "write_bag",
]
