"""Every command the README (and models/README.md) shows parses against the real CLI, Makefile
and launch file, so the documentation cannot drift from the code. (The commands themselves are
run by the other tests at small sizes; ros2 launch and rosdep cannot run here.)"""

from __future__ import annotations

import re
import shlex

import pytest
from conftest import REPO

from lowlight_perception.tools.cli import build_parser

DOCS = ("README.md", "models/README.md", "docker/README.md")


def _commands(prefix: str) -> list[tuple[str, str]]:
    """(file, command) for every line of a ```bash block starting with ``prefix``, with
    backslash continuations joined and `$(...)`/comments stripped."""
    found = []
    for doc in DOCS:
        text = (REPO / doc).read_text()
        for block in re.findall(r"```bash\n(.*?)```", text, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = re.sub(r"\s+#.*$", "", line).strip()
                line = line.replace("$(which lowlight) ", "")
                if line.startswith(prefix):
                    found.append((doc, line))
    return found


LOWLIGHT = _commands("lowlight ") + [
    (doc, cmd.split("$(which lowlight) ", 1)[-1]) for doc, cmd in _commands("torchrun ")
]


def test_the_readme_shows_commands():
    assert len(LOWLIGHT) >= 20 and _commands("make ")


@pytest.mark.parametrize(("doc", "command"), LOWLIGHT, ids=[c for _, c in LOWLIGHT])
def test_every_lowlight_command_parses(doc, command):
    # "[--upsample labels|logits]" shows an optional flag: try the command without it
    words = shlex.split(re.sub(r"\s\[-[^\]]*\]", "", command))
    if words[0] == "torchrun":
        words = words[words.index("train") - 0 :]
        words.insert(0, "lowlight")
    parser = build_parser()
    try:
        parser.parse_args(words[1:])
    except SystemExit as err:
        pytest.fail(f"{doc}: `{command}` does not parse (exit {err.code})")


def test_every_make_target_exists():
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    for doc, command in _commands("make "):
        target = command.split()[1]
        assert target in targets, f"{doc}: make {target} is not a Makefile target"


def test_every_launch_argument_is_declared():
    launch = (REPO / "launch" / "lowlight_perception.launch.py").read_text()
    replay = (REPO / "launch" / "replay.launch.py").read_text()
    declared = set(re.findall(r'DeclareLaunchArgument\(\s*"(\w+)"', launch + replay))
    for doc, command in _commands("ros2 launch "):
        for name in re.findall(r"(\w[\w.]*):=", command):
            assert name in declared, f"{doc}: {name}:= is not a launch argument"


def test_the_parameter_table_is_the_nodes_interface():
    """Every parameter the node declares, with its default, and nothing else."""
    import json

    from lowlight_perception.ros.interface import PARAMS

    text = (REPO / "README.md").read_text()
    table = text[text.index("| parameter | default |") :].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", table, re.M)
    assert [name for name, _ in rows] == [p.name for p in PARAMS]
    for (name, shown), p in zip(rows, PARAMS, strict=True):
        default = p.default if isinstance(p.default, str) else json.dumps(p.default)
        assert shown in (default, f'"{default}"') or (default == "" and shown == '""'), name


def test_the_contracts_index_names_files_that_exist():
    """docs/contracts.md points at the one module defining each contract and at its tests:
    every file it names is there, so the index cannot quietly rot."""
    text = (REPO / "docs" / "contracts.md").read_text(encoding="utf-8")
    named = {  # modules and repository files; bare *.yaml names are files the tools write
        n for n in re.findall(r"`([\w/]+\.(?:py|yaml))`", text) if n.endswith(".py") or "/" in n
    }
    assert len(named) > 20
    roots = (REPO / "lowlight_perception", REPO, REPO / "test")
    missing = [n for n in sorted(named) if not any((root / n).is_file() for root in roots)]
    assert not missing, missing
