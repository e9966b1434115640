"""Locate the package's shared files (config/, models/) in a source tree, a pip install or a
colcon install space, and load YAML from them."""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

PACKAGE = "lowlight_perception"
DEMO_MODEL = "lisu_small_procedural.onnx"
"""The model shipped in models/ (trained on procedural scenes): the node's default."""


@lru_cache(maxsize=1)
def share_dir() -> Path:
    """The directory holding ``config/`` (and ``models/``) for this installation.

    Order: ``$LOWLIGHT_SHARE_DIR``; the source tree next to this package; an install prefix
    above this package (colcon: ``<prefix>/lib/pythonX.Y/site-packages/<pkg>`` ->
    ``<prefix>/share/<pkg>``); ``sys.prefix/share/<pkg>`` (pip).

    Raises:
        ConfigError: if no candidate holds ``config/classes.yaml``.
    """
    here = Path(__file__).resolve().parent
    candidates = []
    if os.environ.get("LOWLIGHT_SHARE_DIR"):
        candidates.append(Path(os.environ["LOWLIGHT_SHARE_DIR"]))
    candidates.append(here.parent)
    candidates += [parent / "share" / PACKAGE for parent in here.parents]
    candidates.append(Path(sys.prefix) / "share" / PACKAGE)
    for candidate in candidates:
        if (candidate / "config" / "classes.yaml").is_file():
            return candidate
    raise ConfigError(
        f"cannot find {PACKAGE}'s config/ directory (looked in {', '.join(map(str, candidates))}); "
        "set LOWLIGHT_SHARE_DIR"
    )


def demo_model() -> Path:
    """The shipped demo model's path in this installation."""
    return share_dir() / "models" / DEMO_MODEL


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file; a relative path is taken inside ``share_dir()``.

    Raises:
        ConfigError: if the file is missing or is not valid YAML.
    """
    path = Path(path)
    if not path.is_absolute() and not path.exists():
        path = share_dir() / path
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
