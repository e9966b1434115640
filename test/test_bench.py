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


@pytest.mark.torch
@pytest.mark.slow
def test_bench_node_reports_latencies_and_the_nodes_own_stages(tmp_path, capsys):
    """perception_node in its own process over real DDS, at 640x480 with depth and
    camera_info: the echo floor, then labels + confidence and all outputs, each answered and
    with the node's per-stage p50s (every published output timed)."""
    from ros_harness import domain_id

    domain_id()
    out = tmp_path / "results"
    assert main(["bench", "node", "--frames", "5", "--out-dir", str(out)]) == 0
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
    assert main(["bench", "graph", "--camera", "160x120", "--runs", "5", "--out-dir",
                 str(out)]) == 0
    result = json.loads((out / "graph.json").read_text())
    core, every = result["rows"]
    assert (core["pass"], every["pass"]) == ("labels + confidence", "all outputs")
    for row in (core, every):
        assert 0 < row["network_kernels_ms"] and 0 < row["pre_post_kernels_ms"]
        kernels = (row["network_kernels_ms"] + row["pre_post_kernels_ms"]
                   + row["runtime_inserted_kernels_ms"])
        assert kernels <= row["run_ms"] + 0.005  # sequential kernels inside the runs (means)
        names = [part.rsplit(" ", 1)[0] for part in row["costliest_pre_post"].split(", ")]
        assert names and not any(n.startswith("/model/") for n in names)
    # (node counts, not times: times are the machine's, and close at 160x120)
    assert every["pre_post_nodes"] > core["pre_post_nodes"]
    assert "| labels + confidence |" in (out / "graph.md").read_text()
