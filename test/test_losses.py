"""Training losses checked on known answers: exact decompositions, hand-computed values, torch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from lowlight_perception.evaluation.metrics import ssim as numpy_ssim
from lowlight_perception.models.losses import (
    berhu_loss,
    decomposition_loss,
    joint_loss,
    restoration_loss,
    segmentation_loss,
    ssim,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------ decomposition


def _perfect_reflectance(b: int = 2, h: int = 8, w: int = 8) -> torch.Tensor:
    """Random reflectance whose max over RGB is exactly 1 at every pixel (so max RGB of R·S = S)."""
    r = torch.rand(b, 3, h, w, generator=_gen())
    brightest = torch.randint(0, 3, (b, 1, h, w), generator=_gen(1))
    return r.scatter(1, brightest, 1.0)


def test_perfect_decomposition_gives_zero_everywhere() -> None:
    r = _perfect_reflectance()
    i_low = torch.full((2, 1, 8, 8), 0.2)
    i_normal = torch.full((2, 1, 8, 8), 0.9)
    low, normal = r * i_low, r * i_normal
    total, terms = decomposition_loss(low, normal, r, i_low, r.clone(), i_normal)
    assert set(terms) == {"recon", "recon_cross", "init", "smooth"}
    for name, value in terms.items():
        assert value.item() == 0.0, name
    assert total.item() == 0.0


def test_cross_reconstruction_sees_different_reflectances() -> None:
    # Each image is reconstructed exactly by its own R, S; only Eq. 3 sees R_low != R_normal:
    # mean |R_l S_l - R_n S_l| + mean |R_n S_n - R_l S_n| = mean |R_l - R_n| · (S_l + S_n).
    r_low, r_normal = torch.full((1, 3, 4, 4), 0.5), torch.full((1, 3, 4, 4), 0.75)
    i_low, i_normal = torch.full((1, 1, 4, 4), 0.2), torch.full((1, 1, 4, 4), 0.8)
    _, terms = decomposition_loss(
        r_low * i_low, r_normal * i_normal, r_low, i_low, r_normal, i_normal
    )
    assert terms["recon"].item() == 0.0
    assert terms["recon_cross"].item() == pytest.approx(0.25 * (0.2 + 0.8))


def test_decomposition_hand_computed_values() -> None:
    # 2x2 images. low = 0.5 everywhere, R = 0.5, S_low has a horizontal step 0.4 -> 1.0:
    # |I - R S| = 0.3 on the left column, 0 on the right -> mean 0.15.
    low = torch.full((1, 3, 2, 2), 0.5)
    r = torch.full((1, 3, 2, 2), 0.5)
    i_low = torch.tensor([[0.4, 1.0], [0.4, 1.0]]).view(1, 1, 2, 2)
    i_normal = torch.full((1, 1, 2, 2), 0.8)
    normal = r * i_normal  # reconstructed exactly: 0.4 everywhere
    total, terms = decomposition_loss(low, normal, r, i_low, r, i_normal)
    assert terms["recon"].item() == pytest.approx(0.15)
    assert terms["recon_cross"].item() == pytest.approx(0.15)  # shared R: same residuals
    # init: |S_low - 0.5| = (0.1, 0.5) -> 0.3; |S_normal - 0.4| = 0.4 -> 0.7 in all.
    assert terms["init"].item() == pytest.approx(0.7)
    # smooth: low image is flat (weight exp(0) = 1), S_low steps by 0.6 horizontally on both
    # rows, not vertically: 0.6 + 0; S_normal is constant: 0.
    assert terms["smooth"].item() == pytest.approx(0.6)
    assert total.item() == pytest.approx(0.15 + 0.01 * 0.15 + 0.1 * 0.7 + 0.5 * 0.6)


def _step_image(h: int, w: int, column: int, lo: float, hi: float, channels: int) -> torch.Tensor:
    x = torch.full((1, channels, h, w), lo)
    x[..., column:] = hi
    return x


def test_smoothness_zero_for_constant_and_edge_aware() -> None:
    h, w = 6, 8
    image = _step_image(h, w, 4, 0.2, 0.8, 3)  # an image edge between columns 3 and 4
    r = torch.ones(1, 3, h, w)

    def smooth(illumination: torch.Tensor) -> float:
        _, terms = decomposition_loss(image, image, r, illumination, r, illumination)
        return terms["smooth"].item()

    assert smooth(torch.full((1, 1, h, w), 0.5)) == 0.0
    on_edge = smooth(_step_image(h, w, 4, 0.3, 0.7, 1))
    off_edge = smooth(_step_image(h, w, 2, 0.3, 0.7, 1))
    assert on_edge < off_edge
    # Hand values: one step of 0.4 per row among w-1 horizontal differences, twice (both images);
    # the grey image step is 0.6 (weights sum to 1), so on the edge it is damped by exp(-10·0.6).
    assert off_edge == pytest.approx(2 * 0.4 / (w - 1))
    assert on_edge == pytest.approx(2 * 0.4 * math.exp(-6.0) / (w - 1), rel=1e-5)
    # the weight uses |∇I|: a dark-going image edge damps exactly like a bright-going one
    image = _step_image(h, w, 4, 0.8, 0.2, 3)
    assert smooth(_step_image(h, w, 4, 0.7, 0.3, 1)) == pytest.approx(on_edge, rel=1e-5)


def test_decomposition_rejects_bad_shapes() -> None:
    x = torch.rand(1, 3, 4, 4)
    with pytest.raises(ValueError, match="i_low"):
        decomposition_loss(x, x, x, x, x, torch.rand(1, 1, 4, 4))


# ------------------------------------------------------------------------------ restoration


def test_ssim_identity_and_matches_numpy_metric() -> None:
    x = torch.rand(2, 3, 16, 20, generator=_gen())
    assert ssim(x, x).item() == 1.0
    y = (x + 0.1 * torch.randn(x.shape, generator=_gen(1))).clamp(0, 1)
    expected = np.mean(
        [
            numpy_ssim(
                x[b].permute(1, 2, 0).double().numpy(),
                y[b].permute(1, 2, 0).double().numpy(),
                data_range=1.0,
            )
            for b in range(2)
        ]
    )
    assert ssim(x, y).item() == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError, match="window"):
        ssim(x[..., :8, :8], y[..., :8, :8])


def test_restoration_loss_minimum_and_noise() -> None:
    x = torch.rand(2, 3, 16, 16, generator=_gen())
    total, terms = restoration_loss(x, x)
    assert total.item() == -1.0
    assert terms["mse"].item() == 0.0 and terms["grad"].item() == 0.0
    assert terms["ssim"].item() == 1.0
    losses = [
        restoration_loss((x + s * torch.randn(x.shape, generator=_gen(1))).clamp(0, 1), x)[0].item()
        for s in (0.02, 0.1, 0.3)
    ]
    assert -1.0 < losses[0] < losses[1] < losses[2]


def test_restoration_gradient_term_hand_computed() -> None:
    target = torch.zeros(1, 3, 12, 12)
    ramp = (0.1 * torch.arange(12.0)).expand(1, 3, 12, 12)  # ∂x = 0.1 everywhere, ∂y = 0
    _, terms = restoration_loss(ramp, target)
    assert terms["grad"].item() == pytest.approx(0.01)
    assert terms["mse"].item() == pytest.approx(float(np.mean((0.1 * np.arange(12)) ** 2)))
    _, terms = restoration_loss(ramp.transpose(2, 3), target)  # ∂y = 0.1, ∂x = 0
    assert terms["grad"].item() == pytest.approx(0.01)
    _, terms = restoration_loss(target + 0.1, target)  # a constant offset has no gradient error
    assert terms["grad"].item() == 0.0
    assert terms["mse"].item() == pytest.approx(0.01)


# ------------------------------------------------------------------------------ segmentation


def _seg_case(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    logits = 3 * torch.randn(2, 14, 5, 7, generator=_gen(seed))
    labels = torch.randint(0, 14, (2, 5, 7), generator=_gen(seed + 1))
    labels[0, 0, :] = 0  # make sure some void pixels exist
    return logits, labels


def test_ce_matches_torch() -> None:
    logits, labels = _seg_case()
    expected = F.cross_entropy(logits, labels, ignore_index=0)
    assert segmentation_loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    weights = torch.rand(14, generator=_gen(5)) + 0.1
    expected = F.cross_entropy(logits, labels, weight=weights, ignore_index=0)
    got = segmentation_loss(logits, labels, class_weights=weights)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    # uint8 labels (as stored on disk) work too
    assert segmentation_loss(logits, labels.to(torch.uint8)).item() == pytest.approx(
        F.cross_entropy(logits, labels, ignore_index=0).item(), rel=1e-6
    )


def test_ce_one_pixel_is_minus_log_p() -> None:
    # softmax([0, 0, ln 2]) = (1/4, 1/4, 1/2)
    logits = torch.tensor([0.0, 0.0, math.log(2.0)]).view(1, 3, 1, 1)
    assert segmentation_loss(logits, torch.tensor([[[1]]])).item() == pytest.approx(math.log(4.0))
    assert segmentation_loss(logits, torch.tensor([[[2]]])).item() == pytest.approx(math.log(2.0))
    # focal, γ = 2: (1 - p)² · (-log p)
    focal = segmentation_loss(logits, torch.tensor([[[1]]]), kind="focal")
    assert focal.item() == pytest.approx(0.75**2 * math.log(4.0))


@pytest.mark.parametrize("kind", ["ce", "focal", "ce+focal"])
def test_all_void_is_zero_with_grad(kind: str) -> None:
    logits = torch.randn(2, 14, 4, 4, generator=_gen(), requires_grad=True)
    labels = torch.zeros(2, 4, 4, dtype=torch.long)
    loss = segmentation_loss(logits, labels, kind=kind)
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and torch.all(logits.grad == 0)


def test_focal_gamma_zero_is_ce_and_mix() -> None:
    logits, labels = _seg_case(3)
    weights = torch.rand(14, generator=_gen(7)) + 0.1
    for w in (None, weights):
        ce = segmentation_loss(logits, labels, class_weights=w)
        focal0 = segmentation_loss(logits, labels, kind="focal", gamma=0.0, class_weights=w)
        assert focal0.item() == pytest.approx(ce.item(), rel=1e-6)
    ce = segmentation_loss(logits, labels)
    focal = segmentation_loss(logits, labels, kind="focal")
    mix = segmentation_loss(logits, labels, kind="ce+focal")
    assert mix.item() == pytest.approx(0.5 * ce.item() + 0.5 * focal.item(), rel=1e-6)
    mix = segmentation_loss(logits, labels, kind="ce+focal", alpha=0.8)
    assert mix.item() == pytest.approx(0.8 * ce.item() + 0.2 * focal.item(), rel=1e-6)


def test_focal_down_weights_easy_pixels() -> None:
    # pixel 0 easy (p = 0.9 for its class 1), pixel 1 hard (p = 0.1 for its class 2)
    p = torch.tensor([[0.05, 0.9, 0.05], [0.8, 0.1, 0.1]])
    logits = p.log().T.reshape(1, 3, 1, 2)
    easy, hard = torch.tensor([[[1, 0]]]), torch.tensor([[[0, 2]]])  # one pixel each, other void
    for labels, prob in ((easy, 0.9), (hard, 0.1)):
        ce = segmentation_loss(logits, labels).item()
        focal = segmentation_loss(logits, labels, kind="focal").item()
        assert ce == pytest.approx(-math.log(prob), rel=1e-5)
        assert focal == pytest.approx((1 - prob) ** 2 * ce, rel=1e-5)
    both = torch.tensor([[[1, 2]]])
    ce_share = segmentation_loss(logits, easy).item() / (2 * segmentation_loss(logits, both).item())
    focal_share = segmentation_loss(logits, easy, kind="focal").item() / (
        2 * segmentation_loss(logits, both, kind="focal").item()
    )
    assert focal_share < 0.01 < ce_share  # the easy pixel is ~0.4% of focal, ~4% of CE


def test_segmentation_errors() -> None:
    logits, labels = _seg_case()
    with pytest.raises(ValueError, match="valid: ce, focal, ce\\+focal"):
        segmentation_loss(logits, labels, kind="dice")
    with pytest.raises(ValueError, match="do not match"):
        segmentation_loss(logits, labels[:, :4])


# ------------------------------------------------------------------------------ berHu


def test_berhu_hand_values_and_invalid_pixels() -> None:
    # valid diffs 0.1, 0.5, 1.0 -> c = 0.2: 0.1 (L1), (0.25 + 0.04)/0.4, (1 + 0.04)/0.4
    target = torch.tensor([1.0, 1.0, 1.0, 0.0, float("nan"), float("inf"), 1.0]).view(1, 1, 1, 7)
    pred = torch.tensor([1.1, 1.5, 2.0, 9.0, 9.0, 9.0, 9.0]).view(1, 1, 1, 7)
    mask = torch.tensor([True] * 6 + [False]).view(1, 1, 1, 7)
    expected = (0.1 + 0.725 + 2.6) / 3
    assert berhu_loss(pred, target, mask).item() == pytest.approx(expected, rel=1e-6)
    # a (B,H,W) target matches a (B,1,H,W) prediction
    assert berhu_loss(pred, target[:, 0], mask[:, 0]).item() == pytest.approx(expected, rel=1e-6)
    # below c it is exactly L1: one large error sets c = 2, the rest are small
    pred = torch.tensor([1.0, 1.3, 0.6, 11.0]).view(1, 1, 2, 2)
    target = torch.ones(1, 1, 2, 2)
    assert berhu_loss(pred, target).item() == pytest.approx(
        (0.0 + 0.3 + 0.4 + 10.0**2 / 4 + 1.0) / 4, rel=1e-6
    )


def test_berhu_gradient_treats_c_as_constant() -> None:
    # d = (0.1, 0.5, 1.0), c = 0.2: d/d(pred) of the mean is sign(d)/3 below c, d/(3c) above.
    pred = torch.tensor([1.1, 1.5, 2.0]).view(1, 1, 1, 3).requires_grad_()
    berhu_loss(pred, torch.ones(1, 1, 1, 3)).backward()
    expected = torch.tensor([1 / 3, 0.5 / 0.6, 1.0 / 0.6]).view(1, 1, 1, 3)
    torch.testing.assert_close(pred.grad, expected)


def test_berhu_no_valid_pixels_and_perfect_fit() -> None:
    pred = torch.rand(2, 1, 3, 3, generator=_gen(), requires_grad=True)
    loss = berhu_loss(pred, torch.zeros(2, 1, 3, 3))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(pred.grad == 0)
    pred.grad = None
    loss = berhu_loss(pred, pred.detach().clone())  # c = 0
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(pred.grad).all()


# ------------------------------------------------------------------------------ joint


def _joint_case(reflectance: bool, depth: bool) -> tuple[dict, dict]:
    logits, labels = _seg_case()
    size = (2, 3, 16, 16)
    logits = F.interpolate(logits, size=(16, 16))
    labels = F.interpolate(labels[:, None].float(), size=(16, 16)).long()[:, 0]
    outputs = {
        "logits": logits,
        "reflectance": torch.rand(size, generator=_gen(2)) if reflectance else None,
        "depth": torch.rand(2, 1, 16, 16, generator=_gen(3)) + 1 if depth else None,
    }
    batch = {
        "label": labels,
        "reflectance_target": torch.rand(size, generator=_gen(4)),
        "depth_m": torch.rand(2, 16, 16, generator=_gen(5)) + 1,
    }
    return outputs, batch


def test_joint_loss_terms() -> None:
    outputs, batch = _joint_case(reflectance=False, depth=True)
    seg = segmentation_loss(outputs["logits"], batch["label"]).item()
    total, terms = joint_loss(outputs, batch)
    assert total.item() == pytest.approx(seg) and set(terms) == {"seg", "total"}

    outputs, batch = _joint_case(reflectance=True, depth=True)
    restore = restoration_loss(outputs["reflectance"], batch["reflectance_target"])[0].item()
    total, terms = joint_loss(outputs, batch)
    assert total.item() == pytest.approx(seg + restore)
    assert {"restore", "mse", "ssim", "grad"} <= set(terms) and "depth" not in terms

    depth = berhu_loss(outputs["depth"], batch["depth_m"]).item()
    total, terms = joint_loss(outputs, batch, depth_weight=0.5)
    assert total.item() == pytest.approx(seg + restore + 0.5 * depth)
    assert terms["depth"].item() == pytest.approx(depth)

    outputs["depth"] = None  # asked for depth, but the network has no depth head
    total, terms = joint_loss(outputs, batch, depth_weight=0.5)
    assert total.item() == pytest.approx(seg + restore) and "depth" not in terms

    focal = segmentation_loss(outputs["logits"], batch["label"], kind="focal").item()
    total, _ = joint_loss(outputs, batch, seg_kind="focal")
    assert total.item() == pytest.approx(focal + restore)


# ------------------------------------------------------------------------------ gradients


def _leaf(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return (scale * torch.rand(*shape, generator=_gen(seed))).requires_grad_()


def _decomp_case() -> tuple[torch.Tensor, list[torch.Tensor]]:
    low = torch.rand(2, 3, 8, 8, generator=_gen(8))
    normal = torch.rand(2, 3, 8, 8, generator=_gen(9))
    leaves = [
        _leaf(2, 3, 8, 8),
        _leaf(2, 1, 8, 8, seed=1),
        _leaf(2, 3, 8, 8, seed=2),
        _leaf(2, 1, 8, 8, seed=3),
    ]
    return decomposition_loss(low, normal, *leaves)[0], leaves


def _restore_case(same: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    target = torch.rand(2, 3, 16, 16, generator=_gen(1))
    restored = target.clone().requires_grad_() if same else _leaf(2, 3, 16, 16)
    return restoration_loss(restored, target)[0], [restored]


def _seg_grad_case(kind: str, gamma: float, saturated: bool) -> tuple[torch.Tensor, list]:
    logits, labels = _seg_case()
    if saturated:  # p_t == 1.0 exactly in float32 for every pixel
        logits = 200.0 * F.one_hot(labels, 14).permute(0, 3, 1, 2).float()
    logits.requires_grad_()
    return segmentation_loss(logits, labels, kind=kind, gamma=gamma), [logits]


def _berhu_case() -> tuple[torch.Tensor, list[torch.Tensor]]:
    pred = _leaf(2, 1, 6, 6, scale=5.0)
    target = 5.0 * torch.rand(2, 1, 6, 6, generator=_gen(4))
    target[0, 0, 0, :] = 0.0
    target[1, 0, 1, :] = float("nan")
    return berhu_loss(pred, target), [pred]


@pytest.mark.parametrize(
    "case",
    [
        _decomp_case,
        lambda: _restore_case(False),
        lambda: _restore_case(True),
        lambda: _seg_grad_case("ce", 2.0, False),
        lambda: _seg_grad_case("focal", 2.0, False),
        lambda: _seg_grad_case("ce+focal", 2.0, False),
        lambda: _seg_grad_case("focal", 2.0, True),
        lambda: _seg_grad_case("focal", 0.0, True),
        lambda: _seg_grad_case("focal", 0.5, True),
        _berhu_case,
    ],
    ids=[
        "decomp",
        "restore",
        "restore-identity",
        "ce",
        "focal",
        "ce+focal",
        "focal-saturated",
        "focal-gamma0-saturated",
        "focal-gamma0.5-saturated",
        "berhu",
    ],
)
def test_losses_backprop_finite_gradients(case) -> None:
    loss, leaves = case()
    assert torch.isfinite(loss)
    loss.backward()
    for leaf in leaves:
        assert leaf.grad is not None and torch.isfinite(leaf.grad).all()
