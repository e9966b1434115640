"""Real ROS 2 test harness: an isolated DDS domain, D435i-like frames on the RealSense topics,
and the package's own loopback client (publishes inputs, records outputs) as the probe."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image

from lowlight_perception.camera import Intrinsics
from lowlight_perception.data.synthetic import random_view
from lowlight_perception.ros.codecs import intrinsics_to_camera_info, numpy_to_image
from lowlight_perception.ros.loopback import LoopbackClient as Probe
from lowlight_perception.ros.loopback import Spinner, header, new_context

__all__ = [
    "CAMERA",
    "FRAME_ID",
    "Frames",
    "NodeRig",
    "Probe",
    "Spinner",
    "domain_id",
    "header",
    "new_context",
    "node_params",
]

FRAME_ID = "camera_color_optical_frame"
CAMERA = (640, 480)


def domain_id() -> int:
    """A DDS domain of this test process, so parallel runs on one machine never hear each
    other (ROS_DOMAIN_ID is exported for subprocesses too). The shipped Fast DDS profile for
    camera-size images is selected by ``new_context`` for this process, as the node does for
    itself."""
    domain = 1 + os.getpid() % 100
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    return domain


class Frames:
    """One procedural low-light view as RealSense would publish it."""

    def __init__(self, size: tuple[int, int] = CAMERA, index: int = 0):
        self.intrinsics = Intrinsics.d435i(*size)
        view = random_view(21, index, self.intrinsics)
        self.rgb, self.depth_mm = view.low, view.depth

    def color(self, i: int, encoding: str = "rgb8") -> Image:
        data = self.rgb if encoding == "rgb8" else np.ascontiguousarray(self.rgb[..., ::-1])
        return numpy_to_image(data, encoding, header(i))

    def depth(self, i: int) -> Image:
        return numpy_to_image(self.depth_mm, "16UC1", header(i))

    def camera_info(self, i: int = 0) -> CameraInfo:
        return intrinsics_to_camera_info(self.intrinsics, header(i))


class NodeRig:
    """Configured + active perception nodes, each with a probe and a background executor;
    ``close`` releases them all (a fixture yields ``start`` and closes after the test)."""

    def __init__(self, context):
        self.context = context
        self.made: list = []

    def start(
        self,
        overrides: list[Parameter],
        *,
        reliable: bool = True,
        inputs: bool = True,
        outputs: tuple[str, ...] | None = None,
    ):
        from rclpy.lifecycle import TransitionCallbackReturn

        from lowlight_perception.ros.node import PerceptionNode

        node = PerceptionNode(context=self.context, parameter_overrides=overrides)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        probe = Probe(self.context, reliable=reliable, inputs=inputs, outputs=outputs)
        self.made.append((node, probe, Spinner(self.context, node, probe)))
        probe.wait_connected()
        return node, probe

    def close(self) -> None:
        for node, probe, spinner in self.made:
            spinner.stop()
            node._release()
            node.destroy_node()
            probe.destroy_node()


def node_params(model: Path, **extra) -> list[Parameter]:
    values = {"model_path": str(model), "device": -1, "threads": 1, **extra}
    return [Parameter(k, value=v) for k, v in values.items()]
