"""Replay a rosbag2 recording through the lowlight_perception node on the bag's clock.

    ros2 launch lowlight_perception replay.launch.py bag:=/data/dark_corridor rviz:=true
    ros2 launch lowlight_perception replay.launch.py bag:=/data/run1 rate:=0.5 loop:=true \
        model:=lisu_small.onnx

Runs ``ros2 bag play <bag> --clock`` and includes lowlight_perception.launch.py with
use_sim_time:=true and camera:=false, so the node's arguments (model, backend, namespace,
params_file, rviz) are declared once, there, and pass straight through from this command line.
The bag must hold the topics of lowlight_perception/ros/interface.py (realsense-ros names);
remap them otherwise.
"""

import os

from ament_index_python.packages import get_package_share_directory

# ruff sorts this apart: this repository's launch/ directory looks first-party to it
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    IncludeLaunchDescription,
    OpaqueFunction,
)
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

PACKAGE = "lowlight_perception"


def _bag_play(context):
    """``ros2 bag play``; the bag goes before ``--clock``, whose value is optional."""
    cmd = [
        "ros2",
        "bag",
        "play",
        LaunchConfiguration("bag").perform(context),
        "--clock",
        "--rate",
        LaunchConfiguration("rate").perform(context),
    ]
    if LaunchConfiguration("loop").perform(context).strip().lower() in ("true", "1"):
        cmd.append("--loop")
    return [ExecuteProcess(cmd=cmd, name="bag_play", output="screen")]


def generate_launch_description():
    main = os.path.join(
        get_package_share_directory(PACKAGE), "launch", "lowlight_perception.launch.py"
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument("bag", description="rosbag2 directory (or file) to play"),
            DeclareLaunchArgument(
                "rate", default_value="1.0", description="playback rate (ros2 bag play --rate)"
            ),
            DeclareLaunchArgument(
                "loop", default_value="false", description="loop the bag (ros2 bag play --loop)"
            ),
            OpaqueFunction(function=_bag_play),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(main),
                launch_arguments={"use_sim_time": "true", "camera": "false"}.items(),
            ),
        ]
    )
