"""The one Segmenter: backend and device auto-selection, metadata, frames of any size, bad
inputs, paths and models (validated at load with a named error), and parity between the ONNX
Runtime graph and the PyTorch checkpoint it came from at every camera size."""

from __future__ import annotations

import importlib.util
import json
import logging

import numpy as np
import onnx
import onnxruntime
import pytest

from lowlight_perception.camera import Intrinsics
from lowlight_perception.classes import load_classes
from lowlight_perception.data.synthetic import random_view
from lowlight_perception.inference import BackendError, FrameError, ModelError, Segmenter
from lowlight_perception.metadata import ModelMetadata
from lowlight_perception.models.checkpoint import save_checkpoint
from lowlight_perception.models.export import export_onnx, random_init_model

CAMERA = (160, 120)
NET = (96, 64)
# What this machine offers besides the CPU: on a GPU machine `auto` picks TensorRT (or ONNX
# Runtime's CUDA provider), so the CPU-only expectations below do not apply there.
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
HAS_ORT_CUDA = "CUDAExecutionProvider" in onnxruntime.get_available_providers()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A random-init lisu-tiny as checkpoint + the ONNX exported from it."""
    root = tmp_path_factory.mktemp("model")
    model = random_init_model("lisu-tiny", seed=3)
    ckpt = root / "tiny.pt"
    save_checkpoint(ckpt, model, train_config={"data": {"size": list(NET)}})
    onnx_path = root / "tiny.onnx"
    export_onnx(model, onnx_path, camera_size=CAMERA, net_size=NET, frames=1)
    return ckpt, onnx_path


def _frame(index: int = 0, size=CAMERA) -> np.ndarray:
    return random_view(9, index, Intrinsics.d435i(*size)).low


@pytest.mark.skipif(
    HAS_TENSORRT or HAS_ORT_CUDA,
    reason="this machine has TensorRT or ONNX "
    "Runtime's CUDA provider: auto picks them (test_tensorrt_backend covers it)",
)
def test_auto_picks_onnxruntime_cpu_here_and_logs_why(exported, caplog):
    with caplog.at_level(logging.INFO, logger="lowlight_perception.inference"):
        seg = Segmenter(exported[1])
    assert seg.backend.name == "onnxruntime" and seg.backend.device == "cpu"
    assert "backend onnxruntime on cpu" in caplog.text and "no TensorRT" in caplog.text


def test_segment_returns_the_published_images_with_timings(exported):
    seg = Segmenter(exported[1], device="cpu")
    frame = _frame()
    result = seg.segment(frame)
    h, w = frame.shape[:2]
    assert result.labels.shape == (h, w) and result.labels.dtype == np.uint8
    assert result.confidence.shape == (h, w) and result.confidence.dtype == np.uint8
    assert result.reflectance.shape == (h, w, 3) and result.illumination.shape == (h, w)
    assert result.labels.max() < 14 and result.confidence.min() >= 255 // 14
    direct = seg.backend.execute(frame)
    np.testing.assert_array_equal(result.labels, direct["labels"])
    assert set(result.timings) == {"preprocess", "execute", "postprocess", "total"}
    assert result.timings["total"] >= result.timings["execute"] > 0
    depth = np.full((h, w), 1500, np.uint16)
    assert seg.segment(frame, depth).depth is depth


def test_classes_and_palette_come_from_the_model_metadata(exported, tmp_path):
    seg = Segmenter(exported[1], device="cpu")
    assert seg.classes.names == load_classes().names
    np.testing.assert_array_equal(seg.classes.palette, load_classes().palette)
    # a model exported with another palette keeps its own: the pairing cannot go wrong
    proto = onnx.load(str(exported[1]))
    props = {p.key: p.value for p in proto.metadata_props}
    meta = ModelMetadata.from_props(props)
    palette = tuple((255, 0, 255) for _ in meta.palette)
    del proto.metadata_props[:]
    changed = ModelMetadata(**{**meta.__dict__, "palette": palette})
    for key, value in changed.to_props().items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(tmp_path / "pink.onnx"))
    pink = Segmenter(tmp_path / "pink.onnx", device="cpu")
    assert (pink.classes.palette == [255, 0, 255]).all()


@pytest.mark.parametrize("size", [(320, 240), (640, 480), (848, 480), (1280, 720)])
def test_onnx_and_the_pytorch_checkpoint_answer_any_frame_size_alike(exported, size):
    """One exported model and the checkpoint it came from serve every D435i colour profile."""
    torch_seg = Segmenter(exported[0], device="cpu")
    assert torch_seg.backend.name == "torch" and torch_seg.frame_size is None
    ort_seg = Segmenter(exported[1], backend="onnxruntime", device="cpu")
    assert ort_seg.frame_size is None
    w, h = size
    for i in range(2):
        frame = _frame(i, size)
        a, b = torch_seg.segment(frame), ort_seg.segment(frame)
        assert a.labels.shape == b.labels.shape == (h, w)
        assert b.reflectance.shape == (h, w, 3) and b.illumination.shape == (h, w)
        assert np.mean(a.labels == b.labels) >= 0.999
        assert np.abs(a.confidence.astype(int) - b.confidence).max() <= 1
        assert np.abs(a.reflectance.astype(int) - b.reflectance).max() <= 1


def _rewrite(path, out, *, props=None, fixed=None, labels_dtype=None):
    """A copy of the ONNX at ``path`` with metadata changed, the input fixed at (W, H), or the
    labels output cast to another dtype."""
    proto = onnx.load(str(path))
    if props:
        meta = {p.key: p.value for p in proto.metadata_props}
        meta.update(props)
        del proto.metadata_props[:]
        for key, value in meta.items():
            proto.metadata_props.add(key=key, value=value)
    if fixed:
        dims = proto.graph.input[0].type.tensor_type.shape.dim
        for dim, value in zip(dims, (fixed[1], fixed[0]), strict=False):
            dim.ClearField("dim_param")
            dim.dim_value = value
    if labels_dtype:
        cast = next(n for n in proto.graph.node if "labels" in n.output)
        next(a for a in cast.attribute if a.name == "to").i = labels_dtype
        proto.graph.output[0].type.tensor_type.elem_type = labels_dtype
    onnx.save(proto, str(out))
    return out


def test_a_fixed_size_model_of_format_1_takes_only_its_size(exported, tmp_path):
    """lowlight_perception 0.1 exported graphs fixed at the camera size: still served at that
    size, other sizes refused with what to do."""
    old = _rewrite(
        exported[1], tmp_path / "old.onnx", fixed=CAMERA, props={"lowlight.format_version": "1"}
    )
    seg = Segmenter(old, device="cpu")
    assert seg.frame_size == CAMERA
    assert seg.segment(_frame()).labels.shape == (120, 160)
    with pytest.raises(FrameError, match="frame is 200x150 but this model only takes 160x120"):
        seg.segment(_frame(1, (200, 150)))


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"lowlight.palette": json.dumps([[1, 2]] * 14)}, "three integers"),
        ({"lowlight.palette": json.dumps([[0, 0, 300]] * 14)}, "three integers in 0..255"),
        ({"lowlight.palette": json.dumps([[0, 0, 0]] * 300)}, "300 colours for 14 classes"),
        ({"lowlight.camera_size": "[640, 480, 3]"}, "camera_size must be two positive"),
        ({"lowlight.net_size": "[0, 64]"}, "net_size must be two positive"),
        ({"lowlight.upsample": '"cubic"'}, "upsample must be one of labels, logits"),
        (
            {
                "lowlight.class_names": json.dumps(["c"] * 300),
                "lowlight.palette": json.dumps([[0, 0, 0]] * 300),
            },
            "1..256 strings",
        ),
    ],
)
def test_unusable_metadata_is_a_model_error_at_load(exported, tmp_path, props, message):
    bad = _rewrite(exported[1], tmp_path / "bad.onnx", props=props)
    with pytest.raises(ModelError, match=message):
        Segmenter(bad, device="cpu")


def test_outputs_of_the_wrong_dtype_are_a_model_error_at_load(exported, tmp_path):
    bad = _rewrite(exported[1], tmp_path / "float.onnx", labels_dtype=onnx.TensorProto.FLOAT)
    with pytest.raises(ModelError, match=r"output labels is tensor.float. .* expected uint8"):
        Segmenter(bad, device="cpu")


def test_device_auto_takes_the_cpu_when_the_backend_has_no_gpu(exported, caplog):
    """-p backend:=onnxruntime alone on a machine without CUDA runs, and says why."""
    with caplog.at_level(logging.INFO, logger="lowlight_perception.inference"):
        seg = Segmenter(exported[1], backend="onnxruntime")  # device defaults to "auto"
    assert seg.backend.device == "cpu"
    assert "ONNX Runtime has no CUDA here" in seg.reason and seg.reason in caplog.text
    assert Segmenter(exported[1], backend="onnxruntime", device=-1).backend.device == "cpu"
    assert Segmenter(exported[0], device="auto").backend.device == "cpu"  # torch, no CUDA
    with pytest.raises(BackendError, match="device must be auto, cpu"):
        Segmenter(exported[1], device="gpu")


def test_auto_falls_back_to_onnxruntime_when_tensorrt_fails(exported, monkeypatch, caplog):
    """A machine where TensorRT looks present but its engine cannot be made (a parser error, an
    old driver): backend auto runs on ONNX Runtime and says why; backend tensorrt, asked for,
    fails. Here the failure is real: TensorRTBackend cannot import tensorrt."""
    from lowlight_perception.inference import tensorrt_backend

    monkeypatch.setattr(tensorrt_backend, "available", lambda device=0: (True, ""))
    with caplog.at_level(logging.WARNING, logger="lowlight_perception.inference"):
        seg = Segmenter(exported[1])
    assert seg.backend.name == "onnxruntime" and seg.backend.device == "cpu"
    assert seg.reason.startswith("TensorRT failed (TensorRT unavailable: cannot import tensorrt")
    assert "backend auto falls back to ONNX Runtime" in caplog.text
    assert seg.segment(_frame()).labels.shape == (CAMERA[1], CAMERA[0])
    with pytest.raises(BackendError, match="cannot import tensorrt"):
        Segmenter(exported[1], backend="tensorrt")


def test_onnxruntime_reports_the_device_its_session_really_uses():
    """ONNX Runtime drops a CUDA provider that fails to load and runs on the CPU; the device
    comes from session.get_providers() (onnxruntime's InferenceSession API), not the request."""
    from lowlight_perception.inference.onnxruntime_backend import session_device

    assert session_device(["CUDAExecutionProvider", "CPUExecutionProvider"], 1) == "cuda:1"
    assert session_device(["CPUExecutionProvider"], 0) == "cpu"
    assert session_device(["CPUExecutionProvider"], "cpu") == "cpu"


@pytest.mark.parametrize(
    "frame, message",
    [
        (np.zeros((120, 160, 3), np.float32), "uint8"),
        (np.zeros((120, 160), np.uint8), "uint8 RGB frame"),
        (np.zeros((120, 160, 4), np.uint8), "(H, W, 3)"),
    ],
)
def test_bad_frames_raise_frame_error(exported, frame, message):
    seg = Segmenter(exported[1], device="cpu")
    with pytest.raises(FrameError, match=message.replace("(", r"\(").replace(")", r"\)")):
        seg.segment(frame)
    with pytest.raises(FrameError, match="depth is 10x10"):
        seg.segment(_frame(), np.zeros((10, 10), np.uint16))


def test_non_contiguous_frames_are_accepted(exported):
    seg = Segmenter(exported[1], device="cpu")
    frame = _frame()
    padded = np.zeros((120, 170, 3), np.uint8)  # e.g. a step-padded ROS image
    padded[:, :160] = frame
    view = padded[:, :160]
    assert not view.flags.c_contiguous
    np.testing.assert_array_equal(seg.segment(view).labels, seg.segment(frame).labels)


def test_bad_model_paths_and_backends_are_readable_errors(exported, tmp_path):
    with pytest.raises(BackendError, match="model not found"):
        Segmenter(tmp_path / "missing.onnx")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(BackendError, match=r"expected an \.onnx"):
        Segmenter(tmp_path / "notes.txt")
    (tmp_path / "corrupt.onnx").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(BackendError, match="cannot load"):
        Segmenter(tmp_path / "corrupt.onnx", device="cpu")
    plain = onnx.helper.make_model(
        onnx.helper.make_graph(
            [onnx.helper.make_node("Identity", ["x"], ["y"])],
            "plain",
            [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
            [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
        ),
        ir_version=8,
        opset_imports=[onnx.helper.make_opsetid("", 17)],
    )
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    with pytest.raises(BackendError, match="not a lowlight_perception model"):
        Segmenter(tmp_path / "plain.onnx", device="cpu")
    with pytest.raises(BackendError, match="unknown backend 'openvino'; valid: auto"):
        Segmenter(exported[1], backend="openvino")
    if not HAS_ORT_CUDA:  # a CUDA device asked of a CPU-only ONNX Runtime
        with pytest.raises(BackendError, match="CUDAExecutionProvider"):
            Segmenter(exported[1], backend="onnxruntime", device=0)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BackendError, match="cannot read checkpoint"):
        Segmenter(tmp_path / "bad.pt", device="cpu")


@pytest.mark.gpu
@pytest.mark.skipif(
    not __import__("torch").cuda.is_available(), reason="needs a CUDA device for PyTorch"
)
@pytest.mark.parametrize("size", [CAMERA, (640, 480)])
def test_the_torch_backend_on_cuda_agrees_with_onnxruntime_on_the_cpu(exported, size):
    """The checkpoint on PyTorch CUDA (the resize indices made on the GPU, no host copy) and
    its ONNX on ONNX Runtime CPU give the same labels at the camera size and a D435i size."""
    gpu = Segmenter(exported[0], backend="torch", device=0)
    cpu = Segmenter(exported[1], device="cpu")
    assert gpu.backend.device == "cuda:0"
    frame = _frame(4, size)
    got, want = gpu.segment(frame), cpu.segment(frame)
    assert got.labels.shape == want.labels.shape == frame.shape[:2]
    assert np.mean(got.labels == want.labels) >= 0.99
