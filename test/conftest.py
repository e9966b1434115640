"""Shared test helpers: small intrinsics and the repository root."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import setuptools

from lowlight_perception.camera import Intrinsics

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def small_camera() -> Intrinsics:
    """A D435i-like camera at 160x120: fast renders, same optics."""
    return Intrinsics.d435i(160, 120)


@pytest.fixture(scope="session")
def setup_kwargs() -> dict:
    """setup.py's arguments, computed by running it with setuptools.setup captured."""
    captured = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(setuptools, "setup", lambda **kw: captured.update(kw))
        mp.chdir(REPO)
        runpy.run_path(str(REPO / "setup.py"))
    return captured
