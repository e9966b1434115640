"""``lowlight bag repair``: a cut-off recording becomes a bag that Humble's and Jazzy's
``ros2 bag play`` open, holding every complete message byte for byte, with each topic's
recorded type definition and offered QoS.

Counterparts: the metadata.yaml is decoded with the yaml-cpp model of Humble's metadata_io.cpp
and Jazzy's yaml.hpp in test_bag_distros.py (ros2/rosbag2 humble and jazzy); the recorded QoS a
salvaged .mcap keeps is its Channel record's ``offered_qos_profiles`` metadata (ros2/rosbag2
jazzy, rosbag2_storage_mcap/src/mcap_storage.cpp: written at 935-938, read at 484-492), a .db3's
the ``topics.offered_qos_profiles`` column (humble, rosbag2_storage_default_plugins/src/
rosbag2_storage_default_plugins/sqlite/sqlite_storage.cpp 374-379).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_bag_distros import EXPECTED_QOS, RELIABILITY, Y, humble_metadata, jazzy_metadata
from test_bag_salvage import _cut

from lowlight_perception import bags
from lowlight_perception.bags import BagError, inspect_bag, iter_frames, repair_bag, write_bag
from lowlight_perception.camera import Intrinsics
from lowlight_perception.data.synthetic import sequence
from lowlight_perception.tools.cli import main
from lowlight_perception.topics import COLOR_TOPIC

SUFFIX = {"mcap": ".mcap", "sqlite3": ".db3"}
TELEMETRY = "/drone/telemetry"
TELEMETRY_TYPE = "drone_msgs/msg/Telemetry"
TELEMETRY_DEF = "float64 altitude\nuint8 battery_percent\nstring mode\n"


def _messages(bag: Path) -> list[tuple[str, int, bytes]]:
    """(topic, bag time, serialized bytes) of every message, in the reader's order."""
    with bags.open_bag(bags.bag_dir(bag)) as reader:
        return [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages(reader.connections)]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> dict[str, Path]:
    """A drone's recording in each storage: 10 RealSense frames at 320x240 as realsense-ros
    offers them (reliable), plus a best-effort topic of the robot's own message type, one per
    frame, that only the bag defines."""
    from rosbags.interfaces import QosReliability
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    root = tmp_path_factory.mktemp("repair")
    plain = write_bag(
        list(sequence(9, 0, 10, Intrinsics.d435i(320, 240))), root / "plain", progress=False
    ).path
    own = get_typestore(Stores.ROS2_KILTED)
    own.register(get_types_from_msg(TELEMETRY_DEF, TELEMETRY_TYPE))
    telemetry = own.types[TELEMETRY_TYPE]
    best_effort = bags.offered_qos()._replace(reliability=QosReliability.BEST_EFFORT, depth=5)
    out = {}
    for storage in ("mcap", "sqlite3"):
        path = root / storage
        with (
            bags.open_bag(plain) as reader,
            Writer(
                path, version=bags.ROSBAG2_VERSION, storage_plugin=StoragePlugin[storage.upper()]
            ) as writer,
        ):
            ids = {
                c.topic: writer.add_connection(
                    c.topic,
                    c.msgtype,
                    typestore=bags.typestore(),
                    offered_qos_profiles=[bags.offered_qos()],
                )
                for c in reader.connections
            }
            ids[TELEMETRY] = writer.add_connection(
                TELEMETRY, TELEMETRY_TYPE, typestore=own, offered_qos_profiles=[best_effort]
            )
            frame = 0
            for c, t_ns, raw in reader.messages(reader.connections):
                writer.write(ids[c.topic], t_ns, raw)
                if c.topic == COLOR_TOPIC:
                    msg = telemetry(altitude=1.5 + frame, battery_percent=90 - frame, mode="search")
                    writer.write(ids[TELEMETRY], t_ns, own.serialize_cdr(msg, TELEMETRY_TYPE))
                    frame += 1
        out[storage] = path
    return out


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_cut_recording_repairs_into_a_bag_both_distros_play(recorded, tmp_path, storage):
    cut = _cut(recorded[storage], 0.6, tmp_path / "cut")
    salvaged = inspect_bag(cut)
    assert salvaged.note and "cut short" in salvaged.note
    out = tmp_path / "repaired"
    summary = repair_bag(cut, out, progress=False)
    assert summary.storage == storage and summary.left_out == {}
    assert summary.source_note == salvaged.note
    assert summary.messages == salvaged.messages > 0
    # rosbags opens it as an intact bag now (no salvage), holding the same bytes in order
    repaired = inspect_bag(out)
    assert repaired.note is None and repaired.messages == salvaged.messages
    assert sorted(_messages(out)) == sorted(_messages(cut))
    assert _messages(cut) == _messages(recorded[storage])[: salvaged.messages]
    # what Humble's and Jazzy's readers decode of its metadata.yaml
    text = (out / "metadata.yaml").read_text()
    humble = humble_metadata(text)
    jazzy = jazzy_metadata(Y.load(text, "metadata.yaml")["rosbag2_bagfile_information"])
    for meta in (humble, jazzy):
        assert meta.version == bags.ROSBAG2_VERSION == 8 and meta.storage_identifier == storage
        (relative,) = meta.relative_file_paths
        assert relative.endswith(SUFFIX[storage]) and (out / relative).is_file()
        assert meta.message_count == salvaged.messages
        assert meta.compression == ("", "")
        topics = {t.name: t for t in meta.topics}
        assert {n: (t.type, t.message_count) for n, t in topics.items()} == salvaged.topics
        assert topics[COLOR_TOPIC].qos == [EXPECTED_QOS]  # the recorded offer, kept
        telemetry_qos = topics[TELEMETRY].qos
        assert [q["reliability"] for q in telemetry_qos] == [RELIABILITY["best_effort"]]
        assert [q["depth"] for q in telemetry_qos] == [5]
        assert all(t.serialization_format == "cdr" for t in meta.topics)
    assert jazzy.custom_data["repaired_by"].startswith("lowlight_perception ")
    for topic in jazzy.topics:  # Jazzy's player checks the type hash against its own
        if topic.type != TELEMETRY_TYPE:
            assert topic.type_description_hash == bags.typestore().hash_rihs01(topic.type)
        else:
            assert topic.type_description_hash.startswith("RIHS01_")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_the_repaired_bag_scores_the_same_frames_and_decodes_the_robots_own_type(
    recorded, tmp_path, storage
):
    from rosbags.highlevel import AnyReader

    cut = _cut(recorded[storage], 0.5, tmp_path / "cut")
    out = tmp_path / "repaired"
    repair_bag(cut, out, progress=False)
    before, after = list(iter_frames(cut)), list(iter_frames(out))
    assert len(after) == len(before) > 0
    for a, b in zip(before, after, strict=True):
        assert (a.index, a.stamp_ns) == (b.index, b.stamp_ns)
        np.testing.assert_array_equal(a.rgb, b.rgb)
        np.testing.assert_array_equal(a.label, b.label)
    # the custom type travels with its definition: a reader that knows nothing of it decodes it
    with AnyReader([out]) as reader:
        (conn,) = [c for c in reader.connections if c.topic == TELEMETRY]
        decoded = [
            reader.deserialize(raw, conn.msgtype)
            for _, _, raw in reader.messages(connections=[conn])
        ]
    assert decoded and [m.mode for m in decoded] == ["search"] * len(decoded)
    assert [m.battery_percent for m in decoded] == list(range(90, 90 - len(decoded), -1))


