"""Dataset sources: pairing by name, readable errors, optional ground truth, NYUv2 decoding."""

from __future__ import annotations

import base64
import importlib.util
import pathlib
import pickle
import random
import subprocess
import sys

import numpy as np
import pytest
import yaml

from lowlight_perception.camera import Intrinsics
from lowlight_perception.data.datasets import (
    NYU_INTRINSICS,
    LLRGBDReal,
    LLRGBDSynthetic,
    NYUv2,
    ProceduralDataset,
    collate,
    load_nyu13_lut,
    open_dataset,
    read_nyu_splits,
)
from lowlight_perception.data.imageio import write_png
from lowlight_perception.data.transforms import RandomHorizontalFlip
from lowlight_perception.errors import DatasetError

STEMS = ["img10", "img9", "a", "img1", "b2"]  # lexicographic, natural and creation orders differ


@pytest.fixture(autouse=True)
def shuffled_listing(monkeypatch):
    """Every directory lists in its own random order, so pairing by order would mis-pair."""
    original = pathlib.Path.iterdir
    rng = random.Random(0)

    def iterdir(self):
        entries = list(original(self))
        rng.shuffle(entries)
        return iter(entries)

    monkeypatch.setattr(pathlib.Path, "iterdir", iterdir)


def code_of(stem: str) -> int:
    return STEMS.index(stem) + 1


def make_real(
    root: pathlib.Path, split: str = "train", stems=STEMS, size=(12, 8), extras: bool = False
) -> pathlib.Path:
    """An LLRGBD-real tree; each view's pixels encode its stem so a mis-pair shows."""
    w, h = size
    for stem in random.Random(1).sample(list(stems), len(stems)):
        code = code_of(stem)
        write_png(root / f"{split}_rgb_l" / f"{stem}.png", np.full((h, w, 3), code, np.uint8))
        write_png(root / f"{split}_rgb_h" / f"{stem}.png", np.full((h, w, 3), 100 + code, np.uint8))
        label = np.full((h, w), code % 14, np.uint8)
        label[0, 0] = 0
        write_png(root / f"{split}_lbl" / f"{stem}.png", label)
        if extras:
            yy, xx = np.mgrid[0:h, 0:w]
            write_png(
                root / f"{split}_depth" / f"{stem}.png",
                (1000 * code + 10 * xx + yy).astype(np.uint16),
            )
            write_png(
                root / f"{split}_albedo" / f"{stem}.png", np.full((h, w, 3), 50 + code, np.uint8)
            )
            write_png(
                root / f"{split}_shading_l" / f"{stem}.png", np.full((h, w), 250 * code, np.uint16)
            )
            write_png(
                root / f"{split}_shading_h" / f"{stem}.png", np.full((h, w), 5000 + code, np.uint16)
            )
    if extras:
        meta = {
            "width": w,
            "height": h,
            "fx": 10.0,
            "fy": 10.0,
            "cx": (w - 1) / 2,
            "cy": (h - 1) / 2,
            "shading_scale": 5000.0,
            "depth_scale": 0.001,
        }
        (root / "intrinsics.yaml").write_text(yaml.safe_dump(meta))
    return root


# --------------------------------------------------------------------------- LLRGBD real


def test_real_pairs_by_name_not_listing_order(tmp_path):
    ds = LLRGBDReal(make_real(tmp_path), "train")
    assert len(ds) == len(STEMS)
    assert [ds[i].name for i in range(len(ds))] == ["a", "b2", "img1", "img9", "img10"]
    for sample in ds:
        code = code_of(sample.name)
        assert sample.low[0, 0, 0] == code and sample.normal[0, 0, 0] == 100 + code
        assert sample.label[1, 1] == code % 14 and sample.label[0, 0] == 0
        assert sample.low.shape == (8, 12, 3) and sample.label.dtype == np.uint8
    assert ds[-1].name == "img10"
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_real_missing_partner_names_the_file(tmp_path):
    make_real(tmp_path)
    (tmp_path / "train_rgb_h" / "img9.png").unlink()
    with pytest.raises(DatasetError, match=r"img9\.png has no normal-light partner") as err:
        LLRGBDReal(tmp_path)
    assert str(tmp_path / "train_rgb_h" / "img9.png") in str(err.value)
    assert "\n" not in str(err.value)


