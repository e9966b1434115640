"""docker/ names only files, launch arguments and executables that exist.

Docker cannot build or run images on CI machines, so none is built here. Instead the
Dockerfiles are read as text, compose.yaml as YAML and the entrypoint as bash (``bash -n``, then
run against a fake ROS install), and everything they copy, pass or start is checked against the
repository, setup.py and launch/lowlight_perception.launch.py (read with ``ast``, as in
test_launch_config.py). A renamed launch argument, config file or executable then fails here
instead of in a robot's container.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from test_launch_config import MAIN_LAUNCH, LaunchFile

PACKAGE = "lowlight_perception"
DOCKER = REPO / "docker"
ENTRYPOINT = DOCKER / "entrypoint.sh"
WS = "/ws"  # the images' colcon workspace; colcon's default isolated install layout below it
INSTALL = f"{WS}/install/{PACKAGE}"
SRC = f"src/{PACKAGE}"  # where the Dockerfiles copy the package, relative to WORKDIR /ws
DOCKERFILES = {  # file -> (ROS distro, base image prefix); docker/README.md says why
    "Dockerfile.desktop": ("jazzy", "nvcr.io/nvidia/tensorrt:25."),
    "Dockerfile.jetson": ("humble", "nvcr.io/nvidia/l4t-jetpack:r36."),
}
LAUNCH_ARG = re.compile(r"(?<![\w.$-])([A-Za-z_][\w.]*):=(\S*)")


@pytest.fixture(scope="module")
def declared() -> set[str]:
    return set(LaunchFile(MAIN_LAUNCH).arguments())


def installed(setup_kwargs: dict, rel: str) -> str:
    """Where colcon installs repository file ``rel`` (a data file) in the images."""
    (dest,) = [d for d, files in setup_kwargs["data_files"] if rel in files]
    return f"{INSTALL}/{dest}/{Path(rel).name}"


def console_scripts(setup_kwargs: dict) -> set[str]:
    return {s.split("=")[0].strip() for s in setup_kwargs["entry_points"]["console_scripts"]}


def interpolate(text: str) -> str:
    """Compose/shell ``${NAME:-default}`` -> default (``${NAME}`` -> ""), as with NAME unset."""
    return re.sub(r"\$\{\w+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", text)


def check_launch_args(text: str, declared: set[str]) -> list[tuple[str, str]]:
    """Every ``name:=value`` in ``text`` names a declared argument; .onnx models exist."""
    found = LAUNCH_ARG.findall(interpolate(text))
    for name, value in found:
        assert name in declared, f"{name}:= is not an argument of {MAIN_LAUNCH.name}"
        if value.endswith(".onnx"):
            assert (REPO / "models" / value).is_file(), f"model {value} is not in models/"
    return found


# --- Dockerfiles -------------------------------------------------------------------------------


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for line in path.read_text().splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.endswith("\\"):
            buf += text[:-1].rstrip() + " "
            continue
        op, _, rest = (buf + text).partition(" ")
        out.append((op.upper(), rest.strip()))
        buf = ""
    assert not buf, f"{path.name} ends inside a continued instruction"
    return out


def args_of(instrs, op: str) -> list[str]:
    return [rest for o, rest in instrs if o == op]


def arg_defaults(instrs) -> dict[str, str]:
    return dict(a.split("=", 1) for a in args_of(instrs, "ARG") if "=" in a)


def copies(instrs) -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY, options such as --chmod dropped."""
    out = []
    for rest in args_of(instrs, "COPY"):
        words = [w for w in shlex.split(rest) if not w.startswith("--")]
        out.append((words[:-1], words[-1]))
    return out


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_copies_existing_files_and_all_that_setup_py_installs(name, setup_kwargs):
    instrs = instructions(DOCKER / name)
    assert args_of(instrs, "WORKDIR") == [WS]
    copied = set()
    for sources, dest in copies(instrs):
        for src in sources:
            assert (REPO / src).exists(), f"{name}: COPY {src}: no such file in the repository"
            copied.add(Path(src).parts[0])
        if dest != "/entrypoint.sh":
            assert dest.rstrip("/").startswith(SRC), f"{name}: COPY to {dest}, not {SRC}"
    # what colcon needs to build and install the package; never the whole context (.venv, out/)
    needed = {"package.xml", "setup.py", "setup.cfg"}
    needed |= {p.split(".")[0] for p in setup_kwargs["packages"]}
    needed |= {Path(f).parts[0] for _, files in setup_kwargs["data_files"] for f in files}
    assert needed <= copied, f"{name} does not copy {sorted(needed - copied)}"
    assert "." not in copied and ".venv" not in copied


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_builds_the_package_with_colcon_on_its_ros_distro(name, setup_kwargs):
    distro, base = DOCKERFILES[name]
    instrs = instructions(DOCKER / name)
    defaults = arg_defaults(instrs)
    assert args_of(instrs, "FROM") == ["${BASE_IMAGE}"]
    assert defaults["BASE_IMAGE"].startswith(base)
    assert defaults["ROS_DISTRO"] == distro
    assert any(e.startswith("ROS_DISTRO=${ROS_DISTRO}") for e in args_of(instrs, "ENV"))
    run = " ".join(args_of(instrs, "RUN"))
    for needed in (
        'ros-${ROS_DISTRO}-ros-base"',
        'ros-${ROS_DISTRO}-realsense2-camera"',  # camera:=true includes its rs_launch.py
        "python3-colcon-common-extensions",
        "rosdep install --from-paths src --ignore-src",
        'source "/opt/ros/${ROS_DISTRO}/setup.bash" && colcon build',
    ):
        assert needed in run, f"{name} lacks {needed!r}"
    # what pip installs before rosdep (its -pip keys are skipped: rosdep would put the CPU
    # onnxruntime over onnxruntime-gpu), and CUDA 12 bindings like the base
    assert '--skip-keys "python3-onnxruntime-pip python3-rosbags-pip"' in run
    (pip,) = [r for r in args_of(instrs, "RUN") if "pip install" in r]
    assert re.search(r"\bonnxruntime(-gpu)?\b", pip) and "rosbags" in pip
    assert '"cuda-python>=12.6,<13"' in pip
    # the build-time smoke check starts executables that setup.py installs
    started = set(re.findall(rf"ros2 run {PACKAGE} (\S+)", run))
    started |= set(re.findall(r"grep -q (\S+)", run))
    assert started and started <= console_scripts(setup_kwargs), started


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_enters_through_the_entrypoint_with_declared_arguments(name, declared):
    instrs = instructions(DOCKER / name)
    (dest,) = [d for sources, d in copies(instrs) if sources == ["docker/entrypoint.sh"]]
    assert [json.loads(e) for e in args_of(instrs, "ENTRYPOINT")] == [[dest]]
    (cmd,) = [json.loads(c) for c in args_of(instrs, "CMD")]
    assert check_launch_args(" ".join(cmd), declared), "CMD should be launch arguments"


