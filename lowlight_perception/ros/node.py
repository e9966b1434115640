"""``perception_node``: the lifecycle node that runs on the robot.

RealSense colour (+ aligned depth, camera_info) in; labels, confidence, coloured labels, overlay,
reflectance, illumination and a semantic point cloud out, every output with the input's header,
plus ``~/label_info`` (vision_msgs/LabelInfo, latched) where vision_msgs exists. Configure loads
and warms the model; activate subscribes; deactivate and cleanup release. The executor only
stashes messages: a worker thread owns inference and holds a single latest-frame slot, so a slow
model drops old frames (newest wins, counted) and never blocks the executor. Frames of any size
are served (one model, any camera profile); colour and depth pair per stream (same size) by
stamp. Bad input is logged (rate-limited per kind), skipped, and the node keeps serving; a stamp
that jumps back (a looped bag, a stepped clock) resets pairing instead of blocking later frames.
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
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from ..camera import Intrinsics
from ..classes import blend
from ..config import share_dir
from ..errors import LowlightError
from ..fastdds import apply_default_profile
from ..inference.backend import CORE_OUTPUTS
from ..inference.refine import RefineConfig
from ..latency import p50_p99
from ..topics import CAMERA_INFO_TOPIC, COLOR_TOPIC, DEPTH_TOPIC
from .codecs import (
    CameraInfoError,
    CdrImage,
    ImageError,
    camera_info_to_intrinsics,
    depth_to_metres,
    depth_view,
    distortion_warning,
    image_cdr,
    image_from_cdr,
    rgb_view,
)
from .interface import (
    LABEL_INFO,
    NODE_NAME,
    OUTPUTS,
    PARAMS,
    PARAMS_BY_NAME,
    Param,
)
from .pointcloud import pointcloud2_cdr, semantic_points
from .stopping import spin_until, stop_on_signals

try:  # vision_msgs has no PyPI wheel: ~/label_info exists where a ROS install provides it
    from vision_msgs.msg import LabelInfo, VisionClass
except ImportError:  # pragma: no cover - depends on the machine
    LabelInfo = VisionClass = None

WARN_PERIOD_S = 5.0
MAX_STREAMS = 4  # colour/depth sizes paired at once (a stray stream cannot grow memory)
REFINE = RefineConfig()  # refine_with_depth's settings (the defaults of inference.refine)
DEPTH_WAIT_S = 0.1  # the point cloud waits this long from the colour's arrival for its depth
DEPTH_STREAM_GONE_S = 1.0  # ... but not when no depth of that size came for this long
TOGGLES = {o.name: o.toggle for o in OUTPUTS}
OUTPUT_QOS = QoSProfile(
    depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE
)
# Reliable + keep-last 1 reaches both reliable subscribers and RViz (best effort or reliable).
LABEL_INFO_QOS = QoSProfile(
    depth=1,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
"""What Nav2's semantic segmentation layer subscribes to label info with: reliable,
transient_local (kiwicampus/semantic_segmentation_layer, humble and jazzy,
src/semantic_segmentation_layer.cpp: ``tl_qos_profile``); a volatile publisher would not match."""


def _descriptor(p: Param) -> ParameterDescriptor:
    d = ParameterDescriptor(description=p.description, read_only=False)
    d.dynamic_typing = p.any_type
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
    if p.name == "device":
        from ..inference.segmenter import parse_device

        try:
            parse_device(value)
        except LowlightError as err:
            return str(err)
        return None
    if isinstance(p.default, bool) != isinstance(value, bool) or not isinstance(
        value, type(p.default) if not isinstance(p.default, float) else (int, float)
    ):
        return f"{p.name} must be a {type(p.default).__name__}, got {value!r}"
    if p.choices and value not in p.choices:
        return f"{p.name} must be one of {', '.join(p.choices)}, got {value!r}"
    if p.low is not None and not p.low <= value <= p.high:
        return f"{p.name} must be in [{p.low}, {p.high}], got {value!r}"
    return None


def subscribe_reliability(publishers: list[ReliabilityPolicy]) -> ReliabilityPolicy:
    """The reliability to subscribe with for these publishers, by rosbag2's rule: reliable
    only when every publisher offers reliable (or there is none yet: realsense-ros publishes
    SYSTEM_DEFAULT, which is reliable), best effort as soon as one does not, because a
    reliable subscription gets nothing from a best-effort publisher. ros2/rosbag2, humble and
    jazzy, rosbag2_transport/src/rosbag2_transport/qos.cpp ``adapt_request_to_offers``."""
    if all(r == ReliabilityPolicy.RELIABLE for r in publishers):
        return ReliabilityPolicy.RELIABLE
    return ReliabilityPolicy.BEST_EFFORT


def stamp_ns(msg: Any) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


@dataclass
class Stats:
    """Counters and recent timings for /diagnostics."""

    received: int = 0
    processed: int = 0
    dropped: int = 0
    stamp_resets: int = 0
    bad: dict[str, int] = field(default_factory=lambda: collections.defaultdict(int))
    bad_reported: int = 0  # bad frames counted when /diagnostics last went out
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

    color: CdrImage  # the fields of a sensor_msgs/Image, read from the bytes received
    rgb: np.ndarray  # zero-copy view of color.data, validated on arrival
    depth: CdrImage | None
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
        self._label_info = None
        self._subs: dict[str, tuple[Any, ReliabilityPolicy]] = {}
        self._sub_timer = None
        self._slot: Pending | None = None
        self._slot_lock = threading.Condition()
        self._depth_arrived = threading.Condition()  # guards _depth, notified on each depth
        self._worker: threading.Thread | None = None
        self._running = False
        self._warned: dict[str, float] = {}
        self._reset_inputs()
        # one /diagnostics publisher for the node's life; it reports while unconfigured too
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_period = float(self.p("diagnostics_period"))
        self._diag_timer = self._steady_timer(self._diag_period, self._publish_diagnostics)

    def _steady_timer(self, period: float, callback: Any) -> Any:
        """A timer on the steady clock: with use_sim_time a ROS-time timer stops while no
        /clock arrives (a paused or delayed bag), and these must not."""
        return self.create_timer(period, callback, clock=Clock(clock_type=ClockType.STEADY_TIME))

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
        """Load and warm the model. Any failure is logged with its cause and leaves the node
        unconfigured, so it can be configured again (rclpy would swallow an exception)."""
        from ..inference import Segmenter

        segmenter = None
        try:
            for spec in PARAMS:  # catches values given on the command line / in params files
                problem = check_value(spec, self.p(spec.name))
                if problem:
                    raise LowlightError(problem)
            model = self.resolve_model()
            segmenter = Segmenter(
                model,
                self.p("backend"),
                self.p("device"),
                threads=self.p("threads"),
                spin=self.p("spin_wait"),
                precision=self.p("precision"),
                cache_dir=self.p("engine_cache_dir") or None,
                build_policy=self.p("engine_build"),
            )
            segmenter.warm_up()  # allocations, engine set-up, the output contract
        except Exception as err:  # a bad model must never leave the node wedged
            if segmenter is not None:
                segmenter.close()
            text = str(err) if isinstance(err, LowlightError) else f"{type(err).__name__}: {err}"
            self.get_logger().error(f"configure failed: {text}")
            return TransitionCallbackReturn.FAILURE
        self.segmenter = segmenter
        for out in OUTPUTS:
            msg_type = PointCloud2 if out.msg_type.endswith("PointCloud2") else Image
            self._outputs[out.name] = self.create_publisher(msg_type, f"~/{out.name}", OUTPUT_QOS)
        self._publish_label_info()
        if float(self.p("diagnostics_period")) != self._diag_period:
            self.destroy_timer(self._diag_timer)
            self._diag_period = float(self.p("diagnostics_period"))
            self._diag_timer = self._steady_timer(self._diag_period, self._publish_diagnostics)
        meta = segmenter.metadata
        self.get_logger().info(
            f"configured: {meta.model} on {segmenter.backend.name} ({segmenter.backend.device}: "
            f"{segmenter.reason}), network {meta.net_size[0]}x{meta.net_size[1]}, "
            + (
                "frames of any size"
                if segmenter.frame_size is None
                else f"frames of {segmenter.frame_size[0]}x{segmenter.frame_size[1]} only"
            )
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stats = Stats()
        self._reset_inputs()  # a new session: no stamp order, no half pairs from before
        self._running = True
        self._worker = threading.Thread(target=self._work, name="lowlight-inference", daemon=True)
        self._worker.start()
        self._update_subscriptions()
        self._sub_timer = self._steady_timer(1.0, self._update_subscriptions)
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
        for pub in self._outputs.values():
            self.destroy_publisher(pub)
        self._outputs.clear()
        if self._label_info is not None:
            self.destroy_publisher(self._label_info)
            self._label_info = None
        if self.segmenter is not None:
            self.segmenter.close()
            self.segmenter = None

    def _reset_inputs(self) -> None:
        """Forget stamp order and half-made pairs (on activate and when time jumps back)."""
        self._last_stamp: dict[str, int] = {}
        with self._depth_arrived:  # the worker reads depth too (the point cloud)
            self._depth: collections.OrderedDict[tuple[int, int], collections.deque] = (
                collections.OrderedDict()
            )
            self._depth_seen: dict[tuple[int, int], float] = {}  # last arrival per stream
            self._inputs_since = time.monotonic()  # a stream not seen yet counts from here
        self._intrinsics: dict[tuple[int, int], Intrinsics] = {}

    # ----------------------------------------------------------------------- inputs

    def _reliability(self, topic: str) -> ReliabilityPolicy:
        """Forced by ``qos_reliability``, or :func:`subscribe_reliability` of the topic's
        publishers."""
        forced = self.p("qos_reliability")
        if forced != "auto":
            return (
                ReliabilityPolicy.RELIABLE
                if forced == "reliable"
                else ReliabilityPolicy.BEST_EFFORT
            )
        infos = self.get_publishers_info_by_topic(topic)
        return subscribe_reliability([i.qos_profile.reliability for i in infos])

    def _update_subscriptions(self) -> None:
        """(Re)create input subscriptions whose publishers' reliability changed."""
        # images raw (serialized bytes, read by image_from_cdr: one copy of a frame, not three)
        wanted = {
            "color": (COLOR_TOPIC, Image, self._on_color_bytes, True),
            "camera_info": (CAMERA_INFO_TOPIC, CameraInfo, self._on_camera_info, False),
        }
        if self.p("use_depth"):
            wanted["depth"] = (DEPTH_TOPIC, Image, self._on_depth_bytes, True)
        for key, (topic, msg_type, callback, raw) in wanted.items():
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
                self.create_subscription(msg_type, topic, callback, qos, raw=raw),
                reliability,
            )
            self.get_logger().info(
                f"subscribed to {self.resolve_topic_name(topic)} ({reliability.name.lower()})"
            )

    def _on_camera_info(self, msg: CameraInfo) -> None:
        """Keep the intrinsics of each stream size; refuse a calibration that is not one."""
        try:
            intrinsics = camera_info_to_intrinsics(msg)
        except CameraInfoError as err:
            self._bad("camera_info", f"camera_info refused: {err}")
            return
        note = distortion_warning(msg)
        if note and "distortion" not in self._warned:
            self._warned["distortion"] = time.monotonic()  # once for the node's life
            self.get_logger().warning(note)
        self._intrinsics[(intrinsics.width, intrinsics.height)] = intrinsics

    def _bad(self, kind: str, text: str) -> None:
        self.stats.bad[kind] += 1
        self.warn_once(kind, text)

    def _on_color_bytes(self, data: bytes) -> None:
        start = time.perf_counter()
        try:
            msg = image_from_cdr(data)
        except ImageError as err:
            self.stats.received += 1
            self._bad("colour", f"colour frame skipped: {err}")
            return
        self._on_color(msg)
        decode = 1000 * (time.perf_counter() - start)  # read, validate, pair, hand over
        self.stats.stages.setdefault("decode", collections.deque(maxlen=60)).append(decode)

    def _on_depth_bytes(self, data: bytes) -> None:
        try:
            msg = image_from_cdr(data)
        except ImageError as err:
            self._bad("depth", f"depth frame skipped: {err}")
            return
        self._on_depth(msg)

    def _on_color(self, msg: CdrImage) -> None:
        now = time.monotonic()
        self.stats.received += 1
        self.stats.arrivals.append(now)
        try:  # decode on arrival (a view, no copy) so every bad frame is reported
            rgb = rgb_view(msg)
        except ImageError as err:
            self._bad("colour", f"colour frame skipped: {err}")
            return
        self._check_stamp("color", msg)
        # to the worker at once: only the point cloud needs depth, and realsense-ros publishes
        # aligned depth after colour; the worker takes it when the cloud is built
        depth = self._match_depth(msg) if self.p("use_depth") else None
        self._submit(Pending(msg, rgb, depth, now))

    def _on_depth(self, msg: CdrImage) -> None:
        try:
            depth_view(msg)  # validates encoding, size, step and length (a view, no copy)
        except ImageError as err:
            self._bad("depth", f"depth frame skipped: {err}")
            return
        self._check_stamp("depth", msg)
        stream = (int(msg.width), int(msg.height))
        with self._depth_arrived:
            buffer = self._depth.get(stream)
            if buffer is None:
                buffer = self._depth[stream] = collections.deque(maxlen=8)
                while len(self._depth) > MAX_STREAMS:
                    self._depth.popitem(last=False)
            buffer.append(msg)
            self._depth_seen[stream] = time.monotonic()
            self._depth_arrived.notify_all()

    def _check_stamp(self, kind: str, msg: CdrImage) -> None:
        """A stamp older than the last of its topic means time went back (``ros2 bag play
        --loop``, a second pass, a stepped clock, or one frame stamped in the future before):
        count it, drop what waits for pairing from ahead of the new time, and go on from the
        new stamp. Frames are never refused for their stamp."""
        stamp = stamp_ns(msg)
        last = self._last_stamp.get(kind)
        self._last_stamp[kind] = stamp
        if last is None or stamp >= last:
            return
        self.stats.stamp_resets += 1
        ahead = stamp + int(1e9 * self.p("sync_slop"))
        with self._depth_arrived:
            for stream, buffer in self._depth.items():
                self._depth[stream] = collections.deque(
                    (d for d in buffer if stamp_ns(d) <= ahead), maxlen=buffer.maxlen
                )
        self.warn_once(
            "stamp_reset",
            f"{kind} stamp went back by {(last - stamp) / 1e9:.3f} s (looped bag or clock "
            "stepped back?): stamp order reset",
        )

    @staticmethod
    def _stamp_gap(a: CdrImage, b: CdrImage) -> float:
        return abs(stamp_ns(a) - stamp_ns(b)) / 1e9

    def _match_depth(self, color: CdrImage) -> CdrImage | None:
        """The aligned depth of the colour frame's size whose stamp is nearest, within
        ``sync_slop``; None if none has come yet."""
        with self._depth_arrived:
            buffer = self._depth.get((int(color.width), int(color.height)), ())
            best = min(buffer, key=lambda d: self._stamp_gap(color, d), default=None)
        if best is not None and self._stamp_gap(color, best) <= self.p("sync_slop"):
            return best
        return None

    def _depth_for(self, pending: Pending) -> CdrImage | None:
        """The frame's depth for the point cloud, waiting up to :data:`DEPTH_WAIT_S` from the
        colour's arrival while its stream's depth is arriving or may still start (not when
        none came for :data:`DEPTH_STREAM_GONE_S`)."""
        if pending.depth is not None:
            return pending.depth
        stream = (int(pending.color.width), int(pending.color.height))
        deadline = pending.received + DEPTH_WAIT_S
        with self._depth_arrived:
            while True:
                depth = self._match_depth(pending.color)
                remaining = deadline - time.monotonic()
                seen = self._depth_seen.get(stream, self._inputs_since)
                if (
                    depth is not None
                    or remaining <= 0
                    or (time.monotonic() - seen > DEPTH_STREAM_GONE_S)
                ):
                    return depth
                self._depth_arrived.wait(remaining)

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
            except Exception as err:  # never let one frame kill the node
                if not self.context.ok():
                    return  # shutting down (SIGINT / SIGTERM): publishers are gone
                kind = type(err).__name__ if isinstance(err, LowlightError) else "internal"
                prefix = "" if isinstance(err, LowlightError) else f"unexpected {kind}: "
                self._bad(kind, f"frame skipped, {prefix}{err}")

    def _wanted(self, name: str) -> bool:
        pub = self._outputs.get(name)
        return bool(self.p(TOGGLES[name])) and pub is not None and pub.get_subscription_count() > 0

    def _process(self, pending: Pending) -> None:
        """Segment one frame and publish the outputs somebody subscribes to, labels and
        confidence first; each output's build + serialise + publish is timed as a stage
        (``publish_<output>`` in the diagnostics, ``lowlight bench node`` reports them)."""
        t0 = time.perf_counter()
        queued = 1000 * (time.monotonic() - pending.received)  # arrival -> this worker
        rgb = pending.rgb
        wanted = [name for name in TOGGLES if self._wanted(name)]
        extra = tuple(name for name in ("reflectance", "illumination") if name in wanted)
        depth_msg, depth = None, None
        refine = self.p("refine_with_depth") and self.p("use_depth")
        if refine:  # only refinement makes the images wait for depth
            depth_msg = self._depth_for(pending)
            depth = None if depth_msg is None else depth_to_metres(depth_msg)
            if depth is None:
                self.warn_once(
                    "refine_no_depth",
                    "refine_with_depth: a frame came without "
                    f"aligned depth on {DEPTH_TOPIC}; its labels are not refined",
                )
        self.segmenter.refine = REFINE if refine else None
        result = self.segmenter.segment(rgb, depth, outputs=(*CORE_OUTPUTS, *extra))
        t1 = time.perf_counter()
        header = pending.color.header
        classes = self.segmenter.classes
        colored: list[np.ndarray] = []  # class colours, made once for labels_color and overlay

        def colours() -> np.ndarray:
            if not colored:
                colored.append(classes.colorize(result.labels))
            return colored[0]

        builders = {
            "labels": lambda: image_cdr(result.labels, "mono8", header),
            "confidence": lambda: image_cdr(result.confidence, "mono8", header),
            "labels_color": lambda: image_cdr(colours(), "rgb8", header),
            "overlay": lambda: image_cdr(
                blend(rgb, colours(), self.p("overlay_alpha")), "rgb8", header
            ),
            "reflectance": lambda: image_cdr(result.reflectance, "rgb8", header),
            "illumination": lambda: image_cdr(result.illumination, "mono8", header),
        }
        stages: dict[str, float] = {}
        # OUTPUTS order, labels and confidence first; each serialized here with one copy of
        # its pixels and published as bytes (no message object for rclpy to convert)
        for name in wanted:
            start = time.perf_counter()
            if name == "semantic_points":  # depth is converted only when needed
                if not refine and self.p("use_depth"):  # refinement already waited for it
                    depth_msg = self._depth_for(pending)
                    depth = None if depth_msg is None else depth_to_metres(depth_msg)
                if depth_msg is None and self.p("use_depth"):
                    w, h = pending.color.width, pending.color.height
                    self._bad(
                        "no_depth_partner",
                        f"{w}x{h} colour frame without aligned depth of its size within "
                        f"sync_slop={self.p('sync_slop')} s: no semantic_points for it (is "
                        f"{DEPTH_TOPIC} publishing? set use_depth false to run without depth)",
                    )
                    continue
                self._publish_points(result, depth, header, classes.palette)
            elif name in extra and getattr(result, name) is None:
                continue  # a graph without this output
            else:
                self._outputs[name].publish(builders[name]())
            stages[f"publish_{name}"] = 1000 * (time.perf_counter() - start)
        t2 = time.perf_counter()
        now = time.monotonic()
        self.stats.processed += 1
        self.stats.outputs.append(now)
        self.stats.latency.append(1000 * (now - pending.received))
        for name, value in {
            "queue": queued,
            **result.timings,
            **stages,
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
        intrinsics = self._intrinsics.get((depth.shape[1], depth.shape[0]))
        if intrinsics is None:
            self.warn_once(
                "no_camera_info",
                f"no valid {depth.shape[1]}x{depth.shape[0]} camera_info on "
                f"{CAMERA_INFO_TOPIC} yet: semantic_points not published",
            )
            return
        points = semantic_points(
            depth,
            result.labels,
            result.confidence,
            intrinsics,
            palette,
            decimation=int(self.p("point_decimation")),
            min_confidence=float(self.p("min_confidence")),
            max_depth=float(self.p("max_depth")),
            organized=bool(self.p("organized_cloud")),
        )
        self._outputs["semantic_points"].publish(pointcloud2_cdr(points, header))

    def _publish_label_info(self) -> None:
        """``~/label_info`` once, latched, from the model's class list (vision_msgs only)."""
        if LabelInfo is None:
            return
        self._label_info = self.create_publisher(LabelInfo, f"~/{LABEL_INFO}", LABEL_INFO_QOS)
        msg = label_info(self.segmenter.classes.names, LabelInfo, VisionClass)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._label_info.publish(msg)

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
            "frames_bad": str(sum(list(s.bad.values()))),  # since activation
            "stamp_resets": str(s.stamp_resets),
        }
        values.update({f"bad_{k}": str(v) for k, v in list(s.bad.items())})
        if s.latency:
            values["latency_ms_p50"] = f"{p50_p99(list(s.latency))[0]:.2f}"
        for name, times in list(s.stages.items()):  # the worker adds to them meanwhile
            values[f"{name}_ms_p50"] = f"{p50_p99(list(times))[0]:.2f}"
        if self.segmenter is not None:
            meta = self.segmenter.metadata
            status.hardware_id = self.segmenter.backend.device
            values.update(
                model=meta.model,
                backend=self.segmenter.backend.name,
                device=self.segmenter.backend.device,
            )
        now = time.monotonic()
        silent = not s.arrivals or now - s.arrivals[-1] > self.p("input_timeout")
        bad_total = sum(list(s.bad.values()))
        recent_bad, s.bad_reported = bad_total > s.bad_reported, bad_total
        if self.segmenter is None:
            status.level, status.message = DiagnosticStatus.WARN, "not configured"
        elif not self._running:
            status.level, status.message = DiagnosticStatus.WARN, "not active"
        elif silent:
            status.level = DiagnosticStatus.WARN
            status.message = f"no colour frames on {self.resolve_topic_name(COLOR_TOPIC)}"
        elif recent_bad:  # since the last message: OK again once frames are good again
            status.level, status.message = DiagnosticStatus.WARN, "skipping bad frames"
        else:
            status.level, status.message = DiagnosticStatus.OK, "running"
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics.publish(array)


