"""Launch the lowlight_perception node, optionally with a RealSense camera and RViz.

    ros2 launch lowlight_perception lowlight_perception.launch.py model:=lisu_small.onnx
    ros2 launch lowlight_perception lowlight_perception.launch.py camera:=true rviz:=true

Parameters come from ``params_file`` (default: the installed config/params.yaml). ``model`` and
``backend`` override ``model_path`` and ``backend`` only when given, so a custom params file
keeps its own values otherwise. The node's parameter and topic names are defined in
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
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

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
        Node(
            package=PACKAGE,
            executable="perception_node",
            name=NODE_NAME,
            namespace=LaunchConfiguration("namespace"),
            parameters=[
                LaunchConfiguration("params_file"),
                {**given, "use_sim_time": LaunchConfiguration("use_sim_time")},
            ],
            output="screen",
            emulate_tty=True,
        )
    ]


def generate_launch_description():
    # Resolved only when camera:=true, so realsense2_camera is needed only then.
    realsense = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare("realsense2_camera"), "launch", "rs_launch.py"])
        ),
        launch_arguments={
            # argument names as declared by realsense-ros 4.5x rs_launch.py; its default
            # camera_namespace/camera_name (camera/camera) give the topics the node subscribes to
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
                "use_sim_time",
                default_value="false",
                description="use /clock (true when replaying a bag)",
            ),
            DeclareLaunchArgument(
                "fastdds_profile",
                default_value=os.path.join(SHARE, "config", "fastdds_large_images.xml"),
                description="Fast DDS profile for camera-size images, set for every process "
                "started here (empty: Fast DDS defaults, which lose most best-effort 640x480 "
                "frames between processes)",
            ),
            *(  # Fast DDS 3 (Kilted) reads the first name, Fast DDS 2 (Humble, Jazzy) the second
                SetEnvironmentVariable(
                    name,
                    LaunchConfiguration("fastdds_profile"),
                    condition=IfCondition(
                        PythonExpression(["'", LaunchConfiguration("fastdds_profile"), "' != ''"])
                    ),
                )
                for name in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
            ),
            realsense,
            OpaqueFunction(function=_perception_node),
            rviz,
        ]
    )