# --- entrypoint.sh -----------------------------------------------------------------------------


def test_entrypoint_is_bash_with_set_e_sourcing_ros_and_workspace_then_launching(setup_kwargs):
    text = ENTRYPOINT.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert re.search(r"^set -e", text, re.M)
    assert subprocess.run(["bash", "-n", str(ENTRYPOINT)], capture_output=True).returncode == 0
    assert re.search(r'^source "/opt/ros/\$\{ROS_DISTRO[^}]*\}/setup\.bash" --$', text, re.M)
    assert re.search(rf"^source {WS}/install/setup\.bash --$", text, re.M)
    launch = re.search(rf'exec ros2 launch {PACKAGE} (\S+) "\$@"', text)
    assert launch and launch.group(1) == MAIN_LAUNCH.name
    assert installed(setup_kwargs, f"launch/{MAIN_LAUNCH.name}")  # installed by setup.py
    profile = installed(setup_kwargs, "config/fastdds_large_images.xml")
    assert f"profile={profile}\n" in text
    assert "FASTDDS_DEFAULT_PROFILES_FILE" in text and "FASTRTPS_DEFAULT_PROFILES_FILE" in text
    script_dir = re.search(r"install_scripts=\$base/(\S+)", (REPO / "setup.cfg").read_text())
    assert f'PATH="{INSTALL}/{script_dir.group(1)}:' in text


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    """A fake /opt/ros/jazzy and /ws install whose ros2 and lowlight print what they got."""
    bin_dir = tmp_path / "opt/ros/jazzy/bin"
    scripts = tmp_path / f"ws/install/{PACKAGE}/lib/{PACKAGE}"
    for folder in (bin_dir, scripts):
        folder.mkdir(parents=True)
    (bin_dir.parent / "setup.bash").write_text(f'export PATH="{bin_dir}:$PATH"\n')
    (tmp_path / "ws/install/setup.bash").write_text("export WS_SOURCED=1\n")
    for exe in (bin_dir / "ros2", scripts / "lowlight"):
        exe.write_text(
            '#!/usr/bin/env bash\necho "$(basename "$0") $* | ws=$WS_SOURCED'
            ' | $FASTDDS_DEFAULT_PROFILES_FILE | $FASTRTPS_DEFAULT_PROFILES_FILE"\n'
        )
        exe.chmod(0o755)
    return tmp_path