def test_storage_can_change_and_a_complete_bag_is_copied_whole(recorded, tmp_path):
    summary = repair_bag(recorded["mcap"], tmp_path / "as_db3", storage="sqlite3", progress=False)
    assert summary.source_note is None and summary.storage == "sqlite3"
    assert sorted(_messages(tmp_path / "as_db3")) == sorted(_messages(recorded["mcap"]))
    assert "the source was complete" in str(summary)


def test_bag_repair_cli(recorded, tmp_path, capsys):
    cut = _cut(recorded["mcap"], 0.6, tmp_path / "cut")
    assert main(["bag", "info", "--bag", str(cut)]) == 0
    assert "lowlight bag repair --bag" in capsys.readouterr().out  # the hint where the user looks
    out = tmp_path / "fixed"
    assert main(["bag", "repair", "--bag", str(cut), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"to {out} (mcap)" in printed and "the source was incomplete" in printed
    assert f"ros2 bag play {out}" in printed
    assert main(["bag", "info", "--bag", str(out)]) == 0
    assert "CUT SHORT" not in capsys.readouterr().out
    # refusals: one line, exit 2, nothing overwritten
    assert main(["bag", "repair", "--bag", str(cut), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lowlight bag: error:") and "already exists" in err and "\n" not in err
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "junk.mcap").write_bytes(b"not an mcap at all")
    assert (
        main(["bag", "repair", "--bag", str(tmp_path / "junk"), "--out", str(tmp_path / "x")]) == 2
    )
    assert "MCAP magic" in capsys.readouterr().err and not (tmp_path / "x").exists()
    with pytest.raises(BagError, match="unknown storage"):
        repair_bag(cut, tmp_path / "y", storage="bag")
