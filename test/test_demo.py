"""``lowlight demo``: the shipped model, a procedural sequence, a bag, perception_node over real
DDS, and a report whose numbers equal ``lowlight eval`` on the same bag."""

from __future__ import annotations

import json

import pytest
from ros_harness import domain_id

from lowlight_perception.config import demo_model
from lowlight_perception.evaluation.evaluate import evaluate_bag
from lowlight_perception.tools.cli import main


def test_the_demo_model_is_shipped_small_and_describes_itself():
    import onnxruntime as ort

    from lowlight_perception.metadata import ModelMetadata

    path = demo_model()
    assert path.is_file() and path.stat().st_size < 5_000_000
    meta = ModelMetadata.from_props(
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        .get_modelmeta()
        .custom_metadata_map
    )
    assert meta.model == "lisu-small" and meta.camera_size == (320, 240)
    assert "procedural" in meta.training and meta.format_version == 2
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["height", "width", 3]  # any camera size


@pytest.mark.slow
def test_demo_runs_end_to_end_and_matches_lowlight_eval(tmp_path, capsys):
    domain_id()
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--frames", "16"]) == 0
    stdout = capsys.readouterr().out
    assert "frames answered" in stdout and "report:" in stdout
    summary = json.loads((out / "demo.json").read_text())
    for name in (
        "demo.md",
        "demo.gif",
        "report/report.md",
        "report/metrics.json",
        "report/confusion.png",
        "report/timeline.png",
    ):
        assert (out / name).is_file(), name
    assert list((out / "report" / "samples").glob("*.png"))
    replay = summary["replay"]
    # every frame sent; under load the node drops the older of two pending frames (by design:
    # the newest wins), so what is guaranteed is that frames are answered, not how many a
    # loaded machine keeps up with (7/16 with two trainings beside it here; keeping up at
    # 30 Hz is measured by the demo itself and reported in the README, not asserted)
    assert replay["sent"] == 16 and 0 < replay["answered"] <= 16
    assert summary["mIoU"] > 2 * summary["majority_class_mIoU"]  # non-trivial segmentation
    direct = evaluate_bag(
        out / "bag", demo_model(), tmp_path / "eval", device="cpu", progress=False
    )
    for key in ("mIoU", "OA", "mAcc", "FWIoU", "frames"):
        assert direct[key] == pytest.approx(
            json.loads((out / "report" / "metrics.json").read_text())[key]
        ), key


def test_the_shipped_model_is_scored_on_bags_of_every_d435i_colour_size(tmp_path):
    """lowlight eval of 320x240, 640x480, 848x480 and 1280x720 frames in one bag with the
    shipped model: every frame is scored (a 640x480 bag used to score none)."""
    from lowlight_perception.bags import write_bag
    from lowlight_perception.camera import Intrinsics
    from lowlight_perception.data.synthetic import random_view

    sizes = [(320, 240), (640, 480), (848, 480), (1280, 720)]
    samples = [random_view(8, i, Intrinsics.d435i(*size)) for i, size in enumerate(sizes)]
    write_bag(samples, tmp_path / "bag", progress=False)
    metrics = evaluate_bag(
        tmp_path / "bag", demo_model(), tmp_path / "eval", device="cpu", progress=False
    )
    assert metrics["frames"] == len(sizes) and metrics["skipped"] == {}
    assert metrics["mIoU"] > 0
