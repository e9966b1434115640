"""``lowlight export``: the fused ONNX graph's I/O contract (frames of any size), TensorRT's
ONNX rules, metadata, parity with PyTorch, and loud failure (the file is removed) when ONNX
Runtime disagrees. Small sizes keep it fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from lowlight_perception.camera import Intrinsics
from lowlight_perception.data.synthetic import random_view
from lowlight_perception.metadata import ModelMetadata
from lowlight_perception.models import export as ex
from lowlight_perception.models import tensorrt_rules
from lowlight_perception.models.checkpoint import save_checkpoint
from lowlight_perception.tools import export as tool
from lowlight_perception.tools.cli import main

CAMERA = (160, 120)  # W, H
NET = (96, 64)
NUM_CLASSES = 14


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    return ex.random_init_model("lisu-tiny", seed=0)


@pytest.fixture(scope="module", params=["labels", "logits"])
def exported(request, tiny, tmp_path_factory) -> tuple[ex.ExportReport, ex.FusedGraph]:
    out = tmp_path_factory.mktemp(f"onnx_{request.param}") / "tiny.onnx"
    report = ex.export_onnx(
        tiny, out, camera_size=CAMERA, net_size=NET, upsample=request.param, frames=2
    )
    return report, ex.FusedGraph(tiny, NET, request.param).eval()


def _frames(count: int = 3) -> list[np.ndarray]:
    camera = Intrinsics.d435i(*CAMERA)
    return [random_view(11, i, camera).low for i in range(count)]  # not the export's frames


def test_graph_io_is_uint8_frame_in_uint8_images_out(exported):
    report, _ = exported
    proto = onnx.load(str(report.path))
    onnx.checker.check_model(proto)
    assert max(op.version for op in proto.opset_import if op.domain in ("", "ai.onnx")) >= 17
    assert proto.producer_name == "lowlight_perception" and "lisu-tiny" in proto.doc_string
    session = ex.ort_session(report.path)
    (inp,) = session.get_inputs()
    h, w = "height", "width"  # dynamic axes: any frame size
    assert (inp.name, inp.type, inp.shape) == ("frame", "tensor(uint8)", [h, w, 3])
    outputs = {o.name: (o.type, o.shape) for o in session.get_outputs()}
    assert outputs == {
        "labels": ("tensor(uint8)", [h, w]),
        "confidence": ("tensor(uint8)", [h, w]),
        "reflectance": ("tensor(uint8)", [h, w, 3]),
        "illumination": ("tensor(uint8)", [h, w]),
    }
    assert [s.name for s in report.outputs] == list(outputs)
    assert report.parity.sizes[0] == CAMERA and set(ex.CHECK_SIZES) <= set(report.parity.sizes)


@pytest.mark.parametrize("size", [(320, 240), (640, 480), (848, 480), (1280, 720), (333, 187)])
def test_one_graph_answers_every_frame_size_like_pytorch(exported, size):
    """The D435i's colour profiles and an odd size: outputs at the frame's size, ONNX Runtime
    equal to the PyTorch fused module."""
    report, fused = exported
    w, h = size
    frame = random_view(5, 0, Intrinsics.d435i(w, h)).low
    outputs = ex.ort_session(report.path).run(None, {"frame": frame})
    with torch.no_grad():
        ref = [t.numpy() for t in fused(torch.from_numpy(frame))]
    for name, a, b in zip(fused.output_names, outputs, ref, strict=True):
        assert a.shape == b.shape == ((h, w, 3) if name == "reflectance" else (h, w)), name
        if name == "labels":
            assert np.mean(a == b) >= 0.999
        else:
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 1, name


def test_exported_graphs_keep_tensorrt_onnx_rules(exported):
    """The rules of test_tensorrt_rules.py, on a graph that went through the full export."""
    report, _ = exported
    proto = onnx.load(str(report.path))
    assert tensorrt_rules.problems(proto) == []
    (frame,) = proto.graph.input
    assert [n.op_type for n in proto.graph.node if frame.name in n.input] == ["Cast"]
    makers = {o: n.op_type for n in proto.graph.node for o in n.output}
    assert all(makers[o.name] == "Cast" for o in proto.graph.output)


def test_metadata_round_trips_through_onnxruntime(exported):
    report, _ = exported
    props = ex.ort_session(report.path).get_modelmeta().custom_metadata_map
    meta = ModelMetadata.from_props(props)
    assert meta == report.metadata
    assert meta.model == "lisu-tiny" and meta.camera_size == CAMERA and meta.net_size == NET
    assert meta.upsample in ex.UPSAMPLE_MODES and len(meta.class_names) == NUM_CLASSES
    assert meta.training == "random init"


def test_onnxruntime_matches_the_torch_fused_module(exported):
    report, fused = exported
    assert report.parity.passed and report.parity.frames == 2 + len(ex.CHECK_SIZES)
    session = ex.ort_session(report.path)
    for frame in _frames():
        onnx_out = dict(zip(fused.output_names, session.run(None, {"frame": frame}), strict=True))
        with torch.no_grad():
            torch_out = [t.numpy() for t in fused(torch.from_numpy(frame))]
        ref = dict(zip(fused.output_names, torch_out, strict=True))
        assert np.mean(onnx_out["labels"] == ref["labels"]) >= 0.999
        for name in ("confidence", "reflectance", "illumination"):
            diff = np.abs(onnx_out[name].astype(int) - ref[name].astype(int)).max()
            assert diff <= 1, name
        assert onnx_out["labels"].max() < NUM_CLASSES
        # max softmax over 14 classes is at least 1/14 -> >= 18 DN (bilinear keeps the bound)
        assert onnx_out["confidence"].min() >= 18


def test_labels_mode_is_nearest_upsampled_net_size_argmax_and_its_confidence(tiny):
    """Labels and confidence both nearest from net size: each pixel's confidence is that of
    the label it shows, round(max softmax x 255)."""
    fused = ex.FusedGraph(tiny, NET, "labels").eval()
    frame = _frames(1)[0]
    with torch.no_grad():
        labels, confidence = (t.numpy() for t in fused(torch.from_numpy(frame))[:2])
        rgb = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
        rgb = torch.nn.functional.interpolate(rgb, size=NET[::-1], mode="bilinear")
        probs = tiny(rgb)["logits"].softmax(1)[0]
        small = probs.argmax(0).numpy()
        small_conf = torch.round(probs.max(0).values * 255).to(torch.uint8).numpy()
    rows = np.minimum(((np.arange(CAMERA[1]) + 0.5) * NET[1] / CAMERA[1]).astype(int), NET[1] - 1)
    cols = np.minimum(((np.arange(CAMERA[0]) + 0.5) * NET[0] / CAMERA[0]).astype(int), NET[0] - 1)
    np.testing.assert_array_equal(labels, small[rows][:, cols])
    diff = np.abs(confidence.astype(int) - small_conf[rows][:, cols].astype(int))
    assert diff.max() <= 1  # 1 / sum(exp) in the graph vs softmax here: float rounding only


def test_seg_only_model_exports_without_decomposition_outputs(tmp_path):
    model = ex.random_init_model("dlv3p", seed=0)
    with torch.no_grad():
        probe = model(torch.zeros(1, 3, NET[1], NET[0]))
    report = ex.export_onnx(
        model, tmp_path / "dlv3p.onnx", camera_size=CAMERA, net_size=NET, frames=1
    )
    expected = ["labels", "confidence"] + [
        k for k in ("reflectance", "illumination") if probe.get(k) is not None
    ]
    names = [o.name for o in ex.ort_session(report.path).get_outputs()]
    assert names == expected == [s.name for s in report.outputs]
    assert report.parity.passed
    assert tensorrt_rules.problems(onnx.load(str(report.path))) == []  # no If from squeeze


def test_parity_failure_raises_and_removes_the_file(tiny, tmp_path, monkeypatch):
    real_write = ex.write_graph

    def corrupt_write(fused, path, meta, opset):
        real_write(fused, path, meta, opset)
        proto = onnx.load(str(path))
        argmax = [n for n in proto.graph.node if n.op_type == "ArgMax"]
        assert argmax
        argmax[0].op_type = "ArgMin"  # a subtly wrong graph that still runs
        onnx.save(proto, str(path))

    monkeypatch.setattr(ex, "write_graph", corrupt_write)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ex.ExportError, match="disagrees"):
        ex.export_onnx(tiny, out, camera_size=CAMERA, net_size=NET, frames=1)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind either


def test_verify_detects_a_different_model(exported, tmp_path):
    report, fused = exported
    other = ex.FusedGraph(ex.random_init_model("lisu-tiny", seed=1), NET, fused.upsample)
    parity = ex.verify_onnx(report.path, other.eval(), _frames(1))
    assert parity.label_agreement < 0.999 or parity.confidence_max_diff > 1


def test_random_init_is_deterministic():
    a = ex.random_init_model("lisu-tiny", seed=3).state_dict()
    b = ex.random_init_model("lisu-tiny", seed=3).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_random_init_export_end_to_end(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    argv = ["export", "--random-init", "--arch", "lisu-tiny", "--out", str(out),
            "--camera-size", "160x120", "--net-size", "96x64", "--upsample", "logits",
            "--frames", "1"]  # fmt: skip
    assert main(argv) == 0
    summary = capsys.readouterr().out
    assert f"wrote {out}" in summary and "labels agree" in summary
    assert "reflectance uint8['H', 'W', 3]" in summary and "frames of any size" in summary
    meta = ModelMetadata.from_props(ex.ort_session(out).get_modelmeta().custom_metadata_map)
    assert meta.upsample == "logits" and meta.training == "random init (seed 0)"


def test_cli_checkpoint_export_records_training(tmp_path, tiny, capsys):
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, tiny, train_config={"dataset": "procedural", "epochs": 1})
    out = tmp_path / "c.onnx"
    argv = ["export", "--checkpoint", str(ckpt), "--out", str(out),
            "--camera-size", "160x120", "--net-size", "96x64", "--frames", "1"]  # fmt: skip
    assert main(argv) == 0
    meta = ModelMetadata.from_props(ex.ort_session(out).get_modelmeta().custom_metadata_map)
    assert meta.model == "lisu-tiny" and "procedural" in meta.training


def _one_line_error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lowlight export: error:")
    return err


def test_cli_missing_checkpoint_is_one_line_exit_2(tmp_path, capsys):
    err = _one_line_error(
        capsys, ["export", "--checkpoint", str(tmp_path / "nope.pt"), "--out", "x.onnx"]
    )
    assert "nope.pt" in err
    assert not Path("x.onnx").exists()


def test_cli_net_size_not_multiple_of_16_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    argv = ["export", "--random-init", "--arch", "lisu-tiny", "--out", str(out),
            "--camera-size", "160x120", "--net-size", "100x64"]  # fmt: skip
    err = _one_line_error(capsys, argv)
    assert "multiples of 16" in err and "96x64" in err
    assert not out.exists()


def test_cli_start_up_does_not_import_torch():
    code = "import sys, lowlight_perception.tools.cli; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
    assert tool.UPSAMPLE_MODES == ex.UPSAMPLE_MODES
    assert (tool.MIN_OPSET, tool.MAX_OPSET) == (ex.MIN_OPSET, ex.MAX_OPSET)
