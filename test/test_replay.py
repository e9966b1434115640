"""``lowlight replay`` over real DDS: a bag written by ``lowlight bag write`` is replayed into a
perception_node process with its recorded timing; latency, throughput, drops and the peak
search come back."""

from __future__ import annotations

import json

import pytest
from ros_harness import domain_id

from lowlight_perception.bags import write_bag
from lowlight_perception.camera import Intrinsics
from lowlight_perception.data.synthetic import sequence
from lowlight_perception.models.export import export_onnx, random_init_model
from lowlight_perception.ros.replay import ReplayError, _rate, replay
from lowlight_perception.tools.cli import main


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    root = tmp_path_factory.mktemp("replay")
    K = Intrinsics.d435i(160, 120)
    bag = root / "bag"
    write_bag(list(sequence(5, 0, 24, K)), bag, storage="mcap", fps=30.0, progress=False)
    model = root / "tiny.onnx"
    export_onnx(
        random_init_model("lisu-tiny"), model, camera_size=(160, 120), net_size=(96, 64), frames=1
    )
    domain_id()
    return bag, model


@pytest.mark.slow
def test_replay_measures_latency_throughput_and_peak(recorded, tmp_path, capsys):
    bag, model = recorded
    out = tmp_path / "replay.json"
    # from half the recorded rate: a tiny model keeps up on a loaded 2-core CI machine too
    # (how fast it goes is for `lowlight bench`, not for a test)
    assert (
        main(
            [
                "replay",
                "--bag",
                str(bag),
                "--model",
                str(model),
                "--peak",
                "--rate",
                "0.5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    first = result["passes"][0]
    assert result["frames"] == first["sent"] == 24
    assert first["rate"] == 0.5 and first["answered"] >= 23
    assert first["answered"] + first["dropped"] == first["sent"]
    assert 0 < first["latency_ms_p50"] <= first["latency_ms_p99"]
    assert 12 <= first["input_fps"] <= 18  # the recorded 30 Hz timing, at half rate
    rates = [p["rate"] for p in result["passes"]]
    assert rates == sorted(rates) and len(rates) >= 2
    assert result["peak"]["output_fps"] >= first["output_fps"]
    assert "peak without drops" in capsys.readouterr().out


def test_replay_errors_are_readable(tmp_path, recorded, capsys):
    with pytest.raises(ReplayError, match="bag not found"):
        replay(tmp_path / "nope")
    assert main(["replay", "--bag", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip().startswith("lowlight replay: error: bag not found")
    assert main(["replay", "--bag", str(recorded[0]), "--rate", "0"]) == 2


@pytest.mark.slow
def test_replaying_the_same_bag_twice_into_one_node_answers_both_passes(recorded):
    """A second `lowlight replay` (or `ros2 bag play --loop`) repeats the stamps the node has
    already seen: the node resets its stamp order instead of skipping every frame."""
    import os
    import signal

    from lowlight_perception.ros.loopback import start_node

    bag, model = recorded
    node = start_node(model, int(os.environ["ROS_DOMAIN_ID"]))
    try:  # at a quarter of the recorded rate: the stamps matter here, not the speed
        first = replay(bag, rate=0.25, log=lambda _: None)["passes"][0]
        second = replay(bag, rate=0.25, log=lambda _: None)["passes"][0]
    finally:
        node.send_signal(signal.SIGINT)
        node.wait(timeout=30)
    assert first["sent"] == second["sent"] == 24
    assert first["answered"] >= 23 and second["answered"] >= 23, (first, second)


def test_rates_count_intervals_not_events():
    """30 frames sent 1/30 s apart are 30 FPS (29 intervals), not 31."""
    assert _rate([i / 30 for i in range(30)]) == pytest.approx(30.0)
    assert _rate([1.0]) is None and _rate([]) is None