def label_info(names: tuple[str, ...], label_info_type: Any, vision_class_type: Any) -> Any:
    """A vision_msgs/LabelInfo for the class list: ``class_map`` of VisionClass(class_id,
    class_name) by label id, ``threshold`` 0 (every pixel is labelled). Field names and types
    from ros-perception/vision_msgs, branch ros2 (4.1.1, Humble and Jazzy):
    msg/LabelInfo.msg, msg/VisionClass.msg. The types are passed in, so the fields are checked
    against the real definitions where vision_msgs itself cannot be installed."""
    msg = label_info_type()
    msg.class_map = [vision_class_type(class_id=i, class_name=n) for i, n in enumerate(names)]
    msg.threshold = 0.0
    return msg


def main(args: list[str] | None = None) -> None:
    """Entry point of ``perception_node`` (``ros2 run lowlight_perception perception_node``).

    SIGINT and SIGTERM (Ctrl-C, ``ros2 launch`` stopping the node, systemd, docker stop) stop
    it as :mod:`.stopping` describes: the worker is joined while the publishers still exist,
    and the context is shut down last."""
    profile_note = apply_default_profile()  # before rclpy.init: Fast DDS reads it then
    # not ``with rclpy.init()``: Humble and Jazzy lack that form
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        with stop_on_signals() as stop:
            node = PerceptionNode()
            if profile_note:
                node.get_logger().info(profile_note)
            if node.p("autostart"):
                if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                    node.trigger_activate()
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            spin_until(executor, stop)
    except ExternalShutdownException:
        pass
    finally:
        if node is not None:
            try:
                node._release()  # join the worker while its publishers still exist
                node.destroy_node()
            except Exception as err:  # shutting down: report, do not raise
                print(f"perception_node: shutdown: {err}")
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
