"""Offline evaluation (``lowlight eval``): bag and dataset modes against a direct in-memory
evaluation, recorded predictions, the files of a run, the robustness grid, runs that stop early
(truncated bag, Ctrl-C, errors) and the command line.

Everything is built here: a procedural sequence at 64x48, bags written with the project's
writer (and, for recorded predictions, a small rosbags writer below), a random-init model.
"""

from __future__ import annotations

import csv
import json
import math
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import direct_metrics

from lowlight_perception.bags import GT_TOPIC, write_bag
from lowlight_perception.classes import load_classes
from lowlight_perception.data.datasets import open_dataset
from lowlight_perception.data.degrade import DARKNESS_LEVELS, KINDS
from lowlight_perception.data.synth import render_dataset
from lowlight_perception.evaluation.evaluate import (
    dataset_frames,
    evaluate,
    evaluate_bag,
    evaluate_dataset,
    robustness,
)
from lowlight_perception.frame import Frame
from lowlight_perception.inference import Result, Segmenter
from lowlight_perception.models.export import export_onnx, random_init_model
from lowlight_perception.tools.cli import main

SIZE = (64, 48)
FRAMES = 12
PRED_TOPIC = "/lowlight_perception/labels"
METRIC_KEYS = ("mIoU", "OA", "mAcc", "FWIoU")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A procedural sequence: 12 val frames (one room) at 64x48."""
    root = tmp_path_factory.mktemp("eval") / "ds"
    render_dataset(
        root,
        views=2 * FRAMES,
        size=SIZE,
        seed=5,
        sequence=True,
        frames_per_room=FRAMES,
        val_fraction=0.5,
        workers=1,
        progress=False,
    )
    return root


@pytest.fixture(scope="module")
def samples(data):
    return list(open_dataset("llrgbd-real", data, "val"))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """Random-init lisu-tiny; seed 1 predicts mostly floor, so floor's IoU is not 0."""
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    export_onnx(
        random_init_model("lisu-tiny", seed=1), path, camera_size=SIZE, net_size=(96, 64), frames=1
    )
    return path


