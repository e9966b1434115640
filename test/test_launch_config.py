"""config/params.yaml, the launch files and config/lowlight.rviz agree with the node's interface.

`launch`, `launch_ros` and RViz are not installable here, so nothing is launched: the launch
files are read with ``ast`` (never imported), the YAML files with PyYAML, and every parameter,
topic, executable and file they name is checked against lowlight_perception.ros.interface and
setup.py. A renamed parameter or output then fails here instead of on a robot.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from lowlight_perception.ros.interface import (
    NODE_NAME,
    OUTPUTS,
    PARAMS,
    PARAMS_BY_NAME,
    PARAMS_KEY,
)
from lowlight_perception.topics import COLOR_TOPIC

PACKAGE = "lowlight_perception"
MAIN_LAUNCH = REPO / "launch" / "lowlight_perception.launch.py"
REPLAY_LAUNCH = REPO / "launch" / "replay.launch.py"
RVIZ = REPO / "config" / "lowlight.rviz"
# realsense-ros names its colour optical frame <camera_name>_color_optical_frame; COLOR_TOPIC is
# /<camera_namespace>/<camera_name>/color/image_raw.
COLOR_OPTICAL_FRAME = f"{COLOR_TOPIC.split('/')[2]}_color_optical_frame"
DISPLAY_CLASS = {
    "sensor_msgs/msg/Image": "rviz_default_plugins/Image",
    "sensor_msgs/msg/PointCloud2": "rviz_default_plugins/PointCloud2",
}


# --- config/params.yaml ------------------------------------------------------------------------


def _params_file() -> dict:
    data = yaml.safe_load((REPO / "config" / "params.yaml").read_text())
    # /**/lowlight_perception: rclpy (humble, jazzy: rclpy/src/rclpy/node.cpp) turns "/**" into
    # "(/\w+)*" and matches the node's full name, so any namespace; test_node.py checks it live
    assert list(data) == [PARAMS_KEY], "params.yaml must hold only the node's section"
    return data[PARAMS_KEY]["ros__parameters"]


def test_params_yaml_names_every_param_and_nothing_else():
    names = list(_params_file())
    assert len(names) == len(set(names))
    assert set(names) == {p.name for p in PARAMS}


@pytest.mark.parametrize("param", PARAMS, ids=lambda p: p.name)
def test_params_yaml_holds_the_default_with_its_type_in_range(param):
    value = _params_file()[param.name]
    # exact type: ROS parameters are typed (1 is not a double, true is not an integer)
    assert type(value) is type(param.default), (param.name, value)
    assert value == param.default
    if param.choices:
        assert value in param.choices
    if param.low is not None:
        assert value >= param.low
    if param.high is not None:
        assert value <= param.high


# --- launch files, read with ast ---------------------------------------------------------------


class LaunchFile:
    """A launch file's syntax tree with the few lookups the checks need."""

    def __init__(self, path: Path):
        self.tree = ast.parse(path.read_text(), filename=str(path))
        self.assigned: dict[str, list[ast.expr]] = {}  # name -> every value assigned to it
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self.assigned.setdefault(target.id, []).append(node.value)

    def calls(self, func: str) -> list[ast.Call]:
        """Every call of ``func`` (``Node(...)`` or ``actions.Node(...)``)."""
        return [
            node
            for node in ast.walk(self.tree)
            if isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == func)
                or (isinstance(node.func, ast.Attribute) and node.func.attr == func)
            )
        ]

    def value(self, node: ast.expr | None):
        """A literal, or a name assigned one literal in the module; None otherwise."""
        if node is None:
            return None
        if isinstance(node, ast.Name) and len(self.assigned.get(node.id, [])) == 1:
            node = self.assigned[node.id][0]
        try:
            return ast.literal_eval(node)
        except ValueError:
            return None

    def strings(self, node: ast.AST) -> set[str]:
        """String constants in ``node``, following names to what is assigned to them."""
        return {n.value for n in self._reach(node) if isinstance(n, ast.Constant)} - {None}

    def dict_keys(self, node: ast.AST) -> set[str]:
        """Literal keys of every dict literal reachable from ``node``."""
        keys = set()
        for n in self._reach(node):
            if isinstance(n, ast.Dict):
                for key in n.keys:
                    if key is None:  # {**other}: other's keys are reached through its name
                        continue
                    assert isinstance(key, ast.Constant), "parameter names must be literals"
                    keys.add(key.value)
        return keys

    def _reach(self, node: ast.AST):
        seen, todo = set(), [node]
        while todo:
            for n in ast.walk(todo.pop()):
                yield n
                if isinstance(n, ast.Name) and n.id not in seen:
                    seen.add(n.id)
                    todo.extend(self.assigned.get(n.id, []))

    def arguments(self) -> dict[str, ast.Call]:
        """DeclareLaunchArgument calls by argument name."""
        return {self.value(c.args[0]): c for c in self.calls("DeclareLaunchArgument")}

    def configurations(self) -> set[str]:
        """Names read with LaunchConfiguration(...)."""
        return {self.value(c.args[0]) for c in self.calls("LaunchConfiguration")}

    def include(self, needle: str) -> ast.Call:
        """The one IncludeLaunchDescription whose source names ``needle``."""
        found = [c for c in self.calls("IncludeLaunchDescription") if needle in self.strings(c)]
        assert len(found) == 1, f"expected one include of {needle}, found {len(found)}"
        return found[0]

    def launch_arguments(self, include: ast.Call) -> dict[str, str]:
        node = kwarg(include, "launch_arguments")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):  # {...}.items()
            node = node.func.value
        return self.value(node)


