"""rosbag2 <-> frames: datasets written as RealSense-like bags, bags read back as paired frames.

Why: users evaluate on bags recorded on the drone, and the tests and the live replay need bags
with ground truth that ``ros2 bag play`` can republish into the node. ``rosbags`` (pure Python)
reads and writes rosbag2 mcap and sqlite3 without a ROS install, and this module imports no
rclpy (only ``ros/`` does), so evaluation runs on any machine. Images are decoded by
:mod:`lowlight_perception.imagemsg`, the same decoder the node uses.

Written bags (:func:`write_bag`), every message of frame ``i`` stamped ``T0_NS + i / fps`` in its
header and as its bag timestamp, ``frame_id`` :data:`FRAME_ID`:

* :data:`~lowlight_perception.ros.interface.COLOR_TOPIC`: the low-light frame, rgb8;
* :data:`~lowlight_perception.ros.interface.DEPTH_TOPIC`: 16UC1 millimetres, 0 = invalid
  (when the sample has depth);
* :data:`~lowlight_perception.ros.interface.CAMERA_INFO_TOPIC`: K of the sample, plumb_bob
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
can open it (no mcap footer, no metadata.yaml) is salvaged by :class:`_Salvaged`: its complete
messages are read and ``stats.error`` says it was cut short.
"""

from __future__ import annotations

import math
import shutil
import struct
from collections import deque
from collections.abc import Iterable, Iterator, Sized
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from .. import __version__
from ..camera import Intrinsics
from ..data.sample import Sample
from ..errors import LowlightError
from ..imagemsg import (
    DEPTH_MM_ENCODINGS,
    ENCODINGS,
    HOST_IS_BIGENDIAN,
    CameraInfoError,
    ImageError,
    camera_info_to_intrinsics,
    compressed_depth_to_numpy,
    compressed_rgb,
    depth_to_metres,
    image_to_numpy,
    is_compressed,
    rgb_view,
    valid_metres,
)
from ..ros.interface import CAMERA_INFO_TOPIC, COLOR_TOPIC, DEPTH_TOPIC

GT_TOPIC = "/ground_truth/labels"
"""Ground-truth class ids (mono8), stamped like the colour frame they belong to."""
NORMAL_TOPIC = "/ground_truth/normal/image_raw"
"""The normal-light twin of each colour frame (rgb8), with ``include_normal=True``."""
FRAME_ID = "camera_color_optical_frame"
"""realsense-ros's colour optical frame; depth is aligned to it."""
T0_NS = 1_700_000_000 * 1_000_000_000
"""Stamp of the first frame of a written bag: fixed, so the same data gives the same bag."""
PAIR_TOLERANCE_NS = 1_000_000
"""Header stamps this close (1 ms) belong to the same frame."""
PAIR_WINDOW_NS = 2_000_000_000
"""How long (bag time) a colour frame waits for its partners, e.g. predictions recorded from a
node that answered late. Bounds the frames held in memory."""
STORAGES = ("mcap", "sqlite3")
ROSBAG2_VERSION = 8
"""rosbag2 metadata version written: the newest that Humble's ``ros2 bag play`` reads. Version 9
stores offered_qos_profiles as a YAML list with string enums, which Humble's metadata reader
(rosbag2 humble, rosbag2_storage/src/rosbag2_storage/metadata_io.cpp) rejects, reading it with
``.as<std::string>()``; version 8 stores it as one YAML string with int enums, which Humble
decodes and Jazzy still reads (rosbag2 jazzy, rosbag2_storage/include/rosbag2_storage/yaml.hpp,
``version >= 4`` branch). Checked field by field in test/test_bag_distros.py."""
IMAGE_TYPE = "sensor_msgs/msg/Image"
INFO_TYPE = "sensor_msgs/msg/CameraInfo"

_INFINITE = (9_223_372_036, 854_775_807)  # RMW_DURATION_INFINITE, as rosbag2 records it


class BagError(LowlightError):
    """A bag cannot be written or read: bad path, unreadable storage, missing topics."""


