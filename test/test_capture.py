"""``lowlight capture`` against real librealsense (pyrealsense2 wheel, no camera): a software
device shaped like a D435i (a "Stereo Module" with z16 depth and the emitter option, an "RGB
Camera" with rgb8, exposure, gain and auto exposure, depth-to-colour extrinsics), recorded to
.db3 with ``rs.recorder`` and played back by librealsense, or streamed live with its options
driving what it shows. Depth registration is checked against ``rs.align`` itself.

The API used is pyrealsense2's ``pyrs_internal.cpp`` and librealsense's
``unit-tests/live/rec-play/test-record-software-device.py`` (IntelRealSense/librealsense,
master); the alignment rule is realsenseai/librealsense master ``src/proc/sse/sse-align.cpp``
(the x86 build pyrealsense2 2.59 runs: ``_mm_cvttps_epi32``, one colour pixel per depth pixel
unless depth has fewer pixels per degree), checked here against ``rs.align`` itself.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import yaml
from conftest import TINY_TRAIN

from lowlight_perception.capture.geometry import StreamGeometry, align_depth_to_color
from lowlight_perception.capture.realsense import RealsenseSource, load_pyrealsense2
from lowlight_perception.capture.session import LowLightSettings, capture_live
from lowlight_perception.capture.views import CaptureWriter, RgbdFrame, reduce_pose, sharpness
from lowlight_perception.data.datasets import open_dataset
from lowlight_perception.errors import LowlightError
from lowlight_perception.tools.cli import main

try:  # rclpy before pyrealsense2: with pyrealsense2 (2.59.1) imported first, a process that
    import rclpy  # noqa: F401  then starts an rclpy node segfaults at exit (measured here)
except ImportError:
    pass
try:
    rs = load_pyrealsense2()
except LowlightError as err:  # an environment without the realsense extra
    pytest.skip(f"the realsense extra is not installed: {err}", allow_module_level=True)

W, H = 80, 60  # colour; depth below is another camera (other size, focal length, offset)
DW, DH = 96, 72
EXPOSURE, GAIN = 330.0, 128.0


def _intrinsics(w: int, h: int, f: float) -> rs.intrinsics:
    i = rs.intrinsics()
    i.width, i.height, i.ppx, i.ppy, i.fx, i.fy = w, h, (w - 1) / 2, (h - 1) / 2 + 0.7, f, f
    i.model, i.coeffs = rs.distortion.brown_conrady, [0.0] * 5
    return i


def _range(lo: float, hi: float, default: float) -> rs.option_range:
    r = rs.option_range()  # rs.option_range(min, max, step, default) swaps step and default
    r.min, r.max, r.step, r.default = lo, hi, 1, default
    return r


class SoftwareD435i:
    """A software device with the D435i's sensor names, streams and options we use."""

    def __init__(self, depth_camera: tuple[int, int, float] = (DW, DH, 80.0)) -> None:
        self.device = rs.software_device()
        self.depth_sensor = self.device.add_sensor("Stereo Module")
        self.color_sensor = self.device.add_sensor("RGB Camera")
        depth, color = rs.video_stream(), rs.video_stream()
        for vs, kind, uid, (w, h, f), fmt, bpp in (
            (depth, rs.stream.depth, 0, depth_camera, rs.format.z16, 2),
            (color, rs.stream.color, 1, (W, H, 70.0), rs.format.rgb8, 3),
        ):
            vs.type, vs.index, vs.uid, vs.width, vs.height = kind, 0, uid, w, h
            vs.fps, vs.bpp, vs.fmt, vs.intrinsics = 30, bpp, fmt, _intrinsics(w, h, f)
        self.depth_profile = self.depth_sensor.add_video_stream(depth, True)
        self.color_profile = self.color_sensor.add_video_stream(color, True)
        e = rs.extrinsics()  # column-major rotation: a small yaw, and the D435i's 15 mm baseline
        c, s = np.cos(0.02), np.sin(0.02)
        e.rotation = [c, 0.0, -s, 0.0, 1.0, 0.0, s, 0.0, c]
        e.translation = [0.015, 0.001, 0.0]
        self.depth_profile.register_extrinsics_to(self.color_profile, e)
        self.depth_sensor.add_read_only_option(rs.option.depth_units, 0.001)
        self.depth_sensor.add_option(rs.option.emitter_enabled, _range(0, 1, 1), True)
        self.color_sensor.add_option(rs.option.exposure, _range(1, 10000, 156), True)
        self.color_sensor.add_option(rs.option.gain, _range(0, 128, 64), True)
        self.color_sensor.add_option(rs.option.enable_auto_exposure, _range(0, 1, 1), True)
        self.number = 0
        self._keep: list[np.ndarray] = []  # librealsense reads the pixels after the call

    def inject(self, color: np.ndarray, depth: np.ndarray, exposure: float, gain: float) -> None:
        t = 1000.0 + self.number * 1000 / 30
        self.color_sensor.set_metadata(rs.frame_metadata_value.actual_exposure, int(exposure))
        self.color_sensor.set_metadata(rs.frame_metadata_value.gain_level, int(gain))
        for sensor, profile, pixels, bpp in (
            (self.depth_sensor, self.depth_profile, depth, 2),
            (self.color_sensor, self.color_profile, color, 3),
        ):
            frame = rs.software_video_frame()
            frame.pixels = np.ascontiguousarray(pixels)
            self._keep.append(frame.pixels)
            frame.bpp, frame.stride = bpp, pixels.shape[1] * bpp
            frame.timestamp, frame.domain = t, rs.timestamp_domain.hardware_clock
            frame.frame_number, frame.profile = self.number, profile.as_video_stream_profile()
            if sensor is self.depth_sensor:
                frame.depth_units = 0.001
            sensor.on_video_frame(frame)
        self.number += 1
        del self._keep[:-64]


