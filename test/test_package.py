"""The package builds with real ``colcon build`` and runs from its install space, as users
install it in a ROS 2 workspace."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


def test_package_xml_is_format_3_ament_python_with_runtime_rosdeps():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "lowlight_perception"
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for e in root.findall("exec_depend")}
    assert {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "python3-numpy"} <= deps
    assert (REPO / "resource" / "lowlight_perception").is_file()
    assert "lib/lowlight_perception" in (REPO / "setup.cfg").read_text()


@pytest.mark.slow
def test_colcon_build_installs_a_runnable_lowlight(tmp_path):
    colcon = Path(sys.executable).parent / "colcon"
    if not colcon.exists():
        pytest.skip("colcon is not installed in this environment (pip install '.[test]')")
    src = tmp_path / "ws" / "src" / "lowlight_perception"
    shutil.copytree(REPO, src, ignore=SKIP)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("LOWLIGHT_SHARE_DIR", None)
    build = subprocess.run(
        [str(colcon), "build", "--base-paths", "src"],
        cwd=tmp_path / "ws",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    prefix = tmp_path / "ws" / "install" / "lowlight_perception"
    exe = prefix / "lib" / "lowlight_perception" / "lowlight"  # where `ros2 run` looks
    assert os.access(exe, os.X_OK)
    share = prefix / "share" / "lowlight_perception"
    for path in ("package.xml", "config/classes.yaml", "config/nyuv2_13_classes.yaml"):
        assert (share / path).is_file(), path
    assert (prefix / "share/ament_index/resource_index/packages/lowlight_perception").is_file()

    # run the installed executable from the install space, away from the source tree
    work = tmp_path / "elsewhere"
    work.mkdir()
    script = (
        f". {tmp_path / 'ws' / 'install' / 'setup.sh'} && {exe} --version && {exe} --help"
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