def test_real_orphan_label_names_the_file(tmp_path):
    make_real(tmp_path)
    write_png(tmp_path / "train_lbl" / "zz.png", np.zeros((8, 12), np.uint8))
    with pytest.raises(DatasetError, match=r"zz\.png has no low-light partner"):
        LLRGBDReal(tmp_path)


def test_real_size_mismatch_names_both_files(tmp_path):
    make_real(tmp_path)
    write_png(tmp_path / "train_lbl" / "b2.png", np.zeros((9, 12), np.uint8))
    ds = LLRGBDReal(tmp_path)
    ds[0]  # other views still load
    with pytest.raises(DatasetError, match="size mismatch") as err:
        ds[ds.stems.index("b2")]
    message = str(err.value)
    assert "train_rgb_l" in message and str(tmp_path / "train_lbl" / "b2.png") in message
    assert "12x8" in message and "12x9" in message


def test_real_missing_root_dirs_and_empty_split(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        LLRGBDReal(tmp_path / "nope")
    make_real(tmp_path)
    with pytest.raises(DatasetError, match="val_rgb_l"):
        LLRGBDReal(tmp_path, "val")
    with pytest.raises(DatasetError, match="unknown LLRGBD split"):
        LLRGBDReal(tmp_path, "dev")
    for sub in ("val_rgb_l", "val_rgb_h", "val_lbl"):
        (tmp_path / sub).mkdir()
    with pytest.raises(DatasetError, match="no images"):
        LLRGBDReal(tmp_path, "val")
    (tmp_path / "train_lbl" / "a.png").unlink()
    (tmp_path / "train_lbl").rename(tmp_path / "labels")
    with pytest.raises(DatasetError, match=r"missing directory .*train_lbl"):
        LLRGBDReal(tmp_path)


def test_real_optional_fields_none_when_absent(tmp_path):
    sample = LLRGBDReal(make_real(tmp_path))[0]
    for field in ("depth", "albedo", "shading_low", "shading_normal", "intrinsics"):
        assert getattr(sample, field) is None


def test_real_optional_fields_read_when_present(tmp_path):
    ds = LLRGBDReal(make_real(tmp_path, extras=True))
    for sample in ds:
        code = code_of(sample.name)
        assert sample.depth.dtype == np.uint16 and sample.depth[2, 3] == 1000 * code + 32
        assert sample.albedo[0, 0, 1] == 50 + code
        assert sample.shading_low.dtype == np.float32
        assert sample.shading_low[0, 0] == pytest.approx(250 * code / 5000.0)
        assert sample.shading_normal[0, 0] == pytest.approx((5000 + code) / 5000.0)
        assert sample.intrinsics == Intrinsics(12, 8, 10.0, 10.0, 5.5, 3.5)


def test_real_optional_dir_missing_a_view_is_an_error(tmp_path):
    make_real(tmp_path, extras=True)
    (tmp_path / "train_depth" / "img1.png").unlink()
    with pytest.raises(DatasetError, match=r"img1\.png has no depth partner"):
        LLRGBDReal(tmp_path)


def test_real_size_option_resizes_nearest_and_scales_intrinsics(tmp_path):
    make_real(tmp_path, extras=True, size=(16, 12))
    full = LLRGBDReal(tmp_path)
    small = LLRGBDReal(tmp_path, size=(8, 6))
    for a, b in zip(full, small, strict=True):
        assert b.low.shape == (6, 8, 3) and b.depth.shape == (6, 8)
        assert set(np.unique(b.label)) <= set(np.unique(a.label))
        assert set(np.unique(b.depth)) <= set(np.unique(a.depth))
        assert b.intrinsics == a.intrinsics.scaled(8, 6)


def test_real_test_split_reads_val_and_transform_runs_last(tmp_path):
    make_real(tmp_path, "val", stems=["a", "b2"])
    ds = LLRGBDReal(tmp_path, "test", transform=RandomHorizontalFlip(p=1.0))
    assert len(ds) == 2 and ds.split == "test"
    batch = collate([ds[0], ds[1]])
    assert batch["low"].shape == (2, 8, 12, 3) and batch["name"] == ["a", "b2"]
    assert batch["depth"] is None
    assert batch["label"][0, 0, -1] == 0  # the void corner pixel, flipped to the right


def test_open_dataset_registry(tmp_path):
    make_real(tmp_path)
    assert len(open_dataset("llrgbd-real", tmp_path, "train")) == len(STEMS)
    with pytest.raises(DatasetError, match="llrgbd-real, llrgbd-synthetic, nyuv2, procedural"):
        open_dataset("kitti", tmp_path, "train")
    with pytest.raises(DatasetError, match="needs a dataset path"):
        open_dataset("nyuv2", None, "train")


# --------------------------------------------------------------------------- LLRGBD synthetic


def make_synthetic(root: pathlib.Path, split: str = "train") -> pathlib.Path:
    views = [("scene_b", "0001"), ("scene_a", "0002"), ("scene_a", "0001"), ("scene_b", "0010")]
    for i, (scene, stem) in enumerate(views):
        low = root / f"selection_{split}2" / scene
        write_png(low / "rgb" / f"{stem}.png", np.full((6, 10, 3), 10 * i, np.uint8))
        write_png(low / "label" / f"{stem}.png", np.full((6, 10), i + 1, np.uint8))
        write_png(
            root / f"selection_{split}_pair2" / scene / "rgb" / f"{stem}.png",
            np.full((6, 10, 3), 10 * i + 5, np.uint8),
        )
    return root


def test_synthetic_pairs_by_scene_and_stem(tmp_path):
    ds = LLRGBDSynthetic(make_synthetic(tmp_path), "train")
    names = [s.name for s in ds]
    assert names == ["scene_a/0001", "scene_a/0002", "scene_b/0001", "scene_b/0010"]
    for sample in ds:
        i = int(sample.label[0, 0]) - 1
        assert sample.low[0, 0, 0] == 10 * i and sample.normal[0, 0, 0] == 10 * i + 5
        assert sample.depth is None and sample.intrinsics is None


def test_synthetic_errors(tmp_path):
    make_synthetic(tmp_path)
    with pytest.raises(DatasetError, match=r"selection_val2.*found: selection_train2"):
        LLRGBDSynthetic(tmp_path, "val")
    (tmp_path / "selection_train_pair2" / "scene_a" / "rgb" / "0002.png").unlink()
    with pytest.raises(DatasetError, match="has no normal-light partner") as err:
        LLRGBDSynthetic(tmp_path, "train")
    expected = pathlib.Path("selection_train_pair2", "scene_a", "rgb", "0002.png")
    assert str(expected) in str(err.value)


# --------------------------------------------------------------------------- NYUv2

# splits.mat as scipy.io.savemat writes it (MATLAB v5, zlib-compressed), with trainNdxs
# [3, 1, 5] and testNdxs [4, 2] (1-based): a real third-party encoding of the toolbox format.
SPLITS_V5 = b"MATLAB 5.0 MAT-file".ljust(116, b" ") + base64.b64decode(
    "AAAAAAAAAAAAAUlNDwAAADkAAAB4nONjYGCIAGI2IOaA0iDACuUzAzEjFHMCcUlRYmaeX0pFMVQdSEyCAQY4HCD0B3sI"
    "LeIAAOsaBj0PAAAAMQAAAHic42NgYPAAYjYg5oDSIMAK5TMBMSMUg/glqcUlfikVxZxAtgADDAg4QBkOAIj8BIo="
)
NYU_W, NYU_H, NYU_N = 16, 12, 6


def make_nyu(tmp_path: pathlib.Path) -> tuple[pathlib.Path, np.ndarray, np.ndarray, np.ndarray]:
    """A tiny file laid out like nyu_depth_v2_labeled.mat (HDF5 with MATLAB's 512-byte
    userblock, arrays transposed as MATLAB writes column-major data)."""
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 200, (NYU_N, NYU_H, NYU_W, 3), dtype=np.uint8)
    images[:, 0, -1] = (255, 0, 0)  # top-right pixel red: catches a transposition or flip
    depths = np.full((NYU_N, NYU_H, NYU_W), 2.0, np.float32)
    depths[:, 0, 0], depths[:, 0, 1], depths[:, 0, 2] = 1.5, 0.0, np.nan
    depths[:, 0, 3], depths[:, 0, 4] = 70.0, 1.2344
    labels = np.zeros((NYU_N, NYU_H, NYU_W), np.uint16)
    raw_ids = [21, 11, 4, 5, 19, 3, 85, 64, 157, 83, 59, 1, 894]
    labels[:, 1, : len(raw_ids)] = raw_ids
    labels[:, -1, -1] = 21  # bottom-right wall
    path = tmp_path / "nyu_depth_v2_labeled.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        f["images"] = images.transpose(0, 3, 2, 1)  # (N, 3, W, H)
        f["depths"] = depths.transpose(0, 2, 1)  # (N, W, H)
        f["labels"] = labels.transpose(0, 2, 1)
    return path, images, depths, labels


