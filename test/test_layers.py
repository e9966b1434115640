"""The package's layers, read from every module's imports (function-local ones included):

* core (everything but ``ros/`` and ``tools/``) never imports ``ros/`` or rclpy, so data tools,
  training and evaluation run on machines without ROS;
* ``ros/`` never imports ``models/``, ``data/`` or ``training/`` (the node needs neither torch
  nor the dataset code);
* ``data/`` never imports ``models/``; ``models/`` never imports ``inference/``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "lowlight_perception"
RULES = [  # (the areas a rule is about, areas they must not import, top-level packages neither)
    ("core", lambda area: area not in ("ros", "tools"), {"ros"}, {"rclpy"}),
    ("ros/", lambda area: area == "ros", {"models", "data", "training"}, {"torch"}),
    ("data/", lambda area: area == "data", {"models"}, set()),
    ("models/", lambda area: area == "models", {"inference"}, set()),
]


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Absolute names of everything ``path`` imports: modules, and for ``from X import y``
    both ``X`` and ``X.y`` (y may be a submodule); relative imports resolved."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}
    return found


def _area(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "lowlight_perception" and len(parts) > 1 else None


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_the_import_reader_sees_relative_lazy_and_absolute_imports():
    node = imports(PACKAGE / "ros" / "node.py")
    assert "rclpy" in node and "lowlight_perception.inference" in node
    assert "lowlight_perception.atomic" in imports(PACKAGE / "models" / "checkpoint.py")
    # function-local: the CLI tools import their work lazily
    assert "lowlight_perception.capture.realsense" in imports(PACKAGE / "tools" / "capture.py")


@pytest.mark.parametrize("name, applies, areas, packages", RULES, ids=[r[0] for r in RULES])
def test_layers_hold(name, applies, areas, packages):
    broken = []
    for path in MODULES:
        if not applies(_area(_module(path))):
            continue
        for target in sorted(imports(path)):
            if _area(target) in areas or target.split(".")[0] in packages:
                broken.append(f"{path.relative_to(REPO)} imports {target}")
    assert not broken, f"{name} layer broken:\n" + "\n".join(broken)
