"""Salvage: a recording cut off mid-way (killed ``ros2 bag record``, lost power) has no
metadata.yaml and a storage file cut at an arbitrary byte; its complete messages are read,
scored and reported as cut short.

Counterparts: the MCAP record layout of foxglove/mcap main, docs/specification/README.md
(magic; records of opcode u8 + length u64; Channel 0x04: id u16, schema_id u16, topic string;
Chunk 0x06; Message Index 0x07: channel_id u16, records (timestamp u64, offset u64) with a
u32 byte length), used here independently of the reader to count the colour messages in the
chunks that end before the cut; rosbag2's sqlite3 layout (ros2/rosbag2 rolling,
rosbag2_storage_sqlite3/src/rosbag2_storage_sqlite3/sqlite_storage.cpp: ``messages`` rows read
ORDER BY timestamp).
"""

from __future__ import annotations

import json
import sqlite3
import struct
from pathlib import Path

import numpy as np
import pytest

from lowlight_perception import bags
from lowlight_perception.bags import (
    ReadStats,
    inspect_bag,
    iter_frames,
    write_bag,
)
from lowlight_perception.camera import Intrinsics
from lowlight_perception.data.synthetic import sequence
from lowlight_perception.evaluation.evaluate import evaluate_bag
from lowlight_perception.tools.cli import main
from lowlight_perception.topics import COLOR_TOPIC

CUTS = (0.3, 0.5, 0.6, 0.9)
PRED_TOPIC = "/lowlight_perception/labels"


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Path]:
    """12 frames at 320x240 (about 5.6 MB: several 1 MiB mcap chunks) in both storages."""
    samples = list(sequence(7, 0, 12, Intrinsics.d435i(320, 240)))
    root = tmp_path_factory.mktemp("salvage")
    return {
        s: write_bag(samples, root / s, storage=s, progress=False).path for s in ("mcap", "sqlite3")
    }


def _cut(bag: Path, fraction: float, out: Path) -> Path:
    """A copy of ``bag`` as a killed recording leaves it: no metadata.yaml, storage cut."""
    storage = next(f for f in bag.iterdir() if f.suffix in (".mcap", ".db3"))
    data = storage.read_bytes()
    out.mkdir()
    (out / storage.name).write_bytes(data[: int(len(data) * fraction)])
    return out


def _mcap_expected(file: Path, cut: int) -> int:
    """Colour messages in the chunks of the intact .mcap that end at or before byte ``cut``,
    from its top-level Channel and Message Index records (spec layout, no reader)."""
    data = file.read_bytes()
    pos, colour = 8, None
    while pos + 9 <= len(data):
        opcode, length = struct.unpack_from("<BQ", data, pos)
        if opcode == 0x04:
            content = data[pos + 9 : pos + 9 + length]
            size = struct.unpack_from("<I", content, 4)[0]
            if content[8 : 8 + size].decode() == COLOR_TOPIC:
                colour = struct.unpack_from("<H", content)[0]
        pos += 9 + length
    pos, chunk_end, count = 8, None, 0
    while pos + 9 <= len(data):
        opcode, length = struct.unpack_from("<BQ", data, pos)
        content = data[pos + 9 : pos + 9 + length]
        if opcode == 0x06:
            chunk_end = pos + 9 + length
        elif opcode == 0x07 and chunk_end is not None and chunk_end <= cut:
            if struct.unpack_from("<H", content)[0] == colour:
                count += struct.unpack_from("<I", content, 2)[0] // 16
        pos += 9 + length
    return count


def _sqlite_expected(file: Path, messages: int) -> int:
    """Colour rows among the first ``messages`` rows of the intact .db3 (timestamp order)."""
    db = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT topics.name FROM messages JOIN topics ON messages.topic_id = topics.id "
            "ORDER BY messages.timestamp, messages.id"
        ).fetchall()
    finally:
        db.close()
    return sum(name == COLOR_TOPIC for (name,) in rows[:messages])


def _same(frame, whole) -> None:
    assert (frame.index, frame.stamp_ns) == (whole.index, whole.stamp_ns)
    np.testing.assert_array_equal(frame.rgb, whole.rgb)
    for a, b in ((frame.depth_mm, whole.depth_mm), (frame.label, whole.label)):
        assert (a is None) == (b is None) or a is None  # a partner may lie past the cut
        if a is not None:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_cut_recording_yields_every_complete_frame_before_the_cut(written, tmp_path, storage):
    bag = written[storage]
    whole = list(iter_frames(bag, require_gt=False))
    assert len(whole) == 12
    file = next(f for f in bag.iterdir() if f.suffix in (".mcap", ".db3"))
    counts = []
    for fraction in CUTS:
        cut = _cut(bag, fraction, tmp_path / f"cut{int(fraction * 100)}")
        stats = ReadStats()
        frames = list(iter_frames(cut, require_gt=False, stats=stats))
        info = inspect_bag(cut)
        assert info.note and "cut short" in info.note and stats.error == info.note
        assert f"cut short after {info.messages} complete messages" in info.note
        if storage == "mcap":
            expected = _mcap_expected(file, int(file.stat().st_size * fraction))
        else:
            expected = _sqlite_expected(file, info.messages)
        assert len(frames) == stats.colour_frames == expected, fraction
        assert info.topics[COLOR_TOPIC][1] == expected
        for frame in frames:
            _same(frame, whole[frame.index])
        assert [f.index for f in frames] == list(range(expected))
        counts.append(expected)
    assert counts == sorted(counts) and 0 < counts[1] and counts[-1] < 12


