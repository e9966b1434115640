"""The package builds with real ``colcon build`` and runs from its install space, as users
install it in a ROS 2 workspace."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import REPO

SKIP = shutil.ignore_patterns(
    ".venv",
    ".git",
    "build",
    "install",
    "log",
    "out",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "*.egg-info",
)


# What `rosdep install --from-paths src` can resolve, read from ros/rosdistro (master 8468e88c,
# 2026-08-22). ROS packages released in BOTH humble/distribution.yaml and jazzy/
# distribution.yaml (rcl_interfaces repo: rcl_interfaces, lifecycle_msgs; common_interfaces:
# std_msgs, sensor_msgs, diagnostic_msgs, visualization_msgs; vision_msgs 4.1.1; ament_index;
# launch; launch_ros; rclpy) and rosdep keys of rosdep/python.yaml (python3-numpy l.5923,
# python3-yaml l.9553, python3-pil l.6405, python3-tqdm l.9009, python3-matplotlib l.5437,
# python3-pytest l.7446, python3-onnxruntime-pip l.6056 and python3-rosbags-pip l.7996, both
# "ubuntu: pip: packages: [...]": no apt package exists for either; python3-pyrealsense2-pip
# l.7175, "'*': pip: packages: [pyrealsense2]") and of rosdep/base.yaml (libusb-1.0 l.7590:
# ubuntu/debian libusb-1.0-0; not "libusb", which is libusb 0.1).
ROSDISTRO_KEYS = {
    "rclpy", "rcl_interfaces", "std_msgs", "sensor_msgs", "diagnostic_msgs",
    "visualization_msgs", "lifecycle_msgs", "vision_msgs", "ament_index_python", "launch",
    "launch_ros", "python3-numpy", "python3-yaml", "python3-pil", "python3-tqdm",
    "python3-matplotlib", "python3-pytest", "python3-onnxruntime-pip", "python3-rosbags-pip",
    "python3-pyrealsense2-pip", "libusb-1.0",
}  # fmt: skip
# Python module -> the key that installs it (the runtime only: torch, onnx, h5py, tensorrt
# and cuda are the pip extras for training and GPUs, documented in the README)
MODULE_KEYS = {
    "rclpy": "rclpy", "rcl_interfaces": "rcl_interfaces", "std_msgs": "std_msgs",
    "sensor_msgs": "sensor_msgs", "diagnostic_msgs": "diagnostic_msgs",
    "lifecycle_msgs": "lifecycle_msgs", "vision_msgs": "vision_msgs",
    "ament_index_python": "ament_index_python", "launch": "launch", "launch_ros": "launch_ros",
    "numpy": "python3-numpy", "yaml": "python3-yaml", "PIL": "python3-pil",
    "tqdm": "python3-tqdm", "matplotlib": "python3-matplotlib",
    "onnxruntime": "python3-onnxruntime-pip", "rosbags": "python3-rosbags-pip",
    "pyrealsense2": "python3-pyrealsense2-pip",
}  # fmt: skip
# libusb_package: the pip stand-in for the libusb-1.0 key (the realsense extra)
PIP_EXTRAS_ONLY = {"torch", "onnx", "h5py", "tensorrt", "cuda", "libusb_package"}


def _imported_modules() -> set[str]:
    import ast

    found = set()
    files = [*(REPO / "lowlight_perception").rglob("*.py"), *(REPO / "launch").glob("*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"lowlight_perception"}


def test_package_xml_is_format_3_ament_python_with_runtime_rosdeps():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "lowlight_perception"
    assert root.find("export/build_type").text == "ament_python"
    assert (REPO / "resource" / "lowlight_perception").is_file()
    assert "lib/lowlight_perception" in (REPO / "setup.cfg").read_text()
    keys = {e.text for e in root if e.tag.endswith("depend")}
    assert keys <= ROSDISTRO_KEYS, f"not resolvable by rosdep: {keys - ROSDISTRO_KEYS}"
    deps = {e.text for e in root.findall("exec_depend")}
    imported = _imported_modules()
    assert imported - PIP_EXTRAS_ONLY <= set(MODULE_KEYS), imported - set(MODULE_KEYS)
    needed = {MODULE_KEYS[m] for m in imported - PIP_EXTRAS_ONLY}
    assert needed <= deps, f"imported but not in package.xml: {needed - deps}"


def test_each_tensorrt_extra_pairs_tensorrt_and_cuda_python_of_one_cuda_major(setup_kwargs):
    """tensorrt-cuXY wheels carry CUDA XY libraries, cuda-python's major is its CUDA runtime's:
    a mismatch (cuda-python>=12 resolving to 13 next to tensorrt-cu12) makes CUDA report an
    insufficient driver, and TensorRT is silently unavailable. TensorRT 10 only (11 removed
    the FP16 builder flag); cuda.bindings.runtime exists from cuda-python 12.6."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    extras = setup_kwargs["extras_require"]
    assert "tensorrt" not in extras  # one way: the extra names its CUDA major
    for major in (12, 13):
        reqs = {r.name: r.specifier for r in map(Requirement, extras[f"tensorrt-cu{major}"])}
        assert set(reqs) == {f"tensorrt-cu{major}", "cuda-python"}
        assert Version("10.16") in reqs[f"tensorrt-cu{major}"]
        assert Version("11.0") not in reqs[f"tensorrt-cu{major}"]
        cuda = reqs["cuda-python"]
        assert Version(f"{major}.9") in cuda and Version(f"{major + 1}.0") not in cuda
        assert Version(f"{major - 1}.9") not in cuda and Version("12.5") not in cuda


