"""Drive a running perception node over real DDS: publish camera topics, record its outputs
with arrival times. Used by ``lowlight bench node`` (and the tests) to measure end-to-end
latency (colour stamp published -> labels received), throughput and drops."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from ..camera import Intrinsics
from ..fastdds import apply_default_profile
from ..topics import CAMERA_INFO_TOPIC, COLOR_TOPIC, DEPTH_TOPIC
from .codecs import CdrReader, intrinsics_to_camera_info, numpy_to_image
from .interface import NODE_NAME, OUTPUTS


def qos(reliable: bool) -> QoSProfile:
    reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=reliability)


def stamp_key(header: Header) -> tuple[int, int]:
    return header.stamp.sec, header.stamp.nanosec


def cdr_stamp(serialized: bytes) -> tuple[int, int]:
    """(sec, nanosec) of a serialized message that starts with a std_msgs/Header (Image,
    PointCloud2...), read with the node's own CDR reader."""
    stamp = CdrReader(serialized).header().stamp
    return stamp.sec, stamp.nanosec


class LoopbackClient(Node):
    """Publishes inputs (optional) and records every subscribed output with arrival times.

    ``raw=True`` records the serialized messages (bytes) and reads each stamp from the CDR
    header, without converting the message to Python: a C++ subscriber (RViz, Nav2) pays no
    such cost, and on a small machine the probe's own conversions would slow the node it
    measures (``lowlight bench node`` uses it)."""

    def __init__(
        self,
        context,
        *,
        reliable: bool = True,
        inputs: bool = True,
        outputs: tuple[str, ...] | None = None,
        node_name: str = NODE_NAME,
        raw: bool = False,
    ):
        super().__init__(f"loopback_{os.getpid()}", context=context)
        self.color = self.depth = self.info = None
        if inputs:
            self.color = self.create_publisher(Image, COLOR_TOPIC, qos(reliable))
            self.depth = self.create_publisher(Image, DEPTH_TOPIC, qos(reliable))
            self.info = self.create_publisher(CameraInfo, CAMERA_INFO_TOPIC, qos(True))
        self.received: dict[str, list] = defaultdict(list)
        self.arrivals: dict[str, dict[tuple[int, int], float]] = defaultdict(dict)
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)  # notified on every output message
        self.node_name = node_name
        self.diagnostics: list[DiagnosticArray] = []
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        for out in OUTPUTS:
            if outputs is not None and out.name not in outputs:
                continue  # the node computes only outputs somebody subscribes to
            msg_type = PointCloud2 if out.msg_type.endswith("PointCloud2") else Image
            self.create_subscription(
                msg_type,
                f"/{node_name}/{out.name}",
                lambda msg, name=out.name: self._record(name, msg),
                qos(True),
                raw=raw,
            )

    def _record(self, name: str, msg) -> None:
        now = time.monotonic()
        key = cdr_stamp(msg) if isinstance(msg, bytes) else stamp_key(msg.header)
        with self.lock:
            self.received[name].append(msg)
            self.arrivals[name].setdefault(key, now)
            self.arrived.notify_all()

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        with self.lock:
            self.diagnostics.append(msg)

    def last_status(self, node_name: str | None = None):
        """The newest DiagnosticStatus of the node (values as a dict), or None."""
        name = f"{node_name or self.node_name}: pipeline"
        with self.lock:
            for array in reversed(self.diagnostics):
                for status in array.status:
                    if status.name == name:
                        return status, {kv.key: kv.value for kv in status.values}
        return None

    def count(self, name: str) -> int:
        with self.lock:
            return len(self.received[name])

    def stamps(self, name: str) -> list[tuple[int, int]]:
        with self.lock:
            return [stamp_key(m.header) for m in self.received[name]]

    def wait_for(self, name: str, count: int, timeout: float = 20.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.count(name) >= count:
                return True
            time.sleep(0.002)
        return False

    def wait_connected(self, timeout: float = 10.0) -> None:
        """Until the node subscribes to colour (if we publish) and publishes labels."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            inputs_ok = self.color is None or self.color.get_subscription_count() > 0
            if inputs_ok and self.count_publishers(f"/{self.node_name}/labels") > 0:
                time.sleep(0.3)  # let discovery settle on both sides
                return
            time.sleep(0.05)
        raise TimeoutError(f"/{self.node_name} did not connect within {timeout:.0f} s")


class Spinner:
    """A SingleThreadedExecutor (as perception_node uses) spinning nodes in a thread."""

    def __init__(self, context, *nodes: Node):
        self.executor = SingleThreadedExecutor(context=context)
        for node in nodes:
            self.executor.add_node(node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.executor.shutdown(timeout_sec=5.0)
        self.thread.join(timeout=5.0)


def header(index: int, frame_id: str = "camera_color_optical_frame") -> Header:
    """A header for frame ``index`` of a 30 Hz stream."""
    h = Header(frame_id=frame_id)
    h.stamp.sec, h.stamp.nanosec = 1000 + index // 30, (index % 30) * 33_333_333
    return h


def start_node(model: Path, domain: int, **params) -> subprocess.Popen:
    """``perception_node`` in its own process on DDS domain ``domain`` (it selects the Fast
    DDS profile for itself, as it does when a user starts it)."""
    values = {"model_path": str(model), "device": "cpu", "use_depth": False, **params}
    args = [f"{k}:={str(v).lower() if isinstance(v, bool) else v}" for k, v in values.items()]
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain)}
    cmd = [sys.executable, "-m", "lowlight_perception.ros.node", "--ros-args"]
    for arg in args:
        cmd += ["-p", arg]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def measure_outputs(
    client: LoopbackClient,
    frame: np.ndarray,
    depth_mm: np.ndarray,
    intrinsics: Intrinsics,
    *,
    outputs: tuple[str, ...],
    count: int,
    first_index: int = 0,
    timeout: float = 5.0,
) -> dict:
    """Closed loop over a RealSense-like stream: camera_info, aligned depth (16UC1) and colour
    of one stamp, the next frame once every one of ``outputs`` has arrived for it; per answered
    frame the latency (ms) from publishing colour to the first and to the last output."""
    first: list[float] = []
    last: list[float] = []
    start = time.monotonic()
    for i in range(count):
        h = header(first_index + i)
        key = stamp_key(h)
        client.info.publish(intrinsics_to_camera_info(intrinsics, h))
        client.depth.publish(numpy_to_image(depth_mm, "16UC1", h))
        msg = numpy_to_image(frame, "rgb8", h)
        sent = time.monotonic()
        client.color.publish(msg)
        with client.arrived:
            done = client.arrived.wait_for(
                lambda key=key: all(key in client.arrivals[n] for n in outputs), timeout
            )
            times = [client.arrivals[name].get(key) for name in outputs]
        if done:
            first.append(1000 * (min(times) - sent))
            last.append(1000 * (max(times) - sent))
    wall = time.monotonic() - start
    return {
        "sent": count,
        "answered": len(first),
        "wall_s": wall,
        "first_ms": first,
        "last_ms": last,
    }


def new_context(domain: int):
    """An rclpy context on ``domain``; this process gets the shipped Fast DDS profile first
    unless one is chosen (as the node does)."""
    apply_default_profile()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    return context


ECHO_NAME = "lowlight_echo"


def echo_main(domain: int) -> None:
    """A node that answers each colour frame at once with a mono8 image of its size on
    ``/lowlight_echo/labels`` (same stamp), no work in between: the floor of a two-process
    rclpy round trip with camera-size messages, which ``bench node`` reports next to the
    node's latency. Raw in, bytes out, as perception_node does. Stops on SIGINT / SIGTERM."""
    from rclpy.signals import SignalHandlerOptions

    from .codecs import image_cdr, image_from_cdr
    from .stopping import spin_until, stop_on_signals

    apply_default_profile()
    rclpy.init(domain_id=domain, signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(ECHO_NAME)
    out = node.create_publisher(Image, f"/{ECHO_NAME}/labels", qos(True))
    labels: dict[tuple[int, int], np.ndarray] = {}

    def answer(data: bytes) -> None:
        msg = image_from_cdr(data)
        size = (msg.height, msg.width)
        if size not in labels:
            labels[size] = np.zeros(size, np.uint8)
        out.publish(image_cdr(labels[size], "mono8", msg.header))

    node.create_subscription(Image, COLOR_TOPIC, answer, qos(True), raw=True)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        with stop_on_signals() as stop:
            spin_until(executor, stop)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def start_echo(domain: int) -> subprocess.Popen:
    """:func:`echo_main` in its own process on ``domain``."""
    code = f"from lowlight_perception.ros.loopback import echo_main; echo_main({int(domain)})"
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL)
