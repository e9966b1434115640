"""The node against what real streams do, with its defaults (no parameters: the shipped model,
device auto), over real ROS 2 (rclpy wheels, Fast DDS over loopback): every D435i colour size,
stamps that jump (a future frame, a second pass, a looped bag), mixed-QoS publishers, two
streams of different sizes, diagnostics that recover, the organised cloud Nav2 indexes by
pixel, bad intrinsics, the overlay's exact pixels, and a namespaced node reading the shipped
params file. No torch: this module also runs in the NumPy 1 leg of ``make test``."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import rclpy
import yaml
from conftest import REPO
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from ros_harness import FRAME_ID, Frames, NodeRig, Probe, domain_id, header, new_context
from sensor_msgs.msg import Image

from lowlight_perception.config import DEMO_MODEL
from lowlight_perception.inference import Segmenter
from lowlight_perception.ros.codecs import numpy_to_image
from lowlight_perception.ros.interface import NODE_NAME, PARAMS_KEY
from lowlight_perception.ros.node import PerceptionNode, subscribe_reliability
from lowlight_perception.ros.pointcloud import pointcloud2_to_numpy
from lowlight_perception.topics import COLOR_TOPIC

D435I_SIZES = [(640, 480), (320, 240), (848, 480), (1280, 720)]


@pytest.fixture(scope="module")
def context():
    ctx = new_context(domain_id())
    yield ctx
    rclpy.shutdown(context=ctx)


@pytest.fixture(scope="module")
def frames():
    return {size: Frames(size, i) for i, size in enumerate(D435I_SIZES)}


@pytest.fixture
def rig(context):
    """start(**params) -> (node, probe): a node with only the given parameters (none: its
    defaults), configured and active, with a probe."""
    made = NodeRig(context)

    def start(outputs=None, reliable=True, **params):
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        return made.start(overrides, reliable=reliable, outputs=outputs)

    yield start
    made.close()


def _publish(probe: Probe, frames: Frames, i: int, *, info: bool = True) -> None:
    if info:
        probe.info.publish(frames.camera_info(i))
    probe.depth.publish(frames.depth(i))
    probe.color.publish(frames.color(i))


def _key(i: int) -> tuple[int, int]:
    h = header(i)
    return h.stamp.sec, h.stamp.nanosec


def _serve(probe: Probe, frames: Frames, indices, name: str = "labels") -> set:
    """Publish frames one at a time, each after the previous answer: what was answered."""
    for i in indices:
        before = probe.count(name)
        _publish(probe, frames, i)
        probe.wait_for(name, before + 1, timeout=5)
    return set(probe.stamps(name))


def test_defaults_serve_640x480_d435i_frames_with_the_shipped_model(rig, frames):
    node, probe = rig()  # no parameter at all
    assert node.p("model_path") == DEMO_MODEL and node.p("device") == "auto"
    seg = node.segmenter
    assert seg.metadata.model == "lisu-small" and seg.frame_size is None
    assert seg.backend.name == "onnxruntime" and seg.backend.device == "cpu"
    answered = _serve(probe, frames[(640, 480)], range(3))
    assert {_key(i) for i in range(3)} <= answered
    for name in ("labels", "confidence", "labels_color", "overlay", "reflectance"):
        msg = probe.received[name][-1]
        assert (msg.width, msg.height) == (640, 480) and msg.header.frame_id == FRAME_ID, name


@pytest.mark.parametrize("size", D435I_SIZES[1:])
def test_every_d435i_colour_size_is_served_as_the_segmenter_sees_it(rig, frames, size):
    node, probe = rig(outputs=("labels", "confidence"))
    stream = frames[size]
    assert _key(7) in _serve(probe, stream, [7])
    msg = probe.received["labels"][-1]
    w, h = size
    assert (msg.width, msg.height, msg.step) == (w, h, w)
    with Segmenter(node.resolve_model(), "onnxruntime", "cpu") as seg:
        expected = seg.segment(stream.rgb).labels
    got = np.frombuffer(bytes(msg.data), np.uint8).reshape(h, w)
    np.testing.assert_array_equal(got, expected)


def test_a_future_stamp_and_a_second_pass_do_not_block_later_frames(rig, frames):
    node, probe = rig(outputs=("labels",))
    stream = frames[(320, 240)]
    first = _serve(probe, stream, range(0, 4))
    future = 30 * 3600  # one frame stamped an hour ahead (a bad clock on the camera)
    _serve(probe, stream, [future])
    after = _serve(probe, stream, range(4, 8))
    assert {_key(i) for i in range(8)} <= after, "frames after a future stamp were blocked"
    before = probe.count("labels")
    _serve(probe, stream, range(0, 8))  # the same bag played again (ros2 bag play --loop)
    assert probe.count("labels") - before == 8
    assert node.stats.stamp_resets >= 2 and first
    time.sleep(node.p("diagnostics_period") + 0.3)
    _, values = probe.last_status()
    assert int(values["stamp_resets"]) == node.stats.stamp_resets
    # a new activation starts a new stamp order
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    probe.wait_connected()
    before = probe.count("labels")
    _serve(probe, stream, [0])
    assert probe.count("labels") == before + 1 and node.stats.stamp_resets == 0


def test_reliability_follows_rosbag2s_rule():
    """ros2/rosbag2 (humble, jazzy) rosbag2_transport/src/rosbag2_transport/qos.cpp
    adapt_request_to_offers: reliable only if every publisher offers reliable; if some do not,
    "Falling back to RMW_QOS_POLICY_RELIABILITY_BEST_EFFORT as it will connect to all
    publishers"."""
    reliable, best_effort = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT
    assert subscribe_reliability([]) == reliable
    assert subscribe_reliability([reliable, reliable]) == reliable
    assert subscribe_reliability([best_effort]) == best_effort
    assert subscribe_reliability([reliable, best_effort]) == best_effort


