"""The bags we write are what Humble's and Jazzy's ``ros2 bag play`` read (issue 13).

No ROS install here, so the players cannot run. Instead this module re-implements, from the C++
source, what each distribution's reader takes out of a bag -- which field, with which yaml-cpp
``.as<T>()`` or sqlite column type, under which metadata version -- and runs those decoders on
bags written by :func:`write_bag` in both storages. The decoders are written from the readers,
not from rosbags' writer: a field the reader needs and we do not write, or write as another
type, fails here as it would throw there.

Sources (github.com/ros2/rosbag2, branches ``humble`` @ d256a5b and ``jazzy`` @ 64717ee;
github.com/ros2/rmw ``humble`` / ``jazzy`` for the QoS enums), cited by path and lines at each
decoder:

* metadata.yaml: humble ``rosbag2_storage/src/rosbag2_storage/metadata_io.cpp``; jazzy
  ``rosbag2_storage/include/rosbag2_storage/yaml.hpp`` (metadata_io.cpp only loads the file);
  file paths: ``rosbag2_cpp/src/rosbag2_cpp/readers/sequential_reader.cpp`` (both).
* offered QoS: humble ``rosbag2_transport/src/rosbag2_transport/player.cpp`` and
  ``rosbag2_transport/src/rosbag2_transport/qos.cpp``; jazzy
  ``rosbag2_storage/src/rosbag2_storage/qos.cpp``.
* sqlite3: humble ``rosbag2_storage_default_plugins/src/rosbag2_storage_default_plugins/sqlite/
  sqlite_storage.cpp``; jazzy ``rosbag2_storage_sqlite3/src/rosbag2_storage_sqlite3/
  sqlite_storage.cpp``.
* mcap: ``rosbag2_storage_mcap/src/mcap_storage.cpp`` (both branches; on Humble the plugin is the
  separate apt package ros-humble-rosbag2-storage-mcap).
* yaml-cpp's conversions (``as_if<std::string>``, ``convert<int/uint64_t/bool>``): yaml-cpp
  ``include/yaml-cpp/node/impl.h`` and ``convert.h``, modelled strictly (a null string throws,
  as in the yaml-cpp releases that still do).
"""

from __future__ import annotations

import re
import sqlite3
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from rosbags.interfaces import Qos
from rosbags.rosbag2 import StoragePlugin, Writer

from lowlight_perception import bags
from lowlight_perception.bags import (
    GT_TOPIC,
    NORMAL_TOPIC,
    ROSBAG2_VERSION,
    T0_NS,
    iter_frames,
    write_bag,
)
from lowlight_perception.camera import Intrinsics
from lowlight_perception.data.synthetic import sequence
from lowlight_perception.topics import CAMERA_INFO_TOPIC, COLOR_TOPIC, DEPTH_TOPIC

FRAMES = 4
FPS = 30.0
STAMPS = [T0_NS + round(i * 1e9 / FPS) for i in range(FRAMES)]
TOPICS = {  # frame_messages' topics with include_normal=True, one message each per frame
    CAMERA_INFO_TOPIC: "sensor_msgs/msg/CameraInfo",
    DEPTH_TOPIC: "sensor_msgs/msg/Image",
    COLOR_TOPIC: "sensor_msgs/msg/Image",
    GT_TOPIC: "sensor_msgs/msg/Image",
    NORMAL_TOPIC: "sensor_msgs/msg/Image",
}
SUFFIX = {"mcap": ".mcap", "sqlite3": ".db3"}

