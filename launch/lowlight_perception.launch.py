"""Launch the lowlight_perception node, optionally with a RealSense camera and RViz.

    ros2 launch lowlight_perception lowlight_perception.launch.py model:=lisu_small.onnx
    ros2 launch lowlight_perception lowlight_perception.launch.py camera:=true rviz:=true

Parameters come from ``params_file`` (default: the installed config/params.yaml, whose root key
``/**/lowlight_perception`` matches the node under any ``namespace``). ``model`` and ``backend``
override ``model_path`` and ``backend`` only when given, so a custom params file keeps its own
values otherwise. The node is a launch_ros ``LifecycleNode`` (its state transitions are launch
events: replay.launch.py starts the bag player on "active"); ``autostart:=false`` leaves the
transitions to launch or ``ros2 lifecycle``. The node's parameter and topic names are defined in
lowlight_perception/ros/interface.py; test/test_launch_config.py checks this file against it
(``launch`` is not importable there, so the test reads this file with ``ast``).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    IncludeLaunchDescription,
    OpaqueFunction,
    SetEnvironmentVariable,
)
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from lowlight_perception.fastdds import OPT_OUT, profile_variable

PACKAGE = "lowlight_perception"
NODE_NAME = "lowlight_perception"  # lowlight_perception.ros.interface.NODE_NAME
SHARE = get_package_share_directory(PACKAGE)


def _perception_node(context):
    """The node, with ``model``/``backend`` overriding the params file only when non-empty."""
    overrides = {
        "model_path": LaunchConfiguration("model").perform(context),
        "backend": LaunchConfiguration("backend").perform(context),
    }
    given = {  # value_type=str: a path such as "1.onnx" or "on" must not turn into a number/bool
        name: ParameterValue(value, value_type=str) for name, value in overrides.items() if value
    }
    return [
        LifecycleNode(  # name and namespace are required arguments on Humble and Jazzy
            package=PACKAGE,
            executable="perception_node",
            name=NODE_NAME,
            namespace=LaunchConfiguration("namespace"),
            parameters=[
                LaunchConfiguration("params_file"),
                {
                    **given,
                    "use_sim_time": LaunchConfiguration("use_sim_time"),
                    "autostart": LaunchConfiguration("autostart"),
                },
            ],
            output="screen",
            emulate_tty=True,
        )
    ]


def _fastdds_profile(context):
    """The one variable this machine's Fast DDS reads (3: FASTDDS_..., 2 on Humble and Jazzy:
    FASTRTPS_...), or, for ``none``, the node's opt-out so it keeps Fast DDS defaults too
    (``ros2 launch`` refuses an empty ``name:=``)."""
    value = LaunchConfiguration("fastdds_profile").perform(context).strip()
    if value.lower() in ("", "none"):
        return [SetEnvironmentVariable(OPT_OUT, "none")]
    return [SetEnvironmentVariable(profile_variable(), value)]


def generate_launch_description():
    # Resolved only when camera:=true, so realsense2_camera is needed only then.
    realsense = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare("realsense2_camera"), "launch", "rs_launch.py"])
        ),
        launch_arguments={
            # names as declared by realsense2_camera/launch/rs_launch.py of realsense-ros 4.58.3
            # (what rosdistro releases for Humble and Jazzy; 4.54 and older called the profiles
            # rgb_camera.profile / depth_module.profile, and rs_launch.py ignores unknown names);
            # camera/camera gives the topics the node subscribes to
            "camera_namespace": "camera",
            "camera_name": "camera",
            "align_depth.enable": "true",
            "rgb_camera.color_profile": "640x480x30",
            "depth_module.depth_profile": "640x480x30",
        }.items(),
        condition=IfCondition(LaunchConfiguration("camera")),
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", os.path.join(SHARE, "config", "lowlight.rviz")],
        parameters=[{"use_sim_time": LaunchConfiguration("use_sim_time")}],
        condition=IfCondition(LaunchConfiguration("rviz")),
        output="screen",
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "model",
                default_value="",
                description="model_path override: .onnx, .engine/.plan or .pt "
                "(empty: keep params_file's)",
            ),
            DeclareLaunchArgument(
                "backend",
                default_value="",
                description="backend override: auto, tensorrt, onnxruntime or torch "
                "(empty: keep params_file's)",
            ),
            DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
            DeclareLaunchArgument(
                "params_file",
                default_value=os.path.join(SHARE, "config", "params.yaml"),
                description="parameters YAML for the node",
            ),
            DeclareLaunchArgument(
                "camera",
                default_value="false",
                description="also start realsense2_camera (aligned depth, 640x480 at 30 Hz)",
            ),
            DeclareLaunchArgument(
                "rviz", default_value="false", description="also start RViz2 (lowlight.rviz)"
            ),
            DeclareLaunchArgument(
                "autostart",
                default_value="true",
                description="the node configures and activates itself (false: launch or "
                "ros2 lifecycle drives it)",
            ),
            DeclareLaunchArgument(
                "use_sim_time",
                default_value="false",
                description="use /clock (true when replaying a bag)",
            ),
            DeclareLaunchArgument(
                "fastdds_profile",
                default_value=os.path.join(SHARE, "config", "fastdds_large_images.xml"),
                description="Fast DDS profile for camera-size images, set for every process "
                "started here (none: Fast DDS defaults, which lose most best-effort 640x480 "
                "frames between processes)",
            ),
            OpaqueFunction(function=_fastdds_profile),  # before any process below starts
            realsense,
            OpaqueFunction(function=_perception_node),
            rviz,
        ]
    )