@lru_cache(maxsize=1)
def typestore() -> Any:
    """The ROS 2 Kilted typestore of rosbags (the distribution of the rclpy wheels)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def offered_qos() -> Any:
    """The QoS profile written as each topic's offer: reliable, volatile, keep-last 10.

    That is what a realsense-ros publisher offers by default (images with SYSTEM_DEFAULT,
    which Fast DDS resolves to reliable); ``ros2 bag play`` republishes with it.
    """
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    infinite = QosTime(*_INFINITE)
    return Qos(
        QosHistory.KEEP_LAST,
        10,
        QosReliability.RELIABLE,
        QosDurability.VOLATILE,
        infinite,
        infinite,
        QosLiveliness.AUTOMATIC,
        infinite,
        False,
    )


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class BagSummary:
    """What :func:`write_bag` wrote.

    Attributes:
        path: the bag directory.
        storage: "mcap" or "sqlite3".
        frames: colour frames written.
        duration: seconds from the first to the last frame.
        topics: message count by topic.
        size: bytes on disk (all files of the bag).
    """

    path: Path
    storage: str
    frames: int
    duration: float
    topics: dict[str, int]
    size: int

    def __str__(self) -> str:
        topics = ", ".join(f"{topic} ({count})" for topic, count in self.topics.items())
        return (
            f"wrote {self.frames} frames ({self.duration:.2f} s) to {self.path} "
            f"({self.storage}, {self.size / 1e6:.1f} MB); topics: {topics}"
        )


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


def _checked(sample: Sample, name: str, array: np.ndarray, dtype: Any, channels: int) -> None:
    height, width = sample.low.shape[:2]
    shape = (height, width, channels) if channels > 1 else (height, width)
    if array.shape != shape or array.dtype != dtype:
        raise BagError(
            f"sample {sample.name}: {name} is {array.dtype} {array.shape}, expected "
            f"{np.dtype(dtype)} {shape}"
        )


def frame_messages(sample: Sample, stamp_ns: int, include_normal: bool) -> list[tuple[str, Any]]:
    """The (topic, rosbags message) pairs of one frame, in publishing order.

    camera_info and depth come before colour, so a node that pairs on arrival has them when
    the colour frame lands (the node also pairs the other way round).

    Raises:
        BagError: an array of the wrong shape or dtype, or intrinsics of another size.
    """
    header_ = header(stamp_ns)
    low = np.asarray(sample.low)
    if low.ndim != 3 or low.shape[2] != 3 or low.dtype != np.uint8:
        raise BagError(
            f"sample {sample.name}: low is {low.dtype} {low.shape}, expected (H, W, 3) uint8"
        )
    out: list[tuple[str, Any]] = []
    if sample.intrinsics is not None:
        K = sample.intrinsics
        if (K.width, K.height) != (low.shape[1], low.shape[0]):
            raise BagError(
                f"sample {sample.name}: intrinsics are {K.width}x{K.height} but the image is "
                f"{low.shape[1]}x{low.shape[0]}"
            )
        out.append((CAMERA_INFO_TOPIC, camera_info_message(header_, K)))
    if sample.depth is not None:
        _checked(sample, "depth", sample.depth, np.uint16, 1)
        out.append((DEPTH_TOPIC, image_message(header_, sample.depth, "16UC1")))
    out.append((COLOR_TOPIC, image_message(header_, low, "rgb8")))
    if sample.label is not None:
        _checked(sample, "label", sample.label, np.uint8, 1)
        out.append((GT_TOPIC, image_message(header_, sample.label, "mono8")))
    if include_normal and sample.normal is not None:
        _checked(sample, "normal", sample.normal, np.uint8, 3)
        out.append((NORMAL_TOPIC, image_message(header_, sample.normal, "rgb8")))
    return out


def write_bag(
    samples: Iterable[Sample],
    out: Path,
    *,
    storage: str = "mcap",
    fps: float = 30.0,
    include_normal: bool = False,
    progress: bool = True,
) -> BagSummary:
    """Write samples as a rosbag2 bag that ``ros2 bag play`` replays into the node.

    The bag is rosbag2 version :data:`ROSBAG2_VERSION`, which Humble's and Jazzy's players both
    read. Frame ``i`` is stamped ``T0_NS + i / fps`` (header and bag time alike). On any error
    the partly written directory is removed, so a retry does not trip over it.

    Args:
        samples: dataset samples in playback order (a dataset of ``data.datasets``, a list, a
            generator...); their ``low`` frame becomes the colour stream.
        out: the bag directory to create; it must not exist.
        storage: "mcap" or "sqlite3".
        fps: frame rate of the stamps.
        include_normal: also write the normal-light twins on :data:`NORMAL_TOPIC`.
        progress: show a tqdm bar.

    Returns:
        A :class:`BagSummary`.

    Raises:
        BagError: existing ``out``, unknown storage, bad fps, no samples, or a sample whose
            arrays do not fit.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

    out = Path(out)
    if storage not in STORAGES:
        raise BagError(f"unknown storage {storage!r}; valid: {', '.join(STORAGES)}")
    if not (math.isfinite(fps) and fps > 0):
        raise BagError(f"fps must be a positive number, got {fps}")
    if out.exists() or out.is_symlink():
        raise BagError(f"{out} already exists; choose another output path or delete it")
    store = typestore()
    qos = [offered_qos()]
    plugin = StoragePlugin[storage.upper()]
    writer = Writer(out, version=ROSBAG2_VERSION, storage_plugin=plugin)
    writer.set_custom_data("written_by", f"lowlight_perception {__version__}")
    writer.set_custom_data("fps", f"{fps:g}")
    connections: dict[str, Any] = {}
    counts: dict[str, int] = {}
    frames = 0
    total = len(samples) if isinstance(samples, Sized) else None
    created = False
    try:
        writer.open()
        created = True
        for index, sample in enumerate(
            tqdm(samples, total=total, desc="writing bag", unit="frame", disable=not progress)
        ):
            stamp = T0_NS + round(index * 1e9 / fps)
            for topic, msg in frame_messages(sample, stamp, include_normal):
                if topic not in connections:
                    connections[topic] = writer.add_connection(
                        topic, msg.__msgtype__, typestore=store, offered_qos_profiles=qos
                    )
                writer.write(connections[topic], stamp, store.serialize_cdr(msg, msg.__msgtype__))
                counts[topic] = counts.get(topic, 0) + 1
            frames += 1
        if frames == 0:
            raise BagError("no samples to write")
        writer.close()
    except BaseException as err:
        if writer.storage is not None:
            writer.abort()
        if created:  # ours: ``out`` did not exist before
            shutil.rmtree(out, ignore_errors=True)
        if isinstance(err, WriterError):
            raise BagError(f"cannot write {out}: {err}") from None
        raise
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    return BagSummary(out, storage, frames, (frames - 1) / fps, counts, size)


