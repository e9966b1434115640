"""Small layers shared by every network, so LISU and DeepLab build convs, upsampling and
input-size checks the same way (and export to ONNX the same way: bilinear, align_corners=False).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812  (the universal torch idiom)
from torch import nn


def scaled(channels: int, width: float) -> int:
    """Channel count of a layer at a width multiplier (at least 1).

    Args:
        channels: the published channel count (width 1.0).
        width: multiplier, e.g. 0.25 for the small variant.

    Raises:
        ValueError: if ``width`` is not positive.
    """
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")
    return max(1, round(channels * width))


def conv_bn_relu(
    in_channels: int, out_channels: int, stride: int = 1, kernel_size: int = 3, dilation: int = 1
) -> nn.Sequential:
    """Conv (no bias: BN follows) -> BatchNorm -> ReLU, padded to keep the size at stride 1."""
    padding = dilation * (kernel_size // 2)
    return nn.Sequential(
        nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, dilation=dilation, bias=False
        ),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize to ``size`` (H, W); the one resize every network uses."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class UpBlock(nn.Module):
    """Conv-BN-ReLU then bilinear x2: one level of the LISU decoders."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = conv_bn_relu(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.conv(x), scale_factor=2.0, mode="bilinear", align_corners=False)


def check_size(x: torch.Tensor, multiple: int, model: str) -> None:
    """Reject an input whose height or width is not a multiple of ``multiple``.

    Skipped while tracing for ONNX export (the exporter checks its own fixed input size).

    Raises:
        ValueError: naming the model, the size and the required multiple.
    """
    if torch.jit.is_tracing():
        return
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h % multiple or w % multiple:
        raise ValueError(
            f"{model}: input size {w}x{h} (WxH) is not a multiple of {multiple}; "
            f"resize or pad the image first"
        )
