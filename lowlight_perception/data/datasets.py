"""Map-style datasets over every source the project trains or evaluates on.

Each source yields the same :class:`~lowlight_perception.data.sample.Sample`, so training,
evaluation and the tools never branch on where a view came from:

* :class:`LLRGBDReal` - the LLRGBD-real layout (``train_rgb_l/``, ``train_rgb_h/``,
  ``train_lbl/``, ``val_*``), which our procedural generator also writes, with its optional
  ground truth (depth, albedo, shading, ``intrinsics.yaml``).
* :class:`LLRGBDSynthetic` - the LLRGBD-synthetic layout of the original LISU code
  (``selection_{split}2/<scene>/{rgb,label}``, ``selection_{split}_pair2/<scene>/rgb``).
* :class:`NYUv2` - the labelled NYU Depth v2 ``.mat`` file, mapped to our 13 classes, with a
  relit low-light twin of every view.
* :class:`ProceduralDataset` - views rendered on the fly by ``data.synthetic``.

Datasets are torch-DataLoader compatible by duck typing (``__len__``, ``__getitem__``); batch
them with :func:`collate`. Files are paired by name (stem), never by listing order, and every
inconsistency is a :class:`~lowlight_perception.errors.DatasetError` naming the file at fault.
Only numpy, Pillow and PyYAML are needed; h5py is imported when an NYUv2 file is opened.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..camera import Intrinsics
from ..classes import load_classes
from ..config import load_yaml
from ..errors import ConfigError, DatasetError
from . import layout
from .imageio import read_label, read_rgb, read_uint16
from .mat5 import read_mat5
from .sample import Sample
from .transforms import ARRAY_FIELDS, resize_sample

Transform = Callable[[Sample], Sample]
Size = tuple[int, int]

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg")
LABEL_EXTENSIONS: tuple[str, ...] = (".png",)
DEFAULT_SHADING_SCALE = layout.SHADING_SCALE
"""Shading PNG value per unit shading, when ``intrinsics.yaml`` does not say."""
DEFAULT_DEPTH_SCALE = layout.DEPTH_SCALE
"""Metres per depth PNG unit (millimetres), when ``intrinsics.yaml`` does not say."""

NYU_INTRINSICS = Intrinsics(640, 480, 518.857901, 519.469611, 325.582449, 253.736166)
"""Kinect colour camera of NYU Depth v2 (Silberman et al. toolbox ``camera_params.m``)."""
NYU_MAPPING_FILE = "config/nyuv2_13_classes.yaml"


# --------------------------------------------------------------------------- shared helpers


def _natural_key(text: str) -> list:
    """Sort key so that ``img2`` comes before ``img10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _index_dir(directory: Path, extensions: Sequence[str]) -> dict[str, Path]:
    """Files of ``directory`` with one of ``extensions``, keyed by stem.

    Raises:
        DatasetError: if two files share a stem (``a.png`` and ``a.jpg``): pairing would be
            ambiguous.
    """
    files: dict[str, Path] = {}
    for path in directory.iterdir():
        if path.suffix.lower() not in extensions or not path.is_file():
            continue
        if path.stem in files:
            raise DatasetError(f"ambiguous pairing: {files[path.stem]} and {path} share a name")
        files[path.stem] = path
    return files


