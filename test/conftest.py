"""Shared test helpers: small intrinsics and the repository root; without torch (the NumPy 1
leg of ``make test``), the modules that need torch or onnx are not collected."""

from __future__ import annotations

import importlib.util
import re
import runpy
from pathlib import Path

import pytest
import setuptools

from lowlight_perception.camera import Intrinsics

REPO = Path(__file__).resolve().parents[1]
TINY_TRAIN = [  # `lowlight train` arguments of a seconds-long run: lisu-tiny, 8 views at 64x48
    "--config", "lisu_small_cpu", "--set", "model=lisu-tiny", "--set", "data.size=[64,48]",
    "--set", "data.options={num_views: 8}", "--set", "data.workers=0", "--set", "batch_size=4",
    "--set", "decomp_epochs=1", "--set", "epochs=1",
]  # fmt: skip
HAS_TORCH = importlib.util.find_spec("torch") is not None
NEEDS_TORCH = re.compile(
    r"^(import|from) (torch|onnx|lowlight_perception\.(models|training))\b", re.MULTILINE
)
"""A module-level import of the training stack: such test modules need the `train` extra."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAS_TORCH:
        return
    skip = pytest.mark.skip(reason="needs torch (the `train` extra); this leg runs without it")
    for item in items:
        if "torch" in item.keywords:
            item.add_marker(skip)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if HAS_TORCH or collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    return bool(NEEDS_TORCH.search(collection_path.read_text(encoding="utf-8"))) or None


def direct_metrics(pairs) -> dict:
    """The reference for evaluation tests: one ConfusionMatrix over (prediction, truth) pairs,
    nothing else."""
    from lowlight_perception.classes import load_classes
    from lowlight_perception.evaluation.metrics import ConfusionMatrix

    matrix = ConfusionMatrix(14, ignore_index=0)
    for prediction, truth in pairs:
        matrix.update(prediction, truth)
    m = matrix.compute()
    names = load_classes().names
    return {
        "mIoU": m.mIoU,
        "OA": m.OA,
        "mAcc": m.mAcc,
        "FWIoU": m.FWIoU,
        "per_class_IoU": {names[c]: v for c, v in m.per_class_IoU.items() if c},
    }


@pytest.fixture
def small_camera() -> Intrinsics:
    """A D435i-like camera at 160x120: fast renders, same optics."""
    return Intrinsics.d435i(160, 120)


@pytest.fixture(scope="session")
def setup_kwargs() -> dict:
    """setup.py's arguments, computed by running it with setuptools.setup captured."""
    captured = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(setuptools, "setup", lambda **kw: captured.update(kw))
        mp.chdir(REPO)
        runpy.run_path(str(REPO / "setup.py"))
    return captured