def test_a_best_effort_camera_next_to_an_idle_reliable_publisher_is_received(rig, frames, context):
    node, probe = rig(outputs=("labels",), reliable=False, use_depth=False)
    idle = Node("idle_reliable_publisher", context=context)
    qos = QoSProfile(
        depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE
    )
    idle.create_publisher(Image, COLOR_TOPIC, qos)
    try:
        end = time.monotonic() + 10
        while node._subs["color"][1] != ReliabilityPolicy.BEST_EFFORT:
            assert time.monotonic() < end, "the node never matched the best-effort camera"
            time.sleep(0.1)
        time.sleep(1.5)  # the new subscription's discovery
        stream = frames[(320, 240)]
        for i in range(20):
            before = probe.count("labels")
            probe.color.publish(stream.color(200 + i))
            probe.wait_for("labels", before + 1, timeout=2)
        answered = {_key(200 + i) for i in range(20)} & set(probe.stamps("labels"))
        assert len(answered) >= 18, len(answered)
    finally:
        idle.destroy_node()


def test_two_streams_of_different_sizes_pair_each_with_its_own_depth(rig, frames):
    node, probe = rig(outputs=("labels", "semantic_points"))
    big, small = frames[(640, 480)], frames[(320, 240)]
    for i in range(6):  # interleaved, as two cameras on the same topics would be
        for stream, index in ((big, 300 + 2 * i), (small, 301 + 2 * i)):
            _publish(probe, stream, index)
            time.sleep(0.15)
    time.sleep(1.0)
    answered = set(probe.stamps("labels"))
    assert {_key(300 + k) for k in range(12)} <= answered, dict(node.stats.bad)
    assert node.stats.bad.get("no_depth_partner", 0) == 0
    sizes = {(m.width, m.height) for m in probe.received["labels"]}
    clouds = {
        m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
        for m in probe.received["semantic_points"]
    }
    assert sizes == {(640, 480), (320, 240)} and len(clouds) >= 10


def test_diagnostics_recover_after_a_bad_frame_and_keep_one_publisher(rig, frames, context):
    node, probe = rig(outputs=("labels",), use_depth=False, diagnostics_period=0.5)
    stream = frames[(320, 240)]
    bad = Image(header=header(400), encoding="yuv422", width=4, height=4, step=8, data=bytes(32))
    seen = len(probe.diagnostics)
    probe.color.publish(bad)
    time.sleep(0.8)
    with probe.lock:
        after = [
            s
            for a in probe.diagnostics[seen:]
            for s in a.status
            if s.name.startswith(f"{NODE_NAME}:")
        ]
    assert any(s.level == s.WARN and s.message == "skipping bad frames" for s in after)
    for i in range(12):
        probe.color.publish(stream.color(401 + i))
        time.sleep(0.1)
    status, values = probe.last_status()
    assert status.level == status.OK, status.message
    assert int(values["frames_bad"]) == 1  # counted, but no longer the state
    for _ in range(2):  # cleanup / configure cycles do not add /diagnostics publishers
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    # the node's own publishers: the ROS graph of this test process holds earlier nodes of the
    # same name, whose removal can drop this one's entries from rmw's graph cache
    diagnostics = [p for p in node.publishers if p.topic_name == "/diagnostics"]
    assert len(diagnostics) == 1


