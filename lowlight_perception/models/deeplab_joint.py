"""DeepLab v3+ on ResNet-50 (LISU §6.6, Fig. 7): DLv3p, DLv3p-joint and DLv3p-semi-joint.

torchvision cannot be installed here, so the ResNet-50 is our own, with torchvision's exact
parameter names: a user's local torchvision ``resnet50`` state_dict loads with strict key
matching (:func:`load_backbone_weights`); nothing is ever downloaded. Output stride 16 (layer4
dilated), ASPP (rates 6/12/18 + image pooling, 256 ch), and the v3+ decoder (48-ch projection of
the stride-4 layer1 features, concatenated with the x4-upsampled ASPP output, two 3x3 256-ch
convs, classifier, x4 upsampling).

The joint variants add a reflectance decoder of the same structure and, as the paper notes,
only one decoder layer takes part in the cross-task concatenation: the output of each branch's
first 3x3 conv is concatenated into the other branch's second 3x3 conv. ``cross="semi"`` drops
the restoration -> segmentation copy (the opposite direction from LISU-semi-joint, as in §6.6).
Joint variants take cat(illumination, reflectance), like LISU-joint; a 3-channel ImageNet stem
is widened by giving the illumination channel the mean of the RGB filters.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from . import heads
from .blocks import conv_bn_relu, resize

CROSS_MODES = ("full", "semi")
ASPP_RATES = (6, 12, 18)
ASPP_CHANNELS = 256
LOW_LEVEL_CHANNELS = 48
# ImageNet statistics of torchvision's weights; the illumination channel gets their mean.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3 conv), torchvision's parameter names."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(
            planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """ResNet-50 without the classifier, output stride 16 (layer4 dilated, as torchvision's
    ``replace_stride_with_dilation=[False, False, True]``).

    Args:
        in_channels: stem input channels (3 for RGB, 4 for cat(I, R)).
    """

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self._inplanes = 64
        self.layer1 = self._make_layer(64, 3)
        self.layer2 = self._make_layer(128, 4, stride=2)
        self.layer3 = self._make_layer(256, 6, stride=2)
        self.layer4 = self._make_layer(512, 3, dilation=2)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(
        self, planes: int, blocks: int, stride: int = 1, dilation: int = 1
    ) -> nn.Sequential:
        out = planes * Bottleneck.expansion
        downsample = nn.Sequential(
            nn.Conv2d(self._inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out)
        )
        # torchvision: the first block of a dilated stage keeps the previous dilation (1)
        layers = [Bottleneck(self._inplanes, planes, stride, 1, downsample)]
        self._inplanes = out
        layers += [Bottleneck(out, planes, dilation=dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the stride-4 layer1 features (256 ch) and the stride-16 layer4 ones (2048)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        low = self.layer1(x)
        return low, self.layer4(self.layer3(self.layer2(low)))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three dilated 3x3 and image pooling, projected to
    256 ch. The pooling branch has no BatchNorm, so training with batch size 1 works."""

    def __init__(self, in_channels: int = 2048, channels: int = ASPP_CHANNELS) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_relu(in_channels, channels, kernel_size=1)]
            + [conv_bn_relu(in_channels, channels, dilation=r) for r in ASPP_RATES]
        )
        self.pooling = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, channels, 1), nn.ReLU(inplace=True)
        )
        self.project = nn.Sequential(
            conv_bn_relu(channels * (len(ASPP_RATES) + 2), channels, kernel_size=1),
            nn.Dropout(0.1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [branch(x) for branch in self.branches]
        feats.append(resize(self.pooling(x), x.shape[-2:]))
        return self.project(torch.cat(feats, dim=1))


class DeepLabDecoder(nn.Module):
    """One task's v3+ decoder; its forward lives in :class:`DeepLabJoint` (features cross).

    Args:
        receives_other: whether the second 3x3 conv also takes the other branch's features.
    """

    def __init__(self, receives_other: bool) -> None:
        super().__init__()
        self.project = conv_bn_relu(256, LOW_LEVEL_CHANNELS, kernel_size=1)
        self.conv1 = conv_bn_relu(ASPP_CHANNELS + LOW_LEVEL_CHANNELS, 256)
        self.conv2 = conv_bn_relu(512 if receives_other else 256, 256)

    def first(self, aspp_up: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        """Projection of the low-level features, concatenation, first 3x3 conv."""
        return self.conv1(torch.cat([aspp_up, self.project(low)], dim=1))


class DeepLabJoint(nn.Module):
    """DeepLab v3+ with an optional reflectance-restoration decoder.

    Args:
        in_channels: 3 (raw RGB, plain DLv3p) or 4 (cat(illumination, reflectance)).
        num_classes: segmentation classes.
        cross: ``None`` (segmentation only: DLv3p), ``"full"`` (DLv3p-joint) or ``"semi"``
            (DLv3p-semi-joint: restoration features are not copied to segmentation).
        depth_head: add the auxiliary depth output (metres) on the segmentation features.
    """

    def __init__(
        self,
        in_channels: int = 4,
        num_classes: int = 14,
        cross: str | None = "full",
        depth_head: bool = False,
    ) -> None:
        super().__init__()
        if cross is not None and cross not in CROSS_MODES:
            raise ValueError(f"unknown cross mode {cross!r}; valid: None, {', '.join(CROSS_MODES)}")
        if in_channels not in (3, 4):
            raise ValueError(f"DeepLabJoint takes 3 or 4 input channels, not {in_channels}")
        self.cross = cross
        mean = IMAGENET_MEAN if in_channels == 3 else (sum(IMAGENET_MEAN) / 3, *IMAGENET_MEAN)
        std = IMAGENET_STD if in_channels == 3 else (sum(IMAGENET_STD) / 3, *IMAGENET_STD)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.backbone = ResNet50(in_channels)
        self.aspp = ASPP()
        self.segmentation = DeepLabDecoder(receives_other=cross == "full")
        self.segmentation_head = heads.segmentation_head(256, num_classes)
        self.restoration = None if cross is None else DeepLabDecoder(receives_other=True)
        self.reflectance_head = None if cross is None else heads.reflectance_head(256)
        self.depth_head = heads.depth_head(256) if depth_head else None

    def encoder_modules(self) -> list[nn.Module]:
        """Backbone and ASPP: DeepLab v3+'s encoder (frozen by ``freeze_encoders``)."""
        return [self.backbone, self.aspp]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """Segment (and restore).

        Args:
            x: (B, in_channels, H, W) in [0, 1]; any size (multiples of 16 avoid resampling
                misalignment).

        Returns:
            ``{"logits": (B, C, H, W), "reflectance": (B, 3, H, W) or None,
            "depth": (B, 1, H, W) or None}``.
        """
        size = x.shape[-2:]
        low, high = self.backbone((x - self.mean) / self.std)
        aspp_up = resize(self.aspp(high), low.shape[-2:])
        s = self.segmentation.first(aspp_up, low)
        reflectance = None
        if self.restoration is None:
            s = self.segmentation.conv2(s)
        else:
            r = self.restoration.first(aspp_up, low)
            s, r = (
                self.segmentation.conv2(torch.cat([s, r], dim=1) if self.cross == "full" else s),
                self.restoration.conv2(torch.cat([r, s], dim=1)),
            )
            reflectance = resize(self.reflectance_head(r), size)
        return {
            "logits": resize(self.segmentation_head(s), size),
            "reflectance": reflectance,
            "depth": None if self.depth_head is None else resize(self.depth_head(s), size),
        }


def load_backbone_weights(backbone: ResNet50, path: str | Path) -> None:
    """Load a local torchvision ``resnet50`` state_dict into ``backbone`` (strict key match).

    The ``fc.*`` classifier keys are dropped. A 3-channel stem loaded into a 4-channel backbone
    gets the mean of its RGB filters as the illumination (first) channel's filter.

    Args:
        backbone: the network's ResNet-50.
        path: a file written by ``torch.save(resnet50(...).state_dict(), path)``.

    Raises:
        FileNotFoundError: if ``path`` is not a file.
        ValueError: if the file does not hold a state_dict.
        RuntimeError: on missing/unexpected keys or other shape mismatches (from torch).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights file not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "conv1.weight" not in state:
        raise ValueError(f"{path}: not a torchvision resnet50 state_dict (no 'conv1.weight')")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    stem = state["conv1.weight"]
    if stem.shape[1] == 3 and backbone.conv1.in_channels == 4:
        state["conv1.weight"] = torch.cat([stem.mean(dim=1, keepdim=True), stem], dim=1)
    backbone.load_state_dict(state, strict=True)