@pytest.fixture(scope="module")
def bags(samples, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bags")
    out = {}
    for storage in ("mcap", "sqlite3"):
        out[storage] = root / storage
        write_bag(samples, out[storage], storage=storage, progress=False)
    return out


def _assert_same(metrics: dict, reference: dict) -> None:
    for key in METRIC_KEYS:
        assert metrics[key] == pytest.approx(reference[key], abs=1e-12), key
    assert metrics["per_class_IoU"] == pytest.approx(reference["per_class_IoU"], abs=1e-12)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_eval_equals_direct_in_memory_evaluation(storage, bags, samples, model, tmp_path):
    metrics = evaluate_bag(bags[storage], model, tmp_path, device="cpu", progress=False)
    with Segmenter(model, device="cpu") as seg:
        reference = direct_metrics((seg.segment(s.low).labels.copy(), s.label) for s in samples)
    _assert_same(metrics, reference)
    assert metrics["frames"] == FRAMES and metrics["complete"] is True
    assert metrics["mIoU"] > 0  # not the trivial all-wrong case


def test_refine_scores_the_depth_refined_labels_of_every_frame_with_depth(
    bags, samples, model, tmp_path
):
    """--refine (the node's refine_with_depth): the bag's frames are scored as Segmenter.segment
    with the same refinement and the frame's aligned depth gives them, and the report says how
    many frames were refined."""
    from lowlight_perception.inference.refine import RefineConfig

    out = tmp_path / "refined"
    assert (
        main(
            [
                "eval",
                "--bag",
                str(bags["mcap"]),
                "--model",
                str(model),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--refine",
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    with Segmenter(model, device="cpu", refine=RefineConfig()) as seg:
        reference = direct_metrics(
            (seg.segment(s.low, s.depth).labels.copy(), s.label) for s in samples
        )
    _assert_same(metrics, reference)
    assert metrics["refined_frames"] == FRAMES and metrics["refine"]["radius"] == 3
    assert "depth-aware refinement" in (out / "report.md").read_text()


def test_dataset_mode_equals_bag_mode(bags, data, model, tmp_path):
    from_bag = evaluate_bag(bags["mcap"], model, tmp_path / "bag", device="cpu", progress=False)
    from_dir = evaluate_dataset(
        "llrgbd-real", data, "val", model, tmp_path / "dir", device="cpu", progress=False
    )
    _assert_same(from_dir, from_bag)
    assert from_dir["frames"] == from_bag["frames"] == FRAMES


def test_dataset_mode_scores_restoration_against_albedo_and_normal_next_to_baselines(
    data, samples, model, tmp_path
):
    """A paired dataset with albedo (procedural views written by ``lowlight synth``): the
    restored reflectance of every frame, and the two baselines, against both references, as
    computed directly; in metrics.json, report.md and the printed summary."""
    from lowlight_perception.data.datasets import open_dataset
    from lowlight_perception.evaluation.restoration import RestorationScores

    metrics = evaluate_dataset(
        "llrgbd-real", data, "val", model, tmp_path, device="cpu", progress=False
    )
    direct = RestorationScores()
    with Segmenter(model, device="cpu") as seg:
        dataset = open_dataset("llrgbd-real", data, "val")
        for i in range(len(dataset)):
            view = dataset[i]
            direct.add(
                view.low,
                view.normal,
                seg.segment(view.low).reflectance,
                albedo=view.albedo,
                normal=view.normal,
            )
    assert metrics["restoration"] == pytest.approx(direct.summary())
    assert {"psnr_restored_vs_albedo", "psnr_gain_vs_albedo", "psnr_max_rgb_vs_normal"} <= set(
        metrics["restoration"]
    )
    assert "## Restoration" in (tmp_path / "report.md").read_text()


def test_a_run_writes_every_file_with_the_documented_keys(bags, model, tmp_path):
    metrics = evaluate_bag(
        bags["mcap"],
        model,
        tmp_path,
        device="cpu",
        progress=False,
        machine={"cpu": "test cpu", "cores": 2},
    )
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["mIoU"] == pytest.approx(metrics["mIoU"])
    for key in METRIC_KEYS:
        assert 0.0 <= on_disk[key] <= 1.0, key
    names = load_classes().names
    assert set(on_disk["per_class_IoU"]) == set(names[1:])  # void is never scored
    assert all(v is None or 0 <= v <= 1 for v in on_disk["per_class_IoU"].values())
    assert on_disk["frames"] == FRAMES and on_disk["skipped"] == {}
    assert on_disk["latency_ms"]["p50"] <= on_disk["latency_ms"]["p99"]
    assert on_disk["model"] == "lisu-tiny" and on_disk["backend"] == "onnxruntime"
    assert on_disk["source"] == str(bags["mcap"]) and on_disk["machine"]["cpu"] == "test cpu"
    assert on_disk["complete"] is True
    for name in ("report.md", "confusion.png", "timeline.png", "per_frame.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    with open(tmp_path / "per_frame.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == FRAMES and all(0 <= float(r["mIoU"]) <= 1 for r in rows)
    images = sorted((tmp_path / "samples").glob("*.png"))
    assert 3 <= len(images) <= 6
    report = (tmp_path / "report.md").read_text()
    assert "| bed |" in report and "![confusion matrix](confusion.png)" in report
    for image in images:
        assert f"samples/{image.name}" in report


def _image(typestore, stamp_ns: int, array: np.ndarray, encoding: str, frame_id: str):
    T = typestore.types
    header = T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
        frame_id=frame_id,
    )
    data = np.ascontiguousarray(array)
    return T["sensor_msgs/msg/Image"](
        header=header,
        height=data.shape[0],
        width=data.shape[1],
        encoding=encoding,
        is_bigendian=0,
        step=data.strides[0],
        data=data.view(np.uint8).reshape(-1),
    )


def _write_bag_with_predictions(path: Path, samples, predictions) -> None:
    """A bag as ``ros2 bag record`` on the drone gives it: colour, ground truth and the node's
    labels (here: ``predictions``), stamped alike."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    topics = {
        "/camera/camera/color/image_raw": "rgb8",
        GT_TOPIC: "mono8",
        PRED_TOPIC: "mono8",
    }
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {t: writer.add_connection(t, "sensor_msgs/msg/Image", typestore=ts) for t in topics}
        for i, (sample, prediction) in enumerate(zip(samples, predictions, strict=True)):
            stamp = 1_000_000_000 + i * 33_333_333
            arrays = (sample.low, sample.label, prediction)
            for (topic, encoding), array in zip(topics.items(), arrays, strict=True):
                msg = _image(ts, stamp, array, encoding, "camera_color_optical_frame")
                writer.write(conns[topic], stamp, ts.serialize_cdr(msg, "sensor_msgs/msg/Image"))


def _noisy(label: np.ndarray, seed: int) -> np.ndarray:
    """The truth with 30 % of pixels replaced by a random class: a non-trivial prediction."""
    rng = np.random.default_rng(seed)
    out = label.copy()
    flip = rng.random(label.shape) < 0.3
    out[flip] = rng.integers(1, 14, int(flip.sum()))
    return out


def test_predictions_topic_scores_the_recorded_labels_without_a_model(samples, tmp_path):
    predictions = [_noisy(s.label, i) for i, s in enumerate(samples)]
    bag = tmp_path / "recorded"
    _write_bag_with_predictions(bag, samples, predictions)
    metrics = evaluate_bag(
        bag, None, tmp_path / "out", predictions_topic=PRED_TOPIC, progress=False
    )
    reference = direct_metrics(zip(predictions, (s.label for s in samples), strict=True))
    _assert_same(metrics, reference)
    assert 0.6 < metrics["OA"] < 0.85 and 0.1 < metrics["mIoU"] < 0.9  # not trivial
    assert metrics["frames"] == FRAMES
    assert "latency_ms" not in metrics and metrics["predictions_topic"] == PRED_TOPIC
    assert (tmp_path / "out" / "report.md").exists()


# --------------------------------------------------------------------------- robustness


def test_robustness_grid_has_every_kind_level_and_the_darkness_sweep(data, model, tmp_path):
    dataset = open_dataset("llrgbd-real", data, "val")
    with Segmenter(model, device="cpu") as seg:
        doc = robustness(lambda: dataset_frames(dataset, 4), seg, tmp_path, progress=False)
    assert doc["complete"] and set(doc["grid"]) == set(KINDS)
    for rows in doc["grid"].values():
        assert [r["level"] for r in rows] == [1, 2, 3, 4]
        assert all(math.isfinite(r["mIoU"]) and r["frames"] == 4 for r in rows)
    assert [r["exposure"] for r in doc["darkness"]] == list(DARKNESS_LEVELS)
    assert json.loads((tmp_path / "robustness.json").read_text())["complete"] is True
    table = (tmp_path / "robustness.md").read_text()
    assert all(f"| {kind} |" in table for kind in KINDS) and "Darkness sweep" in table
    assert (tmp_path / "robustness.png").stat().st_size > 0


class PaletteSegmenter:
    """A non-constant stand-in for Segmenter: each pixel gets the class whose palette colour is
    nearest, so frames painted in the palette segment perfectly until they are degraded."""

    def __init__(self) -> None:
        self.classes = load_classes()
        self.metadata = SimpleNamespace(model="palette")
        self.backend = SimpleNamespace(name="numpy", device="cpu")

    def segment(self, rgb: np.ndarray) -> Result:
        palette = self.classes.palette.astype(np.int32)
        distance = ((rgb[:, :, None, :].astype(np.int32) - palette) ** 2).sum(axis=-1)
        labels = distance.argmin(axis=-1).astype(np.uint8)
        return Result(labels, np.full(labels.shape, 255, np.uint8), timings={"total": 1.0})


def test_robustness_of_a_non_constant_model_falls_with_severity(samples, tmp_path):
    palette = load_classes().palette
    frames = [Frame(i, palette[s.label], s.label) for i, s in enumerate(samples[:4])]
    doc = robustness(lambda: frames, PaletteSegmenter(), tmp_path, progress=False)
    assert doc["clean"]["mIoU"] == pytest.approx(1.0)
    for kind in KINDS:  # every corruption reaches the frames the model sees, harder per level
        miou = [r["mIoU"] for r in sorted(doc["grid"][kind], key=lambda r: r["level"])]
        assert miou == sorted(miou, reverse=True) and miou[-1] < 1.0, (kind, miou)
        if kind != "darken":  # halving a palette colour already makes it another class
            assert miou[-1] < miou[0], (kind, miou)
    sweep = [r["mIoU"] for r in doc["darkness"]]
    assert sweep[0] == pytest.approx(1.0) and sweep == sorted(sweep, reverse=True)
    assert sweep[-1] < sweep[0]


# --------------------------------------------------------------------------- stopping early


def _break_last_chunk(bag: Path) -> None:
    """Overwrite the second half of the bag's last mcap chunk with zeros: the file still opens
    (its summary is intact) but reading breaks off there, as in a damaged recording."""
    (path,) = bag.glob("*.mcap")
    data = bytearray(path.read_bytes())
    pos, chunks = 8, []  # after the magic: records of opcode (1 byte) + length (uint64)
    while data[pos] != 0x0F:  # footer
        length = struct.unpack_from("<Q", data, pos + 1)[0]
        if data[pos] == 0x06:
            chunks.append((pos, length))
        pos += 9 + length
    start, length = chunks[-1]
    assert len(chunks) >= 2
    data[start + length // 2 : start + 9 + length] = bytes(9 + length - length // 2)
    path.write_bytes(bytes(data))


def test_truncated_bag_gives_partial_metrics_marked_incomplete(data, model, tmp_path, capsys):
    # frames big enough for two 1 MiB chunks of rosbags' mcap writer
    bag = tmp_path / "bag"
    write_bag(open_dataset("llrgbd-real", data, "val", size=(192, 144)), bag, progress=False)
    _break_last_chunk(bag)
    out = tmp_path / "out"
    metrics = evaluate_bag(bag, model, out, device="cpu", progress=False)  # 192x144: any size
    assert metrics["complete"] is False and 0 < metrics["frames"] < FRAMES
    assert "broke off" in metrics["incomplete_reason"]
    assert json.loads((out / "metrics.json").read_text())["complete"] is False
    report = (out / "report.md").read_text()
    assert "**Incomplete**" in report and "broke off" in report
    with open(out / "per_frame.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == metrics["frames"]
    # the command says so too, and exits with 1 (report written, results partial)
    argv = [
        "eval",
        "--bag",
        str(bag),
        "--model",
        str(model),
        "--out",
        str(tmp_path / "cli"),
        "--device",
        "cpu",
    ]
    assert main(argv) == 1
    assert "INCOMPLETE: the bag broke off" in capsys.readouterr().out


def _frames(samples, seen: list, out: Path, stop: BaseException, after: int):
    """Frames with recorded predictions; before raising ``stop`` it reads what is on disk."""
    for i, s in enumerate(samples):
        if i == after:
            seen.append(json.loads((out / "metrics.json").read_text()))
            raise stop
        yield Frame(i, s.low, s.label, prediction=_noisy(s.label, i))


def test_interrupt_keeps_what_was_scored_and_writes_as_it_goes(samples, tmp_path):
    seen: list = []
    frames = _frames(samples, seen, tmp_path, KeyboardInterrupt(), after=7)
    metrics = evaluate(frames, tmp_path, checkpoint_every=3, progress=False)
    # metrics.json was already on disk, incomplete, after 6 frames
    assert seen[0]["frames"] == 6 and seen[0]["complete"] is False
    assert metrics["frames"] == 7 and metrics["complete"] is False
    assert "interrupted" in metrics["incomplete_reason"]
    assert "interrupted" in (tmp_path / "report.md").read_text()


def test_an_error_mid_run_still_leaves_the_report_then_raises(samples, tmp_path):
    frames = _frames(samples, [], tmp_path, RuntimeError("disk on fire"), after=5)
    with pytest.raises(RuntimeError, match="disk on fire"):
        evaluate(frames, tmp_path, checkpoint_every=5, progress=False)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["frames"] == 5 and on_disk["complete"] is False
    assert "disk on fire" in (tmp_path / "report.md").read_text()


def test_samples_stay_few_and_spread_when_the_length_is_unknown(samples, tmp_path):
    frames = (
        Frame(i, s.low, s.label, prediction=s.label) for i, s in enumerate(samples * 5)
    )  # 60 frames, total not given
    metrics = evaluate(frames, tmp_path, samples=6, progress=False)
    assert metrics["mIoU"] == 1.0 and metrics["frames"] == 60
    kept = sorted(int(p.stem) for p in (tmp_path / "samples").glob("*.png"))
    assert 3 <= len(kept) <= 6 and kept[0] == 0 and kept[-1] >= 30
    assert len(set(np.diff(kept))) == 1  # evenly spaced


def test_frames_without_ground_truth_are_counted_not_scored(samples, tmp_path):
    frames = [
        Frame(i, s.low, None if i % 3 == 0 else s.label, prediction=s.label)
        for i, s in enumerate(samples)
    ]
    metrics = evaluate(frames, tmp_path, progress=False)
    assert metrics["frames"] == 8 and metrics["skipped"] == {"no ground truth": 4}


def test_without_matplotlib_the_report_still_comes_and_says_why(samples, tmp_path, monkeypatch):
    from lowlight_perception.evaluation import report

    monkeypatch.setattr(report, "pyplot", lambda: None)  # the base install has no matplotlib
    frames = [Frame(i, s.low, s.label, prediction=s.label) for i, s in enumerate(samples)]
    assert evaluate(frames, tmp_path, progress=False)["mIoU"] == 1.0
    assert "matplotlib is not installed" in (tmp_path / "report.md").read_text()
    assert not (tmp_path / "confusion.png").exists()
    assert list((tmp_path / "samples").glob("*.png"))  # side-by-sides need only Pillow


# --------------------------------------------------------------------------- command line


def test_cli_evaluates_a_bag_end_to_end(bags, model, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lowlight_perception.tools.cli",
            "eval",
            "--bag",
            str(bags["sqlite3"]),
            "--model",
            str(model),
            "--out",
            str(out),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"evaluated {FRAMES} frames" in proc.stdout and "mIoU" in proc.stdout
    assert "latency of segment(): p50" in proc.stdout and str(out / "report.md") in proc.stdout
    assert json.loads((out / "metrics.json").read_text())["complete"] is True


def test_cli_dataset_with_one_degradation_writes_the_grid(data, model, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(
        [
            "eval",
            "--dataset",
            str(data),
            "--kind",
            "llrgbd-real",
            "--model",
            str(model),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--max-frames",
            "3",
            "--degrade",
            "gaussian_blur",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "evaluated 3 frames" in printed and "robustness: clean mIoU" in printed
    doc = json.loads((out / "robustness.json").read_text())
    assert list(doc["grid"]) == ["gaussian_blur"] and len(doc["grid"]["gaussian_blur"]) == 4
    assert "robustness.md" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--bag", "{tmp}/nope", "--model", "{model}"], "bag not found"),
        (["--bag", "{bag}", "--model", "{tmp}/bad.onnx"], "bad.onnx"),
        (["--bag", "{bag}", "--model", "{model}", "--gt-topic", "/nope"], "/nope"),
        (["--dataset", "{tmp}", "--predictions-topic", "/x"], "--predictions-topic needs --bag"),
        (["--bag", "{bag}", "--model", "{model}", "--kind", "nyuv2"], "--kind applies to"),
        (["--bag", "{bag}", "--predictions-topic", "/x", "--degrade", "all"], "needs --model"),
        (["--bag", "{bag}", "--predictions-topic", "/x", "--refine"], "--refine needs --model"),
    ],
)
def test_cli_errors_are_one_line_with_status_2(args, message, bags, model, tmp_path, capsys):
    (tmp_path / "bad.onnx").write_text("not a model")
    fill = {"tmp": tmp_path, "model": model, "bag": bags["mcap"]}
    argv = [
        "eval",
        *(a.format(**fill) for a in args),
        "--out",
        str(tmp_path / "out"),
        "--device",
        "cpu",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_sigterm_stops_eval_like_ctrl_c_with_a_partial_report(samples, model, tmp_path):
    """`kill`, `timeout` or a container stopping send SIGTERM: a real `lowlight eval` process
    keeps what it scored, marks the report incomplete, and exits 143 (128 + SIGTERM)."""
    bag = tmp_path / "long"
    write_bag(samples * 100, bag, storage="mcap", progress=False)  # 1200 frames: seconds
    out = tmp_path / "report"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lowlight_perception.tools.cli",
            "eval",
            "--bag",
            str(bag),
            "--model",
            str(model),
            "--out",
            str(out),
            "--device",
            "cpu",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (out / "metrics.json").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "eval wrote no metrics.json"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["complete"] is False and 0 < metrics["frames"] < 1200
    assert metrics["incomplete_reason"].startswith("terminated (SIGTERM) after")
    assert "terminated (SIGTERM)" in (out / "report.md").read_text()


def test_a_bag_with_nothing_to_score_is_one_error_line_without_a_nan_summary(
    samples, model, tmp_path, capsys
):
    """Ground truth that no frame can be scored against (ids outside the class list): one
    error line with the reason, exit 2, and no "mIoU nan %" summary before it."""
    import dataclasses

    bag = tmp_path / "bad_gt"
    bad = [dataclasses.replace(s, label=np.full_like(s.label, 200)) for s in samples[:3]]
    write_bag(bad, bag, progress=False)
    assert (
        main(
            [
                "eval",
                "--bag",
                str(bag),
                "--model",
                str(model),
                "--out",
                str(tmp_path / "out"),
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    captured = capsys.readouterr()
    assert "nan" not in captured.out and "mIoU" not in captured.out
    (line,) = [x for x in captured.err.splitlines() if x.startswith("lowlight eval:")]
    assert "no frame could be scored" in line and "outside the class list" in line, line
