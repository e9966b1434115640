"""Training checkpoints that rebuild their own model: weights plus the registry name, build
config, class list and training recipe (the torchvision ``Weights.meta`` idea).

A checkpoint holds tensors and plain types only and is loaded with ``weights_only=True``: a
``.pt`` file can be named from outside (the ROS node's ``model_path``), and unpickling anything
else could run code.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch

from .. import atomic
from ..classes import load_classes
from ..errors import LowlightError


class CheckpointError(LowlightError):
    """A checkpoint file is missing, unreadable, unsafe to load or not one of ours."""


def plain(value: Any, where: str = "checkpoint") -> Any:
    """``value`` with numpy scalars/arrays made Python numbers/lists and paths made strings, so
    that ``torch.load(weights_only=True)`` reads it back.

    Raises:
        CheckpointError: for anything that is not a tensor or a plain type (dict, list, tuple,
            str, int, float, bool, None), naming where it sits.
    """
    if value is None or type(value) in (str, bool, int, float) or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.generic | np.ndarray):  # before float: np.float64 is a float
        return value.tolist()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dict):
        return {plain(k, where): plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise CheckpointError(
        f"cannot save {where}: {type(value).__name__} is neither a tensor nor a plain type"
    )


def save_checkpoint(path: str | Path, model: torch.nn.Module, **extra: Any) -> None:
    """Write atomically (temp file + rename) so an interrupted save never leaves a torn file.

    ``model`` is a LowlightModel (or its DDP wrapper); ``extra`` holds optimizer/scheduler state,
    epoch, metrics, the training config, etc.; numpy values and paths in it are stored as plain
    Python values (see ``plain``).
    """
    net = getattr(model, "module", model)
    classes = load_classes()
    state = {
        "format": "lowlight_perception.checkpoint/1",
        "model_name": net.name,
        "model_config": plain(net.config, "model_config"),
        "model": net.state_dict(),
        "class_names": list(classes.names),
        "palette": classes.palette.tolist(),
        **{key: plain(value, key) for key, value in extra.items()},
    }
    with atomic.writing(path) as tmp:
        torch.save(state, tmp)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict (weights on the CPU), read weights-only: nothing in it is run.

    Raises:
        CheckpointError: missing file, unreadable file, a file holding other objects than tensors
            and plain types (refused unexecuted), or not a lowlight_perception checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+)", str(err))
        if found is None:  # not a pickle of ours at all: garbage, or another format
            why = re.search(r"WeightsUnpickler error: \s*(.+)", str(err))
            text = why.group(1).strip() if why else str(err).strip().splitlines()[0]
            raise CheckpointError(f"cannot read checkpoint {path}: {text}") from None
        raise CheckpointError(
            f"{path} holds objects other than tensors and plain types ({found.group(1)}); "
            "refused for safety, as loading it could run code"
        ) from None
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
