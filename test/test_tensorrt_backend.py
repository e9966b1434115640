"""TensorRT backend and ``lowlight build-engine``.

Two halves. Tests that run everywhere: without TensorRT or a CUDA device, ``available()`` says
why, constructing the backend or running ``build-engine`` fails with that reason in one readable
line (never an ImportError traceback), and parameters are validated before any GPU work. GPU
tests (marker ``gpu``) skip with a reason unless tensorrt, cuda-python and a CUDA device are
present; there they build an engine from a tiny exported ONNX and compare it with ONNX Runtime on
the CPU, and check the cache (hit on the second construction, rebuild after corruption).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lowlight_perception.inference.backend import OUTPUT_NAMES, Backend, BackendError
from lowlight_perception.inference.engine_cache import sidecar_path
from lowlight_perception.inference.tensorrt_backend import TensorRTBackend, available
from lowlight_perception.tools.cli import main

TRT_OK, TRT_WHY_NOT = available()
needs_no_trt = pytest.mark.skipif(
    TRT_OK, reason="TensorRT and a CUDA GPU are present: the no-runtime path cannot be tested"
)
requires_gpu = pytest.mark.skipif(
    not TRT_OK, reason=f"needs TensorRT and a CUDA GPU: {TRT_WHY_NOT}"
)

CAMERA, NET = (160, 120), (96, 64)


@pytest.fixture
def fake_onnx(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not really an onnx file")
    return path


# -- everywhere --------------------------------------------------------------------------


@needs_no_trt
def test_available_says_why_not():
    ok, why = available()
    assert ok is False
    assert "tensorrt" in why.lower() or "cuda" in why.lower(), why


@needs_no_trt
def test_constructing_without_runtime_is_a_readable_backend_error(fake_onnx):
    with pytest.raises(BackendError) as info:
        TensorRTBackend(fake_onnx)
    message = str(info.value)
    assert "\n" not in message
    assert "tensorrt" in message.lower() or "cuda" in message.lower(), message
    assert TRT_WHY_NOT.split(":")[0] in message


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"precision": "int8"}, "INT8 is not implemented"),
        ({"precision": "bf16"}, "precision must be one of fp16, fp32"),
        ({"device": -1}, "device must be a CUDA device index"),
        ({"workspace_gb": 0}, "workspace_gb must be > 0"),
        ({"build_policy": "sometimes"}, "build_policy must be one of never, if_missing, always"),
    ],
)
def test_parameters_are_validated_before_any_gpu_work(fake_onnx, kwargs, match):
    with pytest.raises(BackendError, match=match):
        TensorRTBackend(fake_onnx, **kwargs)


def test_missing_or_unknown_model_files(tmp_path):
    with pytest.raises(BackendError, match="model not found"):
        TensorRTBackend(tmp_path / "absent.onnx")
    weird = tmp_path / "model.pt"
    weird.write_bytes(b"x")
    with pytest.raises(BackendError, match=r"expected an \.onnx or a TensorRT"):
        TensorRTBackend(weird)


def test_engine_without_sidecar_says_to_use_build_engine(tmp_path):
    plan = tmp_path / "model.fp16.sm87.0123456789ab.engine"
    plan.write_bytes(b"plan bytes")
    with pytest.raises(BackendError, match="lowlight build-engine"):
        TensorRTBackend(plan)


@needs_no_trt
def test_build_engine_fails_in_one_line_with_exit_2(fake_onnx, capsys):
    assert main(["build-engine", "--onnx", str(fake_onnx), "--precision", "fp32"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == ""
    assert lines[0].startswith("lowlight build-engine: error: ")
    assert "tensorrt" in lines[0].lower() or "cuda" in lines[0].lower()


def test_build_engine_rejects_a_non_onnx_input(tmp_path, capsys):
    plan = tmp_path / "model.engine"
    plan.write_bytes(b"x")
    assert main(["build-engine", "--onnx", str(plan)]) == 2
    assert "expects an exported .onnx" in capsys.readouterr().err


def test_cli_start_up_imports_neither_tensorrt_nor_torch():
    code = (
        "import sys\n"
        "from lowlight_perception.tools.cli import build_parser\n"
        "build_parser()\n"
        "loaded = [m for m in ('tensorrt', 'torch', 'cuda') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    helped = subprocess.run(
        [sys.executable, "-m", "lowlight_perception.tools.cli", "build-engine", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert helped.returncode == 0 and "--precision" in helped.stdout


# -- on a GPU ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> Path:
    """lisu-tiny, random init, exported at 160x120 (net 96x64)."""
    pytest.importorskip("torch")
    from lowlight_perception.models.export import export_onnx, random_init_model

    out = tmp_path_factory.mktemp("trt") / "lisu_tiny.onnx"
    export_onnx(random_init_model("lisu-tiny"), out, camera_size=CAMERA, net_size=NET, frames=1)
    return out


def _frames(count: int) -> list[np.ndarray]:
    from lowlight_perception.camera import Intrinsics
    from lowlight_perception.data.synthetic import random_view

    return [random_view(7, i, Intrinsics.d435i(*CAMERA)).low for i in range(count)]


def _ort_outputs(path: Path, frame: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"frame": frame}), strict=True))


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize(("precision", "min_agreement"), [("fp16", 0.99), ("fp32", 0.999)])
def test_engine_matches_onnxruntime(tiny_onnx, tmp_path, precision, min_agreement):
    with TensorRTBackend(tiny_onnx, precision=precision, cache_dir=tmp_path) as trt:
        assert isinstance(trt, Backend) and trt.name == "tensorrt"
        assert trt.outputs == OUTPUT_NAMES and trt.precision == precision
        assert trt.metadata.camera_size == CAMERA
        for frame in _frames(3):
            got = {k: v.copy() for k, v in trt.execute(frame).items()}
            want = _ort_outputs(tiny_onnx, frame)
            assert set(got) == set(want)
            for name, array in got.items():
                assert array.dtype == np.uint8 and array.shape == want[name].shape, name
            assert np.mean(got["labels"] == want["labels"]) >= min_agreement
            for name in ("confidence", "reflectance", "illumination"):
                diff = np.abs(got[name].astype(int) - want[name].astype(int))
                assert diff.mean() <= 2.0, (name, diff.mean())


@pytest.mark.gpu
@requires_gpu
def test_second_construction_hits_the_cache(tiny_onnx, tmp_path):
    with TensorRTBackend(tiny_onnx, cache_dir=tmp_path) as first:
        assert str(first.cache_event) == "built (missing)"
        path = first.engine_path
    with TensorRTBackend(tiny_onnx, cache_dir=tmp_path) as second:
        assert str(second.cache_event) == "hit" and second.engine_path == path


@pytest.mark.gpu
@requires_gpu
def test_build_policy_never_refuses_a_missing_engine_and_loads_a_built_one(tiny_onnx, tmp_path):
    with pytest.raises(BackendError, match="build policy is never"):
        TensorRTBackend(tiny_onnx, cache_dir=tmp_path, build_policy="never")
    TensorRTBackend(tiny_onnx, cache_dir=tmp_path).close()
    with TensorRTBackend(tiny_onnx, cache_dir=tmp_path, build_policy="never") as again:
        assert str(again.cache_event) == "hit"
        assert again.execute(_frames(1)[0])["labels"].shape == (CAMERA[1], CAMERA[0])


@pytest.mark.gpu
@requires_gpu
def test_corrupted_engine_is_rebuilt(tiny_onnx, tmp_path):
    with TensorRTBackend(tiny_onnx, cache_dir=tmp_path) as first:
        path = first.engine_path
    path.write_bytes(path.read_bytes()[:1000])
    with TensorRTBackend(tiny_onnx, cache_dir=tmp_path) as again:
        assert str(again.cache_event) == "built (corrupt)"
        assert again.execute(_frames(1)[0])["labels"].shape == (CAMERA[1], CAMERA[0])


@pytest.mark.gpu
@requires_gpu
def test_engine_file_loads_with_its_sidecar(tiny_onnx, tmp_path):
    with TensorRTBackend(tiny_onnx, precision="fp32", cache_dir=tmp_path) as built:
        path, meta = built.engine_path, built.metadata
    assert sidecar_path(path).is_file()
    with TensorRTBackend(path) as loaded:
        assert loaded.metadata == meta and loaded.precision == "fp32"


@pytest.mark.gpu
@requires_gpu
def test_cuda_graph_gives_the_same_outputs(tiny_onnx, tmp_path):
    frame = _frames(1)[0]
    with TensorRTBackend(tiny_onnx, cache_dir=tmp_path) as plain:
        want = {k: v.copy() for k, v in plain.execute(frame).items()}
    with TensorRTBackend(tiny_onnx, cache_dir=tmp_path, cuda_graph=True) as graphed:
        assert graphed.cuda_graph
        for _ in range(2):
            got = graphed.execute(frame)
            for name in want:
                np.testing.assert_array_equal(got[name], want[name])


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_one_engine_answers_every_d435i_size_like_onnxruntime(tiny_onnx, tmp_path, cuda_graph):
    from lowlight_perception.camera import Intrinsics
    from lowlight_perception.data.synthetic import random_view

    with TensorRTBackend(
        tiny_onnx, precision="fp32", cache_dir=tmp_path, cuda_graph=cuda_graph
    ) as trt:
        assert trt.frame_size is None
        for size in [(640, 480), (320, 240), (1280, 720), (640, 480)]:
            frame = random_view(7, 0, Intrinsics.d435i(*size)).low
            got = {k: v.copy() for k, v in trt.execute(frame).items()}
            want = _ort_outputs(tiny_onnx, frame)
            assert got["labels"].shape == (size[1], size[0])
            assert np.mean(got["labels"] == want["labels"]) >= 0.999, size


@pytest.mark.gpu
@requires_gpu
def test_bad_frames_and_close(tiny_onnx, tmp_path):
    trt = TensorRTBackend(tiny_onnx, cache_dir=tmp_path)
    with pytest.raises(BackendError, match="frame must be uint8"):
        trt.execute(np.zeros((CAMERA[1], CAMERA[0], 3), np.float32))
    with pytest.raises(BackendError, match="frame must be uint8"):
        trt.execute(np.zeros((CAMERA[1], CAMERA[0], 4), np.uint8))
    with pytest.raises(BackendError, match="outside this engine's range 32x32"):
        trt.execute(np.zeros((10, 10, 3), np.uint8))
    trt.close()
    trt.close()
    with pytest.raises(BackendError, match="closed"):
        trt.execute(np.zeros((CAMERA[1], CAMERA[0], 3), np.uint8))


@pytest.mark.gpu
@requires_gpu
def test_build_engine_prints_io_and_path(tiny_onnx, tmp_path, capsys):
    assert main(["build-engine", "--onnx", str(tiny_onnx), "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "engine: " in out and "built (missing)" in out and "precision: fp16" in out
    assert "input   frame uint8 (-1, -1, 3)" in out and "labels uint8 (-1, -1)" in out
    assert "frames: 32x32 .. 1920x1080" in out
    assert main(["build-engine", "--onnx", str(tiny_onnx), "--cache-dir", str(tmp_path)]) == 0
    assert "cache: hit" in capsys.readouterr().out


def test_the_tensorrt_api_has_every_name_the_backend_uses():
    """Written from the TensorRT 10.16 bindings' own docstrings: FP16 'Deprecated in TensorRT
    10.12. Superseded by strong typing'; strongly typed mode is `1 <<
    int(NetworkDefinitionCreationFlag.STRONGLY_TYPED)` passed to create_network. Needs the
    tensorrt package, not a GPU."""
    try:
        import tensorrt as trt
    except Exception as err:  # ImportError, or OSError without libnvinfer
        pytest.skip(f"needs the tensorrt Python package: {type(err).__name__}: {err}")

    from lowlight_perception.inference.tensorrt_backend import network_flags

    assert int(trt.__version__.split(".")[0]) == 10, "the tensorrt extras pin TensorRT 10"
    for cls, names in {
        trt.Builder: (
            "create_network",
            "create_builder_config",
            "create_optimization_profile",
            "build_serialized_network",
        ),
        trt.INetworkDefinition: ("get_input",),
        trt.IOptimizationProfile: ("set_shape",),
        trt.IBuilderConfig: (
            "set_memory_pool_limit",
            "add_optimization_profile",
            "set_flag",
            "clear_flag",
            "get_flag",
        ),
        trt.ICudaEngine: (
            "num_io_tensors",
            "get_tensor_name",
            "get_tensor_mode",
            "get_tensor_shape",
            "get_tensor_dtype",
            "get_tensor_profile_shape",
            "create_execution_context",
        ),
        trt.IExecutionContext: (
            "set_tensor_address",
            "set_input_shape",
            "get_tensor_shape",
            "execute_async_v3",
        ),
        trt.OnnxParser: ("parse_from_file", "get_error", "num_errors"),
        trt.Runtime: ("deserialize_cuda_engine",),
    }.items():
        missing = [n for n in names if not hasattr(cls, n)]
        assert not missing, (cls.__name__, missing)
    assert hasattr(trt.BuilderFlag, "FP16") and hasattr(trt.BuilderFlag, "TF32")
    assert trt.MemoryPoolType.WORKSPACE is not None and trt.TensorIOMode.INPUT is not None
    assert network_flags(trt, "fp32") == 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert network_flags(trt, "fp16") == 0
    assert {"VERBOSE", "INFO", "WARNING", "ERROR", "INTERNAL_ERROR"} <= set(
        trt.ILogger.Severity.__members__
    )


def test_the_shape_profile_spans_the_d435i_sizes_around_the_camera():
    """An any-size graph gets one optimisation profile (min, opt, max) of (H, W, 3) shapes."""
    from lowlight_perception.inference.tensorrt_backend import profile_shapes

    low, opt, high = profile_shapes((640, 480))
    assert opt == (480, 640, 3)
    assert low[:2] <= (240, 320) and high[:2] >= (1080, 1920)  # 320x240 .. 1920x1080
    assert profile_shapes((4096, 2160))[2] == (2160, 4096, 3)  # a bigger camera widens it


def test_engine_io_is_checked_with_dynamic_height_and_width():
    from lowlight_perception.inference.tensorrt_backend import IOTensor, _io_problems

    dynamic = (
        IOTensor("frame", "input", (-1, -1, 3), "uint8"),
        IOTensor("labels", "output", (-1, -1), "uint8"),
        IOTensor("confidence", "output", (-1, -1), "uint8"),
        IOTensor("reflectance", "output", (-1, -1, 3), "uint8"),
    )
    assert _io_problems(dynamic, (640, 480)) == []
    fixed = (
        IOTensor("frame", "input", (480, 640, 3), "uint8"),
        IOTensor("labels", "output", (480, 640), "uint8"),
    )
    assert _io_problems(fixed, (640, 480)) == []
    wrong = (
        IOTensor("frame", "input", (-1, -1, 4), "uint8"),
        IOTensor("labels", "output", (240, 320), "float"),
    )
    problems = _io_problems(wrong, (640, 480))
    assert any("frame shape (-1, -1, 4)" in p for p in problems)
    assert any("labels shape (240, 320)" in p for p in problems)
    assert any("labels dtype float" in p for p in problems)
