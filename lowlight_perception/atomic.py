"""Atomic file replacement shared by checkpoints, exported models and engine plans."""

from __future__ import annotations

import os
from pathlib import Path


def replace(tmp: str | Path, path: str | Path) -> None:
    """Move a finished temporary file over ``path`` in one step, so readers see the old file or
    the whole new one. ``tempfile.mkstemp`` creates files 0600; the result gets the mode a
    plain ``open`` would (0666 minus the umask), so other users (a ROS service, a container
    user) can read installed models."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
