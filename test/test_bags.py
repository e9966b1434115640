"""Bags: write procedural sequences as rosbag2 (mcap, sqlite3), read them back exactly, check them
with rosbags' own reader, and survive bad frames, missing topics and broken storage."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.highlevel import AnyReader
from rosbags.interfaces import QosHistory, QosReliability
from rosbags.rosbag2 import StoragePlugin, Writer

from lowlight_perception import bags
from lowlight_perception.bags import (
    FRAME_ID,
    GT_TOPIC,
    NORMAL_TOPIC,
    T0_NS,
    BagError,
    ReadStats,
    bag_topics,
    iter_frames,
    write_bag,
)
from lowlight_perception.camera import Intrinsics
from lowlight_perception.data.synthetic import sequence
from lowlight_perception.imagemsg import image_to_numpy, rgb_view
from lowlight_perception.tools.cli import main
from lowlight_perception.topics import CAMERA_INFO_TOPIC, COLOR_TOPIC, DEPTH_TOPIC

PRED_TOPIC = "/lowlight_perception/labels"
ENCODING = {
    COLOR_TOPIC: "rgb8",
    DEPTH_TOPIC: "16UC1",
    GT_TOPIC: "mono8",
    NORMAL_TOPIC: "rgb8",
}


@pytest.fixture(scope="module")
def samples() -> list:
    """Eight frames of one procedural trajectory at 64x48."""
    return list(sequence(7, 0, 8, Intrinsics.d435i(64, 48)))


def _write_custom(path: Path, messages: list[tuple[str, int, object]]) -> None:
    """A bag of hand-made (topic, bag time, rosbags message) records."""
    store = bags.typestore()
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {}
        for topic, t_ns, msg in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msg.__msgtype__, typestore=store)
            writer.write(connections[topic], t_ns, store.serialize_cdr(msg, msg.__msgtype__))


def _stamp(i: int) -> int:
    return T0_NS + i * 33_333_333


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_written_bag_reads_back_exactly(tmp_path, samples, storage):
    out = tmp_path / "bag"
    summary = write_bag(samples, out, storage=storage, fps=30.0, progress=False)
    assert (summary.frames, summary.storage, summary.path) == (8, storage, out)
    assert summary.duration == pytest.approx(7 / 30)
    assert summary.topics == {CAMERA_INFO_TOPIC: 8, DEPTH_TOPIC: 8, COLOR_TOPIC: 8, GT_TOPIC: 8}
    assert summary.size == sum(f.stat().st_size for f in out.iterdir())

    stats = ReadStats()
    frames = list(iter_frames(out, stats=stats))
    assert (stats.colour_frames, stats.frames_yielded, stats.skipped) == (8, 8, {})
    assert stats.error is None
    for i, (frame, sample) in enumerate(zip(frames, samples, strict=True)):
        assert frame.index == i
        assert frame.stamp_ns == T0_NS + round(i * 1e9 / 30)
        assert frame.rgb.dtype == np.uint8 and frame.rgb.flags.c_contiguous
        np.testing.assert_array_equal(frame.rgb, sample.low)
        np.testing.assert_array_equal(frame.label, sample.label)
        np.testing.assert_array_equal(frame.depth_mm, sample.depth)
        assert frame.depth_mm.dtype == np.uint16
        assert frame.intrinsics == sample.intrinsics  # K survives exactly (float64)
        assert frame.prediction is None
    # a storage file inside the bag directory names the bag too
    storage_file = next(f for f in out.iterdir() if f.name != "metadata.yaml")
    assert len(list(iter_frames(storage_file))) == 8


def test_written_bag_as_rosbags_and_ros2_bag_play_see_it(tmp_path, samples):
    """Read with rosbags' own reader, not ours: topics, types, encodings, frame ids, stamps,
    embedded definitions and type hashes, and the offered QoS ``ros2 bag play`` republishes."""
    for storage in ("mcap", "sqlite3"):
        out = tmp_path / storage
        write_bag(samples, out, storage=storage, fps=15.0, include_normal=True, progress=False)
        with AnyReader([out]) as reader:  # no default typestore: definitions must be embedded
            topics = {name: (info.msgtype, info.msgcount) for name, info in reader.topics.items()}
            assert topics == {
                COLOR_TOPIC: ("sensor_msgs/msg/Image", 8),
                DEPTH_TOPIC: ("sensor_msgs/msg/Image", 8),
                CAMERA_INFO_TOPIC: ("sensor_msgs/msg/CameraInfo", 8),
                GT_TOPIC: ("sensor_msgs/msg/Image", 8),
                NORMAL_TOPIC: ("sensor_msgs/msg/Image", 8),
            }
            for connection in reader.connections:
                assert connection.msgdef.data  # message definition embedded
                assert connection.digest == bags.typestore().hash_rihs01(connection.msgtype)
                assert connection.ext.serialization_format == "cdr"
                (qos,) = connection.ext.offered_qos_profiles
                assert qos.reliability == QosReliability.RELIABLE
                assert qos.history == QosHistory.KEEP_LAST
            seen = {}
            for connection, t_ns, raw in reader.messages():
                msg = reader.deserialize(raw, connection.msgtype)
                stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
                assert stamp == t_ns and msg.header.frame_id == FRAME_ID
                seen.setdefault(connection.topic, []).append(t_ns)
                if connection.topic in ENCODING:
                    assert msg.encoding == ENCODING[connection.topic]
                    assert (msg.width, msg.height) == (64, 48)
                    assert msg.step == 64 * msg.data.size // (64 * 48)
                else:
                    assert msg.distortion_model == "plumb_bob" and not msg.d.any()
                    assert msg.k[0] == samples[0].intrinsics.fx
        expected = [T0_NS + round(i * 1e9 / 15) for i in range(8)]
        assert all(stamps == expected for stamps in seen.values())
        meta = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        assert meta["version"] == bags.ROSBAG2_VERSION and meta["storage_identifier"] == storage
        for topic in meta["topics_with_message_count"]:
            profile = topic["topic_metadata"]["offered_qos_profiles"]
            assert isinstance(profile, str)  # version 8: one YAML string (test_bag_distros.py)
            profile = yaml.safe_load(profile)
            assert profile[0]["reliability"] == 1  # RMW_QOS_POLICY_RELIABILITY_RELIABLE
            assert profile[0]["history"] == 1  # RMW_QOS_POLICY_HISTORY_KEEP_LAST
            assert topic["topic_metadata"]["type_description_hash"].startswith("RIHS01_")


def test_type_hashes_match_the_kilted_messages_the_node_uses():
    share = Path(sys.prefix) / "share" / "sensor_msgs" / "msg"
    if not (share / "Image.json").exists():
        pytest.skip("no ROS 2 sensor_msgs type descriptions installed")
    for name in ("Image", "CameraInfo"):
        doc = json.loads((share / f"{name}.json").read_text())
        expected = doc["type_hashes"][0]["hash_string"]
        assert bags.typestore().hash_rihs01(f"sensor_msgs/msg/{name}") == expected


def test_writing_is_deterministic(tmp_path, samples):
    first, second = tmp_path / "a" / "bag", tmp_path / "b" / "bag"
    write_bag(samples[:3], first, progress=False)
    write_bag(samples[:3], second, progress=False)
    for name in ("bag.mcap", "metadata.yaml"):
        assert (first / name).read_bytes() == (second / name).read_bytes()


def test_rosbags_messages_decode_zero_copy(tmp_path, samples):
    write_bag(samples[:1], tmp_path / "bag", progress=False)
    with AnyReader([tmp_path / "bag"]) as reader:
        for connection, _, raw in reader.messages():
            msg = reader.deserialize(raw, connection.msgtype)
            if connection.topic == COLOR_TOPIC:
                assert isinstance(msg.data, np.ndarray)
                view = rgb_view(msg)
                assert np.shares_memory(view, msg.data)
                np.testing.assert_array_equal(view, samples[0].low)
            elif connection.topic == DEPTH_TOPIC:
                depth = image_to_numpy(msg)
                assert np.shares_memory(depth, msg.data)
                np.testing.assert_array_equal(depth, samples[0].depth)


def test_bag_payloads_are_what_a_kilted_subscriber_decodes(tmp_path, samples):
    """``ros2 bag play`` publishes the stored CDR bytes as they are: rclpy must decode them."""
    serialization = pytest.importorskip("rclpy.serialization")
    msg_types = pytest.importorskip("sensor_msgs.msg")
    from lowlight_perception.ros.codecs import camera_info_to_intrinsics as ros_intrinsics
    from lowlight_perception.ros.codecs import rgb_view as ros_rgb_view

    write_bag(samples[:2], tmp_path / "bag", progress=False)
    with AnyReader([tmp_path / "bag"]) as reader:
        for connection, t_ns, raw in reader.messages():
            msg_type = getattr(msg_types, connection.msgtype.rsplit("/", 1)[1])
            msg = serialization.deserialize_message(bytes(raw), msg_type)
            index = (t_ns - T0_NS) // 33_333_333
            assert msg.header.frame_id == FRAME_ID
            if connection.topic == COLOR_TOPIC:
                np.testing.assert_array_equal(ros_rgb_view(msg), samples[index].low)
            elif connection.topic == CAMERA_INFO_TOPIC:
                assert ros_intrinsics(msg) == samples[index].intrinsics


def test_bags_and_evaluation_import_no_ros():
    """The bag package, its tools and evaluation run where ROS is not installed: no rclpy, no
    message packages, and not the package's own ROS layer."""
    code = (
        "import sys, lowlight_perception.bags, lowlight_perception.tools.bag\n"
        "import lowlight_perception.evaluation.evaluate, lowlight_perception.topics\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('rclpy', 'sensor_msgs')\n"
        "       or m.startswith('lowlight_perception.ros')]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------------------- bad frames


def _frame(sample, i, *, colour=None, encoding="rgb8", gt=True, gt_offset_ns=0):
    """Records of frame ``i``: colour (optionally replaced), then its ground truth."""
    stamp = _stamp(i)
    colour_msg = bags.image_message(
        bags.header(stamp), sample.low if colour is None else colour, encoding
    )
    records = [(COLOR_TOPIC, stamp, colour_msg)]
    if gt:
        gt_msg = bags.image_message(bags.header(stamp + gt_offset_ns), sample.label, "mono8")
        records.insert(0 if gt_offset_ns else 1, (GT_TOPIC, stamp, gt_msg))
    return records


def test_bad_frames_are_counted_skips_and_bgr8_is_converted(tmp_path, samples):
    s = samples
    truncated = bags.image_message(bags.header(_stamp(3)), s[3].low, "rgb8")
    truncated.data = truncated.data[:-10]
    records = [
        *_frame(s[0], 0, colour=s[0].low[..., ::-1], encoding="bgr8"),
        *_frame(s[1], 1, gt=False),
        *_frame(s[2], 2, colour=s[2].low[..., :2], encoding="yuv422"),
        (COLOR_TOPIC, _stamp(3), truncated),
        (GT_TOPIC, _stamp(3), bags.image_message(bags.header(_stamp(3)), s[3].label, "mono8")),
        *_frame(s[4], 4, gt_offset_ns=500_000),  # stamped 0.5 ms off, written before colour
        *_frame(s[5], 5),
    ]
    _write_custom(tmp_path / "bag", records)

    stats = ReadStats()
    frames = list(iter_frames(tmp_path / "bag", stats=stats))
    assert [f.index for f in frames] == [0, 4, 5]
    assert stats.colour_frames == 6 and stats.frames_yielded == 3 and stats.error is None
    assert stats.skipped == {
        "no ground truth": 1,
        "unknown encoding 'yuv422'": 1,
        "truncated data": 1,
    }
    np.testing.assert_array_equal(frames[0].rgb, s[0].low)  # bgr8 -> RGB
    assert frames[0].rgb.flags.c_contiguous
    np.testing.assert_array_equal(frames[1].label, s[4].label)
    assert frames[0].depth_mm is None and frames[0].intrinsics is None

    lenient = ReadStats()
    frames = list(iter_frames(tmp_path / "bag", require_gt=False, stats=lenient))
    assert [f.index for f in frames] == [0, 1, 4, 5] and frames[1].label is None
    assert "no ground truth" not in lenient.skipped


def test_recorded_predictions_pair_by_stamp_even_when_late(tmp_path, samples):
    records = []
    for i, sample in enumerate(samples[:4]):
        records += _frame(sample, i)
        if i != 2:  # the node's answer, received 150 ms later, with the input's header
            pred = bags.image_message(bags.header(_stamp(i)), sample.label[::-1].copy(), "mono8")
            records.append((PRED_TOPIC, _stamp(i) + 150_000_000, pred))
    _write_custom(tmp_path / "bag", records)
    stats = ReadStats()
    frames = list(iter_frames(tmp_path / "bag", predictions_topic=PRED_TOPIC, stats=stats))
    assert [f.index for f in frames] == [0, 1, 3]
    assert stats.skipped == {"no prediction within 2 s": 1}  # PAIR_WINDOW_NS of bag time
    for frame in frames:
        np.testing.assert_array_equal(frame.prediction, samples[frame.index].label[::-1])


# --------------------------------------------------------------------------- bad bags


def test_missing_topics_name_themselves_and_list_the_bag(tmp_path, samples):
    write_bag(samples[:2], tmp_path / "bag", progress=False)
    with pytest.raises(BagError) as err:
        iter_frames(tmp_path / "bag", color_topic="/camera/color/image_raw")
    text = str(err.value)
    assert "/camera/color/image_raw" in text and COLOR_TOPIC in text and GT_TOPIC in text
    assert "\n" not in text

    _write_custom(tmp_path / "nogt", _frame(samples[0], 0, gt=False))
    with pytest.raises(BagError, match="/ground_truth/labels"):
        iter_frames(tmp_path / "nogt")
    with pytest.raises(BagError, match=PRED_TOPIC):
        iter_frames(tmp_path / "nogt", require_gt=False, predictions_topic=PRED_TOPIC)
    assert len(list(iter_frames(tmp_path / "nogt", require_gt=False))) == 1
    assert bag_topics(tmp_path / "nogt") == {COLOR_TOPIC: ("sensor_msgs/msg/Image", 1)}


def test_bad_paths_are_one_line_errors(tmp_path):
    with pytest.raises(BagError, match="bag not found"):
        iter_frames(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(BagError, match="not a rosbag2 bag directory"):
        iter_frames(tmp_path / "plain")
    (tmp_path / "badmeta").mkdir()
    (tmp_path / "badmeta" / "metadata.yaml").write_text("rosbag2_bagfile_information: [1, 2\n")
    with pytest.raises(BagError, match="cannot read bag") as err:
        iter_frames(tmp_path / "badmeta")
    assert "\n" not in str(err.value)


def test_truncated_mcap_is_a_clear_error(tmp_path, samples):
    write_bag(samples, tmp_path / "bag", progress=False)
    storage = tmp_path / "bag" / "bag.mcap"
    data = storage.read_bytes()
    storage.write_bytes(data[: len(data) // 2])
    stats = ReadStats()
    try:
        frames = list(iter_frames(tmp_path / "bag", stats=stats))
    except BagError as err:
        assert "cut off" in str(err) and "\n" not in str(err)
    else:  # a reader that can scan a footless file must say so and keep a prefix
        assert stats.error and len(frames) < len(samples)


def test_corrupt_sqlite3_gives_an_error_or_the_frames_before_it(tmp_path, samples):
    write_bag(samples, tmp_path / "bag", storage="sqlite3", progress=False)
    data = (tmp_path / "bag" / "bag.db3").read_bytes()
    expected = {i: s for i, s in enumerate(samples)}
    outcomes = set()
    for page in range(1, len(data) // 4096):
        broken = tmp_path / f"broken{page}"
        shutil.copytree(tmp_path / "bag", broken)
        corrupt = bytearray(data)
        corrupt[page * 4096 : (page + 1) * 4096] = b"\xff" * 4096
        (broken / "bag.db3").write_bytes(bytes(corrupt))
        stats = ReadStats()
        try:
            frames = list(iter_frames(broken, stats=stats))
        except BagError as err:
            assert "\n" not in str(err)
            outcomes.add("error at open")
            continue
        finally:
            shutil.rmtree(broken)
        if stats.error is not None:
            outcomes.add("partial")
            assert len(frames) < len(samples) and "broke off" in stats.error
        assert stats.frames_yielded == len(frames)
        for frame in frames:  # what was read is the real data of those frames
            np.testing.assert_array_equal(frame.label, expected[frame.index].label)
    assert outcomes == {"error at open", "partial"}


def test_existing_output_is_refused_and_failed_writes_leave_nothing(tmp_path, samples):
    (tmp_path / "taken").mkdir()
    with pytest.raises(BagError, match="already exists"):
        write_bag(samples[:1], tmp_path / "taken", progress=False)
    with pytest.raises(BagError, match="unknown storage"):
        write_bag(samples[:1], tmp_path / "x", storage="bag", progress=False)
    with pytest.raises(BagError, match="fps"):
        write_bag(samples[:1], tmp_path / "x", fps=0, progress=False)
    with pytest.raises(BagError, match="stamped after 2038"):  # int32 seconds, not struct.error
        write_bag(samples[:2], tmp_path / "x", fps=1e-12, progress=False)
    assert not (tmp_path / "x").exists()
    bad = [
        samples[0],
        type(samples[1])(name="odd", low=samples[1].low, depth=samples[1].depth.astype(np.float32)),
    ]
    with pytest.raises(BagError, match="odd: depth"):
        write_bag(bad, tmp_path / "x", progress=False)
    with pytest.raises(BagError, match="no samples"):
        write_bag([], tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- CLI


def test_cli_write_and_info_end_to_end(tmp_path, capsys):
    data, bag = tmp_path / "seq", tmp_path / "bag"
    assert (
        main(
            [
                "synth",
                "--out",
                str(data),
                "--views",
                "6",
                "--size",
                "64x48",
                "--sequence",
                "--frames-per-room",
                "3",
                "--val-fraction",
                "0.5",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "bag",
                "write",
                "--kind",
                "llrgbd-real",
                "--data",
                str(data),
                "--split",
                "val",
                "--out",
                str(bag),
                "--storage",
                "sqlite3",
                "--fps",
                "10",
                "--normal",
                "--max-frames",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "wrote 2 frames" in out and "sqlite3" in out and "ros2 bag play" in out
    frames = list(iter_frames(bag))
    assert len(frames) == 2 and frames[1].stamp_ns - frames[0].stamp_ns == 100_000_000
    assert bag_topics(bag)[NORMAL_TOPIC] == ("sensor_msgs/msg/Image", 2)

    assert main(["bag", "info", "--bag", str(bag)]) == 0
    out = capsys.readouterr().out
    assert "sqlite3" in out and "0.10 s" in out
    assert all(topic in out for topic in (COLOR_TOPIC, DEPTH_TOPIC, GT_TOPIC, NORMAL_TOPIC))

    assert (
        main(
            [
                "bag",
                "write",
                "--kind",
                "procedural",
                "--split",
                "val",
                "--out",
                str(tmp_path / "proc"),
                "--size",
                "32x24",
                "--max-frames",
                "2",
            ]
        )
        == 0
    )
    assert len(list(iter_frames(tmp_path / "proc"))) == 2


@pytest.mark.parametrize(
    "args, words",
    [
        (["write", "--kind", "llrgbd-real", "--out", "OUT"], "--data is required"),
        (["write", "--kind", "llrgbd-real", "--data", "MISSING", "--out", "OUT"], "MISSING"),
        (["write", "--kind", "procedural", "--out", "OUT", "--fps", "0"], "fps"),
        (["write", "--kind", "procedural", "--out", "OUT", "--max-frames", "0"], "max-frames"),
        (["write", "--kind", "procedural", "--out", "TAKEN", "--max-frames", "1"], "exists"),
        (["write", "--kind", "bogus", "--out", "OUT"], "invalid choice"),
        (["info", "--bag", "MISSING"], "bag not found"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, words):
    (tmp_path / "TAKEN").mkdir()
    args = [str(tmp_path / a) if a in ("OUT", "MISSING", "TAKEN") else a for a in args]
    try:
        code = main(["bag", *args])
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and words in err and err.count("\n") == 1, err
    assert not (tmp_path / "OUT").exists()