def kwarg(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def default(launch: LaunchFile, argument: str):
    return launch.value(kwarg(launch.arguments()[argument], "default_value"))


@pytest.fixture(scope="module")
def main() -> LaunchFile:
    return LaunchFile(MAIN_LAUNCH)


@pytest.fixture(scope="module")
def replay() -> LaunchFile:
    return LaunchFile(REPLAY_LAUNCH)


def _perception_node(launch: LaunchFile) -> ast.Call:
    """The node, as a launch_ros LifecycleNode: only that action turns the node's
    transition_event topic into launch StateTransition events (launch_ros humble and jazzy,
    launch_ros/actions/lifecycle_node.py), which replay.launch.py waits for."""
    nodes = [
        c for c in launch.calls("LifecycleNode") if launch.value(kwarg(c, "package")) == PACKAGE
    ]
    assert len(nodes) == 1
    assert not [c for c in launch.calls("Node") if launch.value(kwarg(c, "package")) == PACKAGE]
    return nodes[0]


def test_main_launch_starts_the_perception_node(main):
    node = _perception_node(main)
    assert main.value(kwarg(node, "executable")) == "perception_node"
    assert main.value(kwarg(node, "name")) == NODE_NAME
    assert main.value(kwarg(node, "output")) == "screen"
    assert main.value(kwarg(node, "emulate_tty")) is True
    assert "namespace" in main.strings(kwarg(node, "namespace"))


def test_main_launch_sets_only_declared_parameters(main):
    parameters = kwarg(_perception_node(main), "parameters")
    names = main.dict_keys(parameters)
    assert names <= set(PARAMS_BY_NAME) | {"use_sim_time"}, names - set(PARAMS_BY_NAME)
    assert {"model_path", "backend", "use_sim_time", "autostart"} <= names
    # the params file comes first, so the launch arguments override it
    assert isinstance(parameters, ast.List)
    assert "params_file" in main.strings(parameters.elts[0])


def test_main_launch_declares_its_arguments(main):
    declared = main.arguments()
    expected = {
        "model",
        "backend",
        "namespace",
        "params_file",
        "camera",
        "rviz",
        "use_sim_time",
        "fastdds_profile",
        "autostart",
    }
    assert set(declared) == expected
    # every process it starts gets the shipped large-image Fast DDS profile by default
    profile = main.strings(kwarg(declared["fastdds_profile"], "default_value"))
    assert {"config", "fastdds_large_images.xml"} <= profile
    assert (REPO / "config" / "fastdds_large_images.xml").is_file()
    # one variable, the one this machine's Fast DDS reads (no deprecation warning on Fast DDS 3),
    # or "none": the node's opt-out (ros2launch refuses an empty "name:=", api.py)
    assert {ast.unparse(c.args[0]) for c in main.calls("SetEnvironmentVariable")} == {
        "profile_variable()",
        "OPT_OUT",
    }
    top = (
        next(
            n
            for n in ast.walk(main.tree)
            if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "LaunchDescription"
        )
        .args[0]
        .elts
    )
    order = [ast.unparse(e) for e in top]
    profile = order.index("OpaqueFunction(function=_fastdds_profile)")
    assert profile < order.index("realsense") and profile < order.index(
        "OpaqueFunction(function=_perception_node)"
    ), "every process must start after the profile variable is set"
    assert main.configurations() <= set(declared), "LaunchConfiguration of an undeclared name"
    assert default(main, "autostart") == "true"
    for flag in ("camera", "rviz", "use_sim_time"):
        assert default(main, flag) == "false"
    # empty model/backend keep the params file's values: the defaults must be empty
    assert default(main, "model") == "" and default(main, "backend") == ""
    params_file = main.strings(kwarg(declared["params_file"], "default_value"))
    assert {"config", "params.yaml"} <= params_file


# Launch arguments declared by realsense2_camera/launch/rs_launch.py of realsense-ros 4.58.3
# (realsenseai/realsense-ros, branch r/4.58.3; the same file on ros2-master), the release
# rosdistro lists for Humble and Jazzy (humble/ and jazzy/distribution.yaml: realsense2_camera
# 4.58.3-1). rs_launch.py forwards only declared names; since 4.57 an unknown one merely prints
# "Parameter ... is not supported". 4.54 and older named the profiles rgb_camera.profile and
# depth_module.profile and had no camera_namespace.
RS_LAUNCH_4_58_ARGUMENTS = {
    "camera_name", "camera_namespace", "serial_no", "usb_port_id", "device_type", "config_file",
    "json_file_path", "initial_reset", "accelerate_gpu_with_glsl", "rosbag_filename",
    "rosbag_loop", "log_level", "output", "enable_color", "rgb_camera.color_profile",
    "rgb_camera.color_format", "rgb_camera.enable_auto_exposure", "enable_depth",
    "enable_infra", "enable_infra1", "enable_infra2", "depth_module.depth_profile",
    "depth_module.depth_format", "depth_module.infra_profile", "depth_module.infra_format",
    "depth_module.exposure", "depth_module.gain", "depth_module.enable_auto_exposure",
    "enable_sync", "enable_rgbd", "enable_gyro", "enable_accel", "unite_imu_method",
    "clip_distance", "diagnostics_period", "publish_tf", "tf_publish_rate", "pointcloud.enable",
    "pointcloud.ordered_pc", "align_depth.enable", "decimation_filter.enable",
    "spatial_filter.enable", "temporal_filter.enable", "hole_filling_filter.enable",
    "base_frame_id", "tf_prefix", "wait_for_device_timeout", "reconnect_timeout",
}  # fmt: skip


def test_main_launch_includes_realsense_with_aligned_640x480_depth(main):
    include = main.include("rs_launch.py")
    assert {"realsense2_camera", "launch", "rs_launch.py"} <= main.strings(include)
    passed = main.launch_arguments(include)
    assert set(passed) <= RS_LAUNCH_4_58_ARGUMENTS, set(passed) - RS_LAUNCH_4_58_ARGUMENTS
    assert passed == {
        "camera_namespace": "camera",
        "camera_name": "camera",
        "align_depth.enable": "true",
        "rgb_camera.color_profile": "640x480x30",
        "depth_module.depth_profile": "640x480x30",
    }
    # realsense-ros 4.58.3 names topics ~/<stream>/image_raw and ~/aligned_depth_to_<stream>/
    # image_raw under /<camera_namespace>/<camera_name> (realsense2_camera/src/
    # rs_node_setup.cpp): the node's default inputs
    assert COLOR_TOPIC == f"/{passed['camera_namespace']}/{passed['camera_name']}/color/image_raw"
    assert "camera" in main.strings(kwarg(include, "condition"))


def test_main_launch_starts_rviz_with_our_config(main):
    (rviz,) = [c for c in main.calls("Node") if main.value(kwarg(c, "package")) == "rviz2"]
    assert "-d" in main.strings(kwarg(rviz, "arguments"))
    assert {"config", RVIZ.name} <= main.strings(kwarg(rviz, "arguments"))
    assert "rviz" in main.strings(kwarg(rviz, "condition"))
    assert main.dict_keys(kwarg(rviz, "parameters")) == {"use_sim_time"}


def test_replay_plays_the_bag_with_clock_and_reuses_the_main_launch(replay, main):
    include = replay.include(MAIN_LAUNCH.name)
    passed = replay.launch_arguments(include)
    assert passed == {"use_sim_time": "true", "camera": "false", "autostart": "false"}
    assert set(passed) <= set(main.arguments())
    assert replay.calls("Node") == replay.calls("LifecycleNode") == [], (
        "the node is defined once, in the main launch file"
    )

    declared = replay.arguments()
    assert kwarg(declared["bag"], "default_value") is None, "bag is required"
    assert default(replay, "rate") == "1.0"
    assert default(replay, "loop") == "false"
    assert float(default(replay, "delay")) > 0
    assert replay.configurations() <= set(declared) | set(main.arguments())

    commands = [
        [replay.value(e) for e in n.elts]
        for n in ast.walk(replay.tree)
        if isinstance(n, ast.List) and n.elts and replay.value(n.elts[0]) == "ros2"
    ]
    assert len(commands) == 1
    cmd = commands[0]
    assert cmd[:3] == ["ros2", "bag", "play"] and "--clock" in cmd and "--rate" in cmd
    # ros2/rosbag2 humble and jazzy, ros2bag/verb/play.py: --clock is nargs='?' (the bag must
    # come before it, and an explicit rate removes the doubt); these options exist on both
    assert cmd[3] is None and cmd.index("--clock") > 3  # cmd[3] is the bag substitution
    assert cmd[cmd.index("--clock") + 1] == "100"
    assert "--disable-keyboard-controls" in cmd
    assert {"--delay", "--loop"} <= replay.strings(replay.tree)


def test_replay_starts_the_player_only_when_the_node_is_active(replay):
    """launch visits entities depth-first and ExecuteProcess copies os.environ when visited
    (ros2/launch humble and jazzy, launch/descriptions/executable.py): a player listed before
    the include would start without the Fast DDS profile, and before the node had its model.
    So: handlers, then the include, then configure; activate on "inactive"; the player is
    made by the "active" handler."""
    top = (
        next(
            n
            for n in ast.walk(replay.tree)
            if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "LaunchDescription"
        )
        .args[0]
        .elts
    )
    kinds = [ast.unparse(e.func) for e in top]
    first_include = kinds.index("IncludeLaunchDescription")
    assert kinds[:first_include].count("RegisterEventHandler") == 3
    assert ast.unparse(top[-1]) == "_change(Transition.TRANSITION_CONFIGURE)"
    handlers = {}
    for register in top[:first_include]:
        if ast.unparse(register.func) != "RegisterEventHandler":
            continue
        (on_transition,) = register.args
        assert ast.unparse(on_transition.func) == "OnStateTransition"
        state = replay.value(kwarg(on_transition, "matcher").args[0])
        assert replay.value(kwarg(on_transition, "handle_once")) is True
        handlers[state] = ast.unparse(kwarg(on_transition, "entities"))
    assert set(handlers) == {"inactive", "active", "unconfigured"}
    assert "Shutdown" in handlers["unconfigured"]  # configure failed: launch ends
    assert "TRANSITION_ACTIVATE" in handlers["inactive"]
    assert "OpaqueFunction(function=_bag_play)" in handlers["active"]
    (play,) = replay.calls("ExecuteProcess")  # only inside _bag_play
    bag_play = next(
        f for f in ast.walk(replay.tree) if isinstance(f, ast.FunctionDef) and f.name == "_bag_play"
    )
    assert play in list(ast.walk(bag_play))


# --- config/lowlight.rviz ----------------------------------------------------------------------


def _displays(displays: list[dict]):
    for display in displays:
        yield display
        yield from _displays(display.get("Displays", []))  # rviz_common/Group


@pytest.fixture(scope="module")
def rviz() -> dict:
    return yaml.safe_load(RVIZ.read_text())


def test_rviz_shows_our_topics_with_the_right_displays(rviz):
    expected = {COLOR_TOPIC: "rviz_default_plugins/Image"}
    expected |= {f"/{NODE_NAME}/{o.name}": DISPLAY_CLASS[o.msg_type] for o in OUTPUTS}
    shown = {}
    for display in _displays(rviz["Visualization Manager"]["Displays"]):
        if "Topic" not in display:
            continue
        topic = display["Topic"]
        assert isinstance(topic, dict), "rviz2 writes Topic as {Value, Depth, ... Policy}"
        assert topic["Value"] in expected, f"{topic['Value']} is not a topic of the node"
        assert display["Class"] == expected[topic["Value"]], topic["Value"]
        # a reliable subscriber receives from the node and realsense-ros (both reliable)
        assert topic["Reliability Policy"] == "Reliable"
        assert topic["History Policy"] == "Keep Last"
        shown[topic["Value"]] = display
    wanted = {COLOR_TOPIC} | {
        f"/{NODE_NAME}/{name}"
        for name in ("labels_color", "overlay", "reflectance", "confidence", "semantic_points")
    }
    assert wanted <= set(shown)
    cloud = shown[f"/{NODE_NAME}/semantic_points"]
    assert cloud["Color Transformer"] == "RGB8" and cloud["Position Transformer"] == "XYZ"


def test_rviz_fixed_frame_is_the_colour_optical_frame(rviz):
    assert rviz["Visualization Manager"]["Global Options"]["Fixed Frame"] == COLOR_OPTICAL_FRAME


# --- installation ------------------------------------------------------------------------------


def test_setup_installs_launch_and_config_files(setup_kwargs):
    installed = {f for _, files in setup_kwargs["data_files"] for f in files}
    for path in (MAIN_LAUNCH, REPLAY_LAUNCH, RVIZ, REPO / "config" / "params.yaml"):
        rel = path.relative_to(REPO).as_posix()
        assert rel in installed, f"{rel} is not installed"
        destination = [d for d, files in setup_kwargs["data_files"] if rel in files]
        assert destination == [f"share/{PACKAGE}/{Path(rel).parent.as_posix()}"]


def test_setup_installs_the_perception_node_executable(setup_kwargs):
    scripts = setup_kwargs["entry_points"]["console_scripts"]
    names = {s.split("=")[0].strip() for s in scripts}
    assert "perception_node" in names, "launch files start perception_node"