def test_package_xml_and_setup_py_versions_agree(setup_kwargs):
    from lowlight_perception import __version__

    root = ET.parse(REPO / "package.xml").getroot()
    assert root.findtext("version") == setup_kwargs["version"] == __version__


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The package built by real ``colcon build`` in a fresh workspace: (workspace, prefix, env)."""
    colcon = Path(sys.executable).parent / "colcon"
    if not colcon.exists():
        pytest.skip("colcon is not installed in this environment (pip install '.[test]')")
    ws = tmp_path_factory.mktemp("ws")
    shutil.copytree(REPO, ws / "src" / "lowlight_perception", ignore=SKIP)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("LOWLIGHT_SHARE_DIR", None)
    build = subprocess.run(  # the README's "In a ROS 2 workspace" commands, as written
        [str(colcon), "build", "--packages-select", "lowlight_perception"],
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return ws, ws / "install" / "lowlight_perception", env


@pytest.mark.slow
def test_colcon_build_installs_a_runnable_lowlight(installed, tmp_path):
    ws, prefix, env = installed
    exe = prefix / "lib" / "lowlight_perception" / "lowlight"  # where `ros2 run` looks
    assert os.access(exe, os.X_OK)
    assert os.access(prefix / "lib" / "lowlight_perception" / "perception_node", os.X_OK)
    share = prefix / "share" / "lowlight_perception"
    for path in (
        "package.xml",
        "config/classes.yaml",
        "config/nyuv2_13_classes.yaml",
        "config/params.yaml",
        "config/lowlight.rviz",
        "config/fastdds_large_images.xml",
        "launch/lowlight_perception.launch.py",
        "launch/replay.launch.py",
    ):
        assert (share / path).is_file(), path
    assert (prefix / "share/ament_index/resource_index/packages/lowlight_perception").is_file()

    # run the installed executable from the install space, away from the source tree
    work = tmp_path / "elsewhere"
    work.mkdir()
    script = (
        f"source {ws / 'install' / 'setup.bash'} && {exe} --version && {exe} --help"
        f" && {exe} synth --out ds --views 2 --size 32x24 --workers 1"
    )
    run = subprocess.run(
        ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    version = "".join(run.stdout.splitlines())  # argparse wraps long version lines
    assert f"({prefix}" in version, "the installed copy must be the one that runs"
    assert "synth" in run.stdout and "wrote 2 views" in run.stdout
    assert (work / "ds" / "train_lbl").is_dir()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("ros_args", "stop"),
    [((), signal.SIGTERM), (("--ros-args", "-p", "backend:=onnxruntime"), signal.SIGINT)],
    ids=["no-arguments-sigterm", "backend-onnxruntime-sigint"],
)
def test_installed_node_with_defaults_serves_a_d435i_stream_in_another_process(
    installed, ros_args, stop
):
    """perception_node as `ros2 run` starts it, with no parameters (or only
    backend:=onnxruntime) and no Fast DDS variable set: the shipped model on the CPU answers
    640x480 colour + aligned depth from this process, keeps answering after a future stamp and
    a second pass of the same frames, and stops cleanly on a signal while frames stream in."""
    import threading

    import rclpy
    from ros_harness import Frames, Probe, Spinner, domain_id, new_context

    ws, prefix, env = installed
    domain = domain_id()
    env = {**env, "ROS_DOMAIN_ID": str(domain)}
    for name in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
        env.pop(name, None)  # the node selects the large-image profile for itself
    exe = prefix / "lib" / "lowlight_perception" / "perception_node"
    cmd = f". {ws / 'install' / 'setup.sh'} && exec {exe} {' '.join(ros_args)}"
    node = subprocess.Popen(
        ["bash", "-c", cmd], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    context = new_context(domain)
    probe = Probe(context, outputs=("labels",))
    spinner = Spinner(context, probe)
    frames = Frames((640, 480))
    streaming = threading.Event()

    def send(i: int) -> None:
        probe.info.publish(frames.camera_info(i))
        probe.depth.publish(frames.depth(i))
        probe.color.publish(frames.color(i))

    def served(indices) -> int:
        answered = 0
        for i in indices:
            before = probe.count("labels")
            send(i)
            answered += probe.wait_for("labels", before + 1, timeout=5)
        return answered

    def stream() -> None:
        i = 10_000
        while streaming.is_set():
            send(i)
            i += 1
            time.sleep(1 / 30)

    try:
        probe.wait_connected(timeout=60)
        time.sleep(1.0)
        assert served(range(5)) == 5, "the node with defaults answered no 640x480 frame"
        assert served([30 * 3600]) == 1  # one frame stamped an hour ahead
        assert served(range(5, 10)) == 5, "frames after a future stamp were blocked"
        assert served(range(10)) == 10, "a second pass of the same frames was blocked"
        streaming.set()
        thread = threading.Thread(target=stream, daemon=True)
        thread.start()
        time.sleep(1.0)
        node.send_signal(stop)  # while frames stream in: the worker is mid-frame
        out, _ = node.communicate(timeout=30)
    finally:
        streaming.clear()
        if node.poll() is None:
            node.kill()
        spinner.stop()
        probe.destroy_node()
        rclpy.shutdown(context=context)
    assert node.returncode == 0, out
    for bad in ("Traceback", "RCLError", "context is invalid", "deprecated"):
        assert bad not in out, out
    assert "Fast DDS profile for camera-size images: FASTDDS_DEFAULT_PROFILES_FILE=" in out
    assert "configured: lisu-small on onnxruntime (cpu" in out
    assert "frames of any size" in out
