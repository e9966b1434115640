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
    COLOR_TOPIC,
    NODE_NAME,
    OUTPUTS,
    PARAMS,
    PARAMS_BY_NAME,
)

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
    assert list(data) == [NODE_NAME], "params.yaml must hold only the node's section"
    return data[NODE_NAME]["ros__parameters"]


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
    nodes = [c for c in launch.calls("Node") if launch.value(kwarg(c, "package")) == PACKAGE]
    assert len(nodes) == 1
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
    assert {"model_path", "backend", "use_sim_time"} <= names
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
    }
    assert set(declared) == expected
    # every process it starts gets the shipped large-image Fast DDS profile by default
    profile = main.strings(kwarg(declared["fastdds_profile"], "default_value"))
    assert {"config", "fastdds_large_images.xml"} <= profile
    assert (REPO / "config" / "fastdds_large_images.xml").is_file()
    assert (
        "FASTDDS_DEFAULT_PROFILES_FILE"
        in (REPO / "launch" / "lowlight_perception.launch.py").read_text()
    )
    assert main.configurations() <= set(declared), "LaunchConfiguration of an undeclared name"
    for flag in ("camera", "rviz", "use_sim_time"):
        assert default(main, flag) == "false"
    # empty model/backend keep the params file's values: the defaults must be empty
    assert default(main, "model") == "" and default(main, "backend") == ""
    params_file = main.strings(kwarg(declared["params_file"], "default_value"))
    assert {"config", "params.yaml"} <= params_file


def test_main_launch_includes_realsense_with_aligned_640x480_depth(main):
    include = main.include("rs_launch.py")
    assert {"realsense2_camera", "launch", "rs_launch.py"} <= main.strings(include)
    assert main.launch_arguments(include) == {
        "align_depth.enable": "true",
        "rgb_camera.color_profile": "640x480x30",
        "depth_module.depth_profile": "640x480x30",
    }
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
    assert passed["use_sim_time"] == "true"
    assert set(passed) <= set(main.arguments())
    assert replay.calls("Node") == [], "the node is defined once, in the main launch file"

    declared = replay.arguments()
    assert kwarg(declared["bag"], "default_value") is None, "bag is required"
    assert default(replay, "rate") == "1.0"
    assert default(replay, "loop") == "false"
    assert replay.configurations() <= set(declared) | set(main.arguments())

    assert replay.calls("ExecuteProcess")
    commands = [
        [replay.value(e) for e in n.elts]
        for n in ast.walk(replay.tree)
        if isinstance(n, ast.List) and n.elts and replay.value(n.elts[0]) == "ros2"
    ]
    assert len(commands) == 1
    cmd = commands[0]
    assert cmd[:3] == ["ros2", "bag", "play"] and "--clock" in cmd and "--rate" in cmd
    # --clock takes an optional value: the bag must come before it, not after
    assert cmd[3] is None and cmd.index("--clock") > 3  # cmd[3] is the bag substitution


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
