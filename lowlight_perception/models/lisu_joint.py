"""LISU-joint (LISU §3.2, Fig. 3), its LISU-semi-joint ablation (§6.4) and the LISU-seg baseline.

A shared five-level encoder feeds two decoders, one restoring the reflectance and one
segmenting. At every decoder level each branch concatenates its own features, the other
branch's features and the encoder skip, so restoration learns from semantics and segmentation
from illumination-invariant features. ``cross="semi"`` drops the segmentation -> restoration
copies (restoration still feeds segmentation). LISU-seg (§6.1) is the segmentation branch alone
on raw low-light RGB. Widths follow the published code (~10.45 M parameters at width 1.0).
"""

from __future__ import annotations

import torch
from torch import nn

from . import heads
from .blocks import UpBlock, check_size, conv_bn_relu, scaled

CROSS_MODES = ("full", "semi")
DOWNSAMPLING = 16  # four stride-2 convs: H and W must be multiples of this


def _channels(width: float) -> tuple[int, ...]:
    return tuple(scaled(c, width) for c in (32, 64, 128, 256, 256))


class LisuEncoder(nn.Module):
    """Five Conv-BN-ReLU stages (stride 1, then 2, 2, 2, 2); returns every stage's features."""

    def __init__(self, in_channels: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        ins = (in_channels, *channels[:-1])
        self.stages = nn.ModuleList(
            conv_bn_relu(i, o, stride=1 if k == 0 else 2)
            for k, (i, o) in enumerate(zip(ins, channels, strict=True))
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class LisuDecoder(nn.Module):
    """One task's decoder: a bottleneck of four 3x3 convs and four up blocks.

    The forward pass lives in the networks, because the two decoders of LISU-joint exchange
    features level by level.

    Args:
        channels: encoder channels (c1..c5).
        receives_other: whether each level also takes the other branch's features.
    """

    def __init__(self, channels: tuple[int, ...], receives_other: bool) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = channels
        k = 3 if receives_other else 2  # own + (other) + skip
        self.bottleneck = nn.Sequential(*(conv_bn_relu(c5, c5) for _ in range(4)))
        self.ups = nn.ModuleList(
            [UpBlock(2 * c5, c4), UpBlock(k * c4, c3), UpBlock(k * c3, c2), UpBlock(k * c2, c1)]
        )
        self.out_channels = k * c1

    def start(self, x5: torch.Tensor) -> torch.Tensor:
        """Bottleneck features concatenated with the deepest encoder features."""
        return torch.cat([self.bottleneck(x5), x5], dim=1)


class LisuJoint(nn.Module):
    """Joint reflectance restoration + segmentation.

    Args:
        in_channels: 4 for cat(illumination, reflectance) from LISU-decomp.
        num_classes: segmentation classes (14: void + NYUv2-13).
        width: channel multiplier (1.0 = published).
        cross: ``"full"`` (LISU-joint) or ``"semi"`` (LISU-semi-joint: segmentation features
            are not copied into the restoration branch).
        depth_head: add the auxiliary depth output (metres) on the segmentation features.
    """

    def __init__(
        self,
        in_channels: int = 4,
        num_classes: int = 14,
        width: float = 1.0,
        cross: str = "full",
        depth_head: bool = False,
    ) -> None:
        super().__init__()
        if cross not in CROSS_MODES:
            raise ValueError(f"unknown cross mode {cross!r}; valid: {', '.join(CROSS_MODES)}")
        self.cross = cross
        channels = _channels(width)
        self.encoder = LisuEncoder(in_channels, channels)
        self.restoration = LisuDecoder(channels, receives_other=cross == "full")
        self.segmentation = LisuDecoder(channels, receives_other=True)
        self.reflectance_head = heads.reflectance_head(self.restoration.out_channels, channels[0])
        self.segmentation_head = heads.segmentation_head(
            self.segmentation.out_channels, num_classes, channels[0]
        )
        self.depth_head = (
            heads.depth_head(self.segmentation.out_channels, channels[0]) if depth_head else None
        )

    def encoder_modules(self) -> list[nn.Module]:
        """The shared encoder (frozen by :meth:`LowlightModel.freeze_encoders`)."""
        return [self.encoder]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """Run both branches.

        Args:
            x: (B, in_channels, H, W); H and W multiples of 16.

        Returns:
            ``{"logits": (B, C, H, W), "reflectance": (B, 3, H, W), "depth": (B, 1, H, W) or
            None}``.

        Raises:
            ValueError: if H or W is not a multiple of 16.
        """
        check_size(x, DOWNSAMPLING, "LisuJoint")
        *skips, x5 = self.encoder(x)
        r, s = self.restoration.start(x5), self.segmentation.start(x5)
        for up_r, up_s, skip in zip(
            self.restoration.ups, self.segmentation.ups, reversed(skips), strict=True
        ):
            r, s = up_r(r), up_s(s)
            r, s = (
                torch.cat([r, s, skip] if self.cross == "full" else [r, skip], dim=1),
                torch.cat([s, r, skip], dim=1),
            )
        return {
            "logits": self.segmentation_head(s),
            "reflectance": self.reflectance_head(r),
            "depth": None if self.depth_head is None else self.depth_head(s),
        }


class LisuSeg(nn.Module):
    """LISU-seg baseline: the segmentation branch alone (one decoder, no restoration features).

    Args:
        in_channels: 3 for raw low-light RGB.
        num_classes: segmentation classes.
        width: channel multiplier (1.0 = published).
        depth_head: add the auxiliary depth output (metres).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 14,
        width: float = 1.0,
        depth_head: bool = False,
    ) -> None:
        super().__init__()
        channels = _channels(width)
        self.encoder = LisuEncoder(in_channels, channels)
        self.segmentation = LisuDecoder(channels, receives_other=False)
        self.segmentation_head = heads.segmentation_head(
            self.segmentation.out_channels, num_classes, channels[0]
        )
        self.depth_head = (
            heads.depth_head(self.segmentation.out_channels, channels[0]) if depth_head else None
        )

    def encoder_modules(self) -> list[nn.Module]:
        """The encoder (frozen by :meth:`LowlightModel.freeze_encoders`)."""
        return [self.encoder]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """Segment.

        Args:
            x: (B, in_channels, H, W); H and W multiples of 16.

        Returns:
            ``{"logits": (B, C, H, W), "reflectance": None, "depth": (B, 1, H, W) or None}``.

        Raises:
            ValueError: if H or W is not a multiple of 16.
        """
        check_size(x, DOWNSAMPLING, "LisuSeg")
        *skips, x5 = self.encoder(x)
        s = self.segmentation.start(x5)
        for up, skip in zip(self.segmentation.ups, reversed(skips), strict=True):
            s = torch.cat([up(s), skip], dim=1)
        return {
            "logits": self.segmentation_head(s),
            "reflectance": None,
            "depth": None if self.depth_head is None else self.depth_head(s),
        }
