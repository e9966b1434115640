"""One table of named models, so the CLI, training checkpoints and exports agree on what
``lisu-small`` or ``dlv3p-joint`` means. ``build_model(name, **config)`` is the only constructor
consumers call; ``model.config`` holds the kwargs that rebuild the same architecture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from .deeplab_joint import DeepLabJoint, load_backbone_weights
from .lisu_decomp import LisuDecomp
from .lisu_joint import LisuJoint, LisuSeg
from .pipeline import LowlightModel


@dataclass(frozen=True)
class _Spec:
    description: str
    decomposition: bool  # the net runs on LISU-decomp's cat(I, R) rather than raw RGB
    make_net: Callable[..., nn.Module]  # called with the config minus backbone_weights
    defaults: dict[str, Any]  # every valid config key, with its default


def _lisu(description: str, cross: str | None, default_width: float = 1.0) -> _Spec:
    """A LISU entry; ``cross=None`` is LISU-seg on raw RGB."""

    def make(num_classes: int, width: float, depth_head: bool) -> nn.Module:
        if cross is None:
            return LisuSeg(3, num_classes, width, depth_head)
        return LisuJoint(4, num_classes, width, cross, depth_head)

    defaults = {"num_classes": 14, "width": default_width, "depth_head": False}
    return _Spec(description, cross is not None, make, defaults)


def _deeplab(description: str, cross: str | None) -> _Spec:
    """A DeepLab v3+ entry; ``cross=None`` is plain DLv3p on raw RGB."""

    def make(num_classes: int, depth_head: bool) -> nn.Module:
        return DeepLabJoint(3 if cross is None else 4, num_classes, cross, depth_head)

    defaults = {"num_classes": 14, "depth_head": False, "backbone_weights": None}
    return _Spec(description, cross is not None, make, defaults)


_SPECS: dict[str, _Spec] = {
    "lisu": _lisu("LISU: decomp + joint restoration/segmentation", "full"),
    "lisu-seg": _lisu("LISU-seg baseline: segmentation branch on raw RGB", None),
    "lisu-semi": _lisu("LISU with LISU-semi-joint (no seg -> restoration copies)", "semi"),
    "lisu-small": _lisu("LISU at width 0.25 (CPU, ONNX Runtime)", "full", 0.25),
    "lisu-tiny": _lisu("LISU at width 0.125 (Jetson Nano class)", "full", 0.125),
    "dlv3p": _deeplab("DeepLab v3+ (ResNet-50) on raw RGB", None),
    "dlv3p-joint": _deeplab("LISU-decomp + DeepLab v3+ with a joint reflectance decoder", "full"),
    "dlv3p-semi": _deeplab("DLv3p-semi-joint (no restoration -> seg copies)", "semi"),
}

MODEL_NAMES: tuple[str, ...] = tuple(_SPECS)


def list_models() -> list[str]:
    """Valid names for :func:`build_model`."""
    return list(MODEL_NAMES)


def describe_model(name: str) -> str:
    """One-line description of a registered model.

    Raises:
        KeyError: naming the valid models.
    """
    return _spec(name).description


def _spec(name: str) -> _Spec:
    try:
        return _SPECS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; valid: {', '.join(MODEL_NAMES)}") from None


def build_model(name: str, **config: Any) -> LowlightModel:
    """Build a registered model.

    Args:
        name: one of :data:`MODEL_NAMES`.
        **config: ``num_classes`` (14), ``depth_head`` (False), and ``width`` (LISU models;
            multiplier of every channel count) or ``backbone_weights`` (DeepLab models: path of
            a local torchvision resnet50 state_dict; nothing is downloaded).

    Returns:
        The model; ``model.config`` holds the architecture kwargs (``backbone_weights`` is not
        kept: it only initialises, and a checkpoint carries the trained weights).

    Raises:
        KeyError: unknown ``name``, naming the valid ones.
        TypeError: a config key this model does not take, naming the valid ones.
        FileNotFoundError: ``backbone_weights`` is not a file.
    """
    spec = _spec(name)
    unknown = sorted(set(config) - set(spec.defaults))
    if unknown:
        raise TypeError(
            f"model {name!r} got unknown config key(s) {', '.join(unknown)}; "
            f"valid: {', '.join(spec.defaults)}"
        )
    kwargs = {**spec.defaults, **config}
    weights = kwargs.pop("backbone_weights", None)
    kwargs = {k: _plain(v) for k, v in kwargs.items()}
    net = spec.make_net(**kwargs)
    if weights is not None:
        load_backbone_weights(net.backbone, weights)
    decomp = LisuDecomp(kwargs.get("width", 1.0)) if spec.decomposition else None
    return LowlightModel(name, net, decomp, kwargs)


def _plain(value: Any) -> Any:
    """Config values as JSON types (numpy scalars and the like become int/float/bool)."""
    return value.item() if hasattr(value, "item") else value
