"""Checkpoints are read weights-only: a file carrying code is refused without running it, and
everything the training loop saves (optimizer, scheduler, scaler, metrics) reads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lowlight_perception.models.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from lowlight_perception.models.export import random_init_model
from lowlight_perception.training.loop import poly_schedule


class _Payload:
    """Unpickling this calls open(marker, "w"): the file appears if the checkpoint is run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_checkpoint_carrying_a_callable_is_refused_unrun(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    torch.save({"model_name": "lisu-tiny", "model": {}, "note": _Payload(marker)}, path)
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    assert str(err.value) == (
        f"{path} holds objects other than tensors and plain types (io.open); refused for safety, "
        "as loading it could run code"
    )
    assert not marker.exists()
    unsafe = torch.load(path, weights_only=False)  # what the old loader did: the code runs
    unsafe["note"].close()
    assert marker.exists()


def test_training_state_saves_as_plain_values_and_reads_back(tmp_path):
    model = random_init_model("lisu-tiny", seed=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.95, 0.999))
    scheduler = poly_schedule(optimizer, 10, 0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    model(torch.rand(1, 3, 48, 64))["logits"].mean().backward()
    optimizer.step()
    scheduler.step()
    path = tmp_path / "last.pt"
    save_checkpoint(
        path,
        model,
        optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict(),
        scaler=scaler.state_dict(),
        metrics={"mIoU": np.float64(0.25), "hist": np.arange(3), "size": (64, 48)},
        train_config={"out": Path("runs/x")},
    )
    state = read_checkpoint(path)
    assert type(state["metrics"]["mIoU"]) is float and state["metrics"]["mIoU"] == 0.25
    assert state["metrics"]["hist"] == [0, 1, 2] and state["metrics"]["size"] == (64, 48)
    assert state["train_config"]["out"] == "runs/x"
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    assert scheduler.last_epoch == 1 and scaler.get_scale() == 256.0
    saved = state["optimizer"]["state"]
    assert saved and all(s["step"] == 1 for s in optimizer.state_dict()["state"].values())


def test_unsaveable_value_fails_at_save_time(tmp_path):
    path = tmp_path / "bad.pt"
    with pytest.raises(CheckpointError, match=r"^cannot save metrics\['when'\]: object is neither"):
        save_checkpoint(path, random_init_model("lisu-tiny"), metrics={"when": object()})
    assert not path.exists()
