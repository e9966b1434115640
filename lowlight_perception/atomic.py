"""Atomic file writes: the one way checkpoints, exported models, engine plans, reports and
capture records are written, so a reader (or a crash) never sees a partial file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def writing(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same directory, so the rename is atomic) to write to.

    When the block ends normally the file is flushed to disk (fsync) and moved over ``path``;
    when it raises, ``path`` is left as it was. The temporary file never stays behind.

    Raises:
        OSError: if the directory cannot be created or written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> None:
    """``data`` into ``path`` atomically (see :func:`writing`)."""
    with writing(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    """``text`` (UTF-8) into ``path`` atomically (see :func:`writing`)."""
    write_bytes(path, text.encode("utf-8"))
