"""``lowlight bench`` subcommands run and write JSON + Markdown that name the machine."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

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
                "--out",
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
                "--out",
                str(out),
            ]
        )
        == 0
    )
    synth = json.loads((out / "synth_64x48.json").read_text())
    assert synth["synth_writer_views_per_s"] > 0
    assert "views/s" in capsys.readouterr().out


@pytest.mark.torch
def test_bench_segment_reports_host_overhead_ratio(tmp_path, monkeypatch):
    """Host work added to segment() (20 ms here) shows in its p50 and in the ratio, while
    the bare backend call it is compared with does not change."""
    from lowlight_perception.inference import Segmenter

    plain = Segmenter.segment

    def slow_segment(self, *args, **kwargs):
        time.sleep(0.02)
        return plain(self, *args, **kwargs)

    monkeypatch.setattr(Segmenter, "segment", slow_segment)
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
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = json.loads((out / "segment.json").read_text())["rows"]
    assert [r["backend"] for r in rows] == ["onnxruntime", "torch"]
    for row in rows:
        assert row["segment_ms_p50"] >= row["execute_ms_p50"] + 19.0, row
        assert row["segment_over_execute"] > 1.0 and 0 < row["fps"] < 50, row


@pytest.mark.torch
@pytest.mark.slow
def test_bench_node_reports_latencies_and_the_nodes_own_stages(tmp_path, capsys):
    """perception_node in its own process over real DDS, at 640x480 with depth and
    camera_info: the echo floor, then labels + confidence and all outputs, each answered and
    with the node's per-stage p50s (every published output timed)."""
    from ros_harness import domain_id

    domain_id()
    out = tmp_path / "results"
    assert main(["bench", "node", "--frames", "5", "--out", str(out)]) == 0
    result = json.loads((out / "node.json").read_text())
    assert result["camera"] == "640x480" and result["model"] == "lisu-tiny"
    echo, core, every = result["rows"]
    assert echo["pass"].startswith("round trip") and echo["answered"] == "5/5"
    for row in (core, every):
        assert row["answered"] == "5/5"
        assert 0 < row["segment_ms_p50"] and 0 < row["first_output_ms_p50"]
        assert row["first_output_ms_p50"] <= row["last_output_ms_p50"]
        stages = row["node_stages_ms_p50"]
        assert "decode" in stages and "queue" in stages and "publish_labels" in stages
    assert "publish_reflectance" not in core["node_stages_ms_p50"]  # not subscribed: not made
    for name in ("labels_color", "overlay", "reflectance", "illumination", "semantic_points"):
        assert f"publish_{name} " in every["node_stages_ms_p50"], name
    assert "node stages p50" in capsys.readouterr().out
    assert (out / "node.md").read_text().startswith("# node benchmark")


@pytest.mark.torch
def test_bench_graph_splits_the_graph_into_network_and_pre_post_processing(tmp_path):
    """ONNX Runtime's own profiler on a real session: per pass, the network's kernels (nodes
    under /model/) and the graph's pre/post-processing kernels fit inside the run; the whole
    graph (reflectance + illumination upsampled to the frame) has more pre/post-processing
    nodes than labels + confidence alone, and the costliest nodes named are the graph's own."""
    out = tmp_path / "results"
    assert (
        main(["bench", "graph", "--camera-size", "160x120", "--runs", "5", "--out", str(out)]) == 0
    )
    result = json.loads((out / "graph.json").read_text())
    core, every = result["rows"]
    assert (core["pass"], every["pass"]) == ("labels + confidence", "all outputs")
    for row in (core, every):
        assert 0 < row["network_kernels_ms"] and 0 < row["pre_post_kernels_ms"]
        kernels = (
            row["network_kernels_ms"]
            + row["pre_post_kernels_ms"]
            + row["runtime_inserted_kernels_ms"]
        )
        assert kernels <= row["run_ms"] + 0.005  # sequential kernels inside the runs (means)
        names = [part.rsplit(" ", 1)[0] for part in row["costliest_pre_post"].split(", ")]
        assert names and not any(n.startswith("/model/") for n in names)
    # (node counts, not times: times are the machine's, and close at 160x120)
    assert every["pre_post_nodes"] > core["pre_post_nodes"]
    assert "| labels + confidence |" in (out / "graph.md").read_text()


def test_bench_results_go_to_out_unless_told_otherwise():
    """Every bench writes under --out, default the untracked out/bench (committed results:
    --out bench/results); node and graph take --arch / --camera-size / --net-size, as export
    does, and the old --out-dir / registry --model are gone."""
    from lowlight_perception.tools.cli import build_parser

    parser = build_parser()
    for bench in ("synth", "relight", "models", "segment", "node", "graph", "refine"):
        assert parser.parse_args(["bench", bench]).out == Path("out/bench"), bench
    assert parser.parse_args(["bench", "seeds", "--runs", "r"]).out == Path("out/bench")
    adapt = ["bench", "adapt", "--checkpoints", "a.pt"]
    assert parser.parse_args(adapt).out == Path("out/bench")
    assert parser.parse_args([*adapt, "--out", "bench/results"]).out == Path("bench/results")
    args = parser.parse_args(
        [
            "bench",
            "graph",
            "--arch",
            "lisu-small",
            "--camera-size",
            "320x240",
            "--net-size",
            "160x112",
        ]
    )
    assert (args.arch, args.camera_size, args.net_size) == ("lisu-small", (320, 240), (160, 112))
    for old in (
        ["synth", "--out-dir", "x"],
        ["node", "--model", "lisu-tiny"],
        ["graph", "--model", "lisu-tiny"],
    ):
        with pytest.raises(SystemExit):
            parser.parse_args(["bench", *old])


def test_one_latency_summary_is_the_median_and_99th_percentile_in_ms():
    from lowlight_perception.latency import p50_p99, seconds_to_ms

    assert p50_p99(range(1, 101)) == (50.5, 99.01)  # numpy's linear interpolation
    assert p50_p99(seconds_to_ms([0.001, 0.003, 0.002])) == (2.0, 2.98)
    assert all(math.isnan(v) for v in p50_p99([]))
