"""The shipped Fast DDS profile for camera-size images, and the one variable that selects it.

Why: default Fast DDS passes a sample through shared memory only if it fits its 512 KB segment;
a 640x480 rgb8 frame does not, and over fragmented UDP a best-effort reader lost nearly every
frame between processes (config/fastdds_large_images.xml). The variable that names a profile
file depends on the Fast DDS major version: Fast DDS 3 (Kilted and later) reads
``FASTDDS_DEFAULT_PROFILES_FILE`` and warns that ``FASTRTPS_DEFAULT_PROFILES_FILE`` is
deprecated; Fast DDS 2 (Humble, Jazzy) reads only ``FASTRTPS_DEFAULT_PROFILES_FILE``
(eProsima/Fast-DDS XMLParserCommon.cpp: ``DEFAULT_FASTDDS_ENV_VARIABLE`` in 3.x,
``DEFAULT_FASTRTPS_ENV_VARIABLE`` in 2.x). So exactly one is set, by version.

ROS-free: the node, the replay tool, the benchmarks and the launch files use it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

from .config import share_dir

VARIABLES = {3: "FASTDDS_DEFAULT_PROFILES_FILE", 2: "FASTRTPS_DEFAULT_PROFILES_FILE"}
OPT_OUT = "LOWLIGHT_FASTDDS_PROFILE"
"""Set to ``none`` (or empty) to keep Fast DDS defaults in the node, or to another profile."""
FAST_DDS_2_DISTROS = ("humble", "iron", "jazzy")


def profile_path() -> Path:
    """config/fastdds_large_images.xml of this installation."""
    return share_dir() / "config" / "fastdds_large_images.xml"


def fastdds_major(prefixes: list[str] | None = None, distro: str | None = None) -> int:
    """The Fast DDS major version ROS 2 will load here: 3 if a prefix holds ``share/fastdds``
    (Fast DDS 3 renamed its package from fastrtps), 2 if one holds ``share/fastrtps``, else by
    ``$ROS_DISTRO`` (Humble, Iron and Jazzy ship Fast DDS 2), else 3.

    Args:
        prefixes: install prefixes to look in; default ``$AMENT_PREFIX_PATH`` and
            ``sys.prefix`` (where the PyPI ROS wheels install).
        distro: default ``$ROS_DISTRO``.
    """
    if prefixes is None:
        prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
        prefixes.append(sys.prefix)
    for prefix in prefixes:
        if (Path(prefix) / "share" / "fastdds").is_dir():
            return 3
        if (Path(prefix) / "share" / "fastrtps").is_dir():
            return 2
    distro = os.environ.get("ROS_DISTRO", "") if distro is None else distro
    return 2 if distro.lower() in FAST_DDS_2_DISTROS else 3


def profile_variable() -> str:
    """The environment variable this machine's Fast DDS reads its profile file from."""
    return VARIABLES[fastdds_major()]


def profile_env(path: str | Path | None = None) -> dict[str, str]:
    """``{variable: path}`` selecting ``path`` (default: the shipped profile) for a process."""
    return {profile_variable(): str(path or profile_path())}


def apply_default_profile(environ: MutableMapping[str, str] | None = None) -> str | None:
    """Select the shipped profile for this process unless the user chose otherwise.

    Nothing is changed when another RMW than Fast DDS is selected, when either profile
    variable is already set (the user's own profile, or an empty value for Fast DDS defaults),
    or when ``$LOWLIGHT_FASTDDS_PROFILE`` is ``none`` / empty; that variable may also name
    another profile file. Call before ``rclpy.init``: Fast DDS reads the variable when it
    creates the process's participant.

    Returns:
        One line to log saying what was set and how to opt out, or None if nothing was.
    """
    env = os.environ if environ is None else environ
    rmw = env.get("RMW_IMPLEMENTATION", "")
    if rmw and not rmw.startswith("rmw_fastrtps"):
        return None
    if any(name in env for name in VARIABLES.values()):
        return None
    chosen = env.get(OPT_OUT)
    if chosen is not None and chosen.strip().lower() in ("", "none"):
        return None
    path = Path(chosen) if chosen else profile_path()
    if not path.is_file():
        return f"Fast DDS profile {path} not found: running with Fast DDS defaults"
    variable = profile_variable()
    env[variable] = str(path)
    return (
        f"Fast DDS profile for camera-size images: {variable}={path} "
        f"(set {OPT_OUT}=none, or a profile variable yourself, to choose otherwise)"
    )
