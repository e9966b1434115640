"""The node's ROS interface in one place: parameters (with descriptions and ranges) and outputs
(the camera topics it subscribes to are in :mod:`lowlight_perception.topics`).

The node declares exactly these; ``config/params.yaml``, the launch files and the RViz config
are checked against them by the tests, so nothing can name a parameter or topic that does not
exist. No rclpy import here: tools and tests read it without ROS.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import DEMO_MODEL
from ..inference.engine_cache import BUILD_POLICIES, PRECISIONS

NODE_NAME = "lowlight_perception"
PARAMS_KEY = f"/**/{NODE_NAME}"
"""The params file's root key: matches the node in any namespace (rcl's ``/**`` wildcard)."""
LABEL_INFO = "label_info"
"""``~/label_info``: vision_msgs/LabelInfo, reliable + transient_local, published once on
configure (Nav2's semantic segmentation layer drops every frame until it has one)."""


@dataclass(frozen=True)
class Output:
    """One published topic (relative to the node: ``~/name``)."""

    name: str
    msg_type: str  # "sensor_msgs/msg/Image", ...
    encoding: str | None  # image encoding, None for non-images
    description: str
    toggle: str  # the publish_<output> parameter


OUTPUTS = (
    Output("labels", "sensor_msgs/msg/Image", "mono8", "class id per pixel", "publish_labels"),
    Output(
        "confidence", "sensor_msgs/msg/Image", "mono8", "max softmax x 255", "publish_confidence"
    ),
    Output(
        "labels_color",
        "sensor_msgs/msg/Image",
        "rgb8",
        "labels in the class palette",
        "publish_labels_color",
    ),
    Output(
        "overlay",
        "sensor_msgs/msg/Image",
        "rgb8",
        "palette blended over the input",
        "publish_overlay",
    ),
    Output(
        "reflectance",
        "sensor_msgs/msg/Image",
        "rgb8",
        "restored reflectance",
        "publish_reflectance",
    ),
    Output(
        "illumination",
        "sensor_msgs/msg/Image",
        "mono8",
        "estimated illumination",
        "publish_illumination",
    ),
    Output(
        "semantic_points",
        "sensor_msgs/msg/PointCloud2",
        None,
        "x, y, z, rgb (class colour), label, confidence in the colour optical frame",
        "publish_semantic_points",
    ),
)


@dataclass(frozen=True)
class Param:
    """A declared parameter. ``dynamic`` ones may change while the node runs; the others are
    read at configure (change them, then reconfigure)."""

    name: str
    default: bool | int | float | str
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    dynamic: bool = False
    any_type: bool = False  # declared with dynamic typing (``device``: "auto", "cpu" or 0)


PARAMS = (
    Param(
        "model_path",
        DEMO_MODEL,
        "exported .onnx, TensorRT .engine/.plan or .pt checkpoint; a relative path resolves in "
        "share/lowlight_perception/models (default: the shipped demo model)",
    ),
    Param(
        "backend", "auto", "inference runtime", choices=("auto", "tensorrt", "onnxruntime", "torch")
    ),
    Param(
        "device",
        "auto",
        "auto (GPU 0 when the backend can use one, else the CPU), cpu (or -1), or a CUDA index",
        any_type=True,
    ),
    Param("threads", 0, "ONNX Runtime CPU threads (0 = its default)", low=0, high=256),
    Param(
        "spin_wait",
        True,
        "ONNX Runtime's idle threads spin-wait for the next frame (lowest latency at camera "
        "rate); false leaves the cores to publishing and other nodes (faster with many outputs "
        "on a small CPU)",
    ),
    Param("precision", "fp16", "TensorRT precision", choices=PRECISIONS),
    Param(
        "engine_cache_dir",
        "",
        "where TensorRT engines are cached (empty: next to the ONNX, or ~/.cache/"
        "lowlight_perception/engines when that is read-only)",
    ),
    Param(
        "engine_build",
        "if_missing",
        "when TensorRT may build an engine: if_missing, never (a missing one fails configure), "
        "always",
        choices=BUILD_POLICIES,
    ),
    Param("use_depth", True, "pair colour with aligned depth (needed for semantic_points)"),
    Param("sync_slop", 0.02, "max colour/depth stamp difference in seconds", low=0.0, high=1.0),
    Param(
        "refine_with_depth",
        False,
        "re-vote labels and confidence near label boundaries by neighbours on the same surface "
        "in aligned depth (each frame then waits up to 0.1 s for its depth)",
        dynamic=True,
    ),
    Param(
        "qos_reliability",
        "auto",
        "input reliability: auto is reliable only when every publisher is (rosbag2's rule)",
        choices=("auto", "reliable", "best_effort"),
    ),
    Param(
        "overlay_alpha",
        0.5,
        "weight of the class colours in ~/overlay",
        low=0.0,
        high=1.0,
        dynamic=True,
    ),
    Param(
        "organized_cloud",
        False,
        "semantic_points as an organised H x W cloud, NaN where depth is invalid, no "
        "decimation or filtering (what Nav2's semantic segmentation layer indexes by pixel)",
        dynamic=True,
    ),
    Param(
        "point_decimation",
        4,
        "use every n-th pixel in each direction for semantic_points (unorganised cloud)",
        low=1,
        high=32,
        dynamic=True,
    ),
    Param(
        "min_confidence",
        0.0,
        "drop points whose confidence (0..1) is lower (unorganised cloud)",
        low=0.0,
        high=1.0,
        dynamic=True,
    ),
    Param(
        "max_depth",
        10.0,
        "drop points farther than this (metres; unorganised cloud)",
        low=0.1,
        high=100.0,
        dynamic=True,
    ),
    Param(
        "input_timeout",
        1.0,
        "diagnostics warn when no colour frame came for this long (s)",
        low=0.1,
        high=60.0,
        dynamic=True,
    ),
    Param("diagnostics_period", 1.0, "seconds between /diagnostics messages", low=0.1, high=60.0),
    Param("autostart", True, "configure and activate at start-up, so `ros2 run` just works"),
    *(
        Param(o.toggle, True, f"publish ~/{o.name} ({o.description})", dynamic=True)
        for o in OUTPUTS
    ),
)

PARAMS_BY_NAME = {p.name: p for p in PARAMS}
