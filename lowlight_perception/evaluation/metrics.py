"""Metrics of the papers: OA/mAcc/mIoU/FWIoU from a streaming confusion matrix, SSIM/PSNR, depth.

Segmentation metrics are those reported by [LISU] (README, References): OA, mAcc, mIoU, plus
FWIoU.
Following the project contract the void class is excluded from every mean, and a class absent
from both prediction and truth is left out of mIoU (it has no IoU, not an IoU of 0). Everything
is accumulated in integer counts, so a whole bag can be streamed frame by frame and the result
does not depend on how frames were batched. FWIoU is not in LISU's tables; it is the one of
[Xia]. Only numpy is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..data.degrade import gaussian_kernel


@dataclass(frozen=True)
class SegmentationMetrics:
    """Result of :meth:`ConfusionMatrix.compute`; fractions in [0, 1], NaN when undefined.

    Attributes:
        OA: overall (pixel) accuracy over non-ignored pixels.
        mAcc: mean per-class accuracy over classes with ground-truth pixels.
        mIoU: mean IoU over classes present in prediction or truth.
        FWIoU: IoU weighted by each class's ground-truth pixel frequency.
        per_class_IoU: class id -> IoU, None where undefined (absent from both) or ignored.
        per_class_acc: class id -> accuracy, None where the class has no ground truth.
        num_pixels: number of pixels counted (ignored pixels excluded).
    """

    OA: float
    mAcc: float  # noqa: N815
    mIoU: float  # noqa: N815
    FWIoU: float
    per_class_IoU: dict[int, float | None] = field(default_factory=dict)  # noqa: N815
    per_class_acc: dict[int, float | None] = field(default_factory=dict)
    num_pixels: int = 0

    def as_dict(self) -> dict:
        """Plain dict (for JSON reports)."""
        return {
            "OA": self.OA,
            "mAcc": self.mAcc,
            "mIoU": self.mIoU,
            "FWIoU": self.FWIoU,
            "per_class_IoU": dict(self.per_class_IoU),
            "per_class_acc": dict(self.per_class_acc),
            "num_pixels": self.num_pixels,
        }


class ConfusionMatrix:
    """Streaming confusion matrix over class ids; rows are truth, columns are prediction.

    Pixels whose *target* equals ``ignore_index`` are skipped. A predicted id outside
    ``[0, num_classes)`` is counted in a spare column: it is wrong for its truth class (it lowers
    that class's accuracy and IoU) but belongs to no class. ``ignore_index`` may lie outside the
    class range (e.g. 255) or be None to count every pixel; when it is a class id, that class is
    excluded from every mean and has no IoU or accuracy.
    """

    def __init__(self, num_classes: int = 14, ignore_index: int | None = 0) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self._counts = np.zeros((self.num_classes, self.num_classes + 1), dtype=np.int64)

    def reset(self) -> None:
        """Forget every counted pixel."""
        self._counts[:] = 0

    @property
    def matrix(self) -> np.ndarray:
        """(num_classes, num_classes) int64 counts, a copy; out-of-range predictions not shown."""
        return self._counts[:, : self.num_classes].copy()

    @property
    def invalid_predictions(self) -> int:
        """Number of counted pixels whose predicted id was outside ``[0, num_classes)``."""
        return int(self._counts[:, self.num_classes].sum())

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Count one batch of predictions against ground truth.

        Args:
            pred: integer class ids, any shape.
            target: integer class ids, same number of elements as ``pred``.

        Raises:
            ValueError: if sizes differ, the arrays are not integer, or a non-ignored target id is
                outside ``[0, num_classes)`` (a label/dataset mismatch, never silently dropped).
        """
        pred, target = np.asarray(pred), np.asarray(target)
        if pred.size != target.size:
            raise ValueError(f"pred has {pred.size} elements but target has {target.size}")
        for name, array in (("pred", pred), ("target", target)):
            if array.dtype.kind not in "iub":
                raise ValueError(f"{name} must hold integer class ids, got dtype {array.dtype}")
        n = self.num_classes
        p = pred.ravel().astype(np.int64)
        t = target.ravel().astype(np.int64)
        if self.ignore_index is not None:
            keep = t != self.ignore_index
            p, t = p[keep], t[keep]
        if t.size and (t.min() < 0 or t.max() >= n):
            bad = t[(t < 0) | (t >= n)][0]
            raise ValueError(
                f"target id {bad} outside 0..{n - 1} (ignore_index {self.ignore_index})"
            )
        p = np.where((p < 0) | (p >= n), n, p)
        self._counts += np.bincount(t * (n + 1) + p, minlength=n * (n + 1)).reshape(n, n + 1)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add the counts of ``other`` (e.g. from another worker) into this one; returns self."""
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise ValueError(
                f"cannot merge ConfusionMatrix(num_classes={other.num_classes}, "
                f"ignore_index={other.ignore_index}) into (num_classes={self.num_classes}, "
                f"ignore_index={self.ignore_index})"
            )
        self._counts += other._counts
        return self

    def compute(self) -> SegmentationMetrics:
        """OA, mAcc, mIoU, FWIoU and per-class values from the counts so far.

        With no counted pixels (or no class with a defined value) the means are NaN rather than
        an exception, so an evaluation of an empty bag still produces a report.
        """
        n = self.num_classes
        counts = self._counts.astype(np.float64)
        tp = np.diag(counts[:, :n])
        truth = counts.sum(axis=1)  # includes out-of-range predictions
        predicted = counts[:, :n].sum(axis=0)
        union = truth + predicted - tp
        total = counts.sum()
        classes = [c for c in range(n) if c != self.ignore_index]

        iou: dict[int, float | None] = {c: None for c in range(n)}
        acc: dict[int, float | None] = {c: None for c in range(n)}
        for c in classes:
            if union[c] > 0:
                iou[c] = float(tp[c] / union[c])
            if truth[c] > 0:
                acc[c] = float(tp[c] / truth[c])

        ious = [v for v in iou.values() if v is not None]
        accs = [v for v in acc.values() if v is not None]
        nan = float("nan")
        if total > 0:
            oa = float(tp[classes].sum() / total)
            fwiou = float(sum(truth[c] / total * iou[c] for c in classes if iou[c] is not None))
        else:
            oa = fwiou = nan
        return SegmentationMetrics(
            OA=oa,
            mAcc=float(np.mean(accs)) if accs else nan,
            mIoU=float(np.mean(ious)) if ious else nan,
            FWIoU=fwiou,
            per_class_IoU=iou,
            per_class_acc=acc,
            num_pixels=int(total),
        )


def _data_range(a: np.ndarray, data_range: float | None) -> float:
    """Dynamic range L of the images: given, 255 for uint8, 1.0 for floats."""
    if data_range is not None:
        if not data_range > 0:
            raise ValueError(f"data_range must be > 0, got {data_range}")
        return float(data_range)
    if a.dtype == np.uint8:
        return 255.0
    if a.dtype.kind == "f":
        return 1.0
    raise ValueError(f"data_range must be given for dtype {a.dtype}")


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.dtype != b.dtype:
        raise ValueError(f"images differ in dtype: {a.dtype} vs {b.dtype}")
    if a.ndim not in (2, 3):
        raise ValueError(f"images must be (H, W) or (H, W, C), got shape {a.shape}")
    return a, b


def _filter_valid(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of (H, W, C) ``x`` with 1-D ``kernel`` on both axes."""
    k = len(kernel)
    height, width = x.shape[0] - k + 1, x.shape[1] - k + 1
    rows = sum(w * x[i : i + height] for i, w in enumerate(kernel))
    return sum(w * rows[:, i : i + width] for i, w in enumerate(kernel))


def ssim(
    a: np.ndarray,
    b: np.ndarray,
    data_range: float | None = None,
    *,
    win_size: int = 11,
    sigma: float = 1.5,
    K1: float = 0.01,
    K2: float = 0.03,
) -> float:
    """Mean structural similarity of Wang et al. (2004).

    Local statistics use an 11x11 Gaussian window (sigma 1.5, normalised), population
    (co)variances and only window positions fully inside the image ('valid', as the reference
    MATLAB code); no automatic downsampling. Colour images are scored per channel and averaged.

    Args:
        a, b: images of equal shape and dtype, (H, W) or (H, W, C), H and W >= ``win_size``.
        data_range: L in C1 = (K1 L)^2, C2 = (K2 L)^2; defaults to 255 for uint8, 1.0 for float.

    Returns:
        SSIM in [-1, 1]; 1.0 for identical images.
    """
    a, b = _check_pair(a, b)
    L = _data_range(a, data_range)
    if min(a.shape[:2]) < win_size:
        raise ValueError(f"images of shape {a.shape} are smaller than the {win_size}px window")
    x = a.astype(np.float64).reshape(a.shape[0], a.shape[1], -1)
    y = b.astype(np.float64).reshape(b.shape[0], b.shape[1], -1)
    kernel = gaussian_kernel(sigma, truncate=(win_size - 1) / 2 / sigma)
    mu_x, mu_y = _filter_valid(x, kernel), _filter_valid(y, kernel)
    var_x = _filter_valid(x * x, kernel) - mu_x**2
    var_y = _filter_valid(y * y, kernel) - mu_y**2
    cov = _filter_valid(x * y, kernel) - mu_x * mu_y
    C1, C2 = (K1 * L) ** 2, (K2 * L) ** 2
    ssim_map = ((2 * mu_x * mu_y + C1) * (2 * cov + C2)) / (
        (mu_x**2 + mu_y**2 + C1) * (var_x + var_y + C2)
    )
    return float(ssim_map.mean(axis=(0, 1)).mean())


def psnr(a: np.ndarray, b: np.ndarray, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio 10 log10(L^2 / MSE) in dB; ``inf`` for identical images.

    Args:
        a, b: images of equal shape and dtype.
        data_range: L; defaults to 255 for uint8, 1.0 for float.
    """
    a, b = _check_pair(a, b)
    L = _data_range(a, data_range)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(L * L / mse)


def depth_metrics(
    pred_m: np.ndarray, gt_m: np.ndarray, valid: np.ndarray | None = None
) -> dict[str, float]:
    """Standard monocular-depth errors on the pixels where both depths are usable.

    A pixel counts when ``gt`` and ``pred`` are both finite and > 0 (0 is the REP 118 'no
    depth'), and ``valid`` (if given) is true there.

    Args:
        pred_m: predicted depth in metres.
        gt_m: ground-truth depth in metres, same shape.
        valid: optional boolean mask, same shape.

    Returns:
        ``AbsRel`` mean |p - g| / g, ``RMSE`` in metres, and ``delta1..3``: the fraction of
        pixels with max(p/g, g/p) < 1.25^k.

    Raises:
        ValueError: on a shape mismatch or when no pixel is valid.
    """
    pred = np.asarray(pred_m, dtype=np.float64)
    gt = np.asarray(gt_m, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"pred shape {pred.shape} differs from gt shape {gt.shape}")
    mask = np.isfinite(gt) & (gt > 0) & np.isfinite(pred) & (pred > 0)
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != gt.shape:
            raise ValueError(f"valid mask shape {valid.shape} differs from gt shape {gt.shape}")
        mask &= valid
    if not mask.any():
        raise ValueError("no valid depth pixels (need finite, positive pred and gt)")
    p, g = pred[mask], gt[mask]
    ratio = np.maximum(p / g, g / p)
    return {
        "AbsRel": float(np.mean(np.abs(p - g) / g)),
        "RMSE": float(np.sqrt(np.mean((p - g) ** 2))),
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
    }


def majority_class_miou(label_histogram: np.ndarray, ignore_index: int | None = 0) -> float:
    """mIoU of predicting the most frequent ground-truth class everywhere: a floor any model
    must beat. That class scores (its pixels / all pixels); every other class present in the
    truth scores 0 and counts, as in ``ConfusionMatrix.compute``.

    Args:
        label_histogram: pixel count per class id of the ground truth.
        ignore_index: class left out (void), or None.
    """
    hist = np.asarray(label_histogram, dtype=np.int64).copy()
    if ignore_index is not None and 0 <= ignore_index < len(hist):
        hist[ignore_index] = 0
    total = int(hist.sum())
    if total == 0:
        return math.nan
    return float(hist.max() / total / int((hist > 0).sum()))
