"""The complete model every consumer runs: optional LISU-decomp, then a task network.

Training, export and inference all hold a :class:`LowlightModel`, so they never branch on the
architecture: it takes RGB in [0, 1] and returns one dict. As in LISU (§6.3, "both sub-networks
update their parameters independently"), the task network sees the decomposition detached: the
decomposition learns only from its own unsupervised losses.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from .lisu_decomp import LisuDecomp

OUTPUT_KEYS = ("logits", "reflectance", "illumination", "reflectance_decomp", "depth")


class LowlightModel(nn.Module):
    """Decomposition (optional) + task network, with the bookkeeping a checkpoint needs.

    Args:
        name: registry name (``build_model(name, **config)`` rebuilds it).
        net: task network returning ``{"logits", "reflectance", "depth"}``.
        decomp: LISU-decomp whose cat(illumination, reflectance) feeds ``net``; ``None`` for
            networks on raw RGB.
        config: JSON-serialisable architecture kwargs given to ``build_model``.
    """

    def __init__(
        self,
        name: str,
        net: nn.Module,
        decomp: LisuDecomp | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.decomp = decomp
        self.net = net
        self.config = dict(config or {})
        self.encoders_frozen = False

    @property
    def uses_decomposition(self) -> bool:
        """Whether the task network runs on LISU-decomp's output rather than raw RGB."""
        return self.decomp is not None

    def forward(self, rgb: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """Run the model.

        Args:
            rgb: (B, 3, H, W) float in [0, 1].

        Returns:
            Dict with ``OUTPUT_KEYS``: ``logits`` (B, C, H, W); ``reflectance`` (B, 3, H, W)
            restored, or None for segmentation-only nets; ``illumination`` (B, 1, H, W) and
            ``reflectance_decomp`` (B, 3, H, W) from LISU-decomp, or None; ``depth``
            (B, 1, H, W) metres, or None.
        """
        illumination = reflectance_decomp = None
        if self.decomp is None:
            out = self.net(rgb)
        else:
            reflectance_decomp, illumination = self.decomp(rgb)
            out = self.net(torch.cat([illumination.detach(), reflectance_decomp.detach()], dim=1))
        return {
            "logits": out["logits"],
            "reflectance": out["reflectance"],
            "illumination": illumination,
            "reflectance_decomp": reflectance_decomp,
            "depth": out["depth"],
        }

    def _encoders(self) -> list[nn.Module]:
        nets = [self.net] if self.decomp is None else [self.decomp, self.net]
        return [m for n in nets for m in n.encoder_modules()]

    def freeze_encoders(self) -> None:
        """Freeze the encoders of the decomposition and the task network (LISU §6.5).

        Their parameters stop requiring gradients and their BatchNorm statistics stop moving
        (they stay in eval mode even under ``train()``); decoders and heads keep training.
        """
        for module in self._encoders():
            module.requires_grad_(False)
            module.eval()
        self.encoders_frozen = True

    def train(self, mode: bool = True) -> LowlightModel:
        """``nn.Module.train``, keeping frozen encoders in eval mode."""
        super().train(mode)
        if self.encoders_frozen:
            for module in self._encoders():
                module.eval()
        return self

    def decomp_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of LISU-decomp (none for raw-RGB networks): the first training stage."""
        return iter(()) if self.decomp is None else self.decomp.parameters()

    def task_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the task network: the second training stage."""
        return self.net.parameters()


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``module`` (all of them, or only those requiring gradients)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def summary(model: nn.Module) -> str:
    """Parameter counts per submodule (two levels deep), total and trainable, one per line."""
    lines = []
    for name, child in model.named_children():
        lines.append(f"{name:<32}{count_parameters(child):>12,}")
        for sub_name, sub in child.named_children():
            if count_parameters(sub):
                lines.append(f"  {name + '.' + sub_name:<30}{count_parameters(sub):>12,}")
    lines.append(f"{'total':<32}{count_parameters(model):>12,}")
    lines.append(f"{'trainable':<32}{count_parameters(model, trainable_only=True):>12,}")
    title = getattr(model, "name", type(model).__name__)
    return "\n".join([f"{title}: parameters", *lines])
