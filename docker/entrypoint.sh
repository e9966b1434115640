#!/usr/bin/env bash
# Entrypoint of the lowlight_perception images (docker/Dockerfile.desktop, docker/Dockerfile.jetson).
#
#   docker run ... IMAGE model:=lisu_small_procedural.onnx camera:=true   -> ros2 launch with these
#   docker run ... IMAGE lowlight --help                                   -> runs that command
#
# Why: `docker run` arguments become launch arguments, so the image is used like
# `ros2 launch lowlight_perception lowlight_perception.launch.py ...`; anything else (no ':=' in
# the first argument) runs as a command in the same sourced environment, with the package's
# `lowlight` and `perception_node` on PATH.
set -e

# `--`: the setup scripts must not parse this script's arguments
# shellcheck disable=SC1090,SC1091
source "/opt/ros/${ROS_DISTRO:?ROS_DISTRO is not set}/setup.bash" --
# shellcheck disable=SC1091
source /ws/install/setup.bash --
export PATH="/ws/install/lowlight_perception/lib/lowlight_perception:${PATH}"

# Camera-size images between processes need the shipped Fast DDS profile in EVERY process, the
# camera driver included (config/fastdds_large_images.xml says why). Fast DDS 3 (Kilted on) reads
# FASTDDS_DEFAULT_PROFILES_FILE; Fast DDS 2 (Humble, Jazzy) reads FASTRTPS_DEFAULT_PROFILES_FILE.
# A value given with `docker run -e` wins; an empty one means Fast DDS defaults.
profile=/ws/install/lowlight_perception/share/lowlight_perception/config/fastdds_large_images.xml
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE-${profile}}"
case "${ROS_DISTRO}" in
    humble | jazzy)
        export FASTRTPS_DEFAULT_PROFILES_FILE="${FASTRTPS_DEFAULT_PROFILES_FILE-${FASTDDS_DEFAULT_PROFILES_FILE}}"
        ;;
esac

if [ "$#" -eq 0 ] || [[ "$1" == *:=* ]]; then
    exec ros2 launch lowlight_perception lowlight_perception.launch.py "$@"
fi
exec "$@"
