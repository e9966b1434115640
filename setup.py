"""ament_python package definition: pip extras so each machine installs only what it needs."""

import os
import re
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "lowlight_perception"

ROS_WHEELS = [  # ROS 2 from PyPI, for machines without a ROS install (a sourced ROS wins)
    "ros-rclpy",
    "ros-sensor-msgs",
    "ros-std-msgs",
    "ros-diagnostic-msgs",
    "ros-visualization-msgs",
    "ros-rmw-fastrtps-cpp",
]


def version() -> str:
    """The one version: lowlight_perception/__init__.py's (package.xml's must agree; a test
    checks)."""
    init = os.path.join(os.path.dirname(os.path.abspath(__file__)), PACKAGE, "__init__.py")
    with open(init, encoding="utf-8") as f:
        return re.search(r'^__version__ = "([^"]+)"', f.read(), re.MULTILINE).group(1)


def share(subdir: str, pattern: str = "*") -> tuple[str, list[str]]:
    return (
        f"share/{PACKAGE}/{subdir}",
        [p for p in glob(f"{subdir}/{pattern}") if os.path.isfile(p)],
    )


setup(
    name=PACKAGE,
    version=version(),
    description="Low-light indoor semantic segmentation (LISU) for ROS 2 robots",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        share("config"),
        share("config/train"),
        share("launch"),
        share("models"),  # README.md and any exported .onnx placed there
    ],
    # The floors are what `make test` installs in its second leg (test/dependency_floors.py):
    # NumPy 1.26 is Jazzy's apt numpy and the Docker images' (NumPy 1 promotes differently);
    # rosbags 0.11.6 has Writer.abort and Stores.ROS2_KILTED.
    install_requires=[
        "numpy>=1.26",
        "pyyaml>=6.0",
        "pillow>=10.0",
        "tqdm>=4.60",
        "onnxruntime>=1.17",
        "rosbags>=0.11.6",
        "matplotlib>=3.7",  # evaluation plots
    ],
    extras_require={
        "train": ["torch>=2.4", "onnx>=1.16", "h5py>=3.8"],
        "ros": ROS_WHEELS,
        # Desktop GPUs (JetPack ships its own TensorRT): TensorRT 10 (11 removed the FP16 builder
        # flag) with the cuda-python of the same CUDA major as its libraries, or the runtime
        # reports an insufficient driver. cuda.bindings.runtime needs cuda-python >= 12.6;
        # TensorRT's first CUDA 13 wheels are 10.13.
        "tensorrt-cu12": ["tensorrt-cu12>=10,<11", "cuda-python>=12.6,<13"],
        "tensorrt-cu13": ["tensorrt-cu13>=10.13,<11", "cuda-python>=13,<14"],
        # `lowlight capture` (D435i): the pyrealsense2 wheel links libusb-1.0 without shipping
        # it; libusb-package provides one (Debian's libusb-1.0-0 serves as well)
        "realsense": ["pyrealsense2>=2.54", "libusb-package>=1.0.26"],
        "test": [
            "pytest>=8",
            "ruff>=0.6",
            "colcon-common-extensions",  # what ROS users have: --packages-select, setup.bash
            "ros-ament-package",
        ],
    },
    entry_points={
        "console_scripts": [
            "lowlight = lowlight_perception.tools.cli:main",
            "perception_node = lowlight_perception.ros.node:main",
        ],
    },
    zip_safe=False,
)