def test_bare_cut_mcap_file_reads_and_intact_bags_still_use_rosbags(written, tmp_path):
    cut = _cut(written["mcap"], 0.6, tmp_path / "cut")
    frames = list(iter_frames(cut / "mcap.mcap"))
    assert frames and inspect_bag(cut / "mcap.mcap").note
    for storage, bag in written.items():
        stats = ReadStats()
        assert len(list(iter_frames(bag, stats=stats))) == 12 and stats.error is None
        assert inspect_bag(bag).note is None and inspect_bag(bag).storage == storage


def test_not_a_storage_file_stays_a_clear_error(tmp_path):
    from lowlight_perception.bags import BagError

    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "junk.mcap").write_bytes(b"not an mcap at all")
    with pytest.raises(BagError, match="cannot read bag") as err:
        iter_frames(tmp_path / "junk")
    assert "MCAP magic" in str(err.value) and "\n" not in str(err.value)


def _with_predictions(bag: Path, out: Path, storage: str) -> Path:
    """``bag`` plus the labels again on PRED_TOPIC, as a recorded node would add them: a real
    rosbags Writer bag, so eval scores recorded predictions without a model."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = bags.typestore()
    with (
        bags.open_bag(bag) as reader,
        Writer(
            out, version=bags.ROSBAG2_VERSION, storage_plugin=StoragePlugin[storage.upper()]
        ) as writer,
    ):
        ids = {}
        for c in reader.connections:
            ids[c.topic] = writer.add_connection(c.topic, c.msgtype, typestore=store)
        ids[PRED_TOPIC] = writer.add_connection(PRED_TOPIC, bags.IMAGE_TYPE, typestore=store)
        for c, t_ns, raw in reader.messages(connections=reader.connections):
            writer.write(ids[c.topic], t_ns, raw)
            if c.topic == bags.GT_TOPIC:
                writer.write(ids[PRED_TOPIC], t_ns, raw)
    return out


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_eval_and_bag_info_say_the_bag_was_cut_short(written, tmp_path, capsys, storage):
    bag = _with_predictions(written[storage], tmp_path / "bag", storage)
    cut = _cut(bag, 0.5, tmp_path / "cut")
    expected = len(list(iter_frames(cut, predictions_topic=PRED_TOPIC)))
    out = tmp_path / "out"
    metrics = evaluate_bag(cut, None, out, predictions_topic=PRED_TOPIC, progress=False)
    assert metrics["complete"] is False and metrics["frames"] == expected > 0
    assert "cut short" in metrics["incomplete_reason"]
    assert "cut short" in json.loads((out / "metrics.json").read_text())["incomplete_reason"]
    assert "cut short" in (out / "report.md").read_text()
    assert main(["bag", "info", "--bag", str(cut)]) == 0
    printed = capsys.readouterr().out
    assert "CUT SHORT" in printed and "cut short after" in printed


def test_a_cut_zstd_chunked_mcap_is_salvaged_like_a_plain_one(written, tmp_path):
    """`ros2 bag record --compression-mode storage` (rosbags: CompressionMode.STORAGE) writes
    zstd Chunk records (mcap spec: Chunk `compression` "zstd"); they decompress the same."""
    from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

    store = bags.typestore()
    out = tmp_path / "zstd"
    writer = Writer(out, version=bags.ROSBAG2_VERSION, storage_plugin=StoragePlugin.MCAP)
    writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    with bags.open_bag(written["mcap"]) as reader, writer:
        ids = {
            c.topic: writer.add_connection(c.topic, c.msgtype, typestore=store)
            for c in reader.connections
        }
        for c, t_ns, raw in reader.messages(connections=reader.connections):
            writer.write(ids[c.topic], t_ns, raw)
    file = next(out.glob("*.mcap"))
    chunks = _chunk_compressions(file)
    assert chunks and set(chunks) == {"zstd"}
    whole = list(iter_frames(written["mcap"], require_gt=False))
    cut = _cut(out, 0.6, tmp_path / "cut")
    frames = list(iter_frames(cut, require_gt=False))
    assert len(frames) == _mcap_expected(file, int(file.stat().st_size * 0.6)) > 0
    for frame in frames:
        _same(frame, whole[frame.index])


def _chunk_compressions(file: Path) -> list[str]:
    """The `compression` string of every top-level Chunk record (spec: after start, end,
    uncompressed size (u64 each) and crc (u32))."""
    data, pos, found = file.read_bytes(), 8, []
    while pos + 9 <= len(data):
        opcode, length = struct.unpack_from("<BQ", data, pos)
        if opcode == 0x06:
            size = struct.unpack_from("<I", data, pos + 9 + 28)[0]
            found.append(data[pos + 9 + 32 : pos + 9 + 32 + size].decode())
        pos += 9 + length
    return found


def test_replay_takes_the_same_bag_paths_as_eval(written, tmp_path):
    """`lowlight replay` opens bags as `lowlight eval` does: a cut recording (salvaged), its bare
    storage file, and an intact bag directory give the colour frames eval reads."""
    from lowlight_perception.ros.replay import load_inputs

    cut = _cut(written["mcap"], 0.6, tmp_path / "cut")
    for path in (cut, next(cut.glob("*.mcap")), written["mcap"], written["sqlite3"]):
        colour = [r for r in load_inputs(path) if r.topic == COLOR_TOPIC]
        assert len(colour) == len(list(iter_frames(path, require_gt=False))) > 0, path
