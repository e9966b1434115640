"""``perception_node``: the lifecycle node that runs on the robot.

RealSense colour (+ aligned depth, camera_info) in; labels, confidence, coloured labels, overlay,
reflectance, illumination and a semantic point cloud out, every output with the input's header.
Configure loads and warms the model; activate subscribes; deactivate and cleanup release. The
executor only stashes messages: a worker thread owns inference and holds a single latest-frame
slot, so a slow model drops old frames (newest wins, counted) and never blocks the executor.
Bad input is logged (rate-limited per kind), skipped, and the node keeps serving.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from ..config import share_dir
from ..errors import LowlightError
from .codecs import (
    DEPTH_MM_ENCODINGS,
    ImageError,
    camera_info_to_intrinsics,
    depth_to_metres,
    image_to_numpy,
    numpy_to_image,
    rgb_view,
)
from .interface import (
    CAMERA_INFO_TOPIC,
    COLOR_TOPIC,
    DEPTH_TOPIC,
    NODE_NAME,
    OUTPUTS,
    PARAMS,
    PARAMS_BY_NAME,
    Param,
)
from .pointcloud import semantic_points, to_pointcloud2

WARN_PERIOD_S = 5.0
TOGGLES = {o.name: o.toggle for o in OUTPUTS}
OUTPUT_QOS = QoSProfile(
    depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE
)
# Reliable + keep-last 1 reaches both reliable subscribers and RViz (best effort or reliable).


def _descriptor(p: Param) -> ParameterDescriptor:
    d = ParameterDescriptor(description=p.description, read_only=False)
    if p.choices:
        d.additional_constraints = "one of: " + ", ".join(p.choices)
    if p.low is not None and isinstance(p.default, float):
        d.floating_point_range = [
            FloatingPointRange(from_value=float(p.low), to_value=float(p.high), step=0.0)
        ]
    elif p.low is not None and isinstance(p.default, int) and not isinstance(p.default, bool):
        d.integer_range = [IntegerRange(from_value=int(p.low), to_value=int(p.high), step=1)]
    return d


def check_value(p: Param, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``p`` (None if it is)."""
    if isinstance(p.default, bool) != isinstance(value, bool) or not isinstance(
        value, type(p.default) if not isinstance(p.default, float) else (int, float)
    ):
        return f"{p.name} must be a {type(p.default).__name__}, got {value!r}"
    if p.choices and value not in p.choices:
        return f"{p.name} must be one of {', '.join(p.choices)}, got {value!r}"
    if p.low is not None and not p.low <= value <= p.high:
        return f"{p.name} must be in [{p.low}, {p.high}], got {value!r}"
    return None


@dataclass
class Stats:
    """Counters and recent timings for /diagnostics."""

    received: int = 0
    processed: int = 0
    dropped: int = 0
    bad: dict[str, int] = field(default_factory=lambda: collections.defaultdict(int))
    arrivals: collections.deque = field(default_factory=lambda: collections.deque(maxlen=60))
    outputs: collections.deque = field(default_factory=lambda: collections.deque(maxlen=60))
    latency: collections.deque = field(default_factory=lambda: collections.deque(maxlen=60))
    stages: dict[str, collections.deque] = field(default_factory=dict)

    @staticmethod
    def rate(times: collections.deque) -> float:
        if len(times) < 2 or times[-1] == times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])


@dataclass
class Pending:
    """One colour frame (with its depth, if paired) waiting for the worker."""

    color: Image
    rgb: np.ndarray  # zero-copy view of color.data, validated on arrival
    depth: Image | None
    received: float