def _pair(
    reference: tuple[str, dict[Any, Path]],
    partners: Iterable[tuple[str, dict[Any, Path], Callable[[Any], Path]]],
) -> list:
    """Keys present in the reference group and in every partner group, naturally sorted.

    ``reference`` is (description, files by key); each partner is (description, files by key,
    a function giving the path a missing partner was expected at). Pairing is by key (stem, or
    (scene, stem)); the listing order of a directory never matters.

    Raises:
        DatasetError: naming the first file without its partner, and how many more are unpaired.
    """
    ref_name, ref_files = reference

    def order(keys: Iterable) -> list:
        return sorted(keys, key=lambda k: _natural_key("/".join(k) if isinstance(k, tuple) else k))

    for name, files, expected in partners:
        missing = order(set(ref_files) - set(files))
        if missing:
            more = f" ({len(missing) - 1} more unpaired)" if len(missing) > 1 else ""
            raise DatasetError(
                f"{ref_files[missing[0]]} has no {name} partner: expected "
                f"{expected(missing[0])}{more}"
            )
        orphans = order(set(files) - set(ref_files))
        if orphans:
            more = f" ({len(orphans) - 1} more unpaired)" if len(orphans) > 1 else ""
            raise DatasetError(
                f"{files[orphans[0]]} has no {ref_name} partner with the same name{more}"
            )
    return order(ref_files)


def _check_same_size(reference: tuple[Path, np.ndarray], others: Iterable) -> None:
    """Every (path, array) in ``others`` must have the reference's height and width.

    Raises:
        DatasetError: naming both files and both sizes.
    """
    ref_path, ref = reference
    for path, array in others:
        if array is not None and array.shape[:2] != ref.shape[:2]:
            raise DatasetError(
                f"size mismatch: {ref_path} is {ref.shape[1]}x{ref.shape[0]} but {path} is "
                f"{array.shape[1]}x{array.shape[0]}"
            )


def _index_error(index: int, length: int) -> int:
    """``index`` made non-negative, or IndexError (which also ends plain iteration)."""
    if not -length <= index < length:
        raise IndexError(f"index {index} out of range for a dataset of {length} views")
    return index % length


class _Dataset:
    """Shared ``size=`` / ``transform`` handling: resize first, then the user's transform."""

    def __init__(self, size: Size | None, transform: Transform | None) -> None:
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.transform = transform

    def _finish(self, sample: Sample) -> Sample:
        if self.size is not None:
            sample = resize_sample(sample, self.size)
        if self.transform is not None:
            sample = self.transform(sample)
        return sample

    def __len__(self) -> int:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def __iter__(self):
        for index in range(len(self)):
            yield self[index]

    def __getitem__(self, index: int) -> Sample:  # pragma: no cover
        raise NotImplementedError


# --------------------------------------------------------------------------- LLRGBD real


