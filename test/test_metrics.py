"""Metrics checked against independent computations: loops, set operations, hand-worked cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lowlight_perception.evaluation.metrics import ConfusionMatrix, depth_metrics, psnr, ssim

# ---------------------------------------------------------------- confusion matrix / segmentation


def _brute_matrix(pred: np.ndarray, target: np.ndarray, n: int, ignore: int | None) -> np.ndarray:
    matrix = np.zeros((n, n), dtype=np.int64)
    for p, t in zip(pred.ravel().tolist(), target.ravel().tolist(), strict=True):
        if t == ignore:
            continue
        if 0 <= p < n:
            matrix[t, p] += 1
    return matrix


def _brute_metrics(pred: np.ndarray, target: np.ndarray, n: int, ignore: int) -> dict:
    """Metrics from sets of pixel indices, independent of any confusion matrix."""
    p, t = pred.ravel().tolist(), target.ravel().tolist()
    counted = [i for i in range(len(t)) if t[i] != ignore]
    ious, accs, fw = {}, {}, 0.0
    for c in range(n):
        if c == ignore:
            continue
        truth = {i for i in counted if t[i] == c}
        predicted = {i for i in counted if p[i] == c}
        if truth | predicted:
            ious[c] = len(truth & predicted) / len(truth | predicted)
            fw += len(truth) / len(counted) * ious[c]
        if truth:
            accs[c] = len(truth & predicted) / len(truth)
    correct = sum(1 for i in counted if p[i] == t[i])
    return {
        "OA": correct / len(counted),
        "mAcc": sum(accs.values()) / len(accs),
        "mIoU": sum(ious.values()) / len(ious),
        "FWIoU": fw,
        "ious": ious,
        "accs": accs,
    }


@pytest.mark.parametrize("seed", range(5))
def test_matrix_and_metrics_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 6
    target = rng.integers(0, n, (7, 9))
    pred = np.where(rng.random((7, 9)) < 0.5, target, rng.integers(-1, n + 2, (7, 9)))
    cm = ConfusionMatrix(num_classes=n, ignore_index=0)
    cm.update(pred, target)
    np.testing.assert_array_equal(cm.matrix, _brute_matrix(pred, target, n, 0))
    got, ref = cm.compute(), _brute_metrics(pred, target, n, 0)
    for key in ("OA", "mAcc", "mIoU", "FWIoU"):
        assert getattr(got, key) == pytest.approx(ref[key], abs=1e-12), key
    assert {c: v for c, v in got.per_class_IoU.items() if v is not None} == pytest.approx(
        ref["ious"]
    )
    assert {c: v for c, v in got.per_class_acc.items() if v is not None} == pytest.approx(
        ref["accs"]
    )
    assert cm.matrix.dtype == np.int64 and cm.matrix.shape == (n, n)


def test_hand_worked_example() -> None:
    # Classes 0 (void), 1, 2, 3, 4. Truth row 3 is void and skipped entirely.
    target = np.array([[1, 1, 1], [1, 2, 2], [0, 0, 0]], dtype=np.uint8)
    pred = np.array([[1, 1, 3], [2, 2, 2], [3, 3, 0]], dtype=np.uint8)
    m = ConfusionMatrix(num_classes=5, ignore_index=0)
    m.update(pred, target)
    r = m.compute()
    # class 1: truth 4, tp 2, predicted 2 -> IoU 2/4, acc 2/4
    # class 2: truth 2, tp 2, predicted 3 -> IoU 2/3, acc 1
    # class 3: predicted once, never true -> IoU 0 (counts in mIoU), acc undefined
    # class 4: absent from both -> no IoU, excluded from mIoU
    assert r.num_pixels == 6
    assert r.OA == pytest.approx(4 / 6)
    assert r.mAcc == pytest.approx((0.5 + 1.0) / 2)
    assert r.mIoU == pytest.approx((0.5 + 2 / 3 + 0.0) / 3)
    assert r.FWIoU == pytest.approx(4 / 6 * 0.5 + 2 / 6 * 2 / 3)
    assert r.per_class_IoU == pytest.approx({0: None, 1: 0.5, 2: 2 / 3, 3: 0.0, 4: None})
    assert r.per_class_acc == pytest.approx({0: None, 1: 0.5, 2: 1.0, 3: None, 4: None})


def test_absent_class_is_excluded_not_zero() -> None:
    target = np.array([1, 1, 2, 2])
    pred = np.array([1, 1, 2, 2])
    for n in (3, 14):  # adding never-seen classes must not change the means
        m = ConfusionMatrix(num_classes=n)
        m.update(pred, target)
        r = m.compute()
        assert (r.OA, r.mAcc, r.mIoU, r.FWIoU) == (1.0, 1.0, 1.0, 1.0)
        assert all(r.per_class_IoU[c] is None for c in range(3, n))


def test_ignore_index_pixels_are_skipped() -> None:
    target = np.array([0, 0, 0, 1, 2])
    pred = np.array([1, 2, 0, 1, 2])  # wrong or right on void: must not matter
    m = ConfusionMatrix(num_classes=3, ignore_index=0)
    m.update(pred, target)
    assert m.matrix.sum() == 2
    assert m.compute().OA == 1.0 and m.compute().mIoU == 1.0
    # ignore_index outside the class range (e.g. 255) and None
    m255 = ConfusionMatrix(num_classes=3, ignore_index=255)
    m255.update(np.array([1, 2, 0]), np.array([255, 2, 0]))
    assert m255.matrix.sum() == 2 and m255.compute().per_class_IoU[0] == 1.0
    mnone = ConfusionMatrix(num_classes=3, ignore_index=None)
    mnone.update(pred, target)
    assert mnone.matrix.sum() == 5


def test_void_prediction_on_labelled_pixel_counts_as_wrong() -> None:
    m = ConfusionMatrix(num_classes=3)
    m.update(np.array([0, 1]), np.array([1, 1]))
    r = m.compute()
    assert r.OA == 0.5 and r.per_class_IoU[1] == 0.5 and r.per_class_IoU[0] is None


def test_out_of_range_predictions_are_wrong_not_a_crash() -> None:
    m = ConfusionMatrix(num_classes=3)
    m.update(np.array([1, 7, -4, 2]), np.array([1, 1, 2, 2]))
    assert m.invalid_predictions == 2
    r = m.compute()
    assert r.OA == 0.5
    assert r.per_class_IoU[1] == 0.5 and r.per_class_IoU[2] == 0.5
    assert r.per_class_acc[1] == 0.5


def test_bad_targets_and_sizes_raise() -> None:
    m = ConfusionMatrix(num_classes=3)
    with pytest.raises(ValueError, match="outside"):
        m.update(np.array([1]), np.array([5]))
    with pytest.raises(ValueError, match="elements"):
        m.update(np.array([1, 2]), np.array([1]))
    with pytest.raises(ValueError, match="integer"):
        m.update(np.array([1.0]), np.array([1]))


def test_streaming_equals_one_shot_and_merge() -> None:
    rng = np.random.default_rng(3)
    frames = [(rng.integers(0, 14, (12, 16)), rng.integers(0, 14, (12, 16))) for _ in range(4)]
    streamed, one_shot, a, b = (ConfusionMatrix() for _ in range(4))
    for pred, target in frames:
        streamed.update(pred, target)
    one_shot.update(
        np.concatenate([p.ravel() for p, _ in frames]),
        np.concatenate([t.ravel() for _, t in frames]),
    )
    np.testing.assert_array_equal(streamed.matrix, one_shot.matrix)
    for i, (pred, target) in enumerate(frames):
        (a if i % 2 else b).update(pred, target)
    assert a.merge(b) is a
    np.testing.assert_array_equal(a.matrix, one_shot.matrix)
    assert a.compute() == one_shot.compute()
    with pytest.raises(ValueError, match="merge"):
        a.merge(ConfusionMatrix(num_classes=5))
    a.reset()
    assert a.matrix.sum() == 0


def test_empty_matrix_gives_nan() -> None:
    r = ConfusionMatrix().compute()
    assert all(math.isnan(v) for v in (r.OA, r.mAcc, r.mIoU, r.FWIoU))
    assert all(v is None for v in r.per_class_IoU.values())
    assert r.as_dict()["num_pixels"] == 0


# ------------------------------------------------------------------------------- SSIM / PSNR


def _naive_ssim_channel(x: np.ndarray, y: np.ndarray, L: float) -> float:
    """Gaussian-weighted local statistics by explicit loops over every valid 11x11 window."""
    r = np.arange(11) - 5
    w = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5**2))
    w /= w.sum()
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    values = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            px, py = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cxy = (w * (px - mx) * (py - my)).sum()
            values.append(
                ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
            )
    return float(np.mean(values))


def test_ssim_identical_is_one() -> None:
    image = np.random.default_rng(0).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-12)


def test_ssim_matches_naive_reference_grey_and_rgb() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (15, 17, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    grey = _naive_ssim_channel(a[:, :, 0].astype(float), b[:, :, 0].astype(float), 255.0)
    assert ssim(a[:, :, 0], b[:, :, 0]) == pytest.approx(grey, abs=1e-10)
    rgb = np.mean([_naive_ssim_channel(a[..., c] / 1.0, b[..., c] / 1.0, 255.0) for c in range(3)])
    assert ssim(a, b) == pytest.approx(rgb, abs=1e-10)
    # float images on [0, 1]: default data range 1.0 gives the same value
    assert ssim(a / 255.0, b / 255.0) == pytest.approx(rgb, abs=1e-10)


def test_ssim_decreases_with_noise() -> None:
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:48, 0:48]
    clean = ((np.sin(xx / 4.0) + np.cos(yy / 5.0)) * 60 + 128).astype(np.uint8)
    scores = [
        ssim(clean, np.clip(clean + rng.normal(0, s, clean.shape), 0, 255).astype(np.uint8))
        for s in (2, 8, 20, 50)
    ]
    assert all(x > y for x, y in itertools.pairwise(scores)), scores


def test_ssim_rejects_mismatch_and_tiny_images() -> None:
    with pytest.raises(ValueError, match="shape"):
        ssim(np.zeros((12, 12), np.uint8), np.zeros((12, 13), np.uint8))
    with pytest.raises(ValueError, match="window"):
        ssim(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="data_range"):
        ssim(np.zeros((12, 12), np.uint16), np.zeros((12, 12), np.uint16))


def test_psnr_known_values() -> None:
    a = np.full((10, 10, 3), 100, dtype=np.uint8)
    assert psnr(a, a + 5) == pytest.approx(10 * math.log10(255**2 / 25))  # 34.15 dB
    f = np.full((4, 4), 0.5)
    assert psnr(f, f + 0.1) == pytest.approx(20.0)
    assert psnr(f, f + 0.1, data_range=2.0) == pytest.approx(20.0 + 20 * math.log10(2))
    assert psnr(a, a) == math.inf


# ------------------------------------------------------------------------------------- depth


def test_depth_metrics_hand_worked() -> None:
    gt = np.array([1.0, 2.0, 4.0, 0.0, np.nan, 3.0, 2.0])
    pred = np.array([1.1, 1.5, 4.0, 3.0, 2.0, -1.0, np.inf])
    # usable pixels: the first three (gt 0 / NaN, pred negative / inf are dropped)
    m = depth_metrics(pred, gt)
    assert m["AbsRel"] == pytest.approx((0.1 + 0.25 + 0.0) / 3)
    assert m["RMSE"] == pytest.approx(math.sqrt((0.01 + 0.25 + 0.0) / 3))
    assert m["delta1"] == pytest.approx(2 / 3)  # ratios 1.1, 1.333, 1.0
    assert m["delta2"] == 1.0 and m["delta3"] == 1.0
    valid = np.array([False, True, True, True, True, True, True])
    m2 = depth_metrics(pred, gt, valid=valid)
    assert m2["AbsRel"] == pytest.approx(0.25 / 2)
    assert m2["delta1"] == pytest.approx(0.5)


def test_depth_metrics_no_valid_pixels_raises() -> None:
    with pytest.raises(ValueError, match="no valid"):
        depth_metrics(np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        depth_metrics(np.ones(3), np.ones(4))


def test_majority_class_miou_equals_scoring_a_constant_prediction() -> None:
    from lowlight_perception.evaluation.metrics import majority_class_miou

    rng = np.random.default_rng(5)
    labels = rng.choice(14, size=(4, 30, 40), p=np.r_[0.1, 0.3, np.full(12, 0.05)])
    hist = np.bincount(labels.ravel(), minlength=14)
    hist_no_void = hist.copy()
    hist_no_void[0] = 0
    cm = ConfusionMatrix(14, ignore_index=0)
    cm.update(np.full_like(labels, int(hist_no_void.argmax())), labels)
    assert majority_class_miou(hist) == pytest.approx(cm.compute().mIoU)
    assert math.isnan(majority_class_miou(np.zeros(14)))