def run_entrypoint(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """docker/entrypoint.sh with its /opt/ros and /ws pointed into ``root``."""
    text = ENTRYPOINT.read_text().replace("/opt/ros/", f"{root}/opt/ros/")
    script = root / "entrypoint.sh"
    script.write_text(text.replace(f"{WS}/", f"{root}{WS}/"))
    environ = {"PATH": os.environ["PATH"], "ROS_DISTRO": "jazzy", **env}
    return subprocess.run(
        ["bash", str(script), *args], env=environ, capture_output=True, text=True, timeout=30
    )


def test_entrypoint_passes_launch_arguments_and_runs_commands(fake_root):
    profile = f"{fake_root}{INSTALL}/share/{PACKAGE}/config/fastdds_large_images.xml"
    launch = f"ros2 launch {PACKAGE} {MAIN_LAUNCH.name}"

    done = run_entrypoint(fake_root, "model:=m.onnx", "camera:=true")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{launch} model:=m.onnx camera:=true | ws=1 | {profile} | {profile}\n"

    done = run_entrypoint(fake_root)  # no arguments: the launch file's defaults
    assert done.stdout.startswith(f"{launch} | ws=1")

    done = run_entrypoint(fake_root, "lowlight", "--help")  # a command, with lowlight on PATH
    assert done.stdout.startswith("lowlight --help | ws=1")

    # -e FASTDDS_DEFAULT_PROFILES_FILE= (empty) keeps Fast DDS defaults in both variables
    done = run_entrypoint(fake_root, "lowlight", FASTDDS_DEFAULT_PROFILES_FILE="")
    assert done.stdout == "lowlight  | ws=1 |  | \n"

    # Kilted's Fast DDS 3 warns about the old variable: only Humble and Jazzy get it
    (fake_root / "opt/ros/kilted").symlink_to(fake_root / "opt/ros/jazzy")
    done = run_entrypoint(fake_root, "lowlight", ROS_DISTRO="kilted")
    assert done.stdout == f"lowlight  | ws=1 | {profile} | \n"


def test_entrypoint_stops_when_the_workspace_is_not_built(fake_root):
    (fake_root / "ws/install/setup.bash").unlink()
    done = run_entrypoint(fake_root, "camera:=true")
    assert done.returncode != 0 and done.stdout == ""


# --- compose.yaml ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]


@pytest.mark.parametrize(
    ("service", "dockerfile"), [("lowlight", "Dockerfile.desktop"), ("jetson", "Dockerfile.jetson")]
)
def test_compose_service_maps_camera_models_shared_memory(
    services, service, dockerfile, declared, setup_kwargs
):
    svc = services[service]
    context = (DOCKER / svc["build"]["context"]).resolve()
    assert context == REPO and (context / svc["build"]["dockerfile"]) == DOCKER / dockerfile
    assert svc["network_mode"] == "host"
    assert svc["ipc"] == "host", "Fast DDS shared memory across containers needs the host's IPC"

    # the RealSense: its USB (189) device nodes, hot-plugged ones too, or a privileged container
    volumes = [interpolate(v).split(":")[:2] for v in svc["volumes"]]
    usb = any(host in ("/dev", "/dev/bus/usb") for host, _ in volumes)
    usb = usb or any(str(d).startswith("/dev/bus/usb") for d in svc.get("devices", []))
    assert svc.get("privileged") is True or (usb and "c 189:* rmw" in svc["device_cgroup_rules"])

    # models: a host folder (default: this repository's models/) on the installed models/
    models_dir = installed(setup_kwargs, "models/README.md").rsplit("/", 1)[0]
    (source,) = [host for host, target in volumes if target == models_dir]
    assert (DOCKER / source).resolve() == REPO / "models"

    found = check_launch_args(" ".join(svc["command"]), declared)
    assert ("camera", "true") in found and any(name == "model" for name, _ in found)


def test_compose_requests_the_gpu(services):
    (gpu,) = services["lowlight"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert services["jetson"]["runtime"] == "nvidia"
    assert services["jetson"]["profiles"] == ["jetson"], "`docker compose up` on a desktop"


# --- README.md ---------------------------------------------------------------------------------


def test_readme_matches_the_files(declared):
    text = (DOCKER / "README.md").read_text()
    assert check_launch_args(text, declared)
    named = re.findall(r"docker/([\w.-]+\.\w+)", text) + re.findall(r"`(Dockerfile\.\w+)`", text)
    for name in named:
        assert (DOCKER / name).is_file(), f"README names docker/{name}"
    for name in DOCKERFILES:  # the base images it states are the ones the Dockerfiles use
        assert f"`{arg_defaults(instructions(DOCKER / name))['BASE_IMAGE']}`" in text
    assert "up --build lowlight" in text and "up --build jetson" in text