def test_nyu13_lut_maps_by_published_table():
    lut = load_nyu13_lut()
    assert lut.shape == (895,) and lut[0] == 0
    # NYU raw ids (names of the .mat `names` list) -> our ids (config/classes.yaml order).
    raw = [21, 11, 4, 5, 19, 3, 85, 64, 157, 83, 59, 1]
    names = [
        "wall",
        "floor",
        "ceiling",
        "chair",
        "table",
        "cabinet",
        "books",
        "picture",
        "bed",
        "sofa",
        "window",
        "book",
    ]
    ours = [12, 5, 3, 4, 10, 6, 2, 8, 1, 9, 13, 7]  # wall ... cabinet->furniture, book->objects
    assert lut[raw].tolist() == ours, names
    assert set(np.unique(lut[1:])) == set(range(1, 14))  # every class reachable, none void


def test_nyu_reads_camera_layout_mapping_and_depth(tmp_path):
    path, images, *_ = make_nyu(tmp_path)
    ds = NYUv2(path, relight=False)
    assert len(ds) == NYU_N
    sample = ds[2]
    assert sample.name == "nyuv2_0003"
    np.testing.assert_array_equal(sample.normal, images[2])
    assert tuple(sample.normal[0, -1]) == (255, 0, 0)
    np.testing.assert_array_equal(sample.low, sample.normal)
    assert sample.label.dtype == np.uint8 and sample.label.shape == (NYU_H, NYU_W)
    assert sample.label[1, :13].tolist() == [
        12,
        5,
        3,
        4,
        10,
        6,
        2,
        8,
        1,
        9,
        13,
        7,
        int(load_nyu13_lut()[894]),
    ]
    assert sample.label[-1, -1] == 12 and sample.label[0, 0] == 0
    assert sample.depth.dtype == np.uint16
    assert sample.depth[0, :5].tolist() == [1500, 0, 0, 65535, 1234]
    assert sample.depth[5, 5] == 2000
    assert sample.intrinsics == NYU_INTRINSICS.scaled(NYU_W, NYU_H)
    assert NYU_INTRINSICS.fx == pytest.approx(518.857901)