def _scene(seed: int, dw: int = DW, dh: int = DH) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A sharp colour pattern, its blurred twin and a depth map (a slanted wall, a box nearer,
    a hole of no depth)."""
    rng = np.random.default_rng(seed)
    sharp = np.kron(rng.integers(0, 60, (H // 4, W // 4, 3)), np.ones((4, 4, 1))).astype(np.uint8)
    blurred = (
        (sharp.astype(np.uint16) + np.roll(sharp, 2, axis=1) + np.roll(sharp, -2, axis=1)) // 3
    ).astype(np.uint8)
    depth = np.fromfunction(lambda y, x: 1500 + 8 * x + 3 * y, (dh, dw)).astype(np.uint16)
    depth[dh * 5 // 18 : dh * 5 // 9, dw * 5 // 16 : dw * 4 // 7] = 900
    depth[dh * 2 // 3 : dh * 5 // 6, dw // 16 : dw // 6] = 0
    return sharp, blurred, depth


def _geometry(cam: SoftwareD435i) -> StreamGeometry:
    depth = cam.depth_profile.as_video_stream_profile()
    color = cam.color_profile.as_video_stream_profile()
    return StreamGeometry.from_realsense(
        depth.get_intrinsics(), color.get_intrinsics(), depth.get_extrinsics_to(color), 0.001
    )


@pytest.mark.parametrize(
    "depth_camera",
    [
        (DW, DH, 80.0),  # more pixels per degree than colour: one colour pixel per depth pixel
        (48, 36, 38.0),  # fewer (sse-align.cpp then fills each depth pixel's rectangle)
    ],
)
def test_depth_registration_equals_librealsense_align(depth_camera):
    cam = SoftwareD435i(depth_camera)
    _, _, depth = _scene(0, *depth_camera[:2])
    color = np.zeros((H, W, 3), np.uint8)
    sync = rs.syncer()
    cam.depth_sensor.open(cam.depth_profile)
    cam.color_sensor.open(cam.color_profile)
    cam.depth_sensor.start(sync)
    cam.color_sensor.start(sync)
    theirs = None
    try:
        for _ in range(20):  # the syncer pairs some framesets only; inject until one holds both
            cam.inject(color, depth, EXPOSURE, GAIN)
            ok, frames = sync.try_wait_for_frames(200)
            while ok and theirs is None:
                if frames.get_depth_frame() and frames.get_color_frame():
                    aligned = rs.align(rs.stream.color).process(frames)
                    theirs = np.asanyarray(aligned.get_depth_frame().get_data()).copy()
                ok, frames = sync.try_wait_for_frames(20)
            if theirs is not None:
                break
    finally:
        cam.depth_sensor.stop()
        cam.color_sensor.stop()
    assert theirs is not None, "librealsense's syncer never paired depth and colour"
    ours = align_depth_to_color(depth, _geometry(cam))
    assert ours.shape == theirs.shape == (H, W)
    assert (theirs > 0).mean() > 0.6 and (theirs == 0).any()  # the hole and the borders
    assert np.array_equal(ours, theirs), f"{(ours != theirs).sum()} pixels differ"


def _record(path, cam: SoftwareD435i, colors: list[np.ndarray], depth: np.ndarray) -> None:
    recorder = rs.recorder(str(path), cam.device)
    got = threading.Semaphore(0)
    cam.depth_sensor.open(cam.depth_profile)
    cam.color_sensor.open(cam.color_profile)
    cam.depth_sensor.start(lambda f: got.release())
    cam.color_sensor.start(lambda f: got.release())
    for color in colors:
        cam.inject(color, depth, EXPOSURE, GAIN)
    for _ in range(2 * len(colors)):
        assert got.acquire(timeout=5)
    cam.depth_sensor.stop()
    cam.color_sensor.stop()
    cam.depth_sensor.close()
    cam.color_sensor.close()
    recorder.pause()
    del recorder


def test_capture_from_two_recordings_reads_back_as_what_went_in(tmp_path, capsys):
    sharp, blurred, depth = _scene(1)
    low = [blurred, blurred, sharp, blurred, blurred]  # the third frame is the sharp one
    base = np.full((H, W, 3), 120, np.uint8)
    base[:, : W // 2] = (200, 90, 40)
    normal = [(base.astype(int) + d).astype(np.uint8) for d in (-2, -1, 0, 1, 2)]  # mean: base
    for name, colors in (("low", low), ("normal", normal)):
        _record(tmp_path / f"{name}.db3", SoftwareD435i(), colors, depth)
    out = tmp_path / "captured"
    argv = [
        "capture",
        "--low",
        str(tmp_path / "low.db3"),
        "--normal",
        str(tmp_path / "normal.db3"),
        "--out",
        str(out),
        "--frames",
        "5",
    ]
    assert main(argv) == 0
    assert "captured 1 view(s)" in capsys.readouterr().out
    (view,) = open_dataset("llrgbd-real", out, "train")
    assert view.name == "pose_0000" and view.label is None
    assert np.array_equal(view.low, sharp)
    assert np.array_equal(view.normal, base)
    assert np.array_equal(view.depth, align_depth_to_color(depth, _geometry(SoftwareD435i())))
    assert view.intrinsics.width == W and view.intrinsics.fx == pytest.approx(70.0)
    assert view.intrinsics.cy == pytest.approx((H - 1) / 2 + 0.7)
    record = yaml.safe_load((out / "capture.yaml").read_text())
    (session,) = record["sessions"]
    (entry,) = session["views"]
    assert entry["low"]["kept"] == 2 and entry["low"]["exposure"] == EXPOSURE
    assert entry["low"]["gain"] == GAIN and entry["normal"]["frames"] == [0, 1, 2, 3, 4]
    # a second capture into the same directory adds a view and replaces none
    assert main(argv) == 0
    assert [v.name for v in open_dataset("llrgbd-real", out, "train")] == ["pose_0000", "pose_0001"]
    assert len(yaml.safe_load((out / "capture.yaml").read_text())["sessions"]) == 2


def test_live_capture_sets_the_camera_and_writes_each_pose(tmp_path):
    """The live path on a software device: a feeder thread plays the camera, showing the dark
    scene while auto exposure is off (and the emitter's state it was given) and the lit one
    when the capture turns auto exposure on."""
    cam = SoftwareD435i()
    scenes = [_scene(seed) for seed in (2, 3)]
    lit = [np.full((H, W, 3), 90 + 40 * k, np.uint8) for k in range(2)]
    pose = {"k": 0}
    seen_emitter: list[float] = []
    stop = threading.Event()
    source = RealsenseSource(cam.device, rs=rs)

    def feed() -> None:
        n = 0
        while not stop.is_set():
            sharp, blurred, depth = scenes[pose["k"]]
            if cam.color_sensor.get_option(rs.option.enable_auto_exposure) == 0:
                seen_emitter.append(cam.depth_sensor.get_option(rs.option.emitter_enabled))
                color = sharp if n % 3 == 0 else blurred
                exposure = cam.color_sensor.get_option(rs.option.exposure)
                gain = cam.color_sensor.get_option(rs.option.gain)
            else:
                color, exposure, gain = lit[pose["k"]], 156.0, 64.0
            cam.inject(color, depth, exposure, gain)
            n += 1
            time.sleep(0.002)

    waits: list[str] = []

    def wait(message: str) -> None:
        waits.append(message)
        if "lights OFF" in message:
            pose["k"] = len([m for m in waits if "lights OFF" in m]) - 1
        time.sleep(0.05)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        writer = CaptureWriter(tmp_path, "val", source.geometry, {"source": "live"})
        names = capture_live(
            source,
            writer,
            poses=2,
            frames=4,
            settle=3,
            low=LowLightSettings(exposure=EXPOSURE, gain=GAIN),
            normal_mode="lights",
            wait=wait,
            progress=False,
        )
    finally:
        stop.set()
        feeder.join(5)
        source.close()
    assert names == ["pose_0000", "pose_0001"]
    assert len(waits) == 4 and "room lights ON" in waits[1]
    assert seen_emitter and set(seen_emitter) == {0.0}, "the emitter stays off in the dark"
    views = open_dataset("llrgbd-real", tmp_path, "val")
    for k, view in enumerate(views):
        sharp, _, depth = scenes[k]
        assert np.array_equal(view.low, sharp), "the sharpest dark frame is kept"
        assert np.array_equal(view.normal, lit[k])
        assert np.array_equal(view.depth, align_depth_to_color(depth, source.geometry))
    entry = yaml.safe_load((tmp_path / "capture.yaml").read_text())["sessions"][0]["views"][0]
    assert entry["low"]["exposure"] == EXPOSURE and entry["low"]["gain"] == GAIN


def test_sharpness_prefers_the_unblurred_frame_even_in_noise():
    sharp, blurred, _ = _scene(4)
    rng = np.random.default_rng(0)
    noisy = lambda img: np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)  # noqa: E731
    assert sharpness(noisy(sharp)) > sharpness(noisy(blurred))


def test_bad_recordings_are_one_line_errors(tmp_path, capsys):
    missing = [
        "capture",
        "--low",
        str(tmp_path / "nope.db3"),
        "--normal",
        str(tmp_path / "nope.db3"),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(missing) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "recording not found" in err
    (tmp_path / "junk.db3").write_bytes(b"not a recording")
    junk = [
        "capture",
        "--low",
        str(tmp_path / "junk.db3"),
        "--normal",
        str(tmp_path / "junk.db3"),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(junk) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a librealsense recording" in err
    assert main(["capture", "--low", "a.db3", "--out", str(tmp_path / "o")]) == 2
    assert "--low and --normal go together" in capsys.readouterr().err
    if not rs.context().query_devices().size():  # a developer's camera would be used
        assert main(["capture", "--out", str(tmp_path / "o")]) == 2
        assert "no RealSense camera connected" in capsys.readouterr().err
    assert not (tmp_path / "o").exists(), "nothing written on bad input"


def test_pose_depth_is_the_median_of_the_frames_that_measured_it():
    g = _geometry(SoftwareD435i((48, 36, 38.0)))
    frames = []
    for k, shift in enumerate((0, 10, 30, 20)):
        depth = np.full((36, 48), 2000 + shift, np.uint16)
        if k in (1, 2):
            depth[:, :24] = 0  # the left half: measured by two frames of four, still valid
        if k:
            depth[24:, 36:] = 0  # a corner measured by one frame of four: invalid
        frames.append(RgbdFrame(np.zeros((H, W, 3), np.uint8), depth, k, 33.3 * k))
    got = reduce_pose(frames[:2], frames[2:], g).depth_mm
    registered = np.stack([align_depth_to_color(f.depth, g) for f in frames])
    counts = (registered > 0).sum(axis=0)
    assert set(np.unique(got[counts == 4])) == {2015}, "median of 2000, 2010, 2030, 2020"
    assert set(np.unique(got[counts == 2])) == {2010}, "median of 2000 and 2020"
    assert (counts == 1).any() and (got[counts <= 1] == 0).all()


def test_an_unlabelled_capture_trains_the_decomposition_only(tmp_path, capsys):
    pytest.importorskip("torch")
    sharp, _, depth = _scene(5)
    for name, colors in (("low", [sharp] * 3), ("normal", [np.full_like(sharp, 150)] * 3)):
        _record(tmp_path / f"{name}.db3", SoftwareD435i(), colors, depth)
    out = tmp_path / "captured"
    assert (
        main(
            [
                "capture",
                "--low",
                str(tmp_path / "low.db3"),
                "--normal",
                str(tmp_path / "normal.db3"),
                "--out",
                str(out),
                "--frames",
                "3",
            ]
        )
        == 0
    )
    train = ["train", *TINY_TRAIN, "--set", "data.kind=llrgbd-real", "--data", str(out),
             "--set", "data.options={}", "--set", "data.val_split=train"]  # fmt: skip
    assert main([*train, "--out", str(tmp_path / "joint")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no labels yet" in err
    assert main([*train, "--set", "stage=decomp", "--out", str(tmp_path / "decomp")]) == 0
    assert (tmp_path / "decomp" / "best.pt").is_file()


def test_recordings_of_two_cameras_are_refused(tmp_path, capsys):
    sharp, _, depth = _scene(6)
    _record(tmp_path / "low.db3", SoftwareD435i(), [sharp] * 2, depth)
    small = _scene(6, 48, 36)[2]
    _record(tmp_path / "normal.db3", SoftwareD435i((48, 36, 38.0)), [sharp] * 2, small)
    assert (
        main(
            [
                "capture",
                "--low",
                str(tmp_path / "low.db3"),
                "--normal",
                str(tmp_path / "normal.db3"),
                "--out",
                str(tmp_path / "o"),
                "--frames",
                "2",
            ]
        )
        == 2
    )
    assert "different cameras" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_view_interrupted_mid_write_leaves_nothing_behind(tmp_path, monkeypatch):
    """Ctrl-C while a view's PNGs are written: its files go, the record keeps the views that
    were whole, the dataset still reads, and the next view takes the same name."""
    import lowlight_perception.capture.views as views

    g = _geometry(SoftwareD435i())
    sharp, _, depth = _scene(8)
    frames = [RgbdFrame(sharp, depth, k, 33.3 * k) for k in range(2)]
    writer = CaptureWriter(tmp_path, "train", g, {"source": "test"})
    assert writer.write(reduce_pose(frames[:1], frames[1:], g)) == "pose_0000"
    real, calls = views.write_png, []

    def interrupted(path, array):
        calls.append(path)
        if len(calls) == 2:  # after the low-light PNG of the second view
            raise KeyboardInterrupt
        real(path, array)

    monkeypatch.setattr(views, "write_png", interrupted)
    with pytest.raises(KeyboardInterrupt):
        writer.write(reduce_pose(frames[:1], frames[1:], g))
    assert not list(tmp_path.rglob("pose_0001.png"))
    assert [v.name for v in open_dataset("llrgbd-real", tmp_path, "train")] == ["pose_0000"]
    record = yaml.safe_load((tmp_path / "capture.yaml").read_text())
    assert [v["name"] for v in record["sessions"][0]["views"]] == ["pose_0000"]
    monkeypatch.setattr(views, "write_png", real)
    assert writer.write(reduce_pose(frames[:1], frames[1:], g)) == "pose_0001"
