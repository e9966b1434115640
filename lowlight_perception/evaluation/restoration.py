"""Is anything restored? PSNR / SSIM of the network's reflectance against the references a view
has (the restoration target R(normal) in training; the true albedo of procedural views; the
normal-light frame), next to two simple baselines on the same frames, so a reader sees whether
the network beats brightening the dark frame.

Baselines: the low frame times one global gain, fitted by least squares to the normal frame
(what an auto-exposure would do), and classical max-RGB Retinex (illumination = the brightest
channel of each pixel, reflectance = image / illumination).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .metrics import psnr, ssim

CANDIDATES = ("restored", "gain", "max_rgb")
PSNR_CAP_DB = 100.0
"""PSNR of identical images is infinite; it counts as this in the means."""


def gain_baseline(low: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: ``low`` x the gain g minimising |g low - normal|^2, clipped."""
    x, y = low.astype(np.float64), normal.astype(np.float64)
    g = float((x * y).sum() / max((x * x).sum(), 1e-12))
    return np.clip(np.rint(x * g), 0, 255).astype(np.uint8)


def max_rgb_retinex(low: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 reflectance: each pixel divided by its brightest channel (1/255 at
    least), so the brightest channel becomes 255."""
    x = low.astype(np.float64)
    illumination = np.maximum(x.max(axis=2, keepdims=True), 1.0)
    return np.clip(np.rint(255.0 * x / illumination), 0, 255).astype(np.uint8)


@dataclass
class RestorationScores:
    """Running means of ``{psnr,ssim}_{candidate}_vs_{reference}`` over frames; mergeable
    across torchrun ranks (plain sums and counts)."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(
        self,
        low: np.ndarray,
        normal_frame: np.ndarray,
        restored: np.ndarray | None,
        **references: np.ndarray | None,
    ) -> None:
        """Score one frame (uint8 (H, W, 3) each): the restored reflectance (None: a model
        without one) and the two baselines (the gain fitted to ``normal_frame``), against every
        reference given (None ones are skipped)."""
        candidates = {
            "gain": gain_baseline(low, normal_frame),
            "max_rgb": max_rgb_retinex(low),
        }
        if restored is not None:
            candidates["restored"] = restored
        for ref_name, ref in references.items():
            if ref is None:
                continue
            for name, image in candidates.items():
                self._put(f"psnr_{name}_vs_{ref_name}", min(psnr(image, ref), PSNR_CAP_DB))
                self._put(f"ssim_{name}_vs_{ref_name}", ssim(image, ref))

    def _put(self, key: str, value: float) -> None:
        if math.isfinite(value):
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1

    def merge(self, other: RestorationScores) -> None:
        for key, value in other.sums.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + other.counts[key]

    def summary(self) -> dict[str, float]:
        """Mean of each score (PSNR in dB, SSIM), sorted by key."""
        return {k: round(self.sums[k] / self.counts[k], 4) for k in sorted(self.sums)}