class LLRGBDReal(_Dataset):
    """LLRGBD-real layout, also written by our procedural generator.

    ``{split}_rgb_l/`` (low light), ``{split}_rgb_h/`` (normal light) and ``{split}_lbl/``
    (class-id PNGs) are required and paired by file stem; an empty ``{split}_lbl/`` (a capture
    not labelled yet) gives ``label`` None for every view. When present, ``{split}_depth/``
    (uint16 mm), ``{split}_albedo/`` (RGB), ``{split}_shading_l/`` and ``{split}_shading_h/``
    (uint16, value = shading x ``shading_scale``) fill the optional fields, and
    ``intrinsics.yaml`` at the root (width, height, fx, fy, cx, cy, shading_scale,
    depth_scale) gives the camera. An optional directory must hold a file for every view.

    ``split`` is ``train``, ``val`` or ``test``; LLRGBD-real has no ``test_*`` directories and
    evaluates on ``val``, so ``test`` reads ``val_*`` unless ``test_*`` exist.
    """

    REQUIRED = (("low", layout.LOW), ("normal", layout.NORMAL), ("label", layout.LABEL))
    OPTIONAL = (
        ("depth", layout.DEPTH),
        ("albedo", layout.ALBEDO),
        ("shading_low", layout.SHADING_LOW),
        ("shading_normal", layout.SHADING_NORMAL),
    )

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        *,
        size: Size | None = None,
        transform: Transform | None = None,
    ) -> None:
        super().__init__(size, transform)
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"LLRGBD root {self.root} does not exist or is not a directory")
        if split not in ("train", "val", "test"):
            raise DatasetError(f"unknown LLRGBD split {split!r}; valid: train, val, test")
        prefix = split
        if split == "test" and not (self.root / "test_rgb_l").is_dir():
            prefix = "val"
        self.split = split
        self.dirs: dict[str, Path] = {}
        for field, suffix in self.REQUIRED:
            directory = self.root / layout.directory(prefix, suffix)
            if not directory.is_dir():
                raise DatasetError(f"LLRGBD {split}: missing directory {directory}")
            self.dirs[field] = directory
        for field, suffix in self.OPTIONAL:
            directory = self.root / layout.directory(prefix, suffix)
            if directory.is_dir():
                self.dirs[field] = directory

        colour = ("low", "normal", "albedo")
        files = {
            field: _index_dir(d, IMAGE_EXTENSIONS if field in colour else LABEL_EXTENSIONS)
            for field, d in self.dirs.items()
        }
        if not files["low"]:
            raise DatasetError(f"LLRGBD {split}: no images in {self.dirs['low']}")
        low = files["low"]

        def beside(field: str, ext: str | None = None) -> Callable[[str], Path]:
            return lambda stem: self.dirs[field] / f"{stem}{ext or low[stem].suffix}"

        # an empty label directory is an unlabelled capture (``lowlight capture``): label None
        self.labelled = bool(files["label"])
        if not self.labelled:
            del files["label"]
        self.stems: list[str] = _pair(
            ("low-light", low),
            [
                ("normal-light", files["normal"], beside("normal")),
                *([("label", files["label"], beside("label", ".png"))] if self.labelled else []),
            ],
        )
        # Optional ground truth: every view needs one; files of other names are ignored.
        for field, _ in self.OPTIONAL:
            if field in files:
                subset = {stem: path for stem, path in files[field].items() if stem in low}
                _pair(("low-light", low), [(field, subset, beside(field, ".png"))])
        self.files = files

        self.shading_scale = DEFAULT_SHADING_SCALE
        self.depth_scale = DEFAULT_DEPTH_SCALE
        self.intrinsics: Intrinsics | None = None
        meta_path = self.root / layout.META_FILE
        if meta_path.is_file():
            meta = load_yaml(meta_path.resolve())
            try:
                self.intrinsics = Intrinsics.from_dict(meta)
                self.shading_scale = float(meta.get("shading_scale", DEFAULT_SHADING_SCALE))
                self.depth_scale = float(meta.get("depth_scale", DEFAULT_DEPTH_SCALE))
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                raise DatasetError(f"{meta_path}: malformed intrinsics ({err!r})") from err
            if self.shading_scale <= 0 or self.depth_scale <= 0:
                raise DatasetError(f"{meta_path}: shading_scale and depth_scale must be > 0")

    def __len__(self) -> int:
        return len(self.stems)

    def __getitem__(self, index: int) -> Sample:
        stem = self.stems[_index_error(index, len(self))]
        paths = {field: self.files[field][stem] for field in self.files}
        arrays: dict[str, np.ndarray | None] = {
            "low": read_rgb(paths["low"]),
            "normal": read_rgb(paths["normal"]),
            "label": read_label(paths["label"]) if self.labelled else None,
        }
        if "depth" in paths:
            arrays["depth"] = layout.depth_to_mm(read_uint16(paths["depth"]), self.depth_scale)
        if "albedo" in paths:
            arrays["albedo"] = read_rgb(paths["albedo"])
        for field in ("shading_low", "shading_normal"):
            if field in paths:
                raw = read_uint16(paths[field]).astype(np.float32)
                arrays[field] = raw / np.float32(self.shading_scale)
        _check_same_size(
            (paths["low"], arrays["low"]),
            ((paths[f], arrays[f]) for f in arrays if f != "low" and arrays[f] is not None),
        )
        height, width = arrays["low"].shape[:2]
        intrinsics = self.intrinsics
        if intrinsics is not None and (intrinsics.width, intrinsics.height) != (width, height):
            intrinsics = intrinsics.scaled(width, height)
        return self._finish(Sample(name=stem, intrinsics=intrinsics, **arrays))


