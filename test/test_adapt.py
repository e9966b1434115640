"""``lowlight adapt`` (issue 16): class-balanced pseudo-labels, and self-training end to end on
a tiny unlabelled procedural bag, its checkpoint exported like any other."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TINY_TRAIN

from lowlight_perception.models.checkpoint import load_model, read_checkpoint
from lowlight_perception.tools.cli import main
from lowlight_perception.training.adapt import class_thresholds, coverage, pseudo_labels

VOID = 0


def test_every_class_keeps_its_most_confident_share_however_sure_the_model_is():
    """Walls predicted at 0.95, a rare chair at 0.2-0.4: one global threshold would keep no
    chair; per class, each keeps its most confident half."""
    rng = np.random.default_rng(0)
    labels = np.full((1, 100, 100), 12, np.uint8)  # wall
    labels[0, :10, :10] = 4  # chair: 1 % of the pixels
    confidence = rng.uniform(0.9, 1.0, labels.shape).astype(np.float32)
    confidence[labels == 4] = rng.uniform(0.2, 0.4, 100)
    thresholds = class_thresholds(labels, confidence, 14, keep=0.5, max_threshold=0.9)
    pseudo = pseudo_labels(labels, confidence, thresholds, VOID)
    assert 0.2 < thresholds[4] < 0.4 and thresholds[12] == pytest.approx(0.9)  # capped
    assert (pseudo == 4).sum() == 50  # half of the chair
    assert (pseudo == 12).sum() == (labels == 12).sum()  # walls above the cap: all kept
    assert thresholds[7] == pytest.approx(0.9)  # never predicted: the cap
    rows = {
        r["class"]: r
        for r in coverage(labels, pseudo, thresholds, tuple(f"c{i}" for i in range(14)), VOID)
    }
    assert rows["c4"]["predicted_%"] == 1.0 and rows["c4"]["pseudo_labelled_%"] == 0.5
    assert "c0" not in rows  # void is never a pseudo-label


def test_void_predictions_are_never_pseudo_labels():
    labels = np.array([[[0, 3], [3, 3]]], np.uint8)
    confidence = np.ones((1, 2, 2), np.float32)
    thresholds = class_thresholds(labels, confidence, 4, keep=1.0, max_threshold=0.9)
    assert pseudo_labels(labels, confidence, thresholds, VOID)[0, 0, 0] == VOID


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A 1-epoch lisu-tiny checkpoint and an unlabelled bag of the dim-noisy domain."""
    root = tmp_path_factory.mktemp("adapt")
    assert (
        main(
            [
                "synth",
                "--out",
                str(root / "ds"),
                "--views",
                "12",
                "--size",
                "64x48",
                "--seed",
                "3",
                "--low-light",
                "dim-noisy",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "bag",
                "write",
                "--kind",
                "llrgbd-real",
                "--data",
                str(root / "ds"),
                "--split",
                "train",
                "--out",
                str(root / "bag"),
                "--no-labels",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                *TINY_TRAIN,
                "--out",
                str(root / "src"),
            ]
        )
        == 0
    )
    return root


def test_adapt_end_to_end_on_an_unlabelled_bag(source, tmp_path, capsys):
    from lowlight_perception.bags import GT_TOPIC, inspect_bag

    assert GT_TOPIC not in inspect_bag(source / "bag").topics  # an unlabelled recording
    out = tmp_path / "adapted"
    assert (
        main(
            [
                "adapt",
                "--checkpoint",
                str(source / "src" / "best.pt"),
                "--bag",
                str(source / "bag"),
                "--out",
                str(out),
                "--rounds",
                "2",
                "--epochs",
                "1",
                "--ema-teacher",
                "0.9",
                "--seg-loss",
                "focal",
            ]
        )
        == 0
    )
    assert "pseudo-labelled" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [1, 2] and report["frames"] == 11
    for r in report["rounds"]:
        assert 0 < r["pseudo_labelled_%"] <= 100
        assert len(r["classes"]) == 13  # every class but void, with its threshold
    assert (out / "coverage.png").stat().st_size > 0
    assert "Round 2" in (out / "report.md").read_text()
    before, _ = load_model(source / "src" / "best.pt")
    after, state = load_model(out / "adapted.pt")
    decomp = {k for k in before.state_dict() if k.startswith("decomp.")}
    assert decomp and all(
        torch.equal(before.state_dict()[k], after.state_dict()[k]) for k in decomp
    )  # the decomposition stays frozen
    assert any(
        not torch.equal(before.state_dict()[k], after.state_dict()[k])
        for k in before.state_dict()
        if k.startswith("net.")
    )  # the task network learnt
    assert (
        state["provenance"]["adapted"]["frames"] == 11
        and "adapted without labels" in (state["training"])
    )
    assert read_checkpoint(out / "adapted.pt")["train_config"]["data"]["size"] == [64, 48]
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(out / "adapted.pt"),
                "--out",
                str(tmp_path / "adapted.onnx"),
                "--camera-size",
                "64x48",
                "--net-size",
                "64x48",
            ]
        )
        == 0
    )  # downstream takes it unchanged


