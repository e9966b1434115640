"""The pyrealsense2 seam: one frame source for a live camera, a librealsense recording (.db3)
and a software device (what the tests drive), all streamed at sensor level.

Sensor-level streaming, not ``rs.pipeline``: a software device cannot be put behind a pipeline
(``No device connected``), and pipeline playback of a recording can drop or repeat frames;
sensor playback with ``set_real_time(False)`` delivers every recorded frame once. Colour and
depth are paired by timestamp here (``capture.views.pair_by_timestamp``), not by
librealsense's syncer, whose first framesets may hold one stream only. pyrealsense2 is imported
only when a source is made (the ``realsense`` extra).
"""

from __future__ import annotations

import ctypes
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LowlightError
from .geometry import StreamGeometry
from .views import RgbdFrame, pair_by_timestamp

COLOR_FORMATS = ("rgb8", "bgr8")
"""Colour formats taken (bgr8 is reordered to RGB); a D435i's RGB sensor offers both."""


def load_pyrealsense2() -> Any:
    """``import pyrealsense2``, first loading libusb-1.0 from the ``libusb-package`` wheel when
    it is installed (the pyrealsense2 wheel links libusb-1.0 but does not ship it; Debian's
    ``libusb-1.0-0`` serves as well).

    Raises:
        LowlightError: if pyrealsense2 (or libusb-1.0) cannot be loaded, saying what to install.
    """
    try:
        import libusb_package

        ctypes.CDLL(str(libusb_package.get_library_path()), mode=ctypes.RTLD_GLOBAL)
    except (ImportError, OSError, TypeError):
        pass  # the system's libusb-1.0, if any, is what pyrealsense2 then finds
    try:
        import pyrealsense2 as rs
    except ImportError as err:
        raise LowlightError(
            f"pyrealsense2 is not usable ({err}): pip install 'lowlight_perception[realsense]' "
            "(pyrealsense2 + libusb-package), or apt install libusb-1.0-0"
        ) from err
    return rs


def _video(profile: Any) -> Any:
    return profile.as_video_stream_profile()


def _pick_profile(
    rs: Any,
    sensors: list,
    stream: Any,
    formats: tuple[str, ...],
    size: tuple[int, int] | None,
    fps: int | None,
) -> tuple[Any, Any]:
    """(sensor, profile) of the first matching video profile: ``size``/``fps`` when given,
    else the sensor's default profile, else its first."""
    wanted = [getattr(rs.format, f) for f in formats]
    for sensor in sensors:
        profiles = [
            p
            for p in sensor.get_stream_profiles()
            if p.stream_type() == stream and p.format() in wanted and p.is_video_stream_profile()
        ]
        if not profiles:
            continue
        fits = [
            p
            for p in profiles
            if (size is None or (_video(p).width(), _video(p).height()) == tuple(size))
            and (fps is None or p.fps() == fps)
        ]
        if not fits:
            offered = sorted(
                {f"{_video(p).width()}x{_video(p).height()}@{p.fps()}" for p in profiles}
            )
            raise LowlightError(
                f"{sensor.get_info(rs.camera_info.name)} offers no {stream} stream at "
                f"{'x'.join(map(str, size)) if size else 'any size'}"
                f"{f' {fps} FPS' if fps else ''}; it offers {', '.join(offered)}"
            )
        return sensor, next((p for p in fits if p.is_default()), fits[0])
    raise LowlightError(
        f"the device has no {stream} stream in {'/'.join(formats)}"
        f"{' or z16' if stream == rs.stream.depth else ''}"
    )


