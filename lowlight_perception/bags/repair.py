"""``lowlight bag repair --bag BAG --out OUT``: a clean bag of everything a damaged one still holds.

Why: a killed ``ros2 bag record`` or a drone that lost power leaves an .mcap without its footer
and summary, or a .db3 cut mid-page, and no metadata.yaml; ``ros2 bag play`` refuses it. This
does for both storages what ``ros2 bag reindex`` (a missing metadata.yaml) and ``mcap recover``
(a cut .mcap) do: every complete message is copied, bytes unchanged, with its topic's type,
serialization format and recorded QoS, into a new bag of rosbag2 version
:data:`~.write.ROSBAG2_VERSION`, which Humble's and Jazzy's players both read.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .. import __version__
from ..errors import BagError, one_line
from .messages import typestore
from .reader import bag_dir, open_bag, records, storage_of
from .write import ROSBAG2_VERSION, STORAGES


@dataclass(frozen=True)
class RepairSummary:
    """What :func:`repair_bag` wrote.

    Attributes:
        path: the new bag directory.
        storage: its storage, "mcap" or "sqlite3".
        topics: messages copied, by topic.
        source_note: why the source was incomplete (cut short after N messages...), or None
            when it was read to the end.
        left_out: topics that could not be copied, with the reason (a type that neither the
            bag nor rosbags' typestore defines).
    """

    path: Path
    storage: str
    topics: dict[str, int]
    source_note: str | None
    left_out: dict[str, str]

    @property
    def messages(self) -> int:
        return sum(self.topics.values())

    def __str__(self) -> str:
        lines = [f"wrote {self.messages} messages to {self.path} ({self.storage})"]
        lines += [f"  {topic}: {count}" for topic, count in self.topics.items()]
        lines += [f"  left out {topic}: {why}" for topic, why in self.left_out.items()]
        lines.append(
            f"the source was incomplete: {self.source_note}"
            if self.source_note
            else "the source was complete: every message was copied"
        )
        return "\n".join(lines)


def _connection_args(connection: Any) -> dict[str, Any] | str:
    """``Writer.add_connection`` keywords that keep the recorded definition, format and QoS of
    ``connection`` (a rosbags Connection or a salvaged channel), or why it cannot be copied."""
    from rosbags.rosbag2.metadata import parse_qos

    store = typestore()
    ext = getattr(connection, "ext", None)
    if ext is not None:  # rosbags opened the bag
        serialization, qos = ext.serialization_format, list(ext.offered_qos_profiles)
        msgdef = connection.msgdef.data if connection.msgdef else ""
        type_hash = connection.digest or ""
    else:
        serialization = connection.serialization_format
        try:
            qos = parse_qos(connection.offered_qos_profiles)
        except Exception:  # an unreadable recorded QoS: the player falls back to its defaults
            qos = []
        msgdef, type_hash = connection.msgdef, connection.type_hash
    args: dict[str, Any] = {"serialization_format": serialization, "offered_qos_profiles": qos}
    if msgdef and type_hash.startswith("RIHS01_"):
        return {**args, "msgdef": msgdef, "rihs01": type_hash}  # exactly what was recorded
    if connection.msgtype in store.fielddefs:
        return {**args, "typestore": store}
    if msgdef:  # a type of the robot's own, defined in the bag (an mcap Schema) without a hash
        try:
            return {**args, "msgdef": msgdef, "rihs01": _rihs01(msgdef, connection.msgtype)}
        except Exception as err:  # an unparsable definition: that topic only is left out
            return f"its definition of {connection.msgtype} does not parse: {one_line(err)}"
    return f"type {connection.msgtype} is defined neither in the bag nor in rosbags' typestore"


def _rihs01(msgdef: str, msgtype: str) -> str:
    """The RIHS01 hash of a .msg definition (with its dependencies, rosbag2's concatenated
    form), as rosbags' AnyReader registers such definitions."""
    from rosbags.typesys import Stores, get_types_from_msg
    from rosbags.typesys import get_typestore as empty_store

    store = empty_store(Stores.EMPTY)
    store.register(get_types_from_msg(msgdef, msgtype))
    return store.hash_rihs01(msgtype)


def repair_bag(
    bag: Path, out: Path, *, storage: str | None = None, progress: bool = True
) -> RepairSummary:
    """Copy every readable message of ``bag`` into a new bag at ``out``.

    Args:
        bag: the damaged bag: a directory (with or without metadata.yaml) or its storage file.
        out: the bag directory to create; it must not exist.
        storage: "mcap" or "sqlite3"; None keeps the source's.
        progress: show a tqdm bar.

    Returns:
        A :class:`RepairSummary`.

    Raises:
        BagError: ``bag`` unreadable (nothing complete in it), ``out`` exists, unknown storage,
            or no topic that can be copied. A partly written ``out`` is removed.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

    path = bag_dir(bag)
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise BagError(f"{out} already exists; choose another output path or delete it")
    if storage is not None and storage not in STORAGES:
        raise BagError(f"unknown storage {storage!r}; valid: {', '.join(STORAGES)}")
    with open_bag(path) as reader:
        chosen = storage or storage_of(path, reader)
        if chosen not in STORAGES:
            chosen = "mcap"
        writer = Writer(out, version=ROSBAG2_VERSION, storage_plugin=StoragePlugin[chosen.upper()])
        writer.set_custom_data("repaired_by", f"lowlight_perception {__version__}")
        writer.set_custom_data("repaired_from", str(path))
        note = getattr(reader, "note", None)
        broke: list[str] = []
        counts: dict[str, int] = {}
        left_out: dict[str, str] = {}
        created = False
        try:
            writer.open()
            created = True
            targets: dict[int, Any] = {}  # source connection id -> new connection
            by_key: dict[tuple[str, str], Any] = {}  # one new connection per (topic, type)
            for connection in reader.connections:
                key = (connection.topic, connection.msgtype)
                if key not in by_key:
                    args = _connection_args(connection)
                    if isinstance(args, str):
                        left_out[connection.topic] = args
                        continue
                    by_key[key] = writer.add_connection(*key, **args)
                targets[connection.id] = by_key[key]
            if not targets:
                raise BagError(f"nothing in {path} can be copied: {left_out or 'no topics'}")
            wanted = [c for c in reader.connections if c.id in targets]
            total = getattr(reader, "message_count", None)
            bar = tqdm(total=total, desc="repairing bag", unit="msg", disable=not progress)
            with bar:
                for connection, t_ns, raw in records(reader, wanted, broke.append):
                    writer.write(targets[connection.id], t_ns, raw)
                    counts[connection.topic] = counts.get(connection.topic, 0) + 1
                    bar.update()
            writer.close()
        except BaseException as err:
            if writer.storage is not None:
                writer.abort()
            if created:
                shutil.rmtree(out, ignore_errors=True)
            if isinstance(err, WriterError):
                raise BagError(f"cannot write {out}: {one_line(err)}") from None
            raise
    return RepairSummary(out, chosen, counts, "; ".join(broke) or note, left_out)
