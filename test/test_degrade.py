"""Image corruptions: shapes, determinism, and each corruption against an independent check."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lowlight_perception.data import degrade as dg


def _textured(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _high_freq_energy(image: np.ndarray) -> float:
    x = image.astype(np.float64)
    return float((np.diff(x, axis=0) ** 2).sum() + (np.diff(x, axis=1) ** 2).sum())


@pytest.mark.parametrize("kind", dg.KINDS)
@pytest.mark.parametrize("level", [1, 4])
def test_shape_dtype_preserved_and_input_untouched(kind: str, level: int) -> None:
    image = _textured()
    before = image.copy()
    out = dg.degrade(image, kind, level, seed=1)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert out is not image
    np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize("kind", [k for k in dg.KINDS if k != "chromatic_aberration"])
def test_grey_images_accepted(kind: str) -> None:
    grey = _textured()[:, :, 0]
    out = dg.degrade(grey, kind, 2, seed=0)
    assert out.shape == grey.shape and out.dtype == np.uint8


def test_levels_table_matches_paper() -> None:
    assert dg.LEVELS["gaussian_blur"] == (1.2, 2.5, 6.5, 15.2)
    assert dg.LEVELS["gaussian_noise"] == (0.05, 0.09, 0.13, 0.2)
    assert dg.LEVELS["jpeg"] == (43, 12, 7, 4)
    assert [r for r, _ in dg.LEVELS["chromatic_aberration"]] == [2, 6, 10, 14]
    assert [b for _, b in dg.LEVELS["chromatic_aberration"]] == [1, 3, 5, 7]
    assert set(dg.LEVELS) == set(dg.KINDS)
    assert all(len(v) == 4 for v in dg.LEVELS.values())


def test_noise_deterministic_with_seed_and_differs_across_seeds() -> None:
    image = _textured()
    a = dg.degrade(image, "gaussian_noise", 2, seed=7)
    b = dg.degrade(image, "gaussian_noise", 2, seed=7)
    c = dg.degrade(image, "gaussian_noise", 2, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_blur_reduces_high_frequency_energy_monotonically() -> None:
    image = _textured(64, 80)
    energies = [_high_freq_energy(image)]
    energies += [_high_freq_energy(dg.degrade(image, "gaussian_blur", lv)) for lv in (1, 2, 3, 4)]
    assert all(a > b for a, b in itertools.pairwise(energies)), energies


@pytest.mark.parametrize("sigma", [1.2, 15.2])
def test_blur_of_constant_is_constant(sigma: float) -> None:
    image = np.full((20, 30, 3), 137, dtype=np.uint8)
    np.testing.assert_array_equal(dg.gaussian_blur(image, sigma=sigma), image)


@pytest.mark.parametrize("sigma", [1.2, 2.5])
def test_blur_of_delta_matches_direct_2d_gaussian(sigma: float) -> None:
    size, centre = 41, 20
    image = np.zeros((size, size), dtype=np.uint8)
    image[centre, centre] = 255
    out = dg.gaussian_blur(image, sigma=sigma).astype(np.float64)
    # Independent reference: a normalised 2-D Gaussian on the square [-r, r]^2, r = ceil(3 sigma).
    r = int(np.ceil(3 * sigma))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    g = np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
    g /= g.sum()
    expected = np.zeros((size, size))
    expected[centre - r : centre + r + 1, centre - r : centre + r + 1] = 255 * g
    assert np.abs(out - expected).max() <= 1.0


def test_blur_reflects_at_border() -> None:
    # Left half bright: with reflect padding the edge column stays near its own value.
    image = np.zeros((10, 40), dtype=np.uint8)
    image[:, :20] = 200
    out = dg.gaussian_blur(image, sigma=2.5)
    assert out[5, 0] == 200 and out[5, -1] == 0


def test_jpeg_error_grows_as_quality_drops() -> None:
    yy, xx = np.mgrid[0:64, 0:64]
    smooth = np.stack([xx * 4, yy * 4, (xx + yy) * 2], axis=-1).astype(np.uint8)
    image = np.clip(smooth.astype(int) + _textured(64, 64) // 8, 0, 255).astype(np.uint8)
    errors = [
        np.abs(dg.degrade(image, "jpeg", lv).astype(int) - image).mean() for lv in (1, 2, 3, 4)
    ]
    assert all(a < b for a, b in itertools.pairwise(errors)), errors


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_chromatic_aberration_shifts_red_right_and_blue_left(level: int) -> None:
    r_shift, b_shift = dg.LEVELS["chromatic_aberration"][level - 1]
    image = np.zeros((9, 40, 3), dtype=np.uint8)
    image[4, 20] = (255, 0, 0)  # isolated red pixel
    image[2, 20] = (0, 0, 255)  # isolated blue pixel
    image[6, 20] = (0, 255, 0)  # isolated green pixel
    out = dg.degrade(image, "chromatic_aberration", level)
    assert list(zip(*np.nonzero(out[:, :, 0]), strict=True)) == [(4, 20 + r_shift)]
    assert list(zip(*np.nonzero(out[:, :, 2]), strict=True)) == [(2, 20 - b_shift)]
    np.testing.assert_array_equal(out[:, :, 1], image[:, :, 1])


def test_chromatic_aberration_replicates_edges() -> None:
    image = np.zeros((2, 10, 3), dtype=np.uint8)
    image[:, 0, 0] = 90  # red at the left edge is smeared into the uncovered columns
    out = dg.chromatic_aberration(image, r_shift=3, b_shift=0)
    np.testing.assert_array_equal(out[0, :, 0], [90, 90, 90, 90, 0, 0, 0, 0, 0, 0])


def test_chromatic_aberration_rejects_grey() -> None:
    with pytest.raises(ValueError, match="H, W, 3"):
        dg.chromatic_aberration(np.zeros((4, 4), np.uint8), 2, 1)


@pytest.mark.parametrize("variance", [0.0025, 0.01])
def test_noise_variance_on_unit_intensity_scale(variance: float) -> None:
    # Small variances so clipping at 0/255 does not bias the sample variance of mid-grey.
    image = np.full((200, 200, 3), 128, dtype=np.uint8)
    out = dg.gaussian_noise(image, variance=variance, seed=3).astype(np.float64) / 255.0
    assert abs(out.var() - variance) < 0.05 * variance
    assert abs(out.mean() - 128 / 255) < 0.005


def test_noise_paper_level_is_clipped_to_uint8_range() -> None:
    image = np.full((100, 100, 3), 128, dtype=np.uint8)
    out = dg.degrade(image, "gaussian_noise", 4, seed=0)
    assert out.min() == 0 and out.max() == 255  # std 114 levels: clipping happens
    var = (out / 255.0).var()
    assert 0.1 < var < 0.2  # clipped variance is below the nominal 0.2 but of that order


@pytest.mark.parametrize("factor", dg.DARKNESS_LEVELS)
def test_darken_scales_the_mean(factor: float) -> None:
    image = _textured()
    out = dg.darken(image, factor=factor)
    assert abs(out.mean() - image.mean() * factor) < 0.6
    assert dg.DARKNESS_LEVELS[0] == 1.0


def test_darken_rejects_out_of_range_factor() -> None:
    with pytest.raises(ValueError, match="factor"):
        dg.darken(_textured(), factor=0.0)


@pytest.mark.parametrize("angle", [0.0, 30.0, 45.0, 90.0, 135.0])
def test_motion_blur_of_point_spreads_along_angle(angle: float) -> None:
    size, centre, length = 61, 30, 21
    image = np.zeros((size, size), dtype=np.uint8)
    image[centre, centre] = 255
    out = dg.motion_blur(image, length=length, angle_deg=angle).astype(np.float64)
    ys, xs = np.nonzero(out)
    dx, dy = xs - centre, -(ys - centre)  # y up, as on screen
    cov = np.cov(np.stack([dx, dy]), aweights=out[ys, xs])
    evals, evecs = np.linalg.eigh(cov)
    major = evecs[:, -1]
    measured = np.degrees(np.arctan2(major[1], major[0])) % 180
    error = abs(measured - angle % 180)
    assert min(error, 180 - error) < 2.0
    # A uniform segment of length L has variance L^2 / 12 along it, and almost none across it.
    assert np.sqrt(12 * evals[-1]) == pytest.approx(length, rel=0.1)
    assert evals[0] < 0.5
    assert abs(out.sum() - 255) < 0.05 * 255  # mass preserved up to rounding


def test_motion_blur_horizontal_stays_on_row() -> None:
    image = np.zeros((21, 41), dtype=np.uint8)
    image[10, 20] = 250
    out = dg.motion_blur(image, length=5, angle_deg=0)
    rows, cols = np.nonzero(out)
    assert set(rows) == {10}
    assert cols.min() == 18 and cols.max() == 22
    np.testing.assert_array_equal(dg.motion_blur(image, length=1), image)


@pytest.mark.parametrize(
    ("kind", "level", "match"),
    [
        ("fog", 1, "valid kinds: gaussian_blur, gaussian_noise, jpeg, chromatic_aberration"),
        ("jpeg", 0, r"1\.\.4"),
        ("jpeg", 5, r"1\.\.4"),
        ("jpeg", 2.0, r"1\.\.4"),
    ],
)
def test_bad_kind_or_level_names_valid_values(kind: str, level: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        dg.degrade(_textured(), kind, level)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "image",
    [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 4), np.uint8), np.zeros((8,), np.uint8)],
)
def test_bad_images_rejected(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="image must"):
        dg.degrade(image, "gaussian_blur", 1)