# --------------------------------------------------------------------------- LLRGBD synthetic


class LLRGBDSynthetic(_Dataset):
    """LLRGBD-synthetic layout of the original LISU code.

    Low light ``selection_{split}2/<scene>/rgb/*``, normal light
    ``selection_{split}_pair2/<scene>/rgb/*``, labels ``selection_{split}2/<scene>/label/*.png``;
    views are paired by (scene, stem) and named ``<scene>/<stem>``. Images may be .jpg or .png.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        *,
        size: Size | None = None,
        transform: Transform | None = None,
    ) -> None:
        super().__init__(size, transform)
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(
                f"LLRGBD-synthetic root {self.root} does not exist or is not a directory"
            )
        self.split = split
        low_root = self.root / f"selection_{split}2"
        normal_root = self.root / f"selection_{split}_pair2"
        for directory in (low_root, normal_root):
            if not directory.is_dir():
                found = sorted(p.name for p in self.root.glob("selection_*") if p.is_dir())
                raise DatasetError(
                    f"LLRGBD-synthetic {split}: missing directory {directory} "
                    f"(found: {', '.join(found) or 'none'})"
                )
        low: dict[tuple[str, str], Path] = {}
        normal: dict[tuple[str, str], Path] = {}
        label: dict[tuple[str, str], Path] = {}
        for group, base, sub, exts in (
            (low, low_root, "rgb", IMAGE_EXTENSIONS),
            (label, low_root, "label", LABEL_EXTENSIONS),
            (normal, normal_root, "rgb", IMAGE_EXTENSIONS),
        ):
            for scene_dir in sorted(p for p in base.iterdir() if p.is_dir()):
                directory = scene_dir / sub
                if directory.is_dir():
                    for stem, path in _index_dir(directory, exts).items():
                        group[(scene_dir.name, stem)] = path
        if not low:
            raise DatasetError(f"LLRGBD-synthetic {split}: no images under {low_root}/*/rgb/")
        self.keys: list[tuple[str, str]] = _pair(
            ("low-light", low),
            [
                (
                    "normal-light",
                    normal,
                    lambda k: normal_root / k[0] / "rgb" / f"{k[1]}{low[k].suffix}",
                ),
                ("label", label, lambda k: low_root / k[0] / "label" / f"{k[1]}.png"),
            ],
        )
        self.files = {"low": low, "normal": normal, "label": label}

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> Sample:
        key = self.keys[_index_error(index, len(self))]
        paths = {field: files[key] for field, files in self.files.items()}
        low = read_rgb(paths["low"])
        normal = read_rgb(paths["normal"])
        label = read_label(paths["label"])
        _check_same_size((paths["low"], low), [(paths["normal"], normal), (paths["label"], label)])
        return self._finish(Sample(name="/".join(key), low=low, normal=normal, label=label))


# --------------------------------------------------------------------------- NYU Depth v2


def load_nyu13_lut(path: str | os.PathLike = NYU_MAPPING_FILE) -> np.ndarray:
    """Look-up table (895,) uint8: raw NYUv2 label 0..894 -> our class id (0 = void).

    Composes the published 894->40 and 40->13 tables of ``config/nyuv2_13_classes.yaml`` and
    maps the 13 source class names to ``config/classes.yaml`` by name, so a reordered class
    list can never silently permute the labels.

    Raises:
        ConfigError: if the table is malformed or a class name is not one of ours.
    """
    return _nyu13_lut(str(path)).copy()


@lru_cache(maxsize=4)
def _nyu13_lut(path: str) -> np.ndarray:
    doc = load_yaml(path)
    try:
        to40 = np.asarray(doc["nyu894_to_nyu40"], dtype=np.int64)
        to13 = np.asarray(doc["nyu40_to_nyu13"], dtype=np.int64)
        names13 = [str(n) for n in doc["nyu13_names"]]
        aliases = {str(k): str(v) for k, v in (doc.get("aliases") or {}).items()}
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"{path}: malformed NYUv2 mapping ({err!r})") from err
    if to40.shape != (894,) or to40.min() < 1 or to40.max() > 40:
        raise ConfigError(f"{path}: nyu894_to_nyu40 must be 894 ids in 1..40")
    if to13.shape != (40,) or to13.min() < 1 or to13.max() > len(names13):
        raise ConfigError(f"{path}: nyu40_to_nyu13 must be 40 ids in 1..{len(names13)}")
    classes = load_classes()
    try:
        ours = np.array([0] + [classes.index(aliases.get(n, n)) for n in names13], np.int64)
    except KeyError as err:
        raise ConfigError(f"{path}: {err.args[0]}") from None
    lut = np.zeros(895, dtype=np.uint8)
    lut[1:] = ours[to13[to40 - 1]]
    lut.setflags(write=False)
    return lut


def read_nyu_splits(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The standard NYUv2 795/654 split as 0-based indices: ``{"train": ..., "test": ...}``.

    Reads the toolbox's ``splits.mat`` (``trainNdxs``/``testNdxs``, 1-based; MATLAB v5 or
    v7.3), or a YAML file ``{train: [...], test: [...]}`` of 1-based indices.

    Raises:
        DatasetError: if the file is missing or holds no such variables.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"NYUv2 split file {path} does not exist")
    keys = ("trainNdxs", "testNdxs")
    head = path.read_bytes()[:520]
    if path.suffix.lower() in (".yaml", ".yml"):
        doc = load_yaml(path.resolve())
        doc = doc if isinstance(doc, dict) else {}
        arrays = {"trainNdxs": doc.get("train"), "testNdxs": doc.get("test")}
    elif head.startswith(b"\x89HDF") or head[512:516] == b"\x89HDF":  # MATLAB v7.3
        import h5py

        with h5py.File(path, "r") as handle:
            arrays = {key: np.asarray(handle[key]) for key in keys if key in handle}
    else:
        arrays = read_mat5(path)
    splits = {}
    for split, key in zip(("train", "test"), keys, strict=True):
        if arrays.get(key) is None:
            raise DatasetError(f"{path} has no {key} (expected the NYUv2 toolbox splits.mat)")
        splits[split] = np.asarray(arrays[key]).astype(np.int64).ravel() - 1
    return splits


class NYUv2(_Dataset):
    """The labelled NYU Depth v2 set (``nyu_depth_v2_labeled.mat``), in our 13 classes.

    The file is MATLAB v7.3 (HDF5) and stores arrays column-major: h5py sees ``images`` as
    (N, 3, W, H), ``depths`` (N, W, H) metres and ``labels`` (N, W, H) with 0 = unlabelled and
    1..894 = NYU classes; each view is transposed to camera layout. Labels go through
    :func:`load_nyu13_lut`, depth becomes uint16 mm (0 where invalid), intrinsics are the
    Kinect colour camera's (scaled if the file's images are not 640x480).

    NYUv2 has no dark twin, so with ``relight=True`` the low-light view is rendered from the
    normal view and its depth by ``data.relight.relight`` (seeded per view from ``seed`` and
    the index, so a view is identical in every epoch and worker); with ``relight=False``
    ``low`` is the normal-light image.

    Args:
        mat_path: path of ``nyu_depth_v2_labeled.mat``.
        split: ``all`` (1449 views), or ``train`` / ``test`` (the standard 795 / 654 split, read
            by :func:`read_nyu_splits` from ``splits_path``, default ``splits.mat`` next to
            ``mat_path``).
        indices: explicit 0-based view indices; overrides ``split``.
    """

    def __init__(
        self,
        mat_path: str | os.PathLike,
        split: str = "all",
        *,
        splits_path: str | os.PathLike | None = None,
        indices: Sequence[int] | None = None,
        relight: bool = True,
        seed: int = 0,
        size: Size | None = None,
        transform: Transform | None = None,
        mapping: str | os.PathLike = NYU_MAPPING_FILE,
    ) -> None:
        super().__init__(size, transform)
        self.mat_path = Path(mat_path)
        if not self.mat_path.is_file():
            raise DatasetError(f"NYUv2 file {self.mat_path} does not exist")
        self.split, self.relight, self.seed = split, bool(relight), int(seed)
        self._relight = None
        if self.relight:  # imported here so that a missing renderer fails at construction
            from .relight import relight as relight_fn

            self._relight = relight_fn
        self.lut = load_nyu13_lut(mapping)
        self._handle = None
        self._pid: int | None = None
        handle = self._file()
        try:
            shapes = {k: handle[k].shape for k in ("images", "depths", "labels")}
        except KeyError as err:
            raise DatasetError(f"{self.mat_path} has no {err.args[0]} dataset") from None
        count, channels, width, height = shapes["images"]
        if (
            channels != 3
            or shapes["depths"] != (count, width, height)
            or shapes["labels"] != (count, width, height)
        ):
            raise DatasetError(f"{self.mat_path}: unexpected dataset shapes {shapes}")
        self.count, self.width, self.height = count, width, height
        if indices is not None:
            chosen = np.asarray(list(indices), dtype=np.int64)
        elif split == "all":
            chosen = np.arange(count, dtype=np.int64)
        elif split in ("train", "test"):
            chosen = read_nyu_splits(splits_path or self.mat_path.with_name("splits.mat"))[split]
        else:
            raise DatasetError(f"unknown NYUv2 split {split!r}; valid: all, train, test")
        if chosen.size and (chosen.min() < 0 or chosen.max() >= count):
            raise DatasetError(f"NYUv2 indices must be in 0..{count - 1}")
        self.indices = chosen
        self.intrinsics = NYU_INTRINSICS.scaled(width, height)

    def _file(self):
        """The HDF5 handle, opened lazily and once per process (DataLoader workers fork)."""
        if self._handle is None or self._pid != os.getpid():
            import h5py

            try:
                self._handle = h5py.File(self.mat_path, "r")
            except OSError as err:
                raise DatasetError(
                    f"cannot open {self.mat_path} as MATLAB v7.3/HDF5: {err}"
                ) from err
            self._pid = os.getpid()
        return self._handle

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handle"], state["_pid"] = None, None
        return state

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Sample:
        view = int(self.indices[_index_error(index, len(self))])
        handle = self._file()
        normal = np.ascontiguousarray(np.asarray(handle["images"][view]).transpose(2, 1, 0))
        depth_m = np.asarray(handle["depths"][view], dtype=np.float64).T
        raw = np.asarray(handle["labels"][view]).T
        valid = np.isfinite(depth_m) & (depth_m > 0)
        depth = np.where(valid, np.rint(np.clip(depth_m, 0, 65.535) * 1000.0), 0).astype(np.uint16)
        raw = raw.astype(np.int64)
        label = np.where(raw <= 894, self.lut[np.clip(raw, 0, 894)], 0).astype(np.uint8)
        if self._relight is not None:
            view_seed = int(np.random.SeedSequence([self.seed, view]).generate_state(1)[0])
            low = self._relight(normal, depth, self.intrinsics, seed=view_seed)
        else:
            low = normal
        sample = Sample(
            name=f"nyuv2_{view + 1:04d}",
            low=low,
            normal=normal,
            label=label,
            depth=depth,
            intrinsics=self.intrinsics,
        )
        return self._finish(sample)


# --------------------------------------------------------------------------- procedural


class ProceduralDataset(_Dataset):
    """``num_views`` procedural views rendered on demand by ``data.synthetic.random_view``.

    Nothing is stored: view ``i`` is ``random_view(seed, i, intrinsics)``, identical in every
    epoch and worker, with full ground truth (depth, albedo, shading) and D435i-like intrinsics
    at ``size`` = (width, height).
    """

    def __init__(
        self,
        num_views: int,
        size: Size = (320, 240),
        seed: int = 0,
        *,
        transform: Transform | None = None,
    ) -> None:
        super().__init__(None, transform)
        if num_views < 0:
            raise ValueError(f"num_views must be >= 0, got {num_views}")
        from .synthetic import random_view

        self._render = random_view
        self.num_views, self.seed = int(num_views), int(seed)
        self.intrinsics = Intrinsics.d435i(int(size[0]), int(size[1]))

    def __len__(self) -> int:
        return self.num_views

    def __getitem__(self, index: int) -> Sample:
        index = _index_error(index, len(self))
        return self._finish(self._render(self.seed, index, self.intrinsics))


# --------------------------------------------------------------------------- registry


def _open_procedural(path: Any, split: str, **options: Any) -> ProceduralDataset:
    offsets = {"train": 0, "val": 1_000_000, "test": 2_000_000}
    if split not in offsets:
        raise DatasetError(f"unknown procedural split {split!r}; valid: {', '.join(offsets)}")
    # Disjoint seed streams so val/test views never repeat training views.
    options["seed"] = int(options.get("seed", 0)) + offsets[split]
    options.setdefault("num_views", 1000)
    return ProceduralDataset(**options)


def _needs_path(factory: Callable[..., _Dataset]) -> Callable[..., _Dataset]:
    def open_with_path(path: Any, split: str, **options: Any) -> _Dataset:
        if path is None:
            raise DatasetError(f"{factory.__name__} needs a dataset path")
        return factory(path, split, **options)

    return open_with_path


DATASETS: dict[str, Callable[..., _Dataset]] = {
    "llrgbd-real": _needs_path(LLRGBDReal),
    "llrgbd-synthetic": _needs_path(LLRGBDSynthetic),
    "nyuv2": _needs_path(NYUv2),
    "procedural": _open_procedural,
}
"""Dataset kinds by the name the CLI and configs use."""


def open_dataset(
    kind: str, path: str | os.PathLike | None = None, split: str = "train", **options: Any
) -> _Dataset:
    """Open a dataset by kind name, so tools and configs select sources with a string.

    ``options`` go to the class (``size``, ``transform``, ``relight``, ``seed``,
    ``num_views``...). ``procedural`` ignores ``path`` and gives each split its own seed stream.

    Raises:
        DatasetError: for an unknown kind (listing the valid ones) or a missing path.
    """
    try:
        factory = DATASETS[kind]
    except KeyError:
        raise DatasetError(f"unknown dataset kind {kind!r}; valid: {', '.join(DATASETS)}") from None
    return factory(path, split, **options)


def collate(samples: Sequence[Sample]) -> dict[str, Any]:
    """Batch samples for a DataLoader (``collate_fn=collate``): numpy arrays stacked on a new
    first axis, ``name`` and ``intrinsics`` as lists.

    A field is None in the batch unless every sample has it, so a batch never mixes views with
    and without ground truth silently.

    Raises:
        DatasetError: if the samples differ in size (resize or crop them first).
    """
    if not samples:
        raise DatasetError("cannot collate an empty batch")
    sizes = {s.size for s in samples}
    if len(sizes) > 1:
        raise DatasetError(f"cannot batch views of different sizes {sorted(sizes)}; resize first")
    batch: dict[str, Any] = {
        "name": [s.name for s in samples],
        "intrinsics": [s.intrinsics for s in samples],
    }
    for field in ARRAY_FIELDS:
        arrays = [getattr(s, field) for s in samples]
        batch[field] = None if any(a is None for a in arrays) else np.stack(arrays)
    return batch


__all__ = [
    "DATASETS",
    "NYU_INTRINSICS",
    "LLRGBDReal",
    "LLRGBDSynthetic",
    "NYUv2",
    "ProceduralDataset",
    "collate",
    "load_nyu13_lut",
    "open_dataset",
    "read_nyu_splits",
]
