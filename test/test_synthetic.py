"""Procedural low-light RGB-D scenes: ground truth, darkness, noise, determinism, geometry."""

from __future__ import annotations

import dataclasses
import math
from itertools import pairwise

import numpy as np
import pytest

from lowlight_perception.camera import Intrinsics
from lowlight_perception.classes import load_classes
from lowlight_perception.data import raycast, scene, synthetic


def test_view_has_full_ground_truth_with_contract_dtypes(small_camera):
    s = synthetic.random_view(0, 3, small_camera)
    h, w = 120, 160
    assert s.low.shape == s.normal.shape == s.albedo.shape == (h, w, 3)
    assert s.low.dtype == s.normal.dtype == s.albedo.dtype == np.uint8
    assert s.label.shape == (h, w) and s.label.dtype == np.uint8
    assert s.depth.shape == (h, w) and s.depth.dtype == np.uint16
    assert s.shading_low.dtype == s.shading_normal.dtype == np.float32
    assert s.intrinsics == small_camera
    assert s.label.max() < load_classes().num_classes


def test_default_size_is_d435i_640x480():
    s = synthetic.random_view(0, 0, Intrinsics.d435i())
    assert s.low.shape == (480, 640, 3)


def test_deterministic_from_seed_and_index(small_camera):
    a, b = synthetic.random_view(5, 2, small_camera), synthetic.random_view(5, 2, small_camera)
    for field in ("low", "normal", "label", "depth", "albedo", "shading_low"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    c = synthetic.random_view(5, 3, small_camera)
    assert not np.array_equal(a.normal, c.normal)
    assert not np.array_equal(a.low, synthetic.random_view(6, 2, small_camera).low)


def test_low_light_views_are_dark_and_noisy(small_camera):
    views = [synthetic.random_view(1, i, small_camera) for i in range(12)]
    low = np.mean([v.low.mean() for v in views])
    normal = np.mean([v.normal.mean() for v in views])
    assert low < 0.1 * normal, f"low {low:.1f} is not a small fraction of normal {normal:.1f}"
    # noise: same scene rendered noise-free differs, relatively far more in the dark view
    rng = np.random.default_rng(0)
    size = scene.room_size(rng)
    room = scene.generate_room(rng, size, keep_free=np.array([[1.5, 1.5]]))
    pose = raycast.Pose(np.array([1.5, 1.5, 1.2]), np.array([1.0, 1.0, -0.2]))
    noisy = synthetic.render(room, pose, small_camera, np.random.default_rng(1))
    clean = synthetic.render(room, pose, small_camera, np.random.default_rng(1), noise=False)
    d_low = noisy.low.astype(float) - clean.low
    d_normal = noisy.normal.astype(float) - clean.normal
    assert d_low.std() > 0.5
    snr_low = clean.low.mean() / d_low.std()
    snr_normal = clean.normal.mean() / d_normal.std()
    assert snr_low < 0.5 * snr_normal


def test_noise_free_images_follow_retinex_model(small_camera):
    """image = albedo x shading (x the LED's colour in the dark view), except specular hot spots
    and clipping; beam and vignetting are part of the shading. No motion blur here: a streak
    mixes neighbouring pixels."""
    rng = np.random.default_rng(3)
    size = scene.room_size(rng)
    room = scene.generate_room(rng, size, keep_free=np.array([[2.0, 2.0]]))
    pose = raycast.Pose(np.array([2.0, 2.0, 1.3]), np.array([-1.0, 0.4, -0.3]))
    warm = synthetic.LowLight(led_warmth=(0.8, 0.8), motion_blur=(0.0, 0.0))
    s = synthetic.render(room, pose, small_camera, np.random.default_rng(0), noise=False, low=warm)
    for image, shading, tint in (
        (s.low, s.shading_low, synthetic.led_tint(0.8)),
        (s.normal, s.shading_normal, np.ones(3)),
    ):
        model = s.albedo.astype(float) / 255 * shading[..., None] * tint * 255
        diffuse = (image < 250).all(axis=2)
        err = np.abs(image.astype(float) - np.minimum(model, 255))[diffuse]
        # specular adds light (never removes): the bulk of pixels match to quantisation
        assert np.median(err) <= 1.0
        assert (image.astype(float)[diffuse] >= np.minimum(model, 255)[diffuse] - 1.5).all()


def test_glossy_classes_get_clipped_hot_spots_in_the_dark():
    K = Intrinsics.d435i(128, 96)
    glossy = {load_classes().index(n) for n in ("tv", "window", "painting", "table", "floor")}
    hot_labels: set[int] = set()
    for i in range(60):
        s = synthetic.random_view(0, i, K)
        hot = (s.low == 255).any(axis=2)
        hot_labels |= set(np.unique(s.label[hot]).tolist())
    assert hot_labels, "no clipped hot spot in 60 dark views"
    assert hot_labels <= glossy, f"matte classes saturated: {hot_labels - glossy}"


def test_depth_is_z_in_millimetres_matching_the_geometry(small_camera):
    """Floor pixels back-projected from depth through the pose land at world height 0."""
    rng = np.random.default_rng(11)
    size = scene.room_size(rng)
    room = scene.generate_room(rng, size, keep_free=np.array([[2.0, 2.0]]))
    pose = raycast.Pose(np.array([2.0, 2.0, 1.1]), np.array([1.0, 0.3, -0.6]))
    s = synthetic.render(room, pose, small_camera, np.random.default_rng(0))
    floor = (s.label == load_classes().index("floor")) & (s.depth > 0)
    assert floor.sum() > 100
    points = small_camera.backproject(s.depth / 1000.0)[floor]  # optical frame, metres
    world = points @ pose.rotation().T + pose.position
    np.testing.assert_allclose(world[:, 2], 0.0, atol=0.01)


def test_depth_invalid_is_zero_on_windows_and_range_is_d435i(small_camera):
    window = load_classes().index("window")
    seen_window = False
    for i in range(30):
        s = synthetic.random_view(2, i, small_camera)
        valid = s.depth[s.depth > 0]
        assert valid.min() >= 280 and valid.max() <= 10000
        if (s.label == window).any():
            seen_window = True
            assert (s.depth[s.label == window] == 0).all()
    assert seen_window


def test_all_classes_appear_over_a_few_hundred_views():
    K = Intrinsics.d435i(64, 48)
    counts = np.zeros(load_classes().num_classes, np.int64)
    for i in range(300):
        counts += np.bincount(synthetic.random_view(4, i, K).label.ravel(), minlength=len(counts))
    missing = [load_classes().names[i] for i in range(1, len(counts)) if counts[i] == 0]
    assert not missing, f"classes never rendered: {missing}"


def test_sequence_is_smooth_and_never_inside_furniture(small_camera):
    n = 40
    frames = list(synthetic.sequence(3, 1, n, small_camera))
    assert [f.name for f in frames] == [f"0001_{i:06d}" for i in range(n)]
    step = np.mean([np.abs(a.albedo.astype(int) - b.albedo).mean() for a, b in pairwise(frames)])
    jump = np.abs(
        frames[0].albedo.astype(int) - synthetic.random_view(3, 1, small_camera).albedo
    ).mean()
    assert step < 0.3 * jump, f"consecutive frames differ by {step:.1f}, random views {jump:.1f}"
    room, poses, _ = synthetic._sequence_setup(3, 1, n, 0.02)
    moves = [np.linalg.norm(b.position - a.position) for a, b in pairwise(poses)]
    assert max(moves) < 0.05
    for pose in poses:
        assert (pose.position > 0).all() and (pose.position < room.size).all()
        for prim in room.primitives:
            c, s_ = math.cos(-prim.yaw), math.sin(-prim.yaw)
            d = pose.position - prim.center
            local = np.array([c * d[0] - s_ * d[1], s_ * d[0] + c * d[1], d[2]])
            assert not (np.abs(local) < prim.half).all(), "camera inside a primitive"
    # a frame renders the same alone as inside the sequence (workers render frames independently)
    np.testing.assert_array_equal(
        synthetic.sequence_frame(3, 1, 7, n, small_camera).low, frames[7].low
    )
    with pytest.raises(ValueError):
        synthetic.sequence_frame(3, 1, n, n, small_camera)


def test_rotated_box_is_hit_on_its_surface_with_outward_normals(small_camera):
    """Back-projected pixels of a yawed box lie on its surface; shading matches its normals."""
    rng = np.random.default_rng(0)
    room = scene.generate_room(rng, np.array([6.0, 6.0, 2.8]))
    room.primitives = [
        scene.Primitive(
            "box",
            np.array([4.0, 3.0, 0.6]),
            np.array([0.5, 0.3, 0.6]),
            0.6,
            6,
            scene.Material("plain", np.full(3, 0.5, np.float32), np.full(3, 0.3, np.float32)),
        )
    ]
    pose = raycast.Pose(np.array([1.5, 2.6, 1.0]), np.array([1.0, 0.15, -0.2]))
    s = synthetic.render(room, pose, small_camera, np.random.default_rng(0), noise=False)
    mask = s.label == 6
    assert mask.sum() > 200
    points = small_camera.backproject(s.depth / 1000.0)[mask] @ pose.rotation().T + pose.position
    c, sn = math.cos(0.6), math.sin(0.6)
    d = points - room.primitives[0].center
    local = np.stack([c * d[:, 0] + sn * d[:, 1], -sn * d[:, 0] + c * d[:, 1], d[:, 2]], axis=1)
    np.testing.assert_allclose(
        np.max(np.abs(local) / room.primitives[0].half, axis=1), 1.0, atol=0.01
    )


def test_the_demo_tour_visits_rooms_that_show_every_class():
    """`lowlight demo`'s sequence: 4 rooms x 30 frames, chosen so all 13 classes appear."""
    from lowlight_perception.data.synthetic import tour, tour_rooms

    rooms = tour_rooms(3, 4, 30, load_classes().num_classes)
    assert len(rooms) == len(set(rooms)) == 4
    views = list(tour(3, 120, Intrinsics.d435i(80, 60)))
    assert len(views) == 120
    assert [v.name.split("_")[0] for v in views[::30]] == [f"{r:04d}" for r in rooms]
    present = set().union(*(np.unique(v.label).tolist() for v in views)) - {0}
    assert present == set(range(1, load_classes().num_classes))


def test_the_dim_noisy_domain_is_the_same_scene_with_a_third_of_the_led():
    """``lowlight synth --low-light dim-noisy``: the same rooms and labels as the default LED,
    about a third of its light (and more read noise: a domain shift for ``lowlight adapt``)."""
    from lowlight_perception.data.synthetic import LOW_LIGHT_DOMAINS

    K = Intrinsics.d435i(160, 120)
    led = [synthetic.random_view(5, i, K) for i in range(6)]
    dim = [synthetic.random_view(5, i, K, low=LOW_LIGHT_DOMAINS["dim-noisy"]) for i in range(6)]
    for a, b in zip(led, dim, strict=True):
        np.testing.assert_array_equal(a.label, b.label)
        np.testing.assert_array_equal(a.normal, b.normal)
    ratio = np.mean([b.low.mean() for b in dim]) / np.mean([a.low.mean() for a in led])
    assert 0.2 < ratio < 0.7
    assert LOW_LIGHT_DOMAINS["led"] == LOW_LIGHT_DOMAINS["led"].__class__()  # the default


def test_led_colour_beam_vignetting_and_motion_blur_change_the_dark_view(small_camera):
    """What differs between robots and lenses, each isolated on one noise-free view."""
    rng = np.random.default_rng(5)
    size = scene.room_size(rng)
    room = scene.generate_room(rng, size, keep_free=np.array([[2.0, 2.0]]))
    pose = raycast.Pose(np.array([2.0, 2.0, 1.2]), np.array([1.0, 0.3, -0.2]))
    plain = {
        "led_gain": (0.3, 0.3),
        "led_warmth": (0.0, 0.0),
        "beam_exponent": (0.0, 0.0),
        "vignetting": (0.0, 0.0),
        "motion_blur": (0.0, 0.0),
    }

    def dark(**change):
        low = synthetic.LowLight(**{**plain, **change})
        return synthetic.render(
            room, pose, small_camera, np.random.default_rng(0), noise=False, low=low
        )

    base = dark()
    # warm LED: red up, blue down, against the neutral one on the same pixels
    warm = dark(led_warmth=(1.0, 1.0)).low.astype(float).reshape(-1, 3).sum(0)
    ratio = warm / base.low.astype(float).reshape(-1, 3).sum(0)
    assert ratio[0] > 1.05 and ratio[2] < 0.85
    # beam and vignetting darken the corners, not the centre (the principal point)
    h, w = base.label.shape
    for change in ({"beam_exponent": (3.0, 3.0)}, {"vignetting": (0.4, 0.4)}):
        falloff = dark(**change).shading_low / base.shading_low
        assert falloff[h // 2, w // 2] == pytest.approx(1.0, abs=0.01)
        assert falloff[0, 0] < 0.8 and falloff[-1, -1] < 0.8
    vig = dark(vignetting=(0.4, 0.4))
    corner_over_centre = lambda s: s[0, 0] / s[h // 2, w // 2]  # noqa: E731 (auto-exposed)
    assert corner_over_centre(vig.shading_normal) / corner_over_centre(base.shading_normal) == (
        pytest.approx(0.6, rel=0.02)
    ), "one lens: both views"
    # a horizontal streak smooths along x only; labels and depth stay sharp
    streak = synthetic.motion_blur(np.eye(9, dtype=np.float32)[..., None], 4.0, 0.0)[..., 0]
    assert streak[4, 2:7] == pytest.approx(np.full(5, 0.2)) and streak[4].sum() == pytest.approx(1)
    bright = {"led_gain": (1.5, 1.5)}  # far above quantisation, so the streak shows
    sharp, blurred = dark(**bright), dark(**bright, motion_blur=(0.03, 0.03))
    edges = lambda img: sum(np.abs(np.diff(img.astype(float), axis=a)).mean() for a in (0, 1))  # noqa: E731
    assert edges(blurred.low) < 0.9 * edges(sharp.low)  # 0.86 here; 1.0 unblurred
    assert np.array_equal(blurred.label, base.label) and np.array_equal(blurred.depth, base.depth)
    assert np.array_equal(blurred.normal, base.normal)


def test_a_sequence_keeps_its_camera_settings_fixed(monkeypatch):
    """A robot's LED, lens and exposure do not change between frames: one draw per sequence,
    and each frame is rendered with that draw (what ``render`` receives is recorded)."""
    settings = synthetic.LowLight().fixed(np.random.default_rng(3))
    for f in dataclasses.fields(settings):
        lo, hi = getattr(settings, f.name)
        low, high = getattr(synthetic.LowLight(), f.name)
        assert lo == hi and low <= lo <= high, f.name
    seen, render = [], synthetic.render

    def recording(*args, **kwargs):
        seen.append((kwargs["low"], kwargs["normal"]))
        return render(*args, **kwargs)

    monkeypatch.setattr(synthetic, "render", recording)
    K = Intrinsics.d435i(32, 24)
    frames = [synthetic.sequence_frame(4, 1, i, 6, K) for i in (0, 3, 5)]
    assert len(seen) == 3 and seen[0] == seen[1] == seen[2]
    assert all(lo == hi for lo, hi in dataclasses.astuple(seen[0][0]))
    assert not np.array_equal(frames[0].low, frames[1].low), "each frame draws its own noise"
    other = synthetic.sequence_frame(4, 2, 0, 6, K)  # another room: its own draw
    assert seen[-1][0] != seen[0][0] and other.name == "0002_000000"