@pytest.mark.parametrize(
    "args, message",
    [
        (["--bag", "{tmp}/nope"], "bag not found"),
        (["--keep", "0"], "keep must be in (0, 1]"),
        (["--seg-loss", "dice"], "seg loss must be one of"),
    ],
)
def test_cli_errors_are_one_line(source, tmp_path, capsys, args, message):
    argv = [
        "adapt",
        "--checkpoint",
        str(source / "src" / "best.pt"),
        "--bag",
        str(source / "bag"),
        "--out",
        str(tmp_path / "o"),
        *(a.format(tmp=tmp_path) for a in args),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_bench_adapt_scores_source_and_adapted_with_and_without_refinement(source, tmp_path):
    """The measurement of issue 16 at toy scale: a shifted set and its unlabelled bag, the
    checkpoint adapted, four conditions scored on the shifted val split, gains paired."""
    out = tmp_path / "results"
    assert (
        main(
            [
                "bench",
                "adapt",
                "--checkpoints",
                str(source / "src" / "best.pt"),
                "--work",
                str(tmp_path / "work"),
                "--views",
                "12",
                "--size",
                "64x48",
                "--rounds",
                "1",
                "--epochs",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads((out / "adapt_dim_noisy.json").read_text())
    (row,) = result["rows"]
    for key in ("source mIoU", "source + refine mIoU", "adapted mIoU", "adapted + refine mIoU"):
        assert 0 <= row[key] <= 1, key
    summary = {r["condition"]: r["mIoU mean ± std"] for r in result["summary"]}
    gain = summary["gain: adaptation (adapted - source)"]
    assert float(gain) == pytest.approx(row["adapted mIoU"] - row["source mIoU"], abs=1e-3)
    assert (tmp_path / "work" / "model0" / "adapt" / "adapted.pt").is_file()
    assert "| source + refine |" in (out / "adapt_dim_noisy.md").read_text()


def test_recalibrated_batchnorm_makes_eval_mode_agree_with_train_mode_on_the_frames():
    """After recalibration on one batch, the task network's running statistics are that batch's
    (unbiased variance), so eval-mode labels equal train-mode labels there; the decomposition's
    statistics are untouched."""
    from lowlight_perception.models.export import random_init_model
    from lowlight_perception.training.adapt import recalibrate_batchnorm

    model = random_init_model("lisu-tiny", seed=2)
    decomp_before = {k: v.clone() for k, v in model.decomp.state_dict().items()}
    for name, module in model.named_modules():  # stale statistics, as after fine-tuning
        if isinstance(module, torch.nn.BatchNorm2d) and not name.startswith("decomp"):
            module.running_mean.fill_(3.0)
            module.running_var.fill_(0.01)
    frames = np.random.default_rng(0).integers(0, 40, (4, 48, 64, 3), dtype=np.uint8)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255

    @torch.no_grad()
    def agreement() -> float:
        model.eval()
        eval_labels = model(x)["logits"].argmax(1)
        model.train()
        model.decomp.eval()
        train_labels = model(x)["logits"].argmax(1)
        model.eval()
        return float((eval_labels == train_labels).float().mean())

    stale = agreement()
    recalibrate_batchnorm(model, frames, torch.device("cpu"), batch_size=4)
    # not exactly 1: running variances are unbiased, batch ones biased (on the 3x4 bottleneck)
    assert agreement() > 0.85 > stale
    assert all(torch.equal(v, decomp_before[k]) for k, v in model.decomp.state_dict().items())


def test_bench_adapt_refuses_a_work_directory_made_for_other_settings(source, tmp_path, capsys):
    """A --work rendered for other settings is not silently reused for a new measurement."""
    work = tmp_path / "work"
    assert (
        main(
            [
                "synth",
                "--out",
                str(work / "data"),
                "--views",
                "6",
                "--size",
                "64x48",
                "--seed",
                "23",
                "--low-light",
                "dim-noisy",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "bench",
                "adapt",
                "--checkpoints",
                str(source / "src" / "best.pt"),
                "--work",
                str(work),
                "--views",
                "12",
                "--size",
                "64x48",
                "--out",
                str(tmp_path / "res"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert "holds a shifted set of 6 dim-noisy views at 64x48, not 12" in err[-1]
