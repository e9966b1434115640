"""Shared test helpers: small intrinsics and the repository root."""

from __future__ import annotations

from pathlib import Path

import pytest

from lowlight_perception.camera import Intrinsics

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def small_camera() -> Intrinsics:
    """A D435i-like camera at 160x120: fast renders, same optics."""
    return Intrinsics.d435i(160, 120)