def test_nyu_splits_indices_and_errors(tmp_path):
    path, *_ = make_nyu(tmp_path)
    with pytest.raises(DatasetError, match=r"splits\.mat does not exist"):
        NYUv2(path, "train", relight=False)
    (tmp_path / "splits.mat").write_bytes(SPLITS_V5)
    assert read_nyu_splits(tmp_path / "splits.mat")["test"].tolist() == [3, 1]
    train = NYUv2(path, "train", relight=False)
    assert [s.name for s in train] == ["nyuv2_0003", "nyuv2_0001", "nyuv2_0005"]
    assert len(NYUv2(path, "test", relight=False)) == 2
    (tmp_path / "mine.yaml").write_text("train: [6]\ntest: [1, 2]\n")
    assert (
        NYUv2(path, "train", splits_path=tmp_path / "mine.yaml", relight=False)[0].name
        == "nyuv2_0006"
    )
    assert [s.name for s in NYUv2(path, indices=[5, 0], relight=False)] == [
        "nyuv2_0006",
        "nyuv2_0001",
    ]
    with pytest.raises(DatasetError, match=r"indices must be in 0\.\.5"):
        NYUv2(path, indices=[6], relight=False)
    with pytest.raises(DatasetError, match="unknown NYUv2 split"):
        NYUv2(path, "val", relight=False)
    with pytest.raises(DatasetError, match="does not exist"):
        NYUv2(tmp_path / "missing.mat", relight=False)


