"""LISU-decomp (LISU §3.1): a small U-shaped Retinex network, RGB -> reflectance + illumination.

Layer widths and activations follow the published code: the first conv and the last 3x3 conv
have no activation, two long skips bridge the full-resolution features, and one sigmoid covers
all four output channels. It is trained without ground truth (paired low/normal images, see the
training losses), so its only contract is shapes and ranges.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812  (the universal torch idiom)
from torch import nn

from .blocks import check_size, scaled


class LisuDecomp(nn.Module):
    """Intrinsic decomposition network.

    Args:
        width: channel multiplier; 1.0 gives the published 64/128 channels (~0.48 M params).
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c1, c2 = scaled(64, width), scaled(128, width)
        self.conv1 = nn.Conv2d(3, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c1, 3, padding=1)
        self.conv3 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.conv4 = nn.Conv2d(c2, c2, 3, padding=1)
        self.up = nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1)
        self.fuse2 = nn.Conv2d(2 * c1, c1, 3, padding=1)
        self.fuse1 = nn.Conv2d(2 * c1, c1, 3, padding=1)
        self.out = nn.Conv2d(c1, 4, 1)

    def encoder_modules(self) -> list[nn.Module]:
        """The down path (frozen by :meth:`LowlightModel.freeze_encoders`)."""
        return [self.conv1, self.conv2, self.conv3, self.conv4]

    def forward(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decompose an image.

        Args:
            rgb: (B, 3, H, W) in [0, 1]; H and W even.

        Returns:
            reflectance (B, 3, H, W) and illumination (B, 1, H, W), both in (0, 1).

        Raises:
            ValueError: if H or W is odd.
        """
        check_size(rgb, 2, "LisuDecomp")
        c1 = self.conv1(rgb)
        c2 = F.relu(self.conv2(c1))
        c4 = F.relu(self.conv4(F.relu(self.conv3(c2))))
        u = F.relu(self.up(c4))
        f2 = F.relu(self.fuse2(torch.cat([c2, u], dim=1)))
        f1 = self.fuse1(torch.cat([c1, f2], dim=1))
        out = torch.sigmoid(self.out(f1))
        return out[:, :3], out[:, 3:4]
