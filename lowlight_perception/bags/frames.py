"""Bags read back as paired frames: each colour frame with its depth, ground truth, recorded
prediction and intrinsics, bad frames counted and skipped, a break-off ending the frames
cleanly."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BagError, one_line
from ..frame import Frame
from ..imagemsg import (
    DEPTH_MM_ENCODINGS,
    ENCODINGS,
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
from ..topics import (
    CAMERA_INFO_TOPIC,
    COLOR_TOPIC,
    COLOUR_TRANSPORT,
    DEPTH_TOPIC,
    DEPTH_TRANSPORT,
    GT_TOPIC,
    camera_topic,
)
from .messages import COMPRESSED_TYPE, IMAGE_TYPE
from .reader import bag_dir, open_bag, records

PAIR_TOLERANCE_NS = 1_000_000
"""Header stamps this close (1 ms) belong to the same frame."""
PAIR_WINDOW_NS = 2_000_000_000
"""How long (bag time) a colour frame waits for its partners, e.g. predictions recorded from a
node that answered late. Bounds the frames held in memory."""


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

    def broke(self, why: str) -> None:
        """The storage broke off mid-way: the frames end here."""
        self.error = why


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

    def ready(self, now_ns: int | None) -> Iterator[Frame]:
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

    def _finish(self, frame: _Pending) -> Frame | None:
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
                self.stats.skip(f"no prediction within {PAIR_WINDOW_NS // 10**9} s")
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
        return Frame(frame.index, frame.rgb, label, depth, prediction, frame.stamp_ns, intrinsics)


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
) -> Iterator[Frame]:
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
        An iterator of :class:`Frame`.

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


def _frames(
    path: Path, roles: dict[str, str], require_gt: bool, stats: ReadStats
) -> Iterator[Frame]:
    waiting_for = tuple(r for r in ("depth", "gt", "pred") if r in roles.values())
    pairer = _Pairer(waiting_for, require_gt, stats)
    try:
        with open_bag(path) as reader:
            connections = [c for c in reader.connections if c.topic in roles]
            for connection, t_ns, raw in records(reader, connections, stats.broke):
                role = roles[connection.topic]
                try:
                    msg = reader.deserialize(raw, connection.msgtype)
                except Exception as err:  # a corrupt message: count it, read on
                    if role == "colour":
                        stats.colour_frames += 1
                        stats.skip("undecodable message")
                    else:
                        stats.warn(f"undecodable {role} message ({one_line(err)[:80]})")
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
