"""``lowlight synth``: the layout it writes, read back by the dataset class; readable errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from lowlight_perception.data import layout
from lowlight_perception.data.datasets import LLRGBDReal
from lowlight_perception.data.synth import plan_views
from lowlight_perception.data.synthetic import random_view
from lowlight_perception.tools.cli import main


def _lowlight(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lowlight_perception.tools.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_synth_writes_llrgbd_real_layout_that_the_dataset_reads_back(tmp_path, capsys):
    out = tmp_path / "ds"
    assert (
        main(
            [
                "synth",
                "--out",
                str(out),
                "--views",
                "10",
                "--size",
                "96x72",
                "--seed",
                "4",
                "--workers",
                "2",
            ]
        )
        == 0
    )
    summary = capsys.readouterr().out
    assert "wrote 10 views" in summary and "train 9, val 1" in summary
    for split, n in (("train", 9), ("val", 1)):
        for kind in layout.REQUIRED + layout.OPTIONAL:
            files = sorted((out / layout.directory(split, kind)).glob("*.png"))
            assert len(files) == n, (split, kind)
    meta = yaml.safe_load((out / layout.META_FILE).read_text())
    assert (meta["width"], meta["height"]) == (96, 72)
    assert meta["generator"]["seed"] == 4

    train = LLRGBDReal(out, "train")
    assert len(train) == 9
    sample = train[3]
    truth = random_view(4, int(sample.name.split("_")[1]), train[3].intrinsics)
    np.testing.assert_array_equal(sample.low, truth.low)
    np.testing.assert_array_equal(sample.normal, truth.normal)
    np.testing.assert_array_equal(sample.label, truth.label)
    np.testing.assert_array_equal(sample.depth, truth.depth)
    np.testing.assert_array_equal(sample.albedo, truth.albedo)
    np.testing.assert_allclose(sample.shading_low, truth.shading_low, atol=1e-4)
    assert sample.intrinsics == truth.intrinsics
    assert len(LLRGBDReal(out, "val")) == 1


def test_synth_sequence_mode_keeps_rooms_whole_across_splits(tmp_path):
    out = tmp_path / "seq"
    assert (
        main(
            [
                "synth",
                "--out",
                str(out),
                "--views",
                "12",
                "--size",
                "64x48",
                "--sequence",
                "--frames-per-room",
                "4",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    train = {p.stem for p in (out / "train_rgb_l").glob("*.png")}
    val = {p.stem for p in (out / "val_rgb_l").glob("*.png")}
    assert len(train) == 8 and len(val) == 4
    assert {name.split("_")[0] for name in train}.isdisjoint({name.split("_")[0] for name in val})


def test_plan_views_splits():
    tasks = plan_views(20, sequence=False, frames_per_room=0, val_fraction=0.25)
    assert [t.split for t in tasks].count("val") == 5 and tasks[-1].split == "val"
    tasks = plan_views(10, sequence=True, frames_per_room=4, val_fraction=0.1)
    assert [t.frames_in_room for t in tasks] == [4] * 8 + [2] * 2
    assert {t.room for t in tasks if t.split == "val"} == {2}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--views", "0"], "views must be at least 1"),
        (["--val-fraction", "1.5"], "--val-fraction"),
        (["--size", "64by48"], "size must look like 640x480"),
    ],
)
def test_synth_bad_arguments_exit_nonzero_with_one_line(tmp_path, args, message):
    result = _lowlight("synth", "--out", str(tmp_path / "x"), *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_synth_refuses_to_overwrite_a_dataset(tmp_path):
    out = tmp_path / "ds"
    assert (
        main(["synth", "--out", str(out), "--views", "1", "--size", "32x24", "--workers", "1"]) == 0
    )
    result = _lowlight("synth", "--out", str(out), "--views", "1", "--size", "32x24")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"lowlight synth: error: {out} already holds a dataset; "
        "choose another output directory or delete it"
    ]
    result = _lowlight("synth", "--out", str(tmp_path / "neg"), "--views", "1", "--seed", "-1")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "lowlight synth: error: seed must be a non-negative integer, got -1"
    ]
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    result = _lowlight("synth", "--out", str(not_a_dir), "--views", "1", "--size", "32x24")
    assert result.returncode == 2 and "is not a directory" in result.stderr


def test_reading_a_broken_dataset_is_one_readable_error(tmp_path):
    out = tmp_path / "ds"
    assert (
        main(
            [
                "synth",
                "--out",
                str(out),
                "--views",
                "3",
                "--size",
                "32x24",
                "--workers",
                "1",
                "--val-fraction",
                "0",
            ]
        )
        == 0
    )
    victim = sorted((out / "train_rgb_h").glob("*.png"))[1]
    victim.unlink()
    with pytest.raises(Exception, match=victim.stem):
        LLRGBDReal(out, "train")
    with pytest.raises(Exception, match=r"missing|not found|no such|does not exist"):
        LLRGBDReal(Path(tmp_path / "nowhere"), "train")
