"""Training checkpoints that rebuild their own model: weights plus the registry name, build
config, class list and training recipe (the torchvision ``Weights.meta`` idea)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .. import atomic
from ..classes import load_classes
from ..errors import LowlightError


class CheckpointError(LowlightError):
    """A checkpoint file is missing, unreadable or not one of ours."""


def save_checkpoint(path: str | Path, model: torch.nn.Module, **extra: Any) -> None:
    """Write atomically (temp file + rename) so an interrupted save never leaves a torn file.

    ``model`` is a LowlightModel (or its DDP wrapper); ``extra`` holds optimizer/scheduler state,
    epoch, metrics, the training config, etc.
    """
    net = getattr(model, "module", model)
    classes = load_classes()
    state = {
        "format": "lowlight_perception.checkpoint/1",
        "model_name": net.name,
        "model_config": net.config,
        "model": net.state_dict(),
        "class_names": list(classes.names),
        "palette": classes.palette.tolist(),
        **extra,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        atomic.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict (weights on the CPU).

    Raises:
        CheckpointError: missing file, unreadable file, or not a lowlight_perception checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for a corrupt file
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from err
    if not isinstance(state, dict) or "model_name" not in state or "model" not in state:
        raise CheckpointError(f"{path} is not a lowlight_perception checkpoint")
    return state


def load_model(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint was trained as and load its weights (eval mode).

    Raises:
        CheckpointError: as ``read_checkpoint``, or if its classes differ from config/classes.yaml.
    """
    from .registry import build_model

    state = read_checkpoint(path)
    names = tuple(state.get("class_names", ()))
    if names and names != load_classes().names:
        raise CheckpointError(
            f"{path} was trained for classes {list(names)}, but config/classes.yaml has "
            f"{list(load_classes().names)}"
        )
    model = build_model(state["model_name"], **state.get("model_config", {}))
    model.load_state_dict(state["model"])
    model.eval()
    return model, state
