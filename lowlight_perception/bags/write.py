"""Datasets written as RealSense-like rosbag2 bags that Humble's and Jazzy's ``ros2 bag play``
both replay into the node."""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterable, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .. import __version__
from ..data.sample import Sample
from ..errors import BagError
from ..topics import CAMERA_INFO_TOPIC, COLOR_TOPIC, DEPTH_TOPIC, GT_TOPIC, NORMAL_TOPIC
from .messages import camera_info_message, header, image_message, typestore

T0_NS = 1_700_000_000 * 1_000_000_000
MAX_STAMP_NS = 2**31 * 1_000_000_000
"""builtin_interfaces/Time holds int32 seconds: no stamp at or past 2**31 s can be written."""
"""Stamp of the first frame of a written bag: fixed, so the same data gives the same bag."""
STORAGES = ("mcap", "sqlite3")
ROSBAG2_VERSION = 8
"""rosbag2 metadata version written: the newest that Humble's ``ros2 bag play`` reads. Version 9
stores offered_qos_profiles as a YAML list with string enums, which Humble's metadata reader
(rosbag2 humble, rosbag2_storage/src/rosbag2_storage/metadata_io.cpp) rejects, reading it with
``.as<std::string>()``; version 8 stores it as one YAML string with int enums, which Humble
decodes and Jazzy still reads (rosbag2 jazzy, rosbag2_storage/include/rosbag2_storage/yaml.hpp,
``version >= 4`` branch). Checked field by field in test/test_bag_distros.py."""

_INFINITE = (9_223_372_036, 854_775_807)  # RMW_DURATION_INFINITE, as rosbag2 records it


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


def _checked(sample: Sample, name: str, array: np.ndarray, dtype: Any, channels: int) -> None:
    height, width = sample.low.shape[:2]
    shape = (height, width, channels) if channels > 1 else (height, width)
    if array.shape != shape or array.dtype != dtype:
        raise BagError(
            f"sample {sample.name}: {name} is {array.dtype} {array.shape}, expected "
            f"{np.dtype(dtype)} {shape}"
        )


def frame_messages(
    sample: Sample, stamp_ns: int, include_normal: bool, include_labels: bool = True
) -> list[tuple[str, Any]]:
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
    if sample.label is not None and include_labels:
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
    include_labels: bool = True,
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
        include_labels: write the ground truth on :data:`GT_TOPIC` (False: an unlabelled
            recording, as a robot's own, e.g. for ``lowlight adapt``).
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
            if stamp >= MAX_STAMP_NS:
                raise BagError(
                    f"frame {index} at {fps:g} fps would be stamped after 2038 "
                    "(builtin_interfaces/Time's int32 seconds): raise --fps"
                )
            for topic, msg in frame_messages(sample, stamp, include_normal, include_labels):
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