# --------------------------------------------------------------------------- reading

COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
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


@dataclass
class BagFrame:
    """One colour frame of a bag with its partners.

    Arrays are views over the bag's message buffers where no conversion was needed (they may
    be read-only); copy before writing into them.

    Attributes:
        stamp_ns: header stamp of the colour frame, in nanoseconds.
        rgb: (H, W, 3) uint8 RGB, C-contiguous (bgr8/rgba8/bgra8 converted).
        depth_mm: (H, W) uint16 millimetres, 0 = invalid (32FC1 metres converted), or None.
        label: (H, W) uint8 ground-truth class ids, or None.
        prediction: (H, W) uint8 class ids recorded on ``predictions_topic``, or None.
        intrinsics: from the camera_info of the same stamp, else the latest one; or None.
        index: position of the colour message among the bag's colour messages (0-based,
            counting skipped ones, so it names the same frame in every run).
    """

    stamp_ns: int
    rgb: np.ndarray
    depth_mm: np.ndarray | None
    label: np.ndarray | None
    prediction: np.ndarray | None
    intrinsics: Intrinsics | None
    index: int


@dataclass
class ReadStats:
    """Counts filled while :func:`iter_frames` reads, so they hold even after a break-off.

    Attributes:
        colour_frames: colour messages read.
        frames_yielded: frames handed out.
        skipped: colour frames not handed out, by reason ("no ground truth", "truncated
            data", "unknown encoding 'yuv422'", "no prediction"...).
        warnings: problems that did not cost a frame (bad depth or camera_info...), by reason.
        error: why the bag broke off mid-way, or None if it was read to the end.
    """

    colour_frames: int = 0
    frames_yielded: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def skip(self, reason: str) -> None:
        """Count a skipped colour frame."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def warn(self, reason: str) -> None:
        """Count a problem that did not cost a frame."""
        self.warnings[reason] = self.warnings.get(reason, 0) + 1


@dataclass(frozen=True)
class BagInfo:
    """What :func:`inspect_bag` found: storage, span and topics of a bag; ``formats`` holds
    the ``format`` of the first message of each CompressedImage topic (e.g. "rgb8; jpeg
    compressed bgr8"), so a user sees what the compressed streams hold."""

    path: Path
    storage: str
    messages: int
    start_ns: int
    duration: float
    topics: dict[str, tuple[str, int]]
    formats: dict[str, str] = field(default_factory=dict)
    note: str | None = None
    """Set when the bag was salvaged: cut short, N complete messages readable."""


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def bag_dir(bag: Path) -> Path:
    """The rosbag2 directory of ``bag`` (the directory itself, or a storage file in it); a
    killed recording has no metadata.yaml (rosbag2 writes it at close), so a directory with
    only its .mcap/.db3, or that bare file, is returned as it is, for salvage.

    Raises:
        BagError: ``bag`` does not exist, or is neither a rosbag2 directory nor a storage file.
    """
    path = Path(bag)
    if not path.exists():
        raise BagError(f"bag not found: {path}")
    if path.is_file() and (path.parent / "metadata.yaml").is_file():
        path = path.parent
    if not (path / "metadata.yaml").is_file() and _storage_file(path) is None:
        raise BagError(f"{path} is not a rosbag2 bag directory (no metadata.yaml, .mcap or .db3)")
    return path


@contextmanager
def open_bag(path: Path) -> Iterator[Any]:
    """An open AnyReader on ``path``, else (a cut-off recording) a :class:`_Salvaged` reader of
    its storage file with ``note`` set; a bag neither can read is a one-line BagError."""
    from rosbags.highlevel import AnyReader

    try:
        reader = AnyReader([path], default_typestore=typestore())
        reader.open()
    except Exception as err:  # rosbags raises many types for broken metadata or storage
        text = _one_line(err)
        if "end magic" in text:  # rosbags' words for an .mcap without its footer
            text += " (the .mcap was cut off, e.g. a recording that crashed)"
        file = _storage_file(path)
        if file is None:
            raise BagError(f"cannot read bag {path}: {text}") from None
        try:
            reader = _Salvaged(file, text)
        except (BagError, OSError) as salvage_err:
            raise BagError(f"cannot read bag {path}: {text}; {salvage_err}") from None
        if reader.cut is not None and not reader.message_count:
            raise BagError(
                f"cannot read bag {path}: {text}; cut off ({reader.cut}) before its first "
                "complete message"
            ) from None
    try:
        yield reader
    finally:
        reader.close()


def inspect_bag(bag: Path) -> BagInfo:
    """Storage, message count, start, duration and topics (type, count) of a bag.

    Raises:
        BagError: as :func:`bag_dir`, or a bag that cannot be opened.
    """
    path = bag_dir(bag)
    with open_bag(path) as reader:
        topics = {name: (i.msgtype or "?", i.msgcount) for name, i in reader.topics.items()}
        messages = reader.message_count
        start = reader.start_time if messages else 0
        duration = max(0, reader.duration - 1) / 1e9 if messages else 0.0  # rosbags adds 1 ns
        formats = _formats(reader)
        note = getattr(reader, "note", None)
        storage = getattr(reader, "storage", None)
    if storage is None:
        try:
            meta = yaml.safe_load((path / "metadata.yaml").read_text(encoding="utf-8"))
            storage = str(meta["rosbag2_bagfile_information"]["storage_identifier"])
        except (OSError, yaml.YAMLError, KeyError, TypeError):
            storage = "?"
    return BagInfo(path, storage, messages, start, duration, topics, formats, note)


def _formats(reader: Any) -> dict[str, str]:
    """``format`` of the first message of each CompressedImage topic ("?" where it cannot be
    read: a description must not fail on a bad message)."""
    out: dict[str, str] = {}
    for connection in reader.connections:
        if connection.msgtype != COMPRESSED_TYPE or connection.topic in out:
            continue
        messages = reader.messages(connections=[connection])
        try:
            _, _, raw = next(messages)
            out[connection.topic] = str(reader.deserialize(raw, connection.msgtype).format)
        except StopIteration:
            continue
        except Exception:  # a broken storage or message: say so, describe the rest
            out[connection.topic] = "?"
        finally:
            messages.close()
    return out


def bag_topics(bag: Path) -> dict[str, tuple[str, int]]:
    """Topics of a bag: ``{topic: (msgtype, message count)}``.

    Raises:
        BagError: as :func:`inspect_bag`.
    """
    return inspect_bag(bag).topics


def _stamp(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def _problem(msg: Any, err: Exception) -> str:
    """A short, countable reason for an image that does not decode."""
    if is_compressed(msg):  # the decoders' messages name no sizes: they count as they are
        return str(err)
    if msg.encoding not in ENCODINGS:
        return f"unknown encoding {msg.encoding!r}"
    text = str(err)
    return "truncated data" if "truncated" in text else text


def _take(store: dict[int, tuple[int, Any]], stamp: int) -> Any | None:
    """Pop the message of ``store`` (header stamp -> (bag time, msg)) nearest to ``stamp``
    within the pairing tolerance."""
    if stamp in store:
        return store.pop(stamp)[1]
    near = min(store, key=lambda s: abs(s - stamp), default=None)
    if near is not None and abs(near - stamp) <= PAIR_TOLERANCE_NS:
        return store.pop(near)[1]
    return None


@dataclass
class _Pending:
    """A colour frame waiting for its partners (role -> message)."""

    index: int
    t_ns: int
    stamp_ns: int
    rgb: np.ndarray
    partners: dict[str, Any] = field(default_factory=dict)


def _labels(msg: Any, shape: tuple[int, ...], what: str) -> np.ndarray | str:
    """(H, W) uint8 class ids of a mono8 image, or the reason it cannot be used."""
    if msg.encoding != "mono8":
        return f"{what} encoding {msg.encoding!r} is not mono8"
    try:
        labels = image_to_numpy(msg)
    except ImageError as err:
        return f"bad {what}: {_problem(msg, err)}"
    if labels.shape != shape:
        return f"{what} size mismatch"
    return np.ascontiguousarray(labels)


def _depth_mm(msg: Any, shape: tuple[int, ...], stats: ReadStats) -> np.ndarray | None:
    try:
        metres = None
        if is_compressed(msg):  # compressedDepth: uint16 mm, or 32FC1 metres with NaN holes
            _, depth = compressed_depth_to_numpy(msg)
            if depth.dtype != np.uint16:
                metres = valid_metres(depth)  # a decoded array of our own
        elif msg.encoding in DEPTH_MM_ENCODINGS:
            depth = np.ascontiguousarray(image_to_numpy(msg))
        else:
            metres = depth_to_metres(msg)  # raises for non-depth encodings
        if metres is not None:
            depth = np.rint(np.clip(metres * 1000.0, 0, 65535)).astype(np.uint16)
    except ImageError as err:
        stats.warn(f"bad depth: {_problem(msg, err)}")
        return None
    if depth.shape != shape:
        stats.warn("depth size mismatch")
        return None
    return depth


class _Pairer:
    """Pairs side messages (depth, ground truth, predictions, camera_info) with colour frames.

    Colour frames wait in arrival order until every expected partner came or
    :data:`PAIR_WINDOW_NS` of bag time passed; side messages that arrive first wait in
    per-role stores keyed by header stamp.
    """

    def __init__(self, roles: tuple[str, ...], require_gt: bool, stats: ReadStats) -> None:
        self.roles = roles  # roles a frame waits for
        self.require_gt = require_gt
        self.stats = stats
        self.pending: deque[_Pending] = deque()
        self.stores: dict[str, dict[int, tuple[int, Any]]] = {r: {} for r in (*roles, "info")}
        self.latest_info: Any = None

    def colour(self, index: int, t_ns: int, msg: Any) -> None:
        stamp = _stamp(msg)
        rgb = compressed_rgb(msg) if is_compressed(msg) else np.ascontiguousarray(rgb_view(msg))
        frame = _Pending(index, t_ns, stamp, rgb)
        for role in (*self.roles, "info"):
            partner = _take(self.stores[role], stamp)
            if partner is not None:
                frame.partners[role] = partner
        self.pending.append(frame)

    def side(self, role: str, t_ns: int, msg: Any) -> None:
        if role == "info":
            self.latest_info = msg
        stamp = _stamp(msg)
        for frame in self.pending:
            if role not in frame.partners and abs(frame.stamp_ns - stamp) <= PAIR_TOLERANCE_NS:
                frame.partners[role] = msg
                return
        self.stores[role][stamp] = (t_ns, msg)

    def ready(self, now_ns: int | None) -> Iterator[BagFrame]:
        """Frames whose partners are all there or whose wait is over (all with ``None``)."""
        while self.pending:
            frame = self.pending[0]
            complete = all(role in frame.partners for role in self.roles)
            if not complete and now_ns is not None and now_ns - frame.t_ns <= PAIR_WINDOW_NS:
                break
            self.pending.popleft()
            out = self._finish(frame)
            if out is not None:
                yield out
        if now_ns is not None:  # forget side messages no colour frame will claim any more
            for store in self.stores.values():
                for stamp in [s for s, (t, _) in store.items() if now_ns - t > PAIR_WINDOW_NS]:
                    del store[stamp]

    def _finish(self, frame: _Pending) -> BagFrame | None:
        shape = frame.rgb.shape[:2]
        label = None
        if "gt" in frame.partners:
            label = _labels(frame.partners["gt"], shape, "ground truth")
            if isinstance(label, str):
                if self.require_gt:
                    self.stats.skip(label)
                    return None
                self.stats.warn(label)
                label = None
        elif self.require_gt:
            self.stats.skip("no ground truth")
            return None
        prediction = None
        if "pred" in self.roles:
            if "pred" not in frame.partners:
                self.stats.skip("no prediction")
                return None
            prediction = _labels(frame.partners["pred"], shape, "prediction")
            if isinstance(prediction, str):
                self.stats.skip(prediction)
                return None
        depth = None
        if "depth" in frame.partners:
            depth = _depth_mm(frame.partners["depth"], shape, self.stats)
        info = frame.partners.get("info", self.latest_info)
        intrinsics = None
        if info is not None:
            try:
                intrinsics = camera_info_to_intrinsics(info)
            except CameraInfoError as err:
                self.stats.warn(f"bad camera_info: {err}")
        self.stats.frames_yielded += 1
        return BagFrame(
            frame.stamp_ns, frame.rgb, depth, label, prediction, intrinsics, frame.index
        )


def _check_topics(
    path: Path, reader: Any, required: dict[str, tuple[str, ...]], also: dict[str, str]
) -> None:
    """Every ``required`` topic is there with one of its types; a missing one is named with
    its compressed alternative from ``also`` (topic -> the other name looked for)."""
    topics = reader.topics
    missing = [
        f"{topic} (nor {also[topic]})" if topic in also else topic
        for topic in required
        if topic not in topics
    ]
    if missing:
        have = ", ".join(sorted(topics)) or "none"
        raise BagError(f"{path} has no {', '.join(missing)} (its topics: {have})")
    for topic, msgtypes in required.items():
        if topics[topic].msgtype not in msgtypes:
            raise BagError(
                f"{path}: {topic} holds {topics[topic].msgtype}, expected {' or '.join(msgtypes)}"
            )


def iter_frames(
    bag: Path,
    *,
    color_topic: str = COLOR_TOPIC,
    depth_topic: str = DEPTH_TOPIC,
    info_topic: str = CAMERA_INFO_TOPIC,
    gt_topic: str = GT_TOPIC,
    predictions_topic: str | None = None,
    require_gt: bool = True,
    stats: ReadStats | None = None,
) -> Iterator[BagFrame]:
    """The colour frames of a bag, each with its depth, ground truth, prediction and intrinsics.

    The bag is opened and its topics checked at once (so errors come before any work); the
    frames are then read lazily, in bag order. Partners are matched by header stamp (exact or
    within 1 ms). A frame without ground truth (``require_gt``) or without a prediction (when
    ``predictions_topic`` is given), or whose colour image does not decode, is skipped and
    counted in ``stats.skipped``; a missing or bad depth or camera_info only leaves that field
    None. If the storage breaks off mid-way (truncated or corrupt file), the frames read so far
    are yielded, ``stats.error`` says why, and the iterator ends without raising.

    Args:
        bag: the bag directory (or a storage file inside it).
        color_topic: colour images (rgb8, bgr8, rgba8, bgra8); when the bag lacks it, its
            image_transport ``compressed`` sub-topic (JPEG or PNG CompressedImage) is read.
        depth_topic: aligned depth (16UC1/mono16 mm or 32FC1 m); optional in the bag; when
            absent, its ``compressedDepth`` sub-topic (PNG after the ConfigHeader) is read.
        info_topic: camera_info; optional in the bag.
        gt_topic: ground-truth labels (mono8); required when ``require_gt``.
        predictions_topic: recorded labels (mono8) to pair too, e.g. the node's
            ``/lowlight_perception/labels``; required in the bag when given.
        require_gt: skip frames without ground truth (and require ``gt_topic``).
        stats: filled as frames are read.

    Returns:
        An iterator of :class:`BagFrame`.

    Raises:
        BagError: missing path, not a rosbag2 directory, unreadable metadata or storage,
            or a required topic missing (naming it and listing the bag's topics).
    """
    path = bag_dir(bag)
    stats = stats if stats is not None else ReadStats()
    with open_bag(path) as reader:
        present = set(reader.topics)
        colour = camera_topic(present, color_topic, COLOUR_TRANSPORT) or color_topic
        depth = camera_topic(present, depth_topic, DEPTH_TRANSPORT) or depth_topic
        required = {colour: (IMAGE_TYPE, COMPRESSED_TYPE)}
        if require_gt:
            required[gt_topic] = (IMAGE_TYPE,)
        if predictions_topic is not None:
            required[predictions_topic] = (IMAGE_TYPE,)
        also = {}
        if not color_topic.endswith(f"/{COLOUR_TRANSPORT}"):
            also[color_topic] = f"{color_topic.rstrip('/')}/{COLOUR_TRANSPORT}"
        _check_topics(path, reader, required, also)
    roles = {colour: "colour", depth: "depth", gt_topic: "gt", info_topic: "info"}
    if predictions_topic is not None:
        roles[predictions_topic] = "pred"
    roles = {topic: role for topic, role in roles.items() if topic in present}
    return _frames(path, roles, require_gt, stats)


def _records(reader: Any, connections: list, stats: ReadStats) -> Iterator[tuple[Any, int, Any]]:
    """``reader.messages`` that ends, with ``stats.error`` set, where the storage breaks."""
    messages = reader.messages(connections=connections)
    read = 0
    while True:
        try:
            record = next(messages)
        except StopIteration:
            return
        except Exception as err:  # rosbags, sqlite3, struct, zstd... all mean a broken storage
            stats.error = f"storage broke off after {read} messages: {_one_line(err)}"
            return
        read += 1
        yield record


def _frames(
    path: Path, roles: dict[str, str], require_gt: bool, stats: ReadStats
) -> Iterator[BagFrame]:
    waiting_for = tuple(r for r in ("depth", "gt", "pred") if r in roles.values())
    pairer = _Pairer(waiting_for, require_gt, stats)
    try:
        with open_bag(path) as reader:
            connections = [c for c in reader.connections if c.topic in roles]
            for connection, t_ns, raw in _records(reader, connections, stats):
                role = roles[connection.topic]
                try:
                    msg = reader.deserialize(raw, connection.msgtype)
                except Exception as err:  # a corrupt message: count it, read on
                    if role == "colour":
                        stats.colour_frames += 1
                        stats.skip("undecodable message")
                    else:
                        stats.warn(f"undecodable {role} message ({_one_line(err)[:80]})")
                    continue
                if role == "colour":
                    stats.colour_frames += 1
                    try:
                        pairer.colour(stats.colour_frames - 1, t_ns, msg)
                    except ImageError as err:
                        stats.skip(_problem(msg, err))
                else:
                    pairer.side(role, t_ns, msg)
                yield from pairer.ready(t_ns)
            if stats.error is None and getattr(reader, "note", None):
                stats.error = reader.note  # salvaged: say the bag was cut short
    except BagError as err:  # reopening failed after the check: the storage changed under us
        stats.error = str(err)
    yield from pairer.ready(None)


# --------------------------------------------------------------------------- salvage

MCAP_MAGIC = b"\x89MCAP0\r\n"
"""MCAP's leading magic (foxglove/mcap main, docs/specification/README.md, "Magic")."""
_SALVAGE_SUFFIXES = (".mcap", ".db3")


@dataclass(frozen=True)
class _Topic:
    """What the readers use of rosbags' TopicInfo."""

    msgtype: str
    msgcount: int


@dataclass(frozen=True)
class _Channel:
    """What the readers use of rosbags' Connection."""

    id: int
    topic: str
    msgtype: str


def _storage_file(path: Path) -> Path | None:
    """The .mcap or .db3 of a bag path (a bare file, or the first one in the directory)."""
    if path.is_file():
        return path if path.suffix in _SALVAGE_SUFFIXES else None
    found = sorted(f for f in path.iterdir() if f.is_file() and f.suffix in _SALVAGE_SUFFIXES)
    return found[0] if found else None


def _string(buf: memoryview, pos: int) -> tuple[str, int]:
    (size,) = struct.unpack_from("<I", buf, pos)
    return bytes(buf[pos + 4 : pos + 4 + size]).decode(), pos + 4 + size


def _chunk_records(content: memoryview) -> memoryview:
    """The records of a Chunk (op 0x06): start, end, uncompressed size (u64), crc (u32),
    compression (string), records (u64 length + bytes)."""
    size = struct.unpack_from("<Q", content, 16)[0]
    compression, pos = _string(content, 28)
    (length,) = struct.unpack_from("<Q", content, pos)
    data = bytes(content[pos + 8 : pos + 8 + length])
    # rosbags' own codec table ("", "lz4", "zstd"), whose zstd module differs by version
    from rosbags.rosbag2.storage_mcap import DECOMPRESSORS

    if compression not in DECOMPRESSORS:
        raise ValueError(f"unsupported chunk compression {compression!r}")
    data = DECOMPRESSORS[compression](data, size)
    if len(data) != size:
        raise ValueError("chunk size mismatch")
    return memoryview(data)


class _Salvaged:
    """The complete messages of a storage file rosbags will not open (a recording cut off
    before its footer or metadata.yaml was written), read in file order.

    mcap is read record by record as the MCAP specification lays it out (foxglove/mcap main,
    docs/specification/README.md): the magic, then records of opcode (u8), content length
    (u64) and content; Schema (0x03), Channel (0x04) and Message (0x05) records, at the top
    level or inside Chunk (0x06) records; Data End (0x0F) ends the data. Reading stops at the
    first incomplete record. sqlite3 is read as rosbag2's sqlite3 storage lays it out (topics,
    messages ORDER BY timestamp), read-only, up to the first unreadable page.
    """

    def __init__(self, file: Path, why: str) -> None:
        self.file = file
        self.storage = "mcap" if file.suffix == ".mcap" else "sqlite3"
        self.cut: str | None = None  # why reading stopped early, None if it reached the end
        self._channels: dict[int, _Channel] = {}
        counts: dict[int, int] = {}
        times: list[int] = []
        for channel, t_ns, _ in self._scan():
            counts[channel.id] = counts.get(channel.id, 0) + 1
            times = [min(times[0], t_ns), max(times[1], t_ns)] if times else [t_ns, t_ns]
        self.connections = list(self._channels.values())
        self.topics = {c.topic: _Topic(c.msgtype, counts.get(c.id, 0)) for c in self.connections}
        self.message_count = sum(counts.values())
        self.start_time = times[0] if times else 0
        self.duration = times[1] - times[0] + 1 if times else 0
        self.note = None
        if self.cut is not None:
            self.note = (
                f"storage broke off: the bag was cut short after {self.message_count} complete "
                f"messages of {file.name} ({self.cut}; rosbags: {why})"
            )

    def _scan(self) -> Iterator[tuple[_Channel, int, bytes]]:
        self.cut = None
        yield from (self._mcap() if self.storage == "mcap" else self._sqlite())

    def _mcap(self) -> Iterator[tuple[_Channel, int, bytes]]:
        schemas: dict[int, str] = {}
        with self.file.open("rb") as handle:
            if handle.read(8) != MCAP_MAGIC:
                raise BagError(f"{self.file} is not an mcap file (no MCAP magic)")
            while True:
                head = handle.read(9)
                if not head:
                    self.cut = "no Data End record"
                    return
                if len(head) < 9:
                    self.cut = "an incomplete record"
                    return
                opcode, length = struct.unpack("<BQ", head)
                content = handle.read(length)
                if len(content) < length:
                    self.cut = "an incomplete record"
                    return
                if opcode == 0x0F:
                    return
                records = [(opcode, memoryview(content))]
                if opcode == 0x06:
                    try:
                        records = list(_records_in(_chunk_records(memoryview(content))))
                    except Exception as err:  # a corrupt chunk: what came before stands
                        self.cut = f"a corrupt chunk: {_one_line(err)}"
                        return
                for op, rec in records:
                    if op == 0x03:  # Schema: id u16, name, encoding, data
                        schemas[struct.unpack_from("<H", rec)[0]] = _string(rec, 2)[0]
                    elif op == 0x04:  # Channel: id u16, schema_id u16, topic, ...
                        cid, sid = struct.unpack_from("<HH", rec)
                        topic = _string(rec, 4)[0]
                        self._channels[cid] = _Channel(cid, topic, schemas.get(sid, "?"))
                    elif op == 0x05:  # Message: channel_id u16, sequence u32, log_time u64...
                        cid, _, log_time = struct.unpack_from("<HIQ", rec)
                        if cid in self._channels:
                            yield self._channels[cid], log_time, bytes(rec[22:])

    def _sqlite(self) -> Iterator[tuple[_Channel, int, bytes]]:
        import sqlite3

        # read-only, ignoring any journal; a plain open of a truncated .db3 (shorter than its
        # header's page count) fails at once as malformed, with writable_schema the schema
        # loads and the rows before the cut read (test_bag_salvage.py)
        db = sqlite3.connect(f"file:{self.file}?mode=ro&immutable=1", uri=True)
        try:
            db.execute("PRAGMA writable_schema=ON")
            try:
                rows = db.execute("SELECT id, name, type FROM topics").fetchall()
            except sqlite3.DatabaseError as err:
                raise BagError(f"cannot read {self.file}: {_one_line(err)}") from None
            for cid, topic, msgtype in rows:
                self._channels[cid] = _Channel(cid, topic, msgtype)
            query = "SELECT topic_id, timestamp, data FROM messages ORDER BY timestamp"
            try:
                for cid, t_ns, data in db.execute(query):
                    if cid in self._channels:
                        yield self._channels[cid], t_ns, data
            except sqlite3.DatabaseError as err:  # "database disk image is malformed"
                self.cut = _one_line(err)
        finally:
            db.close()

    def messages(self, connections: list) -> Iterator[tuple[_Channel, int, bytes]]:
        """The complete messages of ``connections``, in file order."""
        ids = {c.id for c in connections}
        return (m for m in self._scan() if m[0].id in ids)

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        return typestore().deserialize_cdr(raw, msgtype)

    def close(self) -> None:
        """Nothing stays open between reads."""


def _records_in(buf: memoryview) -> Iterator[tuple[int, memoryview]]:
    """The (opcode, content) records of a decompressed chunk."""
    pos = 0
    while pos + 9 <= len(buf):
        opcode, length = struct.unpack_from("<BQ", buf, pos)
        yield opcode, buf[pos + 9 : pos + 9 + length]
        pos += 9 + length