def test_organised_cloud_is_indexed_by_pixel_as_nav2_reads_it(rig, frames):
    """kiwicampus/semantic_segmentation_layer (humble, jazzy) refuses a cloud whose width x
    height differs from the segmentation's ("Pointcloud and segmentation sizes are different",
    src/semantic_segmentation_layer.cpp), walks it in row-major pixel order and skips points
    whose z is not finite (src/segmentation_buffer.cpp): invalid depth must stay as NaN."""
    _, probe = rig(outputs=("labels", "semantic_points"), organized_cloud=True)
    stream = frames[(640, 480)]
    depth_mm = stream.depth_mm.copy()
    depth_mm[:, :48] = 0  # the D435i's invalid band left of objects, and speckle
    depth_mm[np.random.default_rng(0).random(depth_mm.shape) < 0.02] = 0
    probe.info.publish(stream.camera_info(500))
    probe.depth.publish(numpy_to_image(depth_mm, "16UC1", header(500)))
    probe.color.publish(stream.color(500))
    assert probe.wait_for("semantic_points", 1) and probe.wait_for("labels", 1)
    cloud_msg = probe.received["semantic_points"][-1]
    labels_msg = next(
        m
        for m in probe.received["labels"]
        if (m.header.stamp.sec, m.header.stamp.nanosec) == _key(500)
    )
    assert (cloud_msg.height, cloud_msg.width) == (480, 640)
    assert cloud_msg.width * cloud_msg.height == labels_msg.width * labels_msg.height
    assert cloud_msg.header == labels_msg.header and cloud_msg.is_dense is False
    cloud = pointcloud2_to_numpy(cloud_msg).reshape(480, 640)
    depth_m = depth_mm.astype(np.float32) / 1000
    valid = depth_mm > 0
    assert (~valid).any() and valid.any()
    assert np.isnan(cloud["z"][~valid]).all() and np.isnan(cloud["x"][~valid]).all()
    np.testing.assert_allclose(cloud["z"][valid], depth_m[valid], rtol=1e-6)
    labels = np.frombuffer(bytes(labels_msg.data), np.uint8).reshape(480, 640)
    np.testing.assert_array_equal(cloud["label"], labels)


def test_camera_info_that_is_no_calibration_is_refused_and_the_cloud_stays_finite(
    rig, frames, capfd
):
    node, probe = rig(outputs=("semantic_points",))
    stream = frames[(640, 480)]
    broken = stream.camera_info(600)
    broken.k = [1e-40, 0.0, 320.0, 0.0, 1e-40, 240.0, 0.0, 0.0, 1.0]
    probe.info.publish(broken)
    time.sleep(0.3)
    probe.depth.publish(stream.depth(600))
    probe.color.publish(stream.color(600))
    time.sleep(1.0)
    assert node.stats.bad["camera_info"] >= 1
    assert probe.count("semantic_points") == 0, "a cloud from an invalid calibration"
    fisheye = stream.camera_info(601)
    fisheye.distortion_model, fisheye.d = "equidistant", [0.1, 0.01, 0.0, 0.0]
    for i in range(601, 604):
        probe.info.publish(fisheye)
        time.sleep(0.1)
        probe.depth.publish(stream.depth(i))
        probe.color.publish(stream.color(i))
        time.sleep(0.4)
    assert probe.wait_for("semantic_points", 1)
    cloud_msg = probe.received["semantic_points"][-1]
    cloud = pointcloud2_to_numpy(cloud_msg)
    assert cloud_msg.is_dense and len(cloud) > 0
    assert all(np.isfinite(cloud[c]).all() for c in ("x", "y", "z"))
    err = capfd.readouterr().err
    assert "focal length fx=1e-40" in err
    assert err.count("distortion model 'equidistant' is not supported") == 1


