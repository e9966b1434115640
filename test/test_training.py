"""``lowlight train`` end to end on tiny procedural data: stages, checkpoints, logs, resume,
config errors, determinism, and the same run under torchrun (2 CPU processes, gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lowlight_perception.errors import ConfigError
from lowlight_perception.models.checkpoint import load_model, read_checkpoint
from lowlight_perception.tools.cli import main
from lowlight_perception.training.config import load_config

TINY = [
    "--config",
    "lisu_small_cpu",
    "--set",
    "model=lisu-tiny",
    "--set",
    "data.size=[64,48]",
    "--set",
    "data.options={num_views: 8}",
    "--set",
    "data.workers=0",
    "--set",
    "batch_size=4",
    "--set",
    "decomp_epochs=1",
    "--set",
    "epochs=1",
]


def _train(out: Path, *extra: str) -> int:
    return main(["train", *TINY, "--out", str(out), *extra])


def test_train_all_stages_writes_checkpoints_logs_and_curves(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(out) == 0
    stdout = capsys.readouterr().out
    assert "majority-class baseline val mIoU" in stdout
    for name in ("last.pt", "best.pt", "metrics.csv", "metrics.json", "curves.png", "config.yaml"):
        assert (out / name).is_file(), name
    rows = json.loads((out / "metrics.json").read_text())
    assert [r["stage"] for r in rows] == ["decomp", "joint"]
    assert 0.0 <= rows[1]["mIoU"] <= 1.0 and rows[1]["loss"] > 0
    assert {"recon", "smooth"} <= set(rows[0])  # decomposition terms are logged
    model, state = load_model(out / "best.pt")
    assert model.name == "lisu-tiny" and state["stage"] == "joint"
    assert state["train_config"]["data"]["size"] == [64, 48]
    with torch.no_grad():
        outputs = model(torch.rand(1, 3, 48, 64))
    assert outputs["logits"].shape == (1, 14, 48, 64)


def test_joint_stage_keeps_the_decomposition_frozen(tmp_path):
    out = tmp_path / "run"
    assert _train(out, "--stage", "decomp") == 0
    decomp = {
        k: v
        for k, v in read_checkpoint(out / "last.pt")["model"].items()
        if k.startswith("decomp.")
    }
    assert (
        _train(tmp_path / "joint", "--stage", "joint", "--set", f"init_from={out / 'last.pt'}") == 0
    )
    after = read_checkpoint(tmp_path / "joint" / "last.pt")["model"]
    assert decomp and all(torch.equal(v, after[k]) for k, v in decomp.items())


def test_resume_continues_where_the_run_stopped(tmp_path):
    out = tmp_path / "run"
    assert _train(out) == 0
    assert _train(out, "--set", "epochs=2", "--resume", str(out / "last.pt")) == 0
    rows = json.loads((out / "metrics.json").read_text())
    assert [(r["stage"], r["epoch"]) for r in rows] == [("decomp", 1), ("joint", 1), ("joint", 2)]


def test_seeded_runs_are_identical(tmp_path):
    assert _train(tmp_path / "a") == 0
    assert _train(tmp_path / "b") == 0
    a = read_checkpoint(tmp_path / "a" / "last.pt")["model"]
    b = read_checkpoint(tmp_path / "b" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_seg_only_model_trains_the_joint_stage_only(tmp_path):
    out = tmp_path / "seg"
    assert _train(out, "--set", "model=lisu-seg", "--set", "model_config={width: 0.125}") == 0
    rows = json.loads((out / "metrics.json").read_text())
    assert [r["stage"] for r in rows] == ["joint"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"epochz": 3}, "unknown key 'epochz'; valid keys: amp, batch_size"),
        ({"data": {"sise": [1, 2]}}, "unknown key data.'sise'"),
        ({"model": "lisu-huge"}, "unknown model 'lisu-huge'; valid:"),
        ({"data": {"size": [100, 48]}}, "multiples of 16"),
        ({"data": {"kind": "llrgbd-real", "path": "/nonexistent/llrgbd"}}, "does not exist"),
        ({"stage": "both"}, "stage must be one of"),
        ({"loss": {"depth_weight": 0.5}}, "depth_head"),
    ],
)
def test_bad_config_fails_before_training(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config("lisu_small_cpu", overrides)


def test_cli_config_error_is_one_line(tmp_path, capsys):
    assert (
        main(
            ["train", "--config", "lisu_small_cpu", "--set", "batch_size=0", "--out", str(tmp_path)]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lowlight train: error: batch_size must be a non-negative integer, got 0"]
    # a dataset option the chosen kind does not take: one line, not a traceback
    data = tmp_path / "data"
    assert (
        main(["synth", "--out", str(data), "--views", "2", "--size", "64x48", "--workers", "1"])
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "train",
                *TINY,
                "--set",
                "data.kind=llrgbd-real",
                "--data",
                str(data),
                "--set",
                "data.options={num_views: 3}",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.options do not fit data.kind=llrgbd-real" in err[0]


@pytest.mark.slow
def test_torchrun_two_cpu_processes_runs_the_same_training(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(29500 + os.getpid() % 1000),
        "-m",
        "lowlight_perception.tools.cli",
        "train",
        *TINY,
        "--out",
        str(out),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "on 2 process(es)" in result.stdout
    _, state = load_model(out / "last.pt")
    assert state["stage"] == "joint"
    assert not any(k.startswith("module.") for k in state["model"])  # saved unwrapped
