"""Prediction heads: segmentation logits, restored reflectance and an optional depth output.

The depth head is the auxiliary geometry task of [Jiao] (README, References): predicting depth
from the segmentation features adds a geometry-aware signal during training at almost no cost;
it outputs metres through a softplus, so it is always positive (the D435i's aligned depth is
the training target).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812  (the universal torch idiom)
from torch import nn

from .blocks import conv_bn_relu

ACTIVATIONS = ("none", "sigmoid", "softplus")


class Head(nn.Module):
    """Optional 3x3 Conv-BN-ReLU, then a conv to ``out_channels``, then an output activation.

    Args:
        in_channels: feature channels in.
        out_channels: prediction channels out.
        mid_channels: hidden width of the 3x3 layer (then the last conv is 3x3, as in LISU);
            ``None`` for a single 1x1 conv (DeepLab's classifier).
        activation: ``"none"`` (logits), ``"sigmoid"`` (reflectance) or ``"softplus"`` (depth).
    """

    def __init__(
        self, in_channels: int, out_channels: int, mid_channels: int | None, activation: str
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
        self.activation = activation
        if mid_channels is None:
            self.layers = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1))
        else:
            self.layers = nn.Sequential(
                conv_bn_relu(in_channels, mid_channels),
                nn.Conv2d(mid_channels, out_channels, 3, padding=1),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(x)
        if self.activation == "sigmoid":
            return torch.sigmoid(y)
        if self.activation == "softplus":
            return F.softplus(y)
        return y


def segmentation_head(in_channels: int, num_classes: int, mid_channels: int | None = None) -> Head:
    """Class logits (no activation: the loss and the exported graph apply softmax)."""
    return Head(in_channels, num_classes, mid_channels, "none")


def reflectance_head(in_channels: int, mid_channels: int | None = None) -> Head:
    """Restored reflectance, 3 channels in [0, 1]."""
    return Head(in_channels, 3, mid_channels, "sigmoid")


def depth_head(in_channels: int, mid_channels: int | None = None) -> Head:
    """Depth in metres, 1 channel, positive."""
    return Head(in_channels, 1, mid_channels, "softplus")