def test_overlay_pixels_are_the_documented_blend(rig, frames):
    """((256 - a) * input + a * palette[label]) >> 8, a = round(256 * overlay_alpha), checked
    in Python integers: NumPy 1's value-based casting once wrapped this in uint8."""
    node, probe = rig(outputs=("labels", "overlay"), overlay_alpha=0.5, use_depth=False)
    stream = frames[(640, 480)]
    probe.color.publish(stream.color(700))
    assert probe.wait_for("overlay", 1) and probe.wait_for("labels", 1)
    overlay = np.frombuffer(bytes(probe.received["overlay"][-1].data), np.uint8)
    labels = np.frombuffer(bytes(probe.received["labels"][-1].data), np.uint8)
    palette = node.segmenter.classes.palette.astype(np.int64)
    a = round(256 * 0.5)
    rgb = stream.rgb.reshape(-1, 3).astype(np.int64)
    expected = ((256 - a) * rgb + a * palette[labels]) >> 8
    np.testing.assert_array_equal(overlay.reshape(-1, 3), expected)
    assert overlay.mean() > 20  # not the wrapped near-black image


def test_a_namespaced_node_reads_the_shipped_params_file(tmp_path):
    """launch_ros passes params_file as --params-file unchanged (launch_ros humble/jazzy,
    actions/node.py); rclpy applies a key when its regex ("/**" -> "(/\\w+)*") matches the full
    node name (rclpy/src/rclpy/node.cpp). So /**/lowlight_perception serves any namespace, and
    the old key "lowlight_perception" only the root one."""
    doc = yaml.safe_load((REPO / "config" / "params.yaml").read_text())
    doc[PARAMS_KEY]["ros__parameters"]["overlay_alpha"] = 0.25
    shipped = tmp_path / "params.yaml"
    shipped.write_text(yaml.safe_dump(doc))
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump({NODE_NAME: doc[PARAMS_KEY]}))
    results = {}
    for name, path in (("shipped", shipped), ("old", old)):
        context = rclpy.Context()
        rclpy.init(
            context=context, domain_id=domain_id(), args=["--ros-args", "--params-file", str(path)]
        )
        try:
            for namespace in ("", "robot1"):
                node = PerceptionNode(context=context, namespace=namespace)
                results[name, namespace] = math.isclose(node.p("overlay_alpha"), 0.25)
                node.destroy_node()
        finally:
            rclpy.shutdown(context=context)
    assert results == {
        ("shipped", ""): True,
        ("shipped", "robot1"): True,
        ("old", ""): True,
        ("old", "robot1"): False,
    }


def test_labels_never_wait_for_depth_and_the_cloud_takes_depth_that_comes_later(rig, frames):
    """realsense-ros publishes aligned depth after colour (its align step runs first): the
    images go out without waiting for it, the point cloud takes the depth when it comes (within
    DEPTH_WAIT_S of the colour), and a colour frame whose depth never comes loses only its
    cloud, counted as no_depth_partner."""
    from lowlight_perception.ros.node import DEPTH_WAIT_S

    node, probe = rig(outputs=("labels", "semantic_points"))
    stream = frames[(640, 480)]
    probe.info.publish(stream.camera_info(400))
    for i in range(400, 404):  # depth 30 ms after its colour
        before = probe.count("semantic_points")
        probe.color.publish(stream.color(i))
        time.sleep(0.03)
        probe.depth.publish(stream.depth(i))
        assert probe.wait_for("semantic_points", before + 1, timeout=5), i
    assert {_key(i) for i in range(400, 404)} <= set(probe.stamps("labels"))
    assert {_key(i) for i in range(400, 404)} <= set(probe.stamps("semantic_points"))
    # colour only: labels still come at once, the cloud is given up after DEPTH_WAIT_S
    before = probe.count("labels")
    sent = time.monotonic()
    probe.color.publish(stream.color(410))
    assert probe.wait_for("labels", before + 1, timeout=5)
    assert time.monotonic() - sent < 2.0
    time.sleep(DEPTH_WAIT_S + 0.5)
    assert _key(410) not in set(probe.stamps("semantic_points"))
    assert node.stats.bad.get("no_depth_partner", 0) >= 1
    # and with no depth arriving at all for a while, frames are not held up by the wait
    time.sleep(1.2)
    for i in range(420, 423):
        before = probe.count("labels")
        probe.color.publish(stream.color(i))
        assert probe.wait_for("labels", before + 1, timeout=5), i
    assert node.stats.stages["queue"][-1] < 1000 * DEPTH_WAIT_S