# rmw@humble rmw/include/rmw/types.h 373-457 (enums in declaration order from 0; liveliness
# explicit); rmw@jazzy types.h 370-514 only appends BEST_AVAILABLE after UNKNOWN, so the values
# are the same in both. RMW_DURATION_INFINITE: rmw/include/rmw/time.h 54 (both branches).
HISTORY = {"system_default": 0, "keep_last": 1, "keep_all": 2, "unknown": 3}
RELIABILITY = {"system_default": 0, "reliable": 1, "best_effort": 2, "unknown": 3}
DURABILITY = {"system_default": 0, "transient_local": 1, "volatile": 2, "unknown": 3}
LIVELINESS = {"system_default": 0, "automatic": 1, "manual_by_topic": 3, "unknown": 4}
RMW_DURATION_INFINITE = (9_223_372_036, 854_775_807)
# What realsense-ros offers by default, the profile the player must rebuild its publishers with.
EXPECTED_QOS = {
    "history": HISTORY["keep_last"],
    "depth": 10,
    "reliability": RELIABILITY["reliable"],
    "durability": DURABILITY["volatile"],
    "deadline": RMW_DURATION_INFINITE,
    "lifespan": RMW_DURATION_INFINITE,
    "liveliness": LIVELINESS["automatic"],
    "liveliness_lease_duration": RMW_DURATION_INFINITE,
    "avoid_ros_namespace_conventions": False,
}


# --------------------------------------------------------------------------- yaml-cpp, modelled


class BadConversionError(Exception):
    """yaml-cpp's TypedBadConversion / InvalidNode: the C++ reader throws, the bag does not
    open."""


_NULL = "tag:yaml.org,2002:null"
_INT = re.compile(r"[-+]?[0-9]+")
_UINT = re.compile(r"\+?[0-9]+")
_BOOLS = {"y": True, "yes": True, "true": True, "on": True}
_BOOLS |= {"n": False, "no": False, "false": False, "off": False}


@dataclass(frozen=True)
class Y:
    """A yaml-cpp node: scalars stay text until ``.as<T>()`` (here ``as_*``) converts them, as
    yaml-cpp does, so a value of the wrong kind fails where the C++ reader would throw."""

    node: yaml.Node | None  # None: a missing key (yaml-cpp's undefined node)
    path: str

    @staticmethod
    def load(text: str, path: str) -> Y:
        """``YAML::Load``."""
        return Y(yaml.compose(text), path)

    def __getitem__(self, key: str) -> Y:
        if isinstance(self.node, yaml.MappingNode):
            for k, v in self.node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == key:
                    return Y(v, f"{self.path}.{key}")
        return Y(None, f"{self.path}.{key}")

    def _fail(self, what: str) -> BadConversionError:
        kind = "missing" if self.node is None else type(self.node).__name__
        return BadConversionError(f"{self.path}: bad conversion to {what} ({kind})")

    def _scalar(self, what: str) -> str:
        node = self.node
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
            raise self._fail(what)
        return node.value

    def as_str(self) -> str:
        """``as<std::string>()``: any scalar's text; a sequence or map throws."""
        return self._scalar("std::string")

    def as_int(self) -> int:
        """``as<int>()``: the whole scalar parses as a 32-bit signed integer."""
        text = self._scalar("int")
        if not _INT.fullmatch(text) or not -(2**31) <= int(text) < 2**31:
            raise self._fail("int")
        return int(text)

    def as_uint64(self) -> int:
        """``as<uint64_t>()``: unsigned (yaml-cpp refuses a leading '-'), 64-bit."""
        text = self._scalar("uint64_t")
        if not _UINT.fullmatch(text) or int(text) >= 2**64:
            raise self._fail("uint64_t")
        return int(text)

    def as_bool(self) -> bool:
        """``as<bool>()``: yaml-cpp's y/yes/true/on and n/no/false/off (lower, UPPER or Title)."""
        text = self._scalar("bool")
        if text in (text.lower(), text.upper(), text.title()) and text.lower() in _BOOLS:
            return _BOOLS[text.lower()]
        raise self._fail("bool")

    def seq(self) -> list[Y]:
        """``convert<std::vector<T>>`` / the rosbag2 vector decoders: only a sequence."""
        if not isinstance(self.node, yaml.SequenceNode):
            raise self._fail("std::vector")
        return [Y(item, f"{self.path}[{i}]") for i, item in enumerate(self.node.value)]

    def as_str_map(self) -> dict[str, str]:
        """jazzy yaml.hpp 61-67 ``convert<unordered_map<string, string>>``: iterates the node
        (a null node has no items), each key and value ``as<std::string>()``."""
        if isinstance(self.node, yaml.ScalarNode) and self.node.tag == _NULL:
            return {}
        if not isinstance(self.node, yaml.MappingNode):
            raise self._fail("std::unordered_map")
        return {
            Y(k, self.path).as_str(): Y(v, f"{self.path}.{k.value}").as_str()
            for k, v in self.node.value
        }