def test_nyu_survives_pickling_and_resizes(tmp_path):
    path, *_ = make_nyu(tmp_path)
    ds = open_dataset("nyuv2", path, "all", relight=False, size=(8, 6))
    ds[0]  # opens the HDF5 handle
    copy = pickle.loads(pickle.dumps(ds))  # as a DataLoader worker receives it
    sample = copy[1]
    assert sample.low.shape == (6, 8, 3) and sample.intrinsics.width == 8
    assert set(np.unique(sample.label)) <= set(np.unique(NYUv2(path, relight=False)[1].label))


@pytest.mark.skipif(
    importlib.util.find_spec("lowlight_perception.data.relight") is None,
    reason="lowlight_perception.data.relight not written yet",
)
def test_nyu_relit_twin_is_dark_and_deterministic(tmp_path):
    path, *_ = make_nyu(tmp_path)
    ds = NYUv2(path, relight=True, seed=3)
    a, b = ds[1], ds[1]
    assert a.low.dtype == np.uint8 and a.low.shape == a.normal.shape
    np.testing.assert_array_equal(a.low, b.low)
    assert a.low.mean() < a.normal.mean()


# --------------------------------------------------------------------------- procedural


@pytest.mark.skipif(
    importlib.util.find_spec("lowlight_perception.data.synthetic") is None,
    reason="lowlight_perception.data.synthetic not written yet",
)
def test_procedural_is_deterministic_and_complete():
    ds = ProceduralDataset(3, size=(32, 24), seed=5)
    assert len(ds) == 3
    a, b, other = ds[1], ProceduralDataset(3, size=(32, 24), seed=5)[1], ds[2]
    for field in ("low", "normal", "label", "depth", "albedo", "shading_low", "shading_normal"):
        assert getattr(a, field) is not None and getattr(a, field).shape[:2] == (24, 32)
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.normal, other.normal)
    assert a.intrinsics == Intrinsics.d435i(32, 24)
    assert a.label.max() < 14
    with pytest.raises(IndexError):
        ds[3]
    val = open_dataset("procedural", None, "val", num_views=2, size=(32, 24), seed=5)
    assert not np.array_equal(val[1].normal, a.normal)


def test_data_modules_import_without_torch_or_h5py():
    code = (
        "import sys, lowlight_perception.data.datasets, lowlight_perception.data.transforms;"
        "bad = {'torch', 'h5py'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
