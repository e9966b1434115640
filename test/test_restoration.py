"""Restoration measured: PSNR / SSIM of a restored reflectance against its references, next to
the two baselines a reader compares it with (a global gain fitted to the normal frame, and
max-RGB Retinex), on procedural views whose true albedo is known."""

from __future__ import annotations

import numpy as np

from lowlight_perception.camera import Intrinsics
from lowlight_perception.data.synthetic import random_view
from lowlight_perception.evaluation.metrics import psnr
from lowlight_perception.evaluation.restoration import (
    PSNR_CAP_DB,
    RestorationScores,
    gain_baseline,
    max_rgb_retinex,
)


def _view():
    return random_view(5, 0, Intrinsics.d435i(64, 48))


def test_gain_baseline_undoes_a_global_exposure_and_max_rgb_divides_by_the_brightest_channel():
    view = _view()
    dark = (view.normal // 4).astype(np.uint8)
    assert psnr(gain_baseline(dark, view.normal), view.normal) > 35
    assert psnr(dark, view.normal) < psnr(gain_baseline(dark, view.normal), view.normal)
    # uniform light of any strength: max-RGB gives the albedo over its brightest channel
    albedo = view.albedo.astype(np.float64)
    lit = np.rint(albedo * 0.3).astype(np.uint8)
    reflectance = max_rgb_retinex(lit)
    bright = lit.max(axis=2) >= 8
    assert np.all(reflectance.max(axis=2)[bright] == 255)
    want = 255 * albedo / np.maximum(albedo.max(axis=2, keepdims=True), 1)
    assert np.abs(reflectance[bright].astype(np.float64) - want[bright]).mean() < 12


def test_scores_rank_a_perfect_restoration_first_and_merge_across_ranks():
    view = _view()
    a, b = RestorationScores(), RestorationScores()
    a.add(view.low, view.normal, view.albedo, albedo=view.albedo, normal=view.normal)
    b.add(view.low, view.normal, None, albedo=view.albedo, target=None)
    summary = a.summary()
    assert summary["psnr_restored_vs_albedo"] == PSNR_CAP_DB
    assert summary["ssim_restored_vs_albedo"] == 1.0
    assert summary["psnr_gain_vs_albedo"] < PSNR_CAP_DB
    assert {"psnr_gain_vs_normal", "ssim_max_rgb_vs_normal"} <= set(summary)
    assert not any("target" in k for k in b.summary())  # a None reference is skipped
    assert "psnr_restored_vs_albedo" not in b.summary()  # no restored image: baselines only
    a.merge(b)
    assert a.counts["psnr_gain_vs_albedo"] == 2 and a.counts["psnr_restored_vs_albedo"] == 1