class PerceptionNode(LifecycleNode):
    """Low-light semantic segmentation of a RealSense stream (see the module docstring)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any):
        super().__init__(node_name, **kwargs)
        for p in PARAMS:
            self.declare_parameter(p.name, p.default, _descriptor(p))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.segmenter = None
        self.stats = Stats()
        self._outputs: dict[str, Any] = {}
        self._subs: dict[str, tuple[Any, ReliabilityPolicy]] = {}
        self._diag_timer = None
        self._sub_timer = None
        self._slot: Pending | None = None
        self._slot_lock = threading.Condition()
        self._depth_buffer: collections.deque = collections.deque(maxlen=8)
        self._waiting: Pending | None = None
        self._camera_info: CameraInfo | None = None
        self._worker: threading.Thread | None = None
        self._running = False
        self._warned: dict[str, float] = {}
        self._last_stamp: dict[str, int] = {}

    # ----------------------------------------------------------------------- parameters

    def p(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _on_set_parameters(self, params: list) -> SetParametersResult:
        configured = self.segmenter is not None
        for param in params:
            spec = PARAMS_BY_NAME.get(param.name)
            if spec is None:
                continue  # use_sim_time and other rclpy parameters
            problem = check_value(spec, param.value)
            if problem is None and configured and not spec.dynamic:
                problem = (
                    f"{param.name} is read at configure; deactivate and clean up the node "
                    "before changing it"
                )
            if problem:
                return SetParametersResult(successful=False, reason=problem)
        return SetParametersResult(successful=True)

    def resolve_model(self) -> Path:
        """``model_path`` as a file: absolute, relative to the working directory, or in
        share/lowlight_perception/models."""
        raw = str(self.p("model_path")).strip()
        if not raw:
            raise LowlightError(
                "model_path is empty: set it to an exported .onnx (lowlight export)"
            )
        path = Path(raw).expanduser()
        if not path.is_absolute() and not path.exists():
            try:
                path = share_dir() / "models" / raw
            except LowlightError:
                pass
        if not path.exists():
            raise LowlightError(f"model_path {raw!r} not found (also looked in share/.../models)")
        return path

    # ----------------------------------------------------------------------- lifecycle

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        from ..inference import Segmenter

        try:
            for spec in PARAMS:  # catches values given on the command line / in params files
                problem = check_value(spec, self.p(spec.name))
                if problem:
                    raise LowlightError(problem)
            model = self.resolve_model()
            device = self.p("device")
            self.segmenter = Segmenter(
                model,
                self.p("backend"),
                "cpu" if device < 0 else device,
                host_resize=self.p("host_resize"),
                threads=self.p("threads"),
                precision=self.p("precision"),
                cache_dir=self.p("engine_cache_dir") or None,
            )
            w, h = self.segmenter.camera_size
            self.segmenter.segment(np.zeros((h, w, 3), np.uint8))  # warm-up: allocations, engine
        except LowlightError as err:
            self.get_logger().error(f"configure failed: {err}")
            self.segmenter = None
            return TransitionCallbackReturn.FAILURE
        for out in OUTPUTS:
            msg_type = PointCloud2 if out.msg_type.endswith("PointCloud2") else Image
            self._outputs[out.name] = self.create_publisher(msg_type, f"~/{out.name}", OUTPUT_QOS)
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(
            self.p("diagnostics_period"), self._publish_diagnostics
        )
        meta = self.segmenter.metadata
        self.get_logger().info(
            f"configured: {meta.model} on {self.segmenter.backend.name} "
            f"({self.segmenter.backend.device}), camera {w}x{h}, network "
            f"{meta.net_size[0]}x{meta.net_size[1]}"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stats = Stats()
        self._running = True
        self._worker = threading.Thread(target=self._work, name="lowlight-inference", daemon=True)
        self._worker.start()
        self._update_subscriptions()
        self._sub_timer = self.create_timer(1.0, self._update_subscriptions)
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop_inputs(self) -> None:
        for sub, _ in self._subs.values():
            self.destroy_subscription(sub)
        self._subs.clear()
        if self._sub_timer is not None:
            self.destroy_timer(self._sub_timer)
            self._sub_timer = None
        self._running = False
        with self._slot_lock:
            self._slot = None
            self._slot_lock.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=10.0)
            self._worker = None

    def _release(self) -> None:
        self._stop_inputs()
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        for pub in self._outputs.values():
            self.destroy_publisher(pub)
        self._outputs.clear()
        if self.segmenter is not None:
            self.segmenter.close()
            self.segmenter = None

    # ----------------------------------------------------------------------- inputs

    def _reliability(self, topic: str) -> ReliabilityPolicy:
        """The reliability to subscribe with: forced by the parameter, or matching the
        publishers (as ``ros2 bag record`` does): best effort only if every publisher is."""
        forced = self.p("qos_reliability")
        if forced != "auto":
            return (
                ReliabilityPolicy.RELIABLE
                if forced == "reliable"
                else ReliabilityPolicy.BEST_EFFORT
            )
        infos = self.get_publishers_info_by_topic(topic)
        if infos and all(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in infos):
            return ReliabilityPolicy.BEST_EFFORT
        return ReliabilityPolicy.RELIABLE

    def _update_subscriptions(self) -> None:
        """(Re)create input subscriptions whose publishers' reliability changed."""
        wanted = {
            "color": (COLOR_TOPIC, Image, self._on_color),
            "camera_info": (CAMERA_INFO_TOPIC, CameraInfo, self._on_camera_info),
        }
        if self.p("use_depth"):
            wanted["depth"] = (DEPTH_TOPIC, Image, self._on_depth)
        for key, (topic, msg_type, callback) in wanted.items():
            current = self._subs.get(key)
            if current is not None and not self.get_publishers_info_by_topic(topic):
                continue  # publisher gone: keep the subscription as it is until one appears
            reliability = self._reliability(topic)
            if current is not None and current[1] == reliability:
                continue
            if current is not None:
                self.destroy_subscription(current[0])
            qos = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=reliability)
            self._subs[key] = (
                self.create_subscription(msg_type, topic, callback, qos),
                reliability,
            )
            self.get_logger().info(
                f"subscribed to {self.resolve_topic_name(topic)} ({reliability.name.lower()})"
            )

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _bad(self, kind: str, err: Exception) -> None:
        self.stats.bad[kind] += 1
        self.warn_once(kind, f"{kind} frame skipped: {err}")

    def _on_color(self, msg: Image) -> None:
        now = time.monotonic()
        self.stats.received += 1
        self.stats.arrivals.append(now)
        try:  # decode on arrival (a view, no copy) so every bad frame is reported
            rgb = rgb_view(msg)
        except ImageError as err:
            self._bad("colour", err)
            return
        if not self._in_order("color", msg):
            return
        if not self.p("use_depth"):
            self._submit(Pending(msg, rgb, None, now))
            return
        depth = self._match_depth(msg)
        if depth is not None:
            self._submit(Pending(msg, rgb, depth, now))
            return
        if self._waiting is not None:
            self.stats.bad["no_depth_partner"] += 1
            self.warn_once(
                "no_depth_partner",
                f"colour frame without aligned depth within "
                f"sync_slop={self.p('sync_slop')} s: skipped (is {DEPTH_TOPIC} "
                "publishing? set use_depth false to run without depth)",
            )
        self._waiting = Pending(msg, rgb, None, now)  # its depth may still come

    def _on_depth(self, msg: Image) -> None:
        try:
            if msg.encoding not in (*DEPTH_MM_ENCODINGS, "32FC1"):
                raise ImageError(
                    f"encoding {msg.encoding!r} is not depth; expected 16UC1, "
                    "mono16 (mm) or 32FC1 (m)"
                )
            image_to_numpy(msg)  # validates size, step and length (a view, no copy)
        except ImageError as err:
            self._bad("depth", err)
            return
        if not self._in_order("depth", msg):
            return
        self._depth_buffer.append(msg)
        waiting = self._waiting
        if waiting is not None and self._stamp_gap(waiting.color, msg) <= self.p("sync_slop"):
            self._waiting = None
            waiting.depth = msg
            self._submit(waiting)

    def _in_order(self, kind: str, msg: Image) -> bool:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        last = self._last_stamp.get(kind)
        if last is not None and stamp < last:
            self.stats.bad["out_of_order"] += 1
            self.warn_once(
                "out_of_order",
                f"{kind} frame stamped {stamp} ns is older than the "
                f"previous one ({last} ns): skipped",
            )
            return False
        self._last_stamp[kind] = stamp
        return True

    @staticmethod
    def _stamp_gap(a: Image, b: Image) -> float:
        ta = a.header.stamp.sec + a.header.stamp.nanosec * 1e-9
        tb = b.header.stamp.sec + b.header.stamp.nanosec * 1e-9
        return abs(ta - tb)

    def _match_depth(self, color: Image) -> Image | None:
        best = min(self._depth_buffer, key=lambda d: self._stamp_gap(color, d), default=None)
        if best is not None and self._stamp_gap(color, best) <= self.p("sync_slop"):
            return best
        return None

    def _submit(self, pending: Pending) -> None:
        """Put a frame in the single slot; an unprocessed older frame is dropped."""
        with self._slot_lock:
            if self._slot is not None:
                self.stats.dropped += 1
            self._slot = pending
            self._slot_lock.notify()

    # ----------------------------------------------------------------------- worker

    def _work(self) -> None:
        while True:
            with self._slot_lock:
                while self._slot is None and self._running:
                    self._slot_lock.wait(timeout=0.5)
                if not self._running:
                    return
                pending, self._slot = self._slot, None
            try:
                self._process(pending)
            except LowlightError as err:
                self.stats.bad[type(err).__name__] += 1
                self.warn_once(type(err).__name__, f"frame skipped: {err}")
            except Exception as err:  # never let one frame kill the node
                self.stats.bad["internal"] += 1
                self.warn_once("internal", f"frame skipped, unexpected {type(err).__name__}: {err}")

    def _wanted(self, name: str) -> bool:
        pub = self._outputs.get(name)
        return bool(self.p(TOGGLES[name])) and pub is not None and pub.get_subscription_count() > 0

    def _process(self, pending: Pending) -> None:
        t0 = time.perf_counter()
        rgb = pending.rgb
        depth_msg = pending.depth
        if depth_msg is not None and (depth_msg.height, depth_msg.width) != rgb.shape[:2]:
            raise LowlightError(
                f"depth is {depth_msg.width}x{depth_msg.height} but colour is "
                f"{rgb.shape[1]}x{rgb.shape[0]}: is the depth aligned to colour?"
            )
        result = self.segmenter.segment(rgb)
        t1 = time.perf_counter()
        header = pending.color.header
        classes = self.segmenter.classes
        publish = self._outputs
        if self._wanted("labels"):
            publish["labels"].publish(numpy_to_image(result.labels, "mono8", header))
        if self._wanted("confidence"):
            publish["confidence"].publish(numpy_to_image(result.confidence, "mono8", header))
        want_color, want_overlay = self._wanted("labels_color"), self._wanted("overlay")
        if want_color or want_overlay:
            colored = classes.colorize(result.labels)  # once for both outputs
            if want_color:
                publish["labels_color"].publish(numpy_to_image(colored, "rgb8", header))
            if want_overlay:  # integer blend: (256 - a) * input + a * colour, a in 0..256
                a = np.uint16(round(256 * float(self.p("overlay_alpha"))))
                blend = ((256 - a) * rgb.astype(np.uint16) + a * colored) >> 8
                publish["overlay"].publish(numpy_to_image(blend.astype(np.uint8), "rgb8", header))
        if result.reflectance is not None and self._wanted("reflectance"):
            publish["reflectance"].publish(numpy_to_image(result.reflectance, "rgb8", header))
        if result.illumination is not None and self._wanted("illumination"):
            publish["illumination"].publish(numpy_to_image(result.illumination, "mono8", header))
        if self._wanted("semantic_points"):  # depth is converted only for the point cloud
            depth = None if depth_msg is None else depth_to_metres(depth_msg)
            self._publish_points(result, depth, header, classes.palette)
        t2 = time.perf_counter()
        now = time.monotonic()
        self.stats.processed += 1
        self.stats.outputs.append(now)
        self.stats.latency.append(1000 * (now - pending.received))
        for name, value in {
            **result.timings,
            "publish": 1000 * (t2 - t1),
            "node_total": 1000 * (t2 - t0),
        }.items():
            self.stats.stages.setdefault(name, collections.deque(maxlen=60)).append(value)

    def _publish_points(
        self, result: Any, depth: np.ndarray | None, header: Any, palette: np.ndarray
    ) -> None:
        if depth is None:
            self.warn_once(
                "no_depth",
                "semantic_points needs aligned depth (use_depth true and "
                f"{DEPTH_TOPIC} publishing): not published",
            )
            return
        info = self._camera_info
        if info is None:
            self.warn_once(
                "no_camera_info",
                f"no camera_info on {CAMERA_INFO_TOPIC} yet: semantic_points not published",
            )
            return
        intrinsics = camera_info_to_intrinsics(info)
        if (intrinsics.width, intrinsics.height) != (depth.shape[1], depth.shape[0]):
            raise LowlightError(
                f"camera_info is {intrinsics.width}x{intrinsics.height} but depth "
                f"is {depth.shape[1]}x{depth.shape[0]}"
            )
        points = semantic_points(
            depth,
            result.labels,
            result.confidence,
            intrinsics,
            palette,
            decimation=int(self.p("point_decimation")),
            min_confidence=float(self.p("min_confidence")),
            max_depth=float(self.p("max_depth")),
        )
        self._outputs["semantic_points"].publish(to_pointcloud2(points, header))

    # ----------------------------------------------------------------------- diagnostics, logs

    def warn_once(self, kind: str, text: str) -> None:
        """Log a warning at most once per WARN_PERIOD_S for each kind of problem."""
        now = time.monotonic()
        if now - self._warned.get(kind, -1e9) >= WARN_PERIOD_S:
            self._warned[kind] = now
            self.get_logger().warning(text)

    def _publish_diagnostics(self) -> None:
        s = self.stats
        status = DiagnosticStatus(name=f"{self.get_name()}: pipeline", hardware_id="")
        values = {
            "state": "active" if self._running else "inactive",
            "input_rate_hz": f"{s.rate(s.arrivals):.2f}",
            "output_rate_hz": f"{s.rate(s.outputs):.2f}",
            "frames_received": str(s.received),
            "frames_processed": str(s.processed),
            "frames_dropped": str(s.dropped),
            "frames_bad": str(sum(s.bad.values())),
        }
        values.update({f"bad_{k}": str(v) for k, v in s.bad.items()})
        if s.latency:
            values["latency_ms_p50"] = f"{np.percentile(s.latency, 50):.2f}"
        for name, times in s.stages.items():
            values[f"{name}_ms_p50"] = f"{np.percentile(times, 50):.2f}"
        if self.segmenter is not None:
            meta = self.segmenter.metadata
            status.hardware_id = self.segmenter.backend.device
            values.update(
                model=meta.model,
                backend=self.segmenter.backend.name,
                device=self.segmenter.backend.device,
            )
        silent = not s.arrivals or time.monotonic() - s.arrivals[-1] > self.p("input_timeout")
        if not self._running:
            status.level, status.message = DiagnosticStatus.WARN, "not active"
        elif silent:
            status.level = DiagnosticStatus.WARN
            status.message = f"no colour frames on {self.resolve_topic_name(COLOR_TOPIC)}"
        elif s.bad:
            status.level, status.message = DiagnosticStatus.WARN, "skipping bad frames"
        else:
            status.level, status.message = DiagnosticStatus.OK, "running"
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics.publish(array)


def main(args: list[str] | None = None) -> None:
    """Entry point of ``perception_node`` (``ros2 run lowlight_perception perception_node``)."""
    rclpy.init(args=args)  # not ``with rclpy.init()``: Humble and Jazzy lack that form
    try:
        node = PerceptionNode()
        if node.p("autostart"):
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                node.trigger_activate()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            try:  # join the worker first; after SIGINT the context may already be shut down
                node._release()
                node.destroy_node()
            except Exception as err:  # shutting down: report, do not raise
                print(f"perception_node: shutdown: {err}")
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
