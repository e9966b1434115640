"""Cut-off recordings (a killed ``ros2 bag record``, a drone that lost power) read as far as
they are complete, where rosbags will not open them."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BagError, one_line
from .messages import typestore

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
    """What the readers and :func:`~.repair.repair_bag` use of rosbags' Connection: the
    recorded serialization format, offered QoS (as stored: a YAML string) and, from an mcap
    Schema record, the message definition and the type hash of the channel metadata (ros2/rosbag2
    jazzy, rosbag2_storage_mcap/src/mcap_storage.cpp: channel metadata "offered_qos_profiles"
    and "topic_type_hash"; humble writes only the first)."""

    id: int
    topic: str
    msgtype: str
    serialization_format: str = "cdr"
    offered_qos_profiles: str = ""
    msgdef: str = ""
    type_hash: str = ""


def storage_file(path: Path) -> Path | None:
    """The .mcap or .db3 of a bag path (a bare file, or the first one in the directory)."""
    if path.is_file():
        return path if path.suffix in _SALVAGE_SUFFIXES else None
    found = sorted(f for f in path.iterdir() if f.is_file() and f.suffix in _SALVAGE_SUFFIXES)
    return found[0] if found else None


def _string(buf: memoryview, pos: int) -> tuple[str, int]:
    (size,) = struct.unpack_from("<I", buf, pos)
    return bytes(buf[pos + 4 : pos + 4 + size]).decode(), pos + 4 + size


def _str_map(buf: memoryview, pos: int) -> dict[str, str]:
    """An MCAP Map<string, string>: u32 byte length, then key / value strings."""
    (size,) = struct.unpack_from("<I", buf, pos)
    pos, end, out = pos + 4, pos + 4 + size, {}
    while pos < end:
        key, pos = _string(buf, pos)
        out[key], pos = _string(buf, pos)
    return out


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


class Salvaged:
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
        schemas: dict[int, tuple[str, str]] = {}  # id -> (name, definition)
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
                        self.cut = f"a corrupt chunk: {one_line(err)}"
                        return
                for op, rec in records:
                    if op == 0x03:  # Schema: id u16, name, encoding, data (u32 length)
                        name, pos = _string(rec, 2)
                        _, pos = _string(rec, pos)
                        (size,) = struct.unpack_from("<I", rec, pos)
                        definition = bytes(rec[pos + 4 : pos + 4 + size]).decode(errors="replace")
                        schemas[struct.unpack_from("<H", rec)[0]] = (name, definition)
                    elif op == 0x04:  # Channel: id u16, schema_id u16, topic, encoding, metadata
                        cid, sid = struct.unpack_from("<HH", rec)
                        topic, pos = _string(rec, 4)
                        encoding, pos = _string(rec, pos)
                        meta = _str_map(rec, pos)
                        name, definition = schemas.get(sid, ("?", ""))
                        self._channels[cid] = _Channel(
                            cid,
                            topic,
                            name,
                            encoding,
                            meta.get("offered_qos_profiles", ""),
                            definition,
                            meta.get("topic_type_hash", ""),
                        )
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
            # the columns of rosbag2's topics table (humble sqlite_storage.cpp 374-379); bags
            # older than Foxy have no offered_qos_profiles
            columns = "id, name, type, serialization_format, offered_qos_profiles"
            try:
                try:
                    rows = db.execute(f"SELECT {columns} FROM topics").fetchall()
                except sqlite3.OperationalError:  # no such column
                    rows = db.execute("SELECT id, name, type, 'cdr', '' FROM topics").fetchall()
            except sqlite3.DatabaseError as err:
                raise BagError(f"cannot read {self.file}: {one_line(err)}") from None
            try:  # Iron and later (and rosbags) keep each type's definition and hash
                definitions = {
                    msgtype: (text, digest)
                    for msgtype, text, digest in db.execute(
                        "SELECT topic_type, encoded_message_definition, type_description_hash "
                        "FROM message_definitions"
                    )
                }
            except sqlite3.DatabaseError:  # Humble's storage has no such table
                definitions = {}
            for cid, topic, msgtype, serialization, qos in rows:
                text, digest = definitions.get(msgtype, ("", ""))
                self._channels[cid] = _Channel(
                    cid, topic, msgtype, serialization, qos or "", text, digest
                )
            query = "SELECT topic_id, timestamp, data FROM messages ORDER BY timestamp"
            try:
                for cid, t_ns, data in db.execute(query):
                    if cid in self._channels:
                        yield self._channels[cid], t_ns, data
            except sqlite3.DatabaseError as err:  # "database disk image is malformed"
                self.cut = one_line(err)
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
