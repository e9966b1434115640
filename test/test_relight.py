"""Relighting a normal-light RGB-D frame into the robot's LED-lit dark frame."""

from __future__ import annotations

import numpy as np
import pytest

from lowlight_perception.camera import Intrinsics
from lowlight_perception.data import relight


def _plane(K: Intrinsics, z: float) -> np.ndarray:
    return np.full((K.height, K.width), round(z * 1000), np.uint16)


def test_led_shading_is_inverse_square_with_lambert_cosine():
    K = Intrinsics.d435i(80, 60)
    near = relight.led_shading(_plane(K, 1.0), K, led_gain=0.3)
    far = relight.led_shading(_plane(K, 2.0), K, led_gain=0.3)
    c = (30, 40)
    assert near[c] == pytest.approx(0.3, rel=0.02)  # facing the LED at 1 m
    assert near[c] / far[c] == pytest.approx(4.0, rel=0.02)
    # off-axis pixels of a fronto-parallel plane are farther and oblique: cos^3 falloff
    u = (0 - K.cx) / K.fx
    v = (c[0] - K.cy) / K.fy
    cos = 1 / np.sqrt(1 + u * u + v * v)
    assert near[c[0], 0] == pytest.approx(0.3 * cos**3, rel=0.03)


def test_normals_of_a_tilted_plane_are_analytic():
    K = Intrinsics.d435i(64, 48)
    rays = K.rays()
    # plane z = 2 + 0.5 x  (in the optical frame): depth = 2 / (1 - 0.5 u)
    depth = 2.0 / (1 - 0.5 * rays[..., 0])
    n = relight.normals_from_depth(rays * depth[..., None])
    expected = np.array([0.5, 0.0, -1.0]) / np.linalg.norm([0.5, 0.0, -1.0])
    np.testing.assert_allclose(
        n[5:-5, 5:-5].reshape(-1, 3), np.broadcast_to(expected, (38 * 54, 3)), atol=1e-3
    )


def test_fill_depth_keeps_valid_pixels_and_fills_holes_from_neighbours():
    d = np.full((20, 30), 2.0, np.float32)
    d[:, 15:] = 4.0
    holes = d.copy()
    holes[5:8, 3:6] = 0
    holes[10, 25] = 0
    filled = relight.fill_depth(holes)
    np.testing.assert_array_equal(filled[holes > 0], holes[holes > 0])
    assert filled[6, 4] == pytest.approx(2.0)
    assert filled[10, 25] == pytest.approx(4.0)
    with pytest.raises(ValueError, match="no valid pixel"):
        relight.fill_depth(np.zeros((4, 4), np.float32))


def test_relight_checked_on_procedural_scenes():
    """Against frames rendered with the true albedo (the error is reported by the benchmark)."""
    report = relight.check_on_procedural(views=4, size=(160, 120))
    assert report["mae_dn_true_albedo"] < 0.5, report  # LED + normals-from-depth model
    assert report["relative_mae"] < 0.45, report  # albedo estimated from the normal image
    assert 0.8 < report["mean_intensity_ratio"] < 1.2, report


def test_relight_output_is_dark_noisy_and_seeded():
    K = Intrinsics.d435i(80, 60)
    rng = np.random.default_rng(0)
    normal = rng.integers(60, 200, (60, 80, 3), dtype=np.uint8)
    depth = _plane(K, 1.5)
    a = relight.relight(normal, depth, K, seed=1)
    assert a.shape == normal.shape and a.dtype == np.uint8
    assert a.mean() < 0.25 * normal.mean()
    np.testing.assert_array_equal(a, relight.relight(normal, depth, K, seed=1))
    assert not np.array_equal(a, relight.relight(normal, depth, K, seed=2))
    clean = relight.relight(normal, depth, K, noise=False)
    assert np.abs(a.astype(int) - clean).std() > 0.3


@pytest.mark.parametrize(
    "normal, depth, message",
    [
        (np.zeros((60, 80), np.uint8), np.ones((60, 80), np.uint16), "uint8"),
        (np.zeros((60, 80, 3), np.uint8), np.ones((30, 80), np.uint16), "does not match"),
        (np.zeros((30, 40, 3), np.uint8), np.ones((30, 40), np.uint16), "intrinsics are"),
    ],
)
def test_relight_rejects_mismatched_inputs(normal, depth, message):
    with pytest.raises(ValueError, match=message):
        relight.relight(normal, depth, Intrinsics.d435i(80, 60))