# --------------------------------------------------------------------------- the QoS decoders


def _rmw_time(node: Y) -> tuple[int, int]:
    """qos.cpp ``convert<rmw_time_t>::decode`` (humble rosbag2_transport 52-64, jazzy
    rosbag2_storage 137-149): sec and nsec ``as<uint64_t>()``; Foxy's infinities mapped."""
    time = (node["sec"].as_uint64(), node["nsec"].as_uint64())
    foxy = {(0x7FFFFFFFFFFFFFFF // 10**9, 0x7FFFFFFFFFFFFFFF % 10**9), (0x7FFFFFFF, 0xFFFFFFFF)}
    foxy.add((0x7FFFFFFF, 0x7FFFFFFF))
    return RMW_DURATION_INFINITE if time in foxy else time


def _profile(node: Y, ints: bool) -> dict[str, Any]:
    """The policies of one profile: enums as ints (``as<int>()``) or, jazzy's version-9 path,
    through rmw's ``rmw_qos_*_policy_from_str`` (rmw@jazzy rmw/src/qos_string_conversions.c;
    an unknown name gives UNKNOWN)."""

    def enum(key: str, names: dict[str, int]) -> int:
        return node[key].as_int() if ints else names.get(node[key].as_str(), names["unknown"])

    return {
        "history": enum("history", HISTORY),
        "depth": node["depth"].as_int(),
        "reliability": enum("reliability", RELIABILITY),
        "durability": enum("durability", DURABILITY),
        "deadline": _rmw_time(node["deadline"]),
        "lifespan": _rmw_time(node["lifespan"]),
        "liveliness": enum("liveliness", LIVELINESS),
        "liveliness_lease_duration": _rmw_time(node["liveliness_lease_duration"]),
        "avoid_ros_namespace_conventions": node["avoid_ros_namespace_conventions"].as_bool(),
    }


def humble_qos(text: str, path: str) -> list[dict[str, Any]]:
    """What Humble's player makes of a topic's offered_qos_profiles string.

    humble rosbag2_transport/src/rosbag2_transport/player.cpp 78-83: an empty string means the
    default QoS, else ``YAML::Load(str).as<std::vector<Rosbag2QoS>>()``; qos.cpp 82-101: history,
    reliability, durability, liveliness ``as<int>()``, depth ``as<int>()``, the three durations
    as rmw_time_t, avoid_ros_namespace_conventions ``as<bool>()``.
    """
    if not text:
        return []
    return [_profile(item, ints=True) for item in Y.load(text, path).seq()]


def jazzy_qos_node(node: Y) -> list[dict[str, Any]]:
    """jazzy rosbag2_storage/src/rosbag2_storage/qos.cpp 260-275 (vector) and 167-213 (one
    profile): the format is auto-detected per profile -- a history that ``convert<int>`` decodes
    to SYSTEM_DEFAULT..UNKNOWN means int enums (version 8), else enum names (version 9)."""
    out = []
    for item in node.seq():
        try:
            history = item["history"].as_int()
            ints = HISTORY["system_default"] <= history <= HISTORY["unknown"]
        except BadConversionError:
            ints = False
        out.append(_profile(item, ints))
    return out


def jazzy_qos(text: str, path: str) -> list[dict[str, Any]]:
    """jazzy qos.cpp 447-452 ``to_rclcpp_qos_vector``: empty string -> none, else ``YAML::Load``
    and the vector decoder."""
    return [] if not text else jazzy_qos_node(Y.load(text, path))


# --------------------------------------------------------------------------- metadata decoders


@dataclass
class Topic:
    name: str
    type: str
    serialization_format: str
    qos: list[dict[str, Any]]
    message_count: int
    type_description_hash: str = ""


@dataclass
class BagMetadata:
    version: int
    storage_identifier: str
    duration: int
    starting_time: int
    message_count: int
    topics: list[Topic]
    relative_file_paths: list[str]
    compression: tuple[str, str] = ("", "")
    files: list[tuple[str, int, int, int]] = field(default_factory=list)
    custom_data: dict[str, str] = field(default_factory=dict)
    ros_distro: str = ""


def _file(node: Y) -> tuple[str, int, int, int]:
    """FileInformation decode (humble metadata_io.cpp 139-147, jazzy yaml.hpp 207-215)."""
    return (
        node["path"].as_str(),
        node["starting_time"]["nanoseconds_since_epoch"].as_uint64(),
        node["duration"]["nanoseconds"].as_uint64(),
        node["message_count"].as_uint64(),
    )


def _bag(node: Y, topic: Any, jazzy: bool) -> BagMetadata:
    """BagMetadata decode: humble metadata_io.cpp 206-229, jazzy yaml.hpp 277-307 (the same up
    to version 5; jazzy adds custom_data from 6 and ros_distro from 8). Durations are
    ``{nanoseconds}`` and times ``{nanoseconds_since_epoch}``, both ``as<uint64_t>()``
    (humble 160-183, jazzy 228-251)."""
    version = node["version"].as_int()
    meta = BagMetadata(
        version=version,
        storage_identifier=node["storage_identifier"].as_str(),
        duration=node["duration"]["nanoseconds"].as_uint64(),
        starting_time=node["starting_time"]["nanoseconds_since_epoch"].as_uint64(),
        message_count=node["message_count"].as_uint64(),
        topics=[topic(item, version) for item in node["topics_with_message_count"].seq()],
        relative_file_paths=[p.as_str() for p in node["relative_file_paths"].seq()],
    )
    if version >= 3:
        meta.compression = (node["compression_format"].as_str(), node["compression_mode"].as_str())
    if version >= 5:
        meta.files = [_file(item) for item in node["files"].seq()]
    if jazzy and version >= 6:
        meta.custom_data = node["custom_data"].as_str_map()
    if jazzy and version >= 8:
        meta.ros_distro = node["ros_distro"].as_str()
    return meta


def _humble_topic(node: Y, version: int) -> Topic:
    """humble metadata_io.cpp 65-76 (TopicMetadata: offered_qos_profiles ``as<std::string>()``
    from version 4) and 90-96 (TopicInformation), then player.cpp's QoS decode."""
    meta = node["topic_metadata"]
    qos = meta["offered_qos_profiles"].as_str() if version >= 4 else ""
    return Topic(
        meta["name"].as_str(),
        meta["type"].as_str(),
        meta["serialization_format"].as_str(),
        humble_qos(qos, f"{meta.path}.offered_qos_profiles"),
        node["message_count"].as_uint64(),
    )


def _jazzy_topic(node: Y, version: int) -> Topic:
    """jazzy yaml.hpp 125-143 (TopicMetadata: from version 9 offered_qos_profiles is a sequence,
    from 4 a string through ``to_rclcpp_qos_vector``; type_description_hash from 7) and
    158-164."""
    meta = node["topic_metadata"]
    qos: list[dict[str, Any]] = []
    if version >= 9:
        qos = jazzy_qos_node(meta["offered_qos_profiles"])
    elif version >= 4:
        text = meta["offered_qos_profiles"].as_str()
        qos = jazzy_qos(text, f"{meta.path}.offered_qos_profiles")
    return Topic(
        meta["name"].as_str(),
        meta["type"].as_str(),
        meta["serialization_format"].as_str(),
        qos,
        node["message_count"].as_uint64(),
        meta["type_description_hash"].as_str() if version >= 7 else "",
    )


def humble_metadata(text: str, path: str = "metadata.yaml") -> BagMetadata:
    """humble metadata_io.cpp 245-261 ``read_metadata``: the ``rosbag2_bagfile_information``
    node as BagMetadata (and each topic's QoS as the player decodes it)."""
    root = Y.load(text, path)["rosbag2_bagfile_information"]
    return _bag(root, _humble_topic, jazzy=False)


def jazzy_metadata(node: Y) -> BagMetadata:
    """jazzy yaml.hpp ``convert<BagMetadata>::decode`` on a node (the metadata.yaml's
    ``rosbag2_bagfile_information``, metadata_io.cpp 40-56, or a storage's serialized copy)."""
    return _bag(node, _jazzy_topic, jazzy=True)


# --------------------------------------------------------------------------- mcap records


@dataclass
class Mcap:
    """The records of an MCAP file that rosbag2's mcap plugin reads through mcap::McapReader:
    the header, and the summary section (schemas, channels, statistics, metadata indexes) the
    footer points to; the Metadata records those indexes point to."""

    profile: str
    schemas: dict[int, tuple[str, str, bytes]] = field(default_factory=dict)
    channels: dict[int, tuple[int, str, str, dict[str, str]]] = field(default_factory=dict)
    statistics: tuple[int, int, int, dict[int, int]] | None = None
    metadata: dict[str, list[dict[str, str]]] = field(default_factory=dict)


class _Buf:
    """Little-endian reader of MCAP's primitive types (MCAP specification, "Serialization")."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def _take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def u16(self) -> int:
        return self._take("<H")

    def u32(self) -> int:
        return self._take("<I")

    def u64(self) -> int:
        return self._take("<Q")

    def raw(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def string(self) -> str:
        return self.raw(self.u32()).decode()

    def str_map(self) -> dict[str, str]:
        end = self.u32() + self.pos
        out = {}
        while self.pos < end:
            key = self.string()
            out[key] = self.string()
        return out

    def record(self) -> tuple[int, bytes]:
        opcode = self.data[self.pos]
        self.pos += 1
        return opcode, self.raw(self.u64())


MAGIC = b"\x89MCAP0\r\n"


def read_mcap(path: Path) -> Mcap:
    """Parse the records above (MCAP spec: Header 0x01, Footer 0x02, Schema 0x03, Channel 0x04,
    Statistics 0x0B, Metadata 0x0C, Metadata Index 0x0D)."""
    data = path.read_bytes()
    assert data[:8] == MAGIC and data[-8:] == MAGIC, "not an MCAP file (magic)"
    opcode, header = _Buf(data, 8).record()
    assert opcode == 0x01
    mcap = Mcap(profile=_Buf(header).string())
    footer_at = len(data) - 8 - (1 + 8 + 20)
    opcode, footer = _Buf(data, footer_at).record()
    assert opcode == 0x02, "no footer where the reader looks for it"
    summary_start = _Buf(footer).u64()
    assert summary_start, "no summary section: the reader would have to scan the file"
    buf = _Buf(data, summary_start)
    while buf.pos < footer_at:
        opcode, body = buf.record()
        rec = _Buf(body)
        if opcode == 0x03:
            sid = rec.u16()
            mcap.schemas[sid] = (rec.string(), rec.string(), rec.raw(rec.u32()))
        elif opcode == 0x04:
            cid = rec.u16()
            mcap.channels[cid] = (rec.u16(), rec.string(), rec.string(), rec.str_map())
        elif opcode == 0x0B:
            count = rec.u64()
            rec.raw(2 + 4 * 4)  # schema (u16), channel, attachment, metadata, chunk counts
            start, end = rec.u64(), rec.u64()
            stop = rec.u32() + rec.pos
            per_channel = {}
            while rec.pos < stop:
                cid = rec.u16()
                per_channel[cid] = rec.u64()
            mcap.statistics = (count, start, end, per_channel)
        elif opcode == 0x0D:
            offset, _length, name = rec.u64(), rec.u64(), rec.string()
            kind, body = _Buf(data, offset).record()
            assert kind == 0x0C, f"metadata index {name!r} points at record {kind:#x}"
            meta = _Buf(body)
            assert meta.string() == name
            mcap.metadata.setdefault(name, []).append(meta.str_map())
    return mcap


# --------------------------------------------------------------------------- the bags


@pytest.fixture(scope="module")
def samples() -> list:
    """Four frames of one procedural trajectory at 64x48: depth, labels, intrinsics, normal."""
    return list(sequence(3, 0, FRAMES, Intrinsics.d435i(64, 48)))


@pytest.fixture(scope="module")
def written(tmp_path_factory, samples) -> dict[str, Path]:
    """One bag per storage, every topic written."""
    root = tmp_path_factory.mktemp("distros")
    out = {}
    for storage in ("mcap", "sqlite3"):
        out[storage] = root / storage
        write_bag(
            samples, out[storage], storage=storage, fps=FPS, include_normal=True, progress=False
        )
    return out


def _check_bag(meta: BagMetadata, bag: Path, storage: str, jazzy: bool) -> None:
    """What the decoded metadata must hold for the player to open and replay the bag."""
    assert meta.version == ROSBAG2_VERSION == 8
    # sequential_reader.cpp open() (humble 91-95, jazzy 95-99): the storage plugin is chosen by
    # storage_identifier; resolve_relative_paths (humble 34-57): from version 4 the paths are
    # relative to the bag directory, and the plugin opens them read-only (they must exist).
    assert meta.storage_identifier == storage
    (relative,) = meta.relative_file_paths
    assert relative == f"{bag.name}{SUFFIX[storage]}" and (bag / relative).is_file()
    assert meta.starting_time == STAMPS[0]
    assert meta.duration == STAMPS[-1] - STAMPS[0]
    assert meta.message_count == FRAMES * len(TOPICS)
    # compression fields empty: the plain (not the compression) reader plays the bag
    assert meta.compression == ("", "")
    assert meta.files == [(relative, STAMPS[0], STAMPS[-1] - STAMPS[0], FRAMES * len(TOPICS))]
    assert {t.name: (t.type, t.message_count) for t in meta.topics} == {
        name: (msgtype, FRAMES) for name, msgtype in TOPICS.items()
    }
    for topic in meta.topics:
        # sequential_reader.cpp check_topics_serialization_formats (humble 252-263): one format
        # for all; "cdr" is the rmw's, so no converter is loaded (humble 265-281)
        assert topic.serialization_format == "cdr"
        assert topic.qos == [EXPECTED_QOS], topic.name
        if jazzy:
            assert topic.type_description_hash == bags.typestore().hash_rihs01(topic.type)
    if jazzy:
        assert meta.custom_data["fps"] == "30"
        assert meta.custom_data["written_by"].startswith("lowlight_perception ")
        assert meta.ros_distro  # a string (rosbags writes its own name; Jazzy only shows it)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_humble_reads_our_metadata_yaml(written, storage):
    """Humble's MetadataIo and player decode every field, the QoS string included."""
    bag = written[storage]
    meta = humble_metadata((bag / "metadata.yaml").read_text())
    _check_bag(meta, bag, storage, jazzy=False)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_jazzy_reads_our_metadata_yaml(written, storage):
    """Jazzy's version < 9 branch: the QoS string, the type hashes, custom_data, ros_distro."""
    bag = written[storage]
    root = Y.load((bag / "metadata.yaml").read_text(), "metadata.yaml")
    meta = jazzy_metadata(root["rosbag2_bagfile_information"])
    _check_bag(meta, bag, storage, jazzy=True)


def _rows(con: sqlite3.Connection, query: str) -> list[tuple]:
    return con.execute(query).fetchall()


def _typed(con: sqlite3.Connection, table: str, column: str) -> set[str]:
    """The sqlite storage classes of a column: SqliteStatementWrapper reads a std::string with
    sqlite3_column_text, an int with sqlite3_column_int(64), the blob as bytes."""
    return {t for (t,) in _rows(con, f"SELECT DISTINCT typeof({column}) FROM {table}")}


def test_sqlite3_tables_are_what_humble_and_jazzy_read(written):
    """The db3 the sqlite3 plugins open: schema version, topics (with the QoS string they
    decode), the read query, the per-topic counts, and Jazzy's metadata and definitions."""
    bag = written["sqlite3"]
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    con = sqlite3.connect(f"file:{bag / (bag.name + '.db3')}?mode=ro", uri=True)
    try:
        # read_db_schema_version (humble 657-674, jazzy 977-993): the schema table's first row
        assert _typed(con, "schema", "schema_version") == {"integer"}
        (schema_version,) = _rows(con, "SELECT schema_version from schema;")[0]
        # >= 3: ros_distro is read (humble 645-655) and jazzy reads the metadata table (800);
        # >= 4: jazzy reads message_definitions (409)
        assert schema_version >= 4
        assert _typed(con, "schema", "ros_distro") == {"text"}
        columns = {row[1] for row in _rows(con, "PRAGMA table_info(topics)")}
        # field_exists("topics", ...) picks the query (humble 467, jazzy 697-698)
        assert {"offered_qos_profiles", "type_description_hash"} <= columns
        for column in ("name", "type", "serialization_format", "offered_qos_profiles"):
            assert _typed(con, "topics", column) == {"text"}, column

        # humble fill_topics_and_types 465-476: four strings per topic, QoS as the player reads it
        humble = _rows(
            con,
            "SELECT name, type, serialization_format, offered_qos_profiles FROM topics "
            "ORDER BY id;",
        )
        assert {name: msgtype for name, msgtype, _, _ in humble} == TOPICS
        for name, _, fmt, qos in humble:
            assert fmt == "cdr" and humble_qos(qos, f"topics[{name}]") == [EXPECTED_QOS]

        # humble get_metadata 524-535 (used when metadata.yaml is missing)
        counts = _rows(
            con,
            "SELECT name, type, serialization_format, COUNT(messages.id), MIN(messages.timestamp), "
            "MAX(messages.timestamp), offered_qos_profiles "
            "FROM messages JOIN topics on topics.id = messages.topic_id "
            "GROUP BY topics.name;",
        )
        assert {row[0]: row[3:6] for row in counts} == {
            name: (FRAMES, STAMPS[0], STAMPS[-1]) for name in TOPICS
        }

        # prepare_for_reading (humble 434-463; jazzy 656-692 builds the same SELECT): every
        # message, in time order, data a blob
        assert _typed(con, "messages", "data") == {"blob"}
        assert _typed(con, "messages", "timestamp") == {"integer"}
        read = _rows(
            con,
            "SELECT data, timestamp, topics.name, messages.id "
            "FROM messages JOIN topics ON messages.topic_id = topics.id WHERE "
            "(((timestamp = 0) AND (messages.id >= 0)) OR (timestamp > 0)) "
            "ORDER BY messages.timestamp, messages.id;",
        )
        assert len(read) == meta["message_count"] == FRAMES * len(TOPICS)
        assert [t for _, t, _, _ in read] == sorted(STAMPS * len(TOPICS))
        assert [n for _, _, n, _ in read[: len(TOPICS)]] == list(TOPICS)  # frame_messages order

        # jazzy read_metadata 797-815: the last metadata row, decoded as BagMetadata
        stored = _rows(con, "SELECT metadata_version, metadata FROM metadata ORDER BY id;")
        assert stored, "jazzy would fall back to an empty metadata (no version)"
        version, text = stored[-1]
        jazzy = jazzy_metadata(Y.load(text, "metadata table"))
        assert int(version) == jazzy.version == meta["version"] == ROSBAG2_VERSION
        assert {t.name: (t.type, t.qos) for t in jazzy.topics} == {
            name: (msgtype, [EXPECTED_QOS]) for name, msgtype in TOPICS.items()
        }
        # jazzy fill_topics_and_types 695-715: QoS decoded with that metadata version
        for _, name, msgtype, fmt, qos, digest in _rows(
            con,
            "SELECT id, name, type, serialization_format, offered_qos_profiles, "
            "type_description_hash FROM topics ORDER BY id;",
        ):
            assert fmt == "cdr"
            assert jazzy_qos(qos, f"topics[{name}]") == [EXPECTED_QOS]
            assert digest == bags.typestore().hash_rihs01(msgtype)
        # jazzy get_all_message_definitions 405-420: one definition per type
        definitions = _rows(
            con,
            "SELECT topic_type, encoding, encoded_message_definition, type_description_hash FROM "
            "message_definitions ORDER BY id;",
        )
        assert sorted(d[0] for d in definitions) == sorted(set(TOPICS.values()))
        for msgtype, encoding, text, digest in definitions:
            assert encoding in ("ros2msg", "ros2idl") and text
            assert digest == bags.typestore().hash_rihs01(msgtype)
    finally:
        con.close()


def test_mcap_records_are_what_humble_and_jazzy_read(written):
    """The mcap plugins' get_metadata / read_metadata: channels with their schema, the QoS
    string in channel metadata, the statistics, and Jazzy's serialized rosbag2 metadata."""
    bag = written["mcap"]
    mcap = read_mcap(bag / f"{bag.name}.mcap")
    assert mcap.profile == "ros2"
    # humble mcap_storage.cpp 375-425 / jazzy 459-502: per channel its schema (else it throws),
    # type = schema name, serialization_format = message encoding, counts from Statistics
    assert mcap.statistics is not None
    count, start, end, per_channel = mcap.statistics
    assert (count, start, end) == (FRAMES * len(TOPICS), STAMPS[0], STAMPS[-1])
    seen = {}
    for cid, (sid, topic, encoding, metadata) in mcap.channels.items():
        assert sid in mcap.schemas, f"no schema for {topic}"
        name, schema_encoding, definition = mcap.schemas[sid]
        assert schema_encoding in ("ros2msg", "ros2idl") and definition
        assert encoding == "cdr" and per_channel[cid] == FRAMES
        seen[topic] = name
        # humble 407-411 keeps the string (the player decodes it, player.cpp 82-83)
        qos = metadata["offered_qos_profiles"]
        assert humble_qos(qos, f"channel {topic}") == [EXPECTED_QOS]
    assert seen == TOPICS

    # jazzy read_metadata 414-453: the "rosbag2" metadata record's serialized_metadata decodes
    # as BagMetadata, and its version picks how the channels' QoS strings are read (483-488)
    (record,) = mcap.metadata["rosbag2"]
    jazzy = jazzy_metadata(Y.load(record["serialized_metadata"], "serialized_metadata"))
    assert jazzy.version == ROSBAG2_VERSION
    assert {t.name: (t.type, t.qos) for t in jazzy.topics} == {
        name: (msgtype, [EXPECTED_QOS]) for name, msgtype in TOPICS.items()
    }
    for _, topic, _, metadata in mcap.channels.values():
        qos = jazzy_qos(metadata["offered_qos_profiles"], f"channel {topic}")
        assert qos == [EXPECTED_QOS]
        # jazzy 489-492 reads "topic_type_hash" when present (rosbags leaves it out; the
        # metadata.yaml carries the hash, and the player does not need it)
        if "topic_type_hash" in metadata:
            assert metadata["topic_type_hash"] == bags.typestore().hash_rihs01(TOPICS[topic])


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_version_9_is_what_humble_cannot_read(tmp_path, storage):
    """The checkers are real: a version-9 bag (rosbags' default, what we wrote before) fails
    Humble's decoder at offered_qos_profiles (a list where it wants a string), and Jazzy reads
    it to the same profile -- the reason we write version 8."""
    out = tmp_path / "v9"
    store = bags.typestore()
    qos: list[Qos] = [bags.offered_qos()]
    with Writer(out, version=9, storage_plugin=StoragePlugin[storage.upper()]) as writer:
        conn = writer.add_connection(
            COLOR_TOPIC, "sensor_msgs/msg/Image", typestore=store, offered_qos_profiles=qos
        )
        msg = bags.image_message(bags.header(T0_NS), np.zeros((2, 2, 3), np.uint8), "rgb8")
        writer.write(conn, T0_NS, store.serialize_cdr(msg, msg.__msgtype__))
    text = (out / "metadata.yaml").read_text()
    wrong = r"offered_qos_profiles: bad conversion to std::string \(SequenceNode\)"
    with pytest.raises(BadConversionError, match=wrong):
        humble_metadata(text)
    meta = jazzy_metadata(Y.load(text, "metadata.yaml")["rosbag2_bagfile_information"])
    assert meta.version == 9 and meta.topics[0].qos == [EXPECTED_QOS]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_version_8_bags_read_back_through_our_reader(written, samples, storage):
    """The format change costs our own reader nothing: every frame comes back as written."""
    frames = list(iter_frames(written[storage]))
    assert len(frames) == FRAMES
    for i, (frame, sample) in enumerate(zip(frames, samples, strict=True)):
        assert (frame.index, frame.stamp_ns) == (i, STAMPS[i])
        np.testing.assert_array_equal(frame.rgb, sample.low)
        np.testing.assert_array_equal(frame.depth_mm, sample.depth)
        np.testing.assert_array_equal(frame.label, sample.label)
        assert frame.intrinsics == sample.intrinsics
