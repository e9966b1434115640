"""``lowlight bench gpu``: the GPU validation run, exercised by its CPU dry run so the code that
will run on a lent GPU cannot rot (same stages, same report, tiny sizes). Nothing here needs a
GPU; the CUDA-only configurations must be recorded as skipped with their reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lowlight_perception.tools.bench_gpu import ROW_KEYS, STAGES, gpu_test_files
from lowlight_perception.tools.cli import main


def _run(tmp_path: Path, *extra: str) -> tuple[int, dict, str]:
    out = tmp_path / "results"
    rc = main(["bench", "gpu", "--dry-run", "--device", "cpu", "--out", str(out), *extra])
    result = json.loads((out / "gpu_dry_run_cpu.json").read_text())
    return rc, result, (out / "gpu_dry_run_cpu.md").read_text()


@pytest.mark.torch
@pytest.mark.slow
def test_dry_run_writes_every_stage_and_names_the_machine(tmp_path, capsys):
    rc, result, md = _run(tmp_path)
    assert rc == 0, result["stages"]
    assert list(result["stages"]) == list(STAGES)
    m = result["machine"]
    for key in (
        "device",
        "device_name",
        "driver_version",
        "cuda_version",
        "torch",
        "cudnn",
        "gpu_memory_gib",
        "python",
        "lowlight_perception",
        "onnxruntime",
        "cores",
    ):
        assert m[key] not in (None, ""), key
    assert m["device"] == "cpu" and m["driver_version"] == "none (CPU run)"

    tests = result["stages"]["tests"]
    assert tests["status"] == "ok" and tests["files"] == gpu_test_files()
    assert tests["failed"] == tests["errors"] == 0 and tests["passed"] + tests["skipped"] >= 1

    rows = result["stages"]["inference"]["rows"]
    assert all(list(r) == list(ROW_KEYS) for r in rows)
    ran = [r for r in rows if r["status"] == "ok" and r["runtime"] != "onnxruntime"]
    assert {r["precision"] for r in ran} >= {"fp32", "bf16 autocast"}
    assert any(r["runtime"].startswith("torch.compile") for r in ran)
    for r in ran:
        assert 0.0 <= r["agreement_min"] <= r["agreement_mean"] <= 1.0
        assert 0 < r["p50_ms"] <= r["p99_ms"]
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert {r["note"] for r in skipped if r["cuda_graph"]} == {
        "skipped: CUDA graphs need a CUDA device"
    }
    assert any("fp16" in r["precision"] and not r["cuda_graph"] for r in skipped)

    training = result["stages"]["training"]
    assert [t["stage"] for t in training["throughput"]] == ["decomp", "joint"]
    assert all(t["images_per_s"] > 0 for t in training["throughput"])
    assert [e["stage"] for e in training["epoch"]["epochs"]] == ["decomp", "joint"]
    assert result["stages"]["tensorrt"]["status"] in ("skipped", "ok")

    # no goal is judged from a dry run's figures
    assert len(result["goals"]) == 3 and all(g["met"] is None for g in result["goals"])
    assert "not measured: dry run" in md and "## (b) Inference" in md
    assert "| lisu-tiny | 64x48 | 64x48 | torch | bf16 autocast | False | cpu | ok |" in md
    printed = capsys.readouterr().out
    assert "summary (CPU: " in printed and "goal: " in printed and "not judged" in printed


@pytest.mark.torch
def test_a_failing_stage_is_recorded_and_the_others_still_run(tmp_path, capsys):
    # real failures: LISU cannot run at 72x40 (not multiples of 16), in inference and training;
    # torch.compile in its child process with a backend that does not exist
    rc, result, md = _run(
        tmp_path,
        "--stages",
        "inference",
        "training",
        "tensorrt",
        "--sizes",
        "72x40",
        "64x48",
        "--train-size",
        "72x40",
        "--compile",
        "all",
        "--compile-backend",
        "no-such-backend",
        "--runs",
        "1",
    )
    assert rc == 1
    stages = result["stages"]
    assert (stages["tests"]["status"], stages["tests"]["reason"]) == ("skipped", "not in --stages")
    inference = stages["inference"]
    assert inference["status"] == "error" and "multiples of 16" in inference["error"]
    assert "Traceback" in inference["errors"][0]["traceback_tail"]
    rows = {
        (r["camera"], r["runtime"], r["precision"], r["cuda_graph"]): r for r in inference["rows"]
    }
    assert rows[("72x40", "setup", None, None)]["status"] == "error"
    assert rows[("64x48", "torch", "fp32", False)]["status"] == "ok"  # the next case still ran
    (compiled,) = [r for r in inference["rows"] if r["runtime"].startswith("torch.compile")]
    assert compiled["status"] == "skipped" and "compile failed" in compiled["note"]
    assert "no-such-backend" in compiled["note"], compiled["note"]
    training = stages["training"]
    assert training["status"] == "error" and "multiples of 16" in training["error"]
    assert [e["part"] for e in training["errors"]] == [
        "throughput decomp",
        "throughput joint",
        "real epoch",
    ]
    assert stages["tensorrt"]["status"] in ("skipped", "ok")  # ran after the failures
    assert "## Errors" in md and "multiples of 16" in md
    assert "stages with errors or failures: inference, training" in capsys.readouterr().err


@pytest.mark.torch
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--device", "cpu"], "use --dry-run for the CPU smoke run"),
        (["--dry-run", "--device", "tpu"], "--device must be auto, cpu or cuda[:N]"),
        (["--dry-run", "--runs", "0"], "--runs must be at least 1"),
    ],
)
def test_bad_requests_are_one_readable_line(tmp_path, capsys, argv, message):
    assert main(["bench", "gpu", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and not list(tmp_path.iterdir())
