"""Joint transforms keep every field of a Sample, and its intrinsics, consistent."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lowlight_perception.camera import Intrinsics
from lowlight_perception.data.sample import Sample
from lowlight_perception.data.transforms import (
    Compose,
    RandomCrop,
    RandomHorizontalFlip,
    Resize,
    resize_sample,
)

W, H = 40, 30


def make_sample(width: int = W, height: int = H) -> Sample:
    """A view whose every field is asymmetric, so a flip or a wrong offset shows."""
    yy, xx = np.mgrid[0:height, 0:width]
    low = np.zeros((height, width, 3), np.uint8)
    low[..., 0] = xx * 255 // (width - 1)
    low[..., 1] = yy * 255 // (height - 1)
    label = (1 + (xx * 4 // width) + 4 * (yy * 3 // height)).astype(np.uint8)  # ids 1..12
    label[:3, :5] = 13  # a marker in the top-left corner
    low[:3, :5] = (255, 0, 255)
    depth = (500 + 10 * xx + yy).astype(np.uint16)
    depth[-2:, -2:] = 0  # invalid corner
    shading = (xx / width + yy / height).astype(np.float32)
    return Sample(
        name="v",
        low=low,
        normal=255 - low,
        label=label,
        depth=depth,
        albedo=low // 2,
        shading_low=shading * 0.1,
        shading_normal=shading,
        intrinsics=Intrinsics.d435i(width, height),
    )


def backproject(k: Intrinsics, u: float, v: float, z: float) -> np.ndarray:
    return np.array([(u - k.cx) / k.fx * z, (v - k.cy) / k.fy * z, z])


def test_resize_nearest_fields_keep_original_values_and_intrinsics_scale():
    sample = make_sample()
    for size in ((20, 15), (64, 48), (33, 17)):
        out = resize_sample(sample, size)
        assert out.size == size
        assert out.low.shape == (size[1], size[0], 3) and out.low.dtype == np.uint8
        assert out.shading_low.dtype == np.float32 and out.shading_low.shape == size[::-1]
        assert set(np.unique(out.label)) <= set(np.unique(sample.label))
        assert set(np.unique(out.depth)) <= set(np.unique(sample.depth))
        assert out.depth.dtype == np.uint16 and out.label.dtype == np.uint8
        assert out.intrinsics == sample.intrinsics.scaled(*size)
    assert resize_sample(sample, (W, H)) is sample  # no-op keeps the arrays
    assert Resize(20)(sample).size == (20, 20)


def test_resize_bilinear_shading_stays_in_range_and_labels_follow_image():
    sample = make_sample()
    out = resize_sample(sample, (80, 60))  # upsample x2: marker region doubles
    assert out.shading_normal.min() >= sample.shading_normal.min() - 1e-6
    assert out.shading_normal.max() <= sample.shading_normal.max() + 1e-6
    marker = out.label == 13
    assert marker[:6, :10].all() and marker.sum() == 60
    assert (out.low[:5, :9] == (255, 0, 255)).all()


def test_crop_takes_the_same_window_from_every_field():
    sample = make_sample()
    crop = RandomCrop((16, 12), seed=1)
    for _ in range(5):
        out = crop(sample)
        k = out.intrinsics
        x0, y0 = sample.intrinsics.cx - k.cx, sample.intrinsics.cy - k.cy
        assert float(x0).is_integer() and float(y0).is_integer()
        x0, y0 = int(x0), int(y0)
        window = np.s_[y0 : y0 + 12, x0 : x0 + 16]
        for field in ("low", "normal", "albedo", "label", "depth", "shading_low"):
            np.testing.assert_array_equal(getattr(out, field), getattr(sample, field)[window])
        assert (k.width, k.height, k.fx, k.fy) == (
            16,
            12,
            sample.intrinsics.fx,
            sample.intrinsics.fy,
        )
        # The same 3-D point from the same pixel in both views.
        np.testing.assert_allclose(
            backproject(k, 3, 4, 2.0), backproject(sample.intrinsics, 3 + x0, 4 + y0, 2.0)
        )


def test_crop_larger_than_view_pads_with_void_and_invalid_depth():
    sample = make_sample(10, 8)
    out = RandomCrop((12, 11), seed=0)(sample)
    assert out.size == (12, 11)
    assert (out.label[8:] == 0).all() and (out.label[:, 10:] == 0).all()
    assert (out.depth[8:] == 0).all() and (out.low[:, 10:] == 0).all()
    np.testing.assert_array_equal(out.label[:8, :10], sample.label)
    assert out.intrinsics.cx == sample.intrinsics.cx


def test_crop_is_reproducible_with_a_seed():
    sample = make_sample()
    first, second = RandomCrop(10, seed=7), RandomCrop(10, seed=7)
    a = [first(sample).intrinsics.cx for _ in range(6)]
    b = [second(sample).intrinsics.cx for _ in range(6)]
    assert a == b and len(set(a)) > 1
    second.reseed(7)
    assert [second(sample).intrinsics.cx for _ in range(6)] == a


def test_flip_moves_label_with_image_and_flips_cx():
    sample = make_sample()
    out = RandomHorizontalFlip(p=1.0, seed=0)(sample)
    for field in ("low", "label", "depth", "shading_normal"):
        np.testing.assert_array_equal(getattr(out, field), getattr(sample, field)[:, ::-1])
    # The magenta marker and its label id land on the same (top-right) pixels.
    magenta = (out.low == (255, 0, 255)).all(axis=-1)
    np.testing.assert_array_equal(magenta, out.label == 13)
    assert magenta[:3, -5:].all()
    assert out.intrinsics.cx == pytest.approx((W - 1) - sample.intrinsics.cx)
    # Mirrored pixel -> mirrored 3-D point.
    p = backproject(sample.intrinsics, 5, 7, 1.5)
    q = backproject(out.intrinsics, W - 1 - 5, 7, 1.5)
    np.testing.assert_allclose(q, [-p[0], p[1], p[2]], atol=1e-9)
    assert out.low.flags.c_contiguous  # torch.from_numpy rejects negative strides
    twice = RandomHorizontalFlip(p=1.0)(out)
    assert twice.intrinsics == sample.intrinsics
    np.testing.assert_array_equal(twice.label, sample.label)


def test_flip_probability_zero_is_identity_and_missing_fields_stay_none():
    sample = dataclasses.replace(make_sample(), depth=None, albedo=None, intrinsics=None)
    assert RandomHorizontalFlip(p=0.0)(sample) is sample
    out = RandomHorizontalFlip(p=1.0)(sample)
    assert out.depth is None and out.albedo is None and out.intrinsics is None
    out = RandomCrop(8, seed=0)(sample)
    assert out.depth is None and out.intrinsics is None and out.label.shape == (8, 8)
    with pytest.raises(ValueError):
        RandomHorizontalFlip(p=1.5)


def test_compose_applies_in_order_and_reseeds_members():
    sample = make_sample()
    pipeline = Compose(
        [Resize((20, 16)), RandomCrop((16, 12), seed=0), RandomHorizontalFlip(0.5, seed=0)]
    )
    out = pipeline(sample)
    assert out.size == (16, 12) and out.intrinsics.width == 16
    pipeline.reseed(3)
    first = [pipeline(sample).intrinsics.cx for _ in range(5)]
    pipeline.reseed(3)
    assert [pipeline(sample).intrinsics.cx for _ in range(5)] == first
    assert "RandomCrop" in repr(pipeline)


def test_mismatched_fields_are_rejected():
    sample = dataclasses.replace(make_sample(), label=np.zeros((5, 5), np.uint8))
    with pytest.raises(ValueError, match="label"):
        RandomHorizontalFlip(p=1.0)(sample)
