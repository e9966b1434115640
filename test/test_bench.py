"""``lowlight bench`` subcommands run and write JSON + Markdown that name the machine."""

from __future__ import annotations

import json

import pytest

from lowlight_perception.tools.cli import main


@pytest.mark.torch
def test_bench_models_and_synth_write_results(tmp_path, capsys):
    out = tmp_path / "results"
    assert (
        main(
            [
                "bench",
                "models",
                "--models",
                "lisu-tiny",
                "--sizes",
                "64x48",
                "--runs",
                "1",
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads((out / "models.json").read_text())
    (row,) = result["rows"]
    assert row["model"] == "lisu-tiny" and row["size"] == "64x48"
    assert row["torch_ms_p50"] > 0 and row["ort_ms_p50"] > 0
    assert result["machine"]["cores"] >= 1
    assert "| lisu-tiny | 64x48 |" in (out / "models.md").read_text()

    assert (
        main(
            [
                "bench",
                "synth",
                "--size",
                "64x48",
                "--views",
                "2",
                "--workers",
                "1",
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    synth = json.loads((out / "synth_64x48.json").read_text())
    assert synth["synth_writer_views_per_s"] > 0
    assert "views/s" in capsys.readouterr().out


@pytest.mark.torch
def test_bench_segment_reports_host_overhead_ratio(tmp_path):
    out = tmp_path / "results"
    assert (
        main(
            [
                "bench",
                "segment",
                "--models",
                "lisu-tiny",
                "--sizes",
                "64x48",
                "--frames",
                "3",
                "--backends",
                "onnxruntime",
                "torch",
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    rows = json.loads((out / "segment.json").read_text())["rows"]
    assert [r["backend"] for r in rows] == ["onnxruntime", "torch"]
    for row in rows:
        assert row["segment_ms_p50"] > 0 and row["fps"] > 0
        assert row["segment_over_execute"] == round(
            row["segment_ms_p50"] / row["execute_ms_p50"], 3
        )