class RealsenseSource:
    """Streams one device's colour and depth sensors into paired :class:`RgbdFrame` lists.

    ``device`` is any ``rs.device``: a camera from ``rs.context().query_devices()``, a playback
    device (:meth:`recording`) or an ``rs.software_device``. ``size`` and ``fps`` choose the
    colour stream; depth is taken at the same size when offered, else at its default.
    """

    def __init__(
        self,
        device: Any,
        *,
        size: tuple[int, int] | None = None,
        fps: int | None = None,
        rs: Any | None = None,
        start: bool = True,
    ) -> None:
        self.rs = rs = rs or load_pyrealsense2()
        self.device = device
        sensors = list(device.query_sensors())
        self.color_sensor, color = _pick_profile(
            rs, sensors, rs.stream.color, COLOR_FORMATS, size, fps
        )
        try:
            self.depth_sensor, depth = _pick_profile(
                rs, sensors, rs.stream.depth, ("z16",), size or _size(color), fps or color.fps()
            )
        except LowlightError:
            self.depth_sensor, depth = _pick_profile(
                rs, sensors, rs.stream.depth, ("z16",), None, fps or color.fps()
            )
        units = 0.001
        if self.depth_sensor.supports(rs.option.depth_units):
            units = self.depth_sensor.get_option(rs.option.depth_units)
        self.geometry = StreamGeometry.from_realsense(
            _video(depth).get_intrinsics(),
            _video(color).get_intrinsics(),
            depth.get_extrinsics_to(color),
            units,
        )
        self.fps = color.fps()
        self._bgr = color.format() == rs.format.bgr8
        self._lock = threading.Lock()
        self.played = threading.Event()  # a recording's playback reached its end
        self._colors: list[tuple[float, int, np.ndarray, dict]] = []
        self._depths: list[tuple[float, int, np.ndarray]] = []
        self._sensors = [
            (self.depth_sensor, depth, self._on_depth),
            (self.color_sensor, color, self._on_color),
        ]
        if self.depth_sensor == self.color_sensor:
            raise LowlightError("colour and depth on one sensor are not supported")
        if start:
            self.start()

    def start(self) -> None:
        """Open and start both sensors, frames going to this source's lists."""
        for sensor, profile, callback in self._sensors:
            sensor.open(profile)
            sensor.start(callback)

    @classmethod
    def recording(cls, path: str | Path) -> RealsenseSource:
        """A librealsense recording (``.db3``, as ``rs.recorder`` and the RealSense Viewer
        write), played back at sensor level, every frame once, as fast as it is consumed."""
        rs = load_pyrealsense2()
        path = Path(path)
        if not path.is_file():
            raise LowlightError(f"recording not found: {path}")
        try:
            device = rs.context().load_device(str(path))
        except RuntimeError as err:
            raise LowlightError(f"{path}: not a librealsense recording ({err})") from err
        playback = device.as_playback()
        playback.set_real_time(False)
        try:
            source = cls(device, rs=rs, start=False)
        except LowlightError as err:
            raise LowlightError(f"{path}: {err}") from err
        playing = threading.Event()

        def status_changed(status: Any) -> None:  # a "stopped" before playing is the start
            if status == rs.playback_status.playing:
                playing.set()
            elif status == rs.playback_status.stopped and playing.is_set():
                source.played.set()

        playback.set_status_changed_callback(status_changed)
        # playback starts with the first sensor started: paused until both listen, or the
        # second one's first frames are lost
        playback.pause()
        source.start()
        playback.resume()
        return source

    # ----------------------------------------------------------------------- frame callbacks

    def _on_color(self, frame: Any) -> None:
        rgb = np.asanyarray(frame.get_data()).copy()
        if self._bgr:
            rgb = rgb[..., ::-1].copy()
        meta = {}
        for key, value in (
            ("exposure", self.rs.frame_metadata_value.actual_exposure),
            ("gain", self.rs.frame_metadata_value.gain_level),
        ):
            if frame.supports_frame_metadata(value):
                meta[key] = float(frame.get_frame_metadata(value))
        with self._lock:
            self._colors.append((frame.get_timestamp(), frame.get_frame_number(), rgb, meta))

    def _on_depth(self, frame: Any) -> None:
        z16 = np.asanyarray(frame.get_data()).copy()
        with self._lock:
            self._depths.append((frame.get_timestamp(), frame.get_frame_number(), z16))

    def _pairs(self) -> list[RgbdFrame]:
        with self._lock:
            colors, depths = list(self._colors), list(self._depths)
        return pair_by_timestamp(colors, depths, max_gap_ms=500.0 / self.fps)

    # ----------------------------------------------------------------------------- control

    def info(self) -> dict[str, str]:
        """The device's name, serial number and firmware, as far as it reports them."""
        out = {}
        for key, attr in (
            ("name", "name"),
            ("serial", "serial_number"),
            ("firmware", "firmware_version"),
        ):
            info = getattr(self.rs.camera_info, attr)
            if self.device.supports(info):
                out[key] = self.device.get_info(info)
        return out

    def set_options(self, settings: dict[str, float]) -> dict[str, float]:
        """Set librealsense options by name (``exposure``, ``gain``, ``enable_auto_exposure``,
        ``emitter_enabled``, ...) on whichever of the two sensors supports each; returns what
        was set. Options neither sensor has are skipped (a recording has none to set).

        Raises:
            LowlightError: on an unknown option name or a value outside the sensor's range.
        """
        applied = {}
        for name, value in settings.items():
            option = getattr(self.rs.option, name, None)
            if option is None:
                raise LowlightError(f"unknown librealsense option {name!r}")
            sensor = next(
                (s for s in (self.color_sensor, self.depth_sensor) if s.supports(option)), None
            )
            if sensor is None or sensor.is_option_read_only(option):
                continue
            r = sensor.get_option_range(option)
            if not r.min <= value <= r.max:
                raise LowlightError(
                    f"{name} {value:g} is outside the camera's range {r.min:g}..{r.max:g}"
                )
            sensor.set_option(option, float(value))
            applied[name] = float(value)
        return applied

    def take(self, count: int, skip: int = 0, timeout_s: float = 10.0) -> list[RgbdFrame]:
        """The next ``count`` paired frames after ``skip`` more (for settings to settle).

        Raises:
            LowlightError: if they do not arrive within ``timeout_s``.
        """
        with self._lock:
            self._colors.clear()
            self._depths.clear()
        deadline = time.monotonic() + timeout_s
        while len(pairs := self._pairs()) < skip + count:
            if time.monotonic() > deadline:
                raise LowlightError(
                    f"only {len(pairs)} of {skip + count} colour+depth frame pairs arrived in "
                    f"{timeout_s:g} s (is the camera streaming both?)"
                )
            time.sleep(0.005)
        return pairs[skip : skip + count]

    def play_all(self, timeout_s: float = 120.0) -> list[RgbdFrame]:
        """Every paired frame of a recording, once it has played to its end.

        Raises:
            LowlightError: if playback does not end within ``timeout_s``.
        """
        if not self.played.wait(timeout_s):
            raise LowlightError(f"playback did not finish within {timeout_s:g} s")
        counts = None
        while counts != (counts := (len(self._colors), len(self._depths))):
            time.sleep(0.1)  # frames still in the sensors' queues when "stopped" is reported
        return self._pairs()

    def close(self) -> None:
        for sensor, _, _ in self._sensors:
            try:
                sensor.stop()
                sensor.close()
            except RuntimeError:
                pass  # already stopped (a finished playback stops its sensors itself)


def _size(profile: Any) -> tuple[int, int]:
    return _video(profile).width(), _video(profile).height()
