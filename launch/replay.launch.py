"""Replay a rosbag2 recording through the lowlight_perception node on the bag's clock.

    ros2 launch lowlight_perception replay.launch.py bag:=/data/dark_corridor rviz:=true
    ros2 launch lowlight_perception replay.launch.py bag:=/data/run1 rate:=0.5 loop:=true \\
        model:=my_model.onnx

Includes lowlight_perception.launch.py with use_sim_time:=true, camera:=false and
autostart:=false, so the node's arguments (model, backend, namespace, params_file, rviz,
fastdds_profile) are declared once, there, and pass straight through from this command line.
Launch then drives the node: configure, activate on "inactive", and only on "active" it starts
``ros2 bag play <bag> --clock 100``, so no frame is played into a node still loading its model;
if configure fails (the node logs why), launch shuts down.
The player is created after the included file has set the Fast DDS profile variable (launch
visits entities depth-first and ExecuteProcess copies the environment when it is visited), and
``--delay`` gives discovery between player and node its time before the first message.
The bag must hold the topics of lowlight_perception/ros/interface.py (realsense-ros names);
remap them otherwise.

Event and action arguments are those of ros2/launch and ros2/launch_ros on both the humble and
jazzy branches: ``LifecycleNode`` emits ``StateTransition`` events (launch_ros/actions/
lifecycle_node.py), whose ``goal_state`` is the new state's label (rcl never fills
``transition``); ``ChangeState`` waits for the node's change_state service, so a transition
cannot be lost to discovery. ``ros2 bag play`` options: ros2/rosbag2 ros2bag/verb/play.py
(``--clock`` takes an optional value, so the bag goes before it; ``--delay`` must be > 0).
"""

import os

from ament_index_python.packages import get_package_share_directory

# ruff sorts this apart: this repository's launch/ directory looks first-party to it
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    IncludeLaunchDescription,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
    Shutdown,
)
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState, StateTransition
from lifecycle_msgs.msg import Transition

PACKAGE = "lowlight_perception"
NODE_NAME = "lowlight_perception"  # lowlight_perception.ros.interface.NODE_NAME


def _is_perception_node(action) -> bool:
    """Our LifecycleNode action, whatever namespace:= says (node_name is its full name)."""
    return str(getattr(action, "node_name", "")).rsplit("/", 1)[-1] == NODE_NAME


def _reached(state: str, start: str | None = None):
    def match(event) -> bool:
        return (
            isinstance(event, StateTransition)
            and event.goal_state == state
            and (start is None or event.start_state == start)
            and _is_perception_node(event.action)
        )

    return match


def _change(transition: int) -> EmitEvent:
    return EmitEvent(
        event=ChangeState(lifecycle_node_matcher=_is_perception_node, transition_id=transition)
    )


def _bag_play(context):
    """``ros2 bag play``, created when the node is active: the profile variable is set by then."""

    delay = LaunchConfiguration("delay").perform(context)
    cmd = [
        "ros2",
        "bag",
        "play",
        LaunchConfiguration("bag").perform(context),
        "--clock",
        "100",  # Hz, given explicitly: --clock takes an optional value
        "--rate",
        LaunchConfiguration("rate").perform(context),
        "--disable-keyboard-controls",
    ]
    if float(delay) > 0:
        cmd += ["--delay", delay]
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
            DeclareLaunchArgument(
                "delay",
                default_value="2.0",
                description="seconds between the player's start and its first message "
                "(discovery with the node; 0: none)",
            ),
            # handlers first: they must exist before the node reports its transitions
            RegisterEventHandler(
                OnStateTransition(
                    matcher=_reached("inactive"),
                    entities=[_change(Transition.TRANSITION_ACTIVATE)],
                    handle_once=True,
                )
            ),
            RegisterEventHandler(
                OnStateTransition(
                    matcher=_reached("active"),
                    entities=[
                        LogInfo(msg="lowlight_perception is active: playing the bag"),
                        OpaqueFunction(function=_bag_play),
                    ],
                    handle_once=True,  # a later deactivate / activate starts no second player
                )
            ),
            RegisterEventHandler(  # configure failed (the node logged why): nothing to play
                OnStateTransition(
                    matcher=_reached("unconfigured", start="configuring"),
                    entities=[Shutdown(reason="lowlight_perception could not configure")],
                    handle_once=True,
                )
            ),
            # not inside a GroupAction: its environment variable must outlive the include
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(main),
                launch_arguments={
                    "use_sim_time": "true",
                    "camera": "false",
                    "autostart": "false",
                }.items(),
            ),
            _change(Transition.TRANSITION_CONFIGURE),
        ]
    )
