"""A capture session: at each pose a low-light burst (LED only, fixed exposure and gain, IR
emitter off) and a normal-light burst (room lights on, or the camera's auto exposure), reduced
to one view and written. Live cameras and pairs of recordings take the same path:
:func:`reduce_pose` then :class:`CaptureWriter`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tqdm import tqdm

from .geometry import StreamGeometry
from .views import CaptureWriter, RgbdFrame, reduce_pose

NORMAL_MODES = ("lights", "auto-exposure")
"""How the normal-light frame is lit: the room's lights switched on between the bursts (a
person or a building system does it, when prompted), or the same LED-lit scene exposed by the
camera's auto exposure (no one needs to touch anything; a brighter but not a differently lit
frame)."""


@dataclass(frozen=True)
class LowLightSettings:
    """The colour sensor's settings for the dark burst (librealsense option values).

    ``exposure`` in the sensor's units (a D400's RGB sensor: 100 us steps over 1..10000, per
    librealsense's maintainers in realsenseai/librealsense#8243, so 330 is 33 ms, the longest a
    30 FPS stream allows; its depth sensor counts microseconds) and ``gain`` (D435i RGB:
    0..128). A new exposure takes effect up to about 5 frames later (#11228), well inside the
    default settle of 30. The emitter stays off in both bursts: its infrared dot pattern would
    light the colour image.
    """

    exposure: float = 330.0
    gain: float = 128.0

    def options(self) -> dict[str, float]:
        return {
            "enable_auto_exposure": 0,
            "exposure": self.exposure,
            "gain": self.gain,
            "emitter_enabled": 0,
        }


NORMAL_OPTIONS = {"enable_auto_exposure": 1, "emitter_enabled": 0}


class FrameSource(Protocol):
    """What a capture needs from a camera (``capture.realsense.RealsenseSource``)."""

    geometry: StreamGeometry

    def set_options(self, settings: dict[str, float]) -> dict[str, float]: ...

    def take(self, count: int, skip: int = 0, timeout_s: float = 10.0) -> list[RgbdFrame]: ...


def capture_live(
    source: FrameSource,
    writer: CaptureWriter,
    *,
    poses: int,
    frames: int = 5,
    settle: int = 30,
    low: LowLightSettings = LowLightSettings(),
    normal_mode: str = "lights",
    wait: Callable[[str], None] = input,
    progress: bool = True,
) -> list[str]:
    """Capture ``poses`` views; ``wait(message)`` returns when the person (or a timer) is ready
    for the next step. ``settle`` frames are dropped after each change of settings (auto
    exposure needs about a second). Returns the names written."""
    if normal_mode not in NORMAL_MODES:
        raise ValueError(f"normal_mode must be one of {', '.join(NORMAL_MODES)}")
    names = []
    for k in tqdm(range(poses), desc="capturing poses", unit="pose", disable=not progress):
        lights = "room lights OFF, " if normal_mode == "lights" else ""
        wait(f"pose {k + 1}/{poses}: {lights}camera still; Enter to capture")
        source.set_options(low.options())
        dark = source.take(frames, skip=settle)
        if normal_mode == "lights":
            wait(f"pose {k + 1}/{poses}: room lights ON, camera still; Enter to capture")
        source.set_options(NORMAL_OPTIONS)
        lit = source.take(frames, skip=settle)
        names.append(writer.write(reduce_pose(dark, lit, source.geometry)))
    return names


def capture_pair(
    low: list[RgbdFrame],
    normal: list[RgbdFrame],
    writer: CaptureWriter,
    geometry: StreamGeometry,
    frames: int = 5,
) -> str:
    """One view from two recordings of a pose: the last ``frames`` pairs of each (after any
    auto exposure has settled)."""
    return writer.write(reduce_pose(low[-frames:], normal[-frames:], geometry))
