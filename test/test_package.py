"""The package builds with real ``colcon build`` and runs from its install space, as users
install it in a ROS 2 workspace."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
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


def test_package_xml_is_format_3_ament_python_with_runtime_rosdeps():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "lowlight_perception"
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for e in root.findall("exec_depend")}
    assert {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "python3-numpy"} <= deps
    assert (REPO / "resource" / "lowlight_perception").is_file()
    assert "lib/lowlight_perception" in (REPO / "setup.cfg").read_text()


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
    build = subprocess.run(
        [str(colcon), "build", "--base-paths", "src"],
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
        f". {ws / 'install' / 'setup.sh'} && {exe} --version && {exe} --help"
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
def test_installed_perception_node_serves_a_frame_and_stops_on_sigint(installed, tmp_path):
    import rclpy
    from ros_harness import Probe, Spinner, domain_id, header, new_context

    from lowlight_perception.models.export import export_onnx, random_init_model
    from lowlight_perception.ros.codecs import numpy_to_image

    ws, prefix, env = installed
    model = tmp_path / "tiny.onnx"
    export_onnx(
        random_init_model("lisu-tiny"), model, camera_size=(160, 120), net_size=(96, 64), frames=1
    )
    domain = domain_id()
    env = {
        **env,
        "ROS_DOMAIN_ID": str(domain),
        "FASTDDS_DEFAULT_PROFILES_FILE": os.environ["FASTDDS_DEFAULT_PROFILES_FILE"],
    }
    exe = prefix / "lib" / "lowlight_perception" / "perception_node"
    cmd = (
        f". {ws / 'install' / 'setup.sh'} && exec {exe} --ros-args -p model_path:={model} "
        "-p device:=-1 -p use_depth:=false"
    )
    node = subprocess.Popen(
        ["bash", "-c", cmd], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    context = new_context(domain)
    probe = Probe(context, outputs=("labels",))
    spinner = Spinner(context, probe)
    try:
        probe.wait_connected(timeout=60)
        frame = np.random.default_rng(0).integers(0, 60, (120, 160, 3), np.uint8)
        for i in range(20):
            probe.color.publish(numpy_to_image(frame, "rgb8", header(i)))
            if probe.wait_for("labels", 1, timeout=0.5):
                break
        assert probe.count("labels") >= 1, "the installed node answered no frame"
        node.send_signal(signal.SIGINT)
        out, _ = node.communicate(timeout=30)
    finally:
        if node.poll() is None:
            node.kill()
        spinner.stop()
        probe.destroy_node()
        rclpy.shutdown(context=context)
    assert node.returncode == 0, out
    assert "Traceback" not in out, out
    assert "configured: lisu-tiny on onnxruntime" in out
