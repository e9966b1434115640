"""Training losses of [LISU] §3.1-3.2 (README, References) plus focal and berHu, as plain
torch functions.

Why functions and not ``nn.Module`` classes: the losses hold no parameters, the training loop
needs only a tensor to backpropagate and a dict of detached terms to log, and plain functions
are trivial to test against hand-computed answers.

* :func:`decomposition_loss` — LISU-decomp, Eq. 2-6 (Retinex reconstruction, cross
  reconstruction, max-RGB initialisation, structure-aware illumination smoothness).
* :func:`restoration_loss` — Eq. 7: MSE - SSIM + MSE of image gradients, with :func:`ssim`.
* :func:`segmentation_loss` — Eq. 8 cross-entropy ignoring void, focal loss (Lin et al., γ=2 as
  in [Jiao] Eq. 6) and the α·CE + (1-α)·focal mix of [Nguyen] Eq. 3.12.
* :func:`berhu_loss` — reverse Huber depth loss (Laina et al.; [Jiao] Eq. 7).
* :func:`joint_loss` — Eq. 9, optionally with a weighted berHu depth term.

Every norm of the paper is taken as a per-element mean, so loss magnitudes (and hence the
paper's weights) do not depend on the image size or batch size. A batch without a single
supervised pixel (all void, no valid depth) gives a 0 that still backpropagates, never NaN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812  (the universal torch idiom)
from torch import Tensor

SEG_KINDS = ("ce", "focal", "ce+focal")
"""Valid ``kind`` values of :func:`segmentation_loss`."""

_LUMA = (0.299, 0.587, 0.114)
"""Rec. 601 luma weights: the grey image that guides the smoothness term (as LISU's code)."""


# ------------------------------------------------------------------------------ helpers


def _diffs(x: Tensor) -> tuple[Tensor, Tensor]:
    """Horizontal and vertical forward first differences over the last two dims (no padding)."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def _grey(image: Tensor) -> Tensor:
    """(B,3,H,W) RGB -> (B,1,H,W) Rec. 601 luma."""
    weights = image.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (image * weights).sum(dim=1, keepdim=True)


def _safe_mean(values: Tensor, weights: Tensor) -> Tensor:
    """sum(w·v) / sum(w), or a differentiable 0 when the weights sum to 0 (nothing supervised)."""
    total = weights.sum()
    return (values * weights).sum() / torch.where(total > 0, total, torch.ones_like(total))


def _check_image(name: str, x: Tensor, channels: int = 3) -> None:
    if x.dim() != 4 or x.shape[1] != channels or x.shape[2] < 2 or x.shape[3] < 2:
        raise ValueError(f"{name} must be (B,{channels},H,W) with H,W >= 2, got {tuple(x.shape)}")


# ------------------------------------------------------------------------------ decomposition


def _smoothness(illumination: Tensor, image: Tensor, lambda_g: float) -> Tensor:
    """Eq. 5 for one image: mean |∇S|·exp(-λg |∇grey(I)|), horizontal mean + vertical mean."""
    sx, sy = _diffs(illumination)
    gx, gy = _diffs(_grey(image))
    return (sx.abs() * torch.exp(-lambda_g * gx.abs())).mean() + (
        sy.abs() * torch.exp(-lambda_g * gy.abs())
    ).mean()


def decomposition_loss(
    low: Tensor,
    normal: Tensor,
    r_low: Tensor,
    i_low: Tensor,
    r_normal: Tensor,
    i_normal: Tensor,
    *,
    lambda_cross: float = 0.01,
    lambda_init: float = 0.1,
    lambda_smooth: float = 0.5,
    lambda_g: float = 10.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """LISU-decomp loss, Eq. 6: L_recon1 + λ1 L_recon2 + λ2 L_init + λ3 L_smooth.

    Each term is the sum over the low- and normal-light image of a per-element mean:

    * recon (Eq. 2): mean |I - R(I)·S(I)|.
    * recon_cross (Eq. 3): mean |I_l - R(I_n)·S(I_l)| + mean |I_n - R(I_l)·S(I_n)|.
    * init (Eq. 4): mean |S(I) - max_c I^c|.
    * smooth (Eq. 5): mean |∂x S|·exp(-λg |∂x G|) + mean |∂y S|·exp(-λg |∂y G|), where ∂ are
      forward first differences inside the image (no padding) and G is the Rec. 601 grey image
      of the *input* I (as LISU's code: colour gradients are reduced by taking the gradient of
      the luma image, not per channel).

    Illuminations broadcast over the RGB channels. The paper's defaults are λ1=0.01, λ2=0.1,
    λ3=0.5, λg=10.

    Args:
        low: low-light input, (B,3,H,W) in [0,1].
        normal: normal-light input of the same view, (B,3,H,W).
        r_low: reflectance of ``low``, (B,3,H,W).
        i_low: illumination of ``low``, (B,1,H,W).
        r_normal: reflectance of ``normal``, (B,3,H,W).
        i_normal: illumination of ``normal``, (B,1,H,W).
        lambda_cross: λ1, weight of the cross reconstruction.
        lambda_init: λ2, weight of the max-RGB initialisation term.
        lambda_smooth: λ3, weight of the smoothness term.
        lambda_g: λg, edge sensitivity of the smoothness weight.

    Returns:
        The weighted total, and the unweighted detached terms ``recon``, ``recon_cross``,
        ``init``, ``smooth`` for logging.

    Raises:
        ValueError: on tensors of the wrong shape.
    """
    for name, x, c in (
        ("low", low, 3),
        ("normal", normal, 3),
        ("r_low", r_low, 3),
        ("r_normal", r_normal, 3),
        ("i_low", i_low, 1),
        ("i_normal", i_normal, 1),
    ):
        _check_image(name, x, c)
    recon = (low - r_low * i_low).abs().mean() + (normal - r_normal * i_normal).abs().mean()
    cross = (low - r_normal * i_low).abs().mean() + (normal - r_low * i_normal).abs().mean()
    init = (i_low - low.amax(dim=1, keepdim=True)).abs().mean() + (
        i_normal - normal.amax(dim=1, keepdim=True)
    ).abs().mean()
    smooth = _smoothness(i_low, low, lambda_g) + _smoothness(i_normal, normal, lambda_g)
    total = recon + lambda_cross * cross + lambda_init * init + lambda_smooth * smooth
    terms = {"recon": recon, "recon_cross": cross, "init": init, "smooth": smooth}
    return total, {k: v.detach() for k, v in terms.items()}


# ------------------------------------------------------------------------------ restoration


def _gaussian_window(window: int, sigma: float, like: Tensor) -> Tensor:
    """Normalised (window, window) Gaussian, same dtype/device as ``like``."""
    x = torch.arange(window, dtype=like.dtype, device=like.device) - (window - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(x: Tensor, y: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Differentiable mean SSIM of Wang et al. (2004) for data in [0, 1].

    Gaussian window (``window`` px, std ``sigma``, normalised), C1 = 0.01², C2 = 0.03²,
    population (co)variances, only window positions fully inside the image ('valid', as the
    reference MATLAB code and :func:`lowlight_perception.evaluation.metrics.ssim`), computed per
    channel and averaged over channels, pixels and batch.

    Args:
        x: (B,C,H,W) image batch.
        y: same shape as ``x``.
        window: side of the Gaussian window in pixels.
        sigma: standard deviation of the window in pixels.

    Returns:
        Scalar tensor; exactly 1 when ``x`` equals ``y``.

    Raises:
        ValueError: on mismatched shapes or images smaller than the window.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(
            f"ssim needs two (B,C,H,W) tensors of equal shape, got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    if min(x.shape[-2:]) < window:
        raise ValueError(f"images of shape {tuple(x.shape)} are smaller than the {window}px window")
    channels = x.shape[1]
    kernel = _gaussian_window(window, sigma, x).expand(channels, 1, window, window)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, kernel, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    )
    return ssim_map.mean()


def restoration_loss(restored: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Reflectance restoration loss, Eq. 7: MSE - SSIM + gradient MSE.

    The gradient term is mean((∂x a - ∂x b)²) + mean((∂y a - ∂y b)²) over signed forward first
    differences of every colour channel. The minimum, for ``restored == target``, is exactly -1.

    Args:
        restored: restored reflectance R̂(I_l), (B,3,H,W) in [0,1], H and W >= 11.
        target: reflectance of the normal-light image R(I_n), same shape (no gradient needed).

    Returns:
        The total, and the detached terms ``mse``, ``ssim`` (the similarity, subtracted) and
        ``grad``.

    Raises:
        ValueError: on mismatched shapes or images smaller than the SSIM window.
    """
    if restored.shape != target.shape:
        raise ValueError(
            f"restored {tuple(restored.shape)} and target {tuple(target.shape)} differ in shape"
        )
    mse = F.mse_loss(restored, target)
    similarity = ssim(restored, target)
    (ax, ay), (bx, by) = _diffs(restored), _diffs(target)
    grad = F.mse_loss(ax, bx) + F.mse_loss(ay, by)
    total = mse - similarity + grad
    return total, {"mse": mse.detach(), "ssim": similarity.detach(), "grad": grad.detach()}


# ------------------------------------------------------------------------------ segmentation


def segmentation_loss(
    logits: Tensor,
    labels: Tensor,
    *,
    kind: str = "ce",
    gamma: float = 2.0,
    alpha: float = 0.5,
    ignore_index: int = 0,
    class_weights: Tensor | None = None,
) -> Tensor:
    """Per-pixel classification loss over non-void pixels (Eq. 8 and focal variants).

    * ``"ce"``: cross-entropy, equal to ``F.cross_entropy(logits, labels, weight=class_weights,
      ignore_index=ignore_index)`` (a weighted mean over the non-ignored pixels).
    * ``"focal"``: -(1 - p_t)^γ log p_t (Lin et al.; γ=2 as [Jiao]), averaged like CE.
      ``class_weights`` plays the role of Lin's α_t; γ=0 gives exactly CE.
    * ``"ce+focal"``: α·CE + (1 - α)·focal ([Nguyen] Eq. 3.12, α=0.5: equal importance).
      This ``alpha`` mixes the two losses; it is not the focal α_t.

    Args:
        logits: (B,K,H,W) raw scores.
        labels: (B,H,W) integer class ids.
        kind: one of :data:`SEG_KINDS`.
        gamma: focusing exponent of the focal loss.
        alpha: weight of CE in ``"ce+focal"``.
        ignore_index: label excluded from the loss (0 = void in this project).
        class_weights: optional (K,) per-class weights.

    Returns:
        Scalar loss; a differentiable 0 when every pixel is ignored.

    Raises:
        ValueError: on an unknown ``kind`` or mismatched shapes.
    """
    if kind not in SEG_KINDS:
        raise ValueError(f"unknown segmentation loss {kind!r}; valid: {', '.join(SEG_KINDS)}")
    if logits.dim() < 2 or labels.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(
            f"labels {tuple(labels.shape)} do not match logits "
            f"{tuple(logits.shape)} (expected (B,K,H,W) and (B,H,W))"
        )
    labels = labels.long()
    valid = labels != ignore_index
    safe = labels.masked_fill(~valid, 0)
    log_p = F.log_softmax(logits, dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
    weights = valid.to(log_p.dtype)
    if class_weights is not None:
        weights = weights * class_weights.to(log_p)[safe]
    ce = _safe_mean(-log_p, weights)
    if kind == "ce":
        return ce
    # 1 - p_t via expm1 stays accurate for confident pixels. Clamping it away from 0 keeps the
    # gradient of x**γ finite for γ < 1 where p_t rounds to exactly 1 (0**γ has an infinite slope).
    modulation = (-torch.expm1(log_p)).clamp_min(torch.finfo(log_p.dtype).tiny) ** gamma
    focal = _safe_mean(-modulation * log_p, weights)
    if kind == "focal":
        return focal
    return alpha * ce + (1 - alpha) * focal


# ------------------------------------------------------------------------------ depth


def berhu_loss(pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
    """Reverse Huber (berHu) depth loss of Laina et al. ([Jiao] Eq. 7), mean over valid pixels.

    With d = pred - target: |d| where |d| <= c, (d² + c²) / (2c) above, where
    c = 0.2·max|d| over the valid pixels of the whole batch (detached: a threshold, not a
    function to differentiate). Valid pixels have a finite target > 0 and ``valid`` true.

    Args:
        pred: predicted depth, (B,1,H,W) or (B,H,W), metres.
        target: ground-truth depth, same shape (a (B,H,W) target also matches a (B,1,H,W)
            prediction); 0, NaN or inf mark missing depth.
        valid: optional boolean mask broadcastable to ``target``.

    Returns:
        Scalar loss; a differentiable 0 when no pixel is valid.

    Raises:
        ValueError: when the shapes do not match.
    """
    if target.dim() == pred.dim() - 1 and pred.dim() == 4 and pred.shape[1] == 1:
        target = target.unsqueeze(1)
        valid = valid.unsqueeze(1) if valid is not None and valid.dim() == 3 else valid
    if target.shape != pred.shape:
        raise ValueError(
            f"depth pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape"
        )
    mask = torch.isfinite(target) & (target > 0)
    if valid is not None:
        mask = mask & valid.bool()
    # Invalid pixels get d = 0 (target replaced by the prediction), so they add nothing.
    diff = pred - torch.where(mask, target.to(pred.dtype), pred.detach())
    abs_diff = diff.abs()
    c = 0.2 * abs_diff.detach().amax() if diff.numel() else pred.new_zeros(())
    # The clamp only keeps the unused branch finite when c = 0 (a perfect fit): NaN-free grads.
    squared = (diff * diff + c * c) / (2 * c.clamp_min(torch.finfo(c.dtype).tiny))
    per_pixel = torch.where(abs_diff <= c, abs_diff, squared)
    return _safe_mean(per_pixel, mask.to(pred.dtype))


# ------------------------------------------------------------------------------ joint


def joint_loss(
    outputs: dict,
    batch: dict,
    *,
    seg_kind: str = "ce",
    depth_weight: float = 0.0,
    gamma: float = 2.0,
    alpha: float = 0.5,
    ignore_index: int = 0,
    class_weights: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """LISU-joint loss, Eq. 9: L_restore + L_seg (+ depth_weight · berHu).

    * restoration: :func:`restoration_loss` of ``outputs["reflectance"]`` against
      ``batch["reflectance_target"]`` (the decomposition network's reflectance of the
      normal-light image, computed by the caller); skipped when the reflectance is None
      (segmentation-only networks).
    * segmentation: :func:`segmentation_loss` of ``outputs["logits"]`` and ``batch["label"]``.
    * depth: ``depth_weight`` · :func:`berhu_loss` of ``outputs["depth"]`` against
      ``batch["depth_m"]``, only when ``depth_weight > 0`` and the network predicts depth.

    Args:
        outputs: network outputs with ``logits`` and optionally ``reflectance`` and ``depth``.
        batch: ``label``, plus ``reflectance_target`` / ``depth_m`` when those terms are used.
        seg_kind: ``kind`` of :func:`segmentation_loss`.
        depth_weight: weight of the berHu term; 0 disables it.
        gamma: focal exponent, passed to :func:`segmentation_loss`.
        alpha: CE share of ``"ce+focal"``, passed to :func:`segmentation_loss`.
        ignore_index: void label, passed to :func:`segmentation_loss`.
        class_weights: per-class weights, passed to :func:`segmentation_loss`.

    Returns:
        The total, and detached terms for logging: ``seg`` and ``total`` always; ``restore``,
        ``mse``, ``ssim``, ``grad`` with a reflectance output; ``depth`` (unweighted) when the
        depth term is used.
    """
    terms: dict[str, Tensor] = {}
    seg = segmentation_loss(
        outputs["logits"],
        batch["label"],
        kind=seg_kind,
        gamma=gamma,
        alpha=alpha,
        ignore_index=ignore_index,
        class_weights=class_weights,
    )
    total = seg
    terms["seg"] = seg.detach()
    if outputs.get("reflectance") is not None:
        restore, parts = restoration_loss(outputs["reflectance"], batch["reflectance_target"])
        total = total + restore
        terms.update(restore=restore.detach(), **parts)
    if depth_weight > 0 and outputs.get("depth") is not None:
        depth = berhu_loss(outputs["depth"], batch["depth_m"])
        total = total + depth_weight * depth
        terms["depth"] = depth.detach()
    terms["total"] = total.detach()
    return total, terms
