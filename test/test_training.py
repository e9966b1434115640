"""``lowlight train`` end to end on tiny procedural data: stages, checkpoints, logs, resume,
config errors, determinism, device choice, epoch loss bookkeeping, and the same run under
torchrun (2 CPU processes, gloo) validating the whole split. The ``gpu`` tests run on CUDA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_TRAIN
from torch import nn

from lowlight_perception.data.datasets import collate, open_dataset
from lowlight_perception.errors import ConfigError
from lowlight_perception.models import build_model
from lowlight_perception.models.checkpoint import load_model, read_checkpoint
from lowlight_perception.tools.cli import main
from lowlight_perception.training.config import load_config
from lowlight_perception.training.loop import (
    SYNC_EVERY,
    Runtime,
    TrainStep,
    collate_tensors,
    evaluate,
    label_frequencies,
    majority_baseline,
    make_loader,
    median_frequency_weights,
    poly_schedule,
    resolve_device,
    restore_scaler,
    set_stage,
    to_tensors,
    train_one_epoch,
)

TINY = TINY_TRAIN


SETS = TINY[3::2]  # the --set values, for load_config
CPU = Runtime(torch.device("cpu"))
NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


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
    # restoration measured against the target and the procedural views' true albedo, with the
    # two baselines next to it, and printed
    for ref in ("target", "albedo"):
        for name in ("restored", "gain", "max_rgb"):
            assert 0 < rows[1][f"psnr_{name}_vs_{ref}"] <= 100, (name, ref)
            assert -1 <= rows[1][f"ssim_{name}_vs_{ref}"] <= 1, (name, ref)
    assert "PSNR vs albedo" in stdout
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


def _encoder_names(model) -> set[str]:
    ids = {id(p) for module in model._encoders() for p in module.parameters()}
    return {name for name, p in model.named_parameters() if id(p) in ids}


def test_fine_tuning_with_frozen_encoders_keeps_them_bit_identical_in_both_stages(tmp_path, capsys):
    """[LISU] §6.5 (README, References: "we freeze the encoders of LISU-decomp and LISU-joint, and
    fine-tune ... updating the decoders' parameters"): with init_from + freeze_encoders and the
    default stage all, neither stage moves an encoder weight (nor its BatchNorm statistics);
    the decoders of both networks train; the log says what was loaded and what trains."""
    pre = tmp_path / "pre"
    assert _train(pre) == 0
    capsys.readouterr()
    tuned = tmp_path / "tuned"
    init = pre / "last.pt"
    assert _train(tuned, "--set", f"init_from={init}", "--set", "freeze_encoders=true") == 0
    printed = capsys.readouterr().out
    assert f"init_from {init}: " in printed and "tensors of lisu-tiny" in printed
    assert "decomp stage: training" in printed and "joint stage: training" in printed
    assert printed.count("encoders frozen") >= 2
    before = read_checkpoint(init)["model"]
    after = read_checkpoint(tuned / "last.pt")["model"]
    model = build_model("lisu-tiny")
    frozen = _encoder_names(model)
    encoder_modules = {n.rsplit(".", 1)[0] for n in frozen}
    buffers = [k for k in before if k.rsplit(".", 1)[0] in encoder_modules and k not in frozen]
    assert frozen and buffers  # weights and BatchNorm running statistics
    for key in (*frozen, *buffers):
        assert torch.equal(before[key], after[key]), key
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("decomp.") for k in moved), "decomposition decoder did not train"
    assert any(k.startswith("net.") for k in moved), "task decoder did not train"


def test_joint_stage_on_a_random_decomposition_is_refused(tmp_path, capsys):
    assert _train(tmp_path / "run", "--stage", "joint") == 2
    err = capsys.readouterr().err.strip()
    assert "frozen decomposition, which would be random" in err and "\n" not in err
    assert not (tmp_path / "run").exists()


def test_checkpoints_and_exports_say_what_they_were_trained_on(tmp_path):
    from lowlight_perception.models.export import training_note

    out = tmp_path / "run"
    assert _train(out, "--set", "seed=7") == 0
    best, last = read_checkpoint(out / "best.pt"), read_checkpoint(out / "last.pt")
    prov = best["provenance"]
    assert prov["data"]["kind"] == "procedural" and prov["seed"] == 7
    assert prov["data"]["train_views"] > 0 and prov["data"]["val_views"] > 0
    assert prov["data"]["size"] == [64, 48] and prov["metrics"]["stage"] == "joint"
    line = training_note(best)  # what export writes as the ONNX lowlight.training
    assert line.startswith("lisu-tiny on procedural (train ") and "seed 7" in line
    assert "joint epoch 1, val mIoU" in line
    # best.pt is weights and records; only last.pt can be resumed from
    assert "optimizer" in last and not {"optimizer", "scheduler", "scaler"} & set(best)
    assert (out / "best.pt").stat().st_size < (out / "last.pt").stat().st_size


def test_median_frequency_weights_favour_rare_classes_and_are_capped():
    # class 1 fills whole images, 2 a tenth of the images it is in, 3 a thousandth; 4 unseen
    pixels = np.array([50, 1000, 100, 1, 0, 500])
    present_in = np.array([1000, 1000, 1000, 1000, 0, 1000])
    w = median_frequency_weights(pixels, present_in)
    freq = pixels[[1, 2, 3, 5]] / 1000
    assert w[0] == 1.0 and w[4] == 1.0, "void and unseen classes keep weight 1"
    assert w[1] == pytest.approx(np.median(freq) / 1.0) and w[2] == pytest.approx(3.0)
    assert w[3] == 10.0, "capped"
    assert w[1] < w[5] < w[2] < w[3]


def test_class_weights_are_measured_on_the_training_labels_and_recorded(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(out, "--set", "loss.class_weights=median-frequency") == 0
    logged = capsys.readouterr().out
    assert "class weights (median frequency): bed " in logged
    config = load_config("lisu_small_cpu", assignments=SETS)
    loader = make_loader(config, "train", CPU, shuffle=False)
    expected = median_frequency_weights(*label_frequencies(loader, CPU))
    recorded = read_checkpoint(out / "best.pt")["provenance"]["class_weights"]
    assert recorded == pytest.approx(expected, abs=1e-4) and len(set(recorded)) > 2
    # the weights reach the loss: the same batch scores differently without them
    model = load_model(out / "best.pt")[0].eval()
    batch = to_tensors(collate_tensors([loader.dataset[0], loader.dataset[1]]), CPU.device)
    weighted = TrainStep(model, "joint", config, torch.tensor(expected, dtype=torch.float32))
    with torch.no_grad():
        assert weighted(batch)[1]["seg"] != TrainStep(model, "joint", config)(batch)[1]["seg"]


def test_runs_without_out_get_a_directory_each_and_best_pt_is_not_resumable(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY]) == 0
    assert main(["train", *TINY]) == 0
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all(r.name.startswith("lisu-tiny-all-") for r in runs)
    assert all((r / "best.pt").is_file() for r in runs)
    capsys.readouterr()
    assert main(["train", *TINY, "--resume", str(runs[0] / "best.pt")]) == 2
    assert "resume from the run's last.pt" in capsys.readouterr().err


def test_weight_ema_is_the_warmed_up_average_and_leaves_unchanged_weights_exact():
    from lowlight_perception.training.loop import WeightEma

    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = WeightEma(model, decay=0.5)
    start = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].num_batches_tracked.fill_(7)
    ema.update(model)
    d = min(0.5, 2 / 11)  # warm-up after one update
    want = start["0.weight"] + (1 - d) * (model[0].weight - start["0.weight"])
    assert torch.allclose(ema.module[0].weight, want)
    assert torch.equal(ema.module[0].bias, start["0.bias"])  # unchanged: bit-identical
    assert int(ema.module[1].num_batches_tracked) == 7  # integer buffers are copied
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_ema_weights_are_validated_and_saved_and_resume_continues_them(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(out) == 0  # ema_decay 0.999 by default
    printed = capsys.readouterr().out
    assert "val mIoU over the last 1 epoch(s)" in printed
    last, best = read_checkpoint(out / "last.pt"), read_checkpoint(out / "best.pt")
    batches = 2 * 2  # 8 procedural views, batch 4, 2 train batches per epoch, 2 stages
    assert last["ema"]["updates"] == batches and "raw_model" in last and "raw_model" not in best
    moved = [k for k in last["model"] if not torch.equal(last["model"][k], last["raw_model"][k])]
    assert moved  # the saved (validated) weights are the average, not the last step's
    assert all(torch.equal(best["model"][k], last["model"][k]) for k in last["model"])
    assert _train(out, "--set", "epochs=2", "--resume", str(out / "last.pt")) == 0
    assert read_checkpoint(out / "last.pt")["ema"]["updates"] == batches + 2
    plain = tmp_path / "plain"
    assert _train(plain, "--set", "ema_decay=0") == 0
    assert "raw_model" not in read_checkpoint(plain / "last.pt")
    capsys.readouterr()
    assert _train(tmp_path / "bad", "--set", "ema_decay=1") == 2
    assert "ema_decay must be in [0, 1)" in capsys.readouterr().err


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
        ({"device": "cuda1"}, "device must be auto, cpu or cuda[:N], got 'cuda1'"),
        ({"loss": {"class_weights": "inverse"}}, "loss.class_weights must be null or one of"),
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
    assert err == ["lowlight train: error: batch_size must be a positive integer, got 0"]
    # a value that is not YAML: one line naming the override
    assert main(["train", "--set", "data.size=[160,", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "override 'data.size=[160,': the value is not valid YAML" in err[0]
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


@pytest.mark.parametrize(
    "want, cuda, world, local, expected",
    [
        ("cuda", True, 1, 0, "cuda:0"),
        ("auto", True, 1, 0, "cuda:0"),
        ("cuda:1", True, 1, 0, "cuda:1"),
        ("auto", False, 1, 0, "cpu"),
        ("cuda", True, 4, 2, "cuda:2"),
        ("auto", True, 4, 3, "cuda:3"),
        ("cpu", True, 4, 3, "cpu"),
    ],
)
def test_device_resolves_to_a_concrete_cuda_index(want, cuda, world, local, expected):
    """torch.cuda.set_device refuses an index-less "cuda" (torch 2.13): always name one."""
    device = resolve_device(want, cuda, world, local)
    assert device == torch.device(expected)
    assert device.type == "cpu" or device.index is not None


def test_cuda_without_a_gpu_is_a_config_error():
    with pytest.raises(ConfigError, match="'cuda:1' asked for, but no CUDA device"):
        resolve_device("cuda:1", cuda=False)


def test_scaler_state_is_restored_only_when_both_runs_use_amp():
    """Resuming across AMP on/off starts the scaler fresh instead of raising."""
    with pytest.raises(RuntimeError, match="empty"):  # what resuming a non-AMP run used to do
        torch.amp.GradScaler("cpu").load_state_dict({})
    amp_state = torch.amp.GradScaler("cpu", init_scale=1024.0).state_dict()
    scaler = torch.amp.GradScaler("cpu", init_scale=8.0)
    assert "starts fresh" in restore_scaler(scaler, {})
    assert scaler.get_scale() == 8.0
    assert restore_scaler(scaler, amp_state) is None and scaler.get_scale() == 1024.0
    off = torch.amp.GradScaler("cpu", enabled=False)
    assert "not used" in restore_scaler(off, amp_state)
    assert restore_scaler(off, {}) is None


def _decomp_epoch_parts(config):
    """A fresh seeded lisu-tiny decomposition stage: step, loader, optimizer, scheduler, scaler."""
    torch.manual_seed(0)
    model = build_model(config.model, **config.model_config)
    optimizer = torch.optim.Adam(set_stage(model, "decomp", False), lr=config.lr)
    loader = make_loader(config, "train", CPU, shuffle=True)
    scheduler = poly_schedule(optimizer, len(loader), 0.9)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return TrainStep(model, "decomp", config), loader, optimizer, scheduler, scaler


def test_epoch_means_equal_per_batch_item_sums():
    """Summing on the device and syncing every SYNC_EVERY batches logs the same means."""
    config = load_config(
        "lisu_small_cpu", assignments=[*SETS, "batch_size=1", "data.options={num_views: 12}"]
    )
    parts = _decomp_epoch_parts(config)
    means = train_one_epoch(*parts, CPU, config, desc="decomp")

    step, loader, optimizer, scheduler, _ = _decomp_epoch_parts(config)  # the old way
    step.train()
    sums: dict[str, float] = {}
    for raw in loader:
        loss, terms = step(to_tensors(raw, CPU.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        sums["loss"] = sums.get("loss", 0.0) + loss.item()
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + float(value)
    assert len(loader) > SYNC_EVERY
    assert {"loss", "recon", "smooth"} <= set(means)
    assert means == {k: v / len(loader) for k, v in sums.items()}


class _NanAt(nn.Module):
    """A one-parameter stage whose loss is NaN at batch ``bad``."""

    stage = "decomp"

    def __init__(self, bad: int):
        super().__init__()
        self.weight, self.bad, self.seen = nn.Parameter(torch.ones(())), bad, 0

    def forward(self, batch):
        self.seen += 1
        loss = self.weight * batch["low"].mean()
        return (loss * float("nan") if self.seen - 1 == self.bad else loss), {}


@pytest.mark.parametrize("bad, batches", [(3, "0-9"), (12, "10-14")])
def test_non_finite_loss_names_the_batch_range(bad, batches):
    image = np.full((1, 4, 4, 3), 100, np.uint8)
    loader = [{"low": image, "normal": image}] * 15
    step = _NanAt(bad)
    optimizer = torch.optim.SGD(step.parameters(), lr=0.1)
    config = load_config("lisu_small_cpu", assignments=SETS)
    with pytest.raises(FloatingPointError, match=f"^joint: loss became nan in batches {batches}$"):
        train_one_epoch(
            step,
            loader,
            optimizer,
            poly_schedule(optimizer, 15, 0.9),
            torch.amp.GradScaler("cpu", enabled=False),
            CPU,
            config,
            desc="joint",
        )


def test_loader_batches_are_pinnable_tensors_read_like_numpy_batches():
    """pin_memory pins tensors only, so the loader collates tensors; to_tensors reads both."""
    data = open_dataset("procedural", None, "val", num_views=2, size=(64, 48))
    samples = [data[0], data[1]]
    batch = collate_tensors(samples)
    assert all(isinstance(batch[k], torch.Tensor) for k in ("low", "normal", "label", "depth"))
    got, want = to_tensors(batch, CPU.device), to_tensors(collate(samples), CPU.device)
    assert set(got) == {"low", "normal", "label", "depth_m", "albedo"}
    assert all(got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]) for k in want)


@pytest.mark.gpu
@NEEDS_CUDA
def test_cuda_loader_pins_its_batches():
    config = load_config("lisu_small_cpu", assignments=SETS)
    raw = next(iter(make_loader(config, "train", Runtime(torch.device("cuda:0")), shuffle=True)))
    assert raw["low"].is_pinned() and raw["label"].is_pinned()


@pytest.mark.gpu
@NEEDS_CUDA
def test_one_batch_training_runs_on_cuda(tmp_path, capsys):
    out = tmp_path / "cuda"
    assert _train(out, "--set", "device=cuda", "--set", "max_batches=1") == 0
    assert "(cuda:0)" in capsys.readouterr().out
    state = read_checkpoint(out / "last.pt")
    assert state["stage"] == "joint" and state["scaler"]  # AMP on: a scaler state was saved


@pytest.mark.gpu
@NEEDS_CUDA
def test_resume_across_amp_off_and_on_on_cuda(tmp_path, capsys):
    out, cuda = tmp_path / "run", ["--set", "device=cuda", "--set", "max_batches=1"]
    resume = ["--resume", str(out / "last.pt")]
    assert _train(out, *cuda, "--set", "amp=false") == 0
    assert read_checkpoint(out / "last.pt")["scaler"] == {}
    capsys.readouterr()
    assert _train(out, *cuda, "--set", "epochs=2", *resume) == 0  # AMP run from a non-AMP one
    assert "the gradient scaler starts fresh" in capsys.readouterr().out
    assert read_checkpoint(out / "last.pt")["scaler"]
    assert _train(out, *cuda, "--set", "amp=false", "--set", "epochs=3", *resume) == 0
    assert "gradient-scaler state is not used" in capsys.readouterr().out
    rows = json.loads((out / "metrics.json").read_text())
    assert [r["epoch"] for r in rows if r["stage"] == "joint"] == [1, 2, 3]


@pytest.mark.slow
def test_torchrun_two_cpu_processes_validate_the_whole_split(tmp_path):
    """Each rank scores its shard and the shards are merged: rank 0 logs (and picks best.pt
    by) the metrics of the whole val split, not of its half, scored with rank 0's BatchNorm
    statistics. 7 views over 2 ranks: a padding sampler would score one view twice. Batch size
    1 keeps each view's forward identical."""
    out = tmp_path / "ddp"
    sets = ["data.options={num_views: 7}", "batch_size=1", "seed=1"]
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
        *[arg for value in sets for arg in ("--set", value)],
        "--out",
        str(out),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("done in") == 1 and "on 2 process(es)" in result.stdout
    model, state = load_model(out / "last.pt")
    assert state["stage"] == "joint"
    assert not any(k.startswith("module.") for k in state["model"])  # saved unwrapped
    logged = json.loads((out / "metrics.json").read_text())[-1]
    assert logged == state["metrics"]

    config = load_config("lisu_small_cpu", assignments=[*SETS, *sets])
    val = make_loader(config, "val", CPU, shuffle=False)
    single = evaluate(model, TrainStep(model, "joint", config), val, CPU, config)
    assert logged["OA"] > 0  # seed 1: the network predicts classes that occur (not all void)
    for key in ("mIoU", "OA", "mAcc", "FWIoU"):
        assert logged[key] == pytest.approx(single[key], abs=1e-6), key
    # float32 sums differ in the last bits with the thread count (1 per rank there)
    assert logged["val_loss"] == pytest.approx(single["val_loss"], rel=1e-6)
    baseline = f"majority-class baseline val mIoU: {majority_baseline(val, CPU):.3f}"
    assert baseline in result.stdout


def test_bench_seeds_compares_finished_runs_per_model_and_paired_by_seed(tmp_path, capsys):
    runs = {
        ("lisu-tiny", 0): tmp_path / "a0",
        ("lisu-tiny", 1): tmp_path / "a1",
        ("lisu-seg", 0): tmp_path / "s0",
    }
    for (model, seed), out in runs.items():
        extra = ["--set", f"seed={seed}"]
        if model == "lisu-seg":
            extra += ["--set", "model=lisu-seg", "--set", "model_config={width: 0.125}"]
        assert _train(out, *extra) == 0
    last = {key: json.loads((out / "metrics.json").read_text())[-1] for key, out in runs.items()}
    assert (
        main(
            [
                "bench",
                "seeds",
                "--runs",
                *map(str, runs.values()),
                "--reference",
                "lisu-tiny",
                "--out",
                str(tmp_path / "res"),
            ]
        )
        == 0
    )
    result = json.loads((tmp_path / "res" / "training_seeds.json").read_text())
    tiny, seg = result["models"]  # the reference first
    values = [round(last[("lisu-tiny", s)]["mIoU"], 4) for s in (0, 1)]  # as read_run keeps
    assert tiny["model"] == "lisu-tiny" and tiny["seeds"] == "0 1"
    assert tiny["last_mIoU"] == f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"
    assert "psnr_restored_vs_albedo" in tiny  # procedural data carries the albedo
    assert seg["model"] == "lisu-seg" and seg["last_mIoU"] == f"{last[('lisu-seg', 0)]['mIoU']:.3f}"
    (gap,) = result["gaps"]  # paired on the one seed both ran
    expected = round(last[("lisu-tiny", 0)]["mIoU"], 4) - round(last[("lisu-seg", 0)]["mIoU"], 4)
    assert gap["seeds"] == "0" and gap["mean_std"] == f"{expected:.3f}"
    text = (tmp_path / "res" / "training_seeds.md").read_text()
    assert "models:" in text and "| lisu-seg | 0 |" in text
    assert "lisu-tiny - lisu-seg, last val mIoU" in capsys.readouterr().out


def test_bench_seeds_refuses_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert main(["bench", "seeds", "--runs", str(tmp_path), "--out", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a finished training run" in err[0]


def test_provenance_commit_says_when_the_code_was_not_that_commit(tmp_path):
    """A real git checkout: clean gives the commit, a changed tracked file adds +dirty, an
    untracked file (a run directory, say) does not, and no checkout gives None."""
    import shutil

    from lowlight_perception.training.loop import _git_commit

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    package = tmp_path / "repo" / "lowlight_perception"
    package.mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=package.parent,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "one")
    commit = git("rev-parse", "--short", "HEAD")
    assert _git_commit(package) == commit
    (package / "notes.txt").write_text("untracked\n")
    assert _git_commit(package) == commit
    (package / "a.py").write_text("x = 2\n")
    assert _git_commit(package) == f"{commit}+dirty"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert _git_commit(elsewhere) is None  # not a checkout (a wheel install)
