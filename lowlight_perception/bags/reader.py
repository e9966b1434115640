"""Opening a bag the one way every command does: rosbags' AnyReader, else salvage; and what
``lowlight bag info --bag BAG`` shows of it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import BagError, one_line
from .messages import COMPRESSED_TYPE, typestore
from .salvage import Salvaged, storage_file


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
    if not (path / "metadata.yaml").is_file() and storage_file(path) is None:
        raise BagError(f"{path} is not a rosbag2 bag directory (no metadata.yaml, .mcap or .db3)")
    return path


@contextmanager
def open_bag(path: Path) -> Iterator[Any]:
    """An open AnyReader on ``path``, else (a cut-off recording) a
    :class:`~.salvage.Salvaged` reader of its storage file with ``note`` set; a bag neither can
    read is a one-line BagError."""
    from rosbags.highlevel import AnyReader

    try:
        reader = AnyReader([path], default_typestore=typestore())
        reader.open()
    except Exception as err:  # rosbags raises many types for broken metadata or storage
        text = one_line(err)
        if "end magic" in text:  # rosbags' words for an .mcap without its footer
            text += " (the .mcap was cut off, e.g. a recording that crashed)"
        file = storage_file(path)
        if file is None:
            raise BagError(f"cannot read bag {path}: {text}") from None
        try:
            reader = Salvaged(file, text)
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
        storage = storage_of(path, reader)
    return BagInfo(path, storage, messages, start, duration, topics, formats, note)


def storage_of(path: Path, reader: Any) -> str:
    """ "mcap" or "sqlite3": the salvaged file's, else the metadata.yaml's
    ``storage_identifier``; "?" when neither says."""
    storage = getattr(reader, "storage", None)
    if storage is not None:
        return storage
    try:
        meta = yaml.safe_load((path / "metadata.yaml").read_text(encoding="utf-8"))
        return str(meta["rosbag2_bagfile_information"]["storage_identifier"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return "?"


def records(
    reader: Any, connections: list, broke: Callable[[str], None]
) -> Iterator[tuple[Any, int, Any]]:
    """``reader.messages`` that ends where the storage breaks, telling ``broke`` why: what was
    read before is never lost."""
    messages = reader.messages(connections=connections)
    read = 0
    while True:
        try:
            record = next(messages)
        except StopIteration:
            return
        except Exception as err:  # rosbags, sqlite3, struct, zstd... all mean a broken storage
            broke(f"storage broke off after {read} messages: {one_line(err)}")
            return
        read += 1
        yield record


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
