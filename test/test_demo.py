"""``lowlight demo``: the shipped model, a procedural sequence, a bag, perception_node over real
DDS, and a report whose numbers equal ``lowlight eval`` on the same bag."""

from __future__ import annotations

import json

import pytest
from ros_harness import domain_id

from lowlight_perception.evaluation.evaluate import evaluate_bag
from lowlight_perception.tools.cli import main
from lowlight_perception.tools.demo import shipped_model


def test_the_demo_model_is_shipped_small_and_describes_itself():
    import onnxruntime as ort

    from lowlight_perception.metadata import ModelMetadata

    path = shipped_model()
    assert path.is_file() and path.stat().st_size < 5_000_000
    meta = ModelMetadata.from_props(
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        .get_modelmeta()
        .custom_metadata_map
    )
    assert meta.model == "lisu-small" and meta.camera_size == (320, 240)
    assert "procedural" in meta.training


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
    assert replay["answered"] == replay["sent"] == 16  # the shipped model keeps up at 30 Hz
    assert summary["mIoU"] > 2 * summary["majority_class_mIoU"]  # non-trivial segmentation
    direct = evaluate_bag(
        out / "bag", shipped_model(), tmp_path / "eval", device="cpu", progress=False
    )
    for key in ("mIoU", "OA", "mAcc", "FWIoU", "frames"):
        assert direct[key] == pytest.approx(
            json.loads((out / "report" / "metrics.json").read_text())[key]
        ), key


def test_demo_refuses_a_model_of_another_size(tmp_path):
    from lowlight_perception.models.export import export_onnx, random_init_model

    model = tmp_path / "m.onnx"
    export_onnx(
        random_init_model("lisu-tiny"), model, camera_size=(160, 120), net_size=(96, 64), frames=1
    )
    assert main(["demo", "--out", str(tmp_path / "d"), "--model", str(model)]) == 2
