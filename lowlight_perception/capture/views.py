"""From a pose's camera frames to one paired low-/normal-light view, written in the layout the
dataset readers take (``data.layout``: ``{split}_rgb_l/``, ``{split}_rgb_h/``, ``{split}_depth/``,
an empty ``{split}_lbl/`` for the labels, ``intrinsics.yaml``) plus ``capture.yaml``, the record
of what the camera did (device, settings, exposure and gain metadata, frames used).

Independent of pyrealsense2: ``capture.realsense`` turns a camera, a recording or a software
device into :class:`RgbdFrame` lists; everything here is plain numpy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .. import atomic
from ..camera import Intrinsics
from ..data import layout
from ..data.imageio import write_png
from ..errors import DatasetError
from .geometry import StreamGeometry, align_depth_to_color

CAPTURE_FILE = "capture.yaml"
"""The capture record at the dataset root, beside ``intrinsics.yaml``."""


@dataclass
class RgbdFrame:
    """One colour frame and the depth frame paired with it, as the camera gave them.

    ``color`` (H, W, 3) uint8 RGB; ``depth`` raw z16 in the depth sensor's geometry and units;
    ``timestamp_ms`` the colour frame's; ``exposure`` / ``gain`` the colour frame's
    ``actual_exposure`` / ``gain_level`` metadata when the camera reports them.
    """

    color: np.ndarray
    depth: np.ndarray
    number: int
    timestamp_ms: float
    exposure: float | None = None
    gain: float | None = None


def pair_by_timestamp(
    colors: list[tuple[float, int, np.ndarray, dict]],
    depths: list[tuple[float, int, np.ndarray]],
    max_gap_ms: float,
) -> list[RgbdFrame]:
    """Each colour frame (timestamp, number, rgb, metadata) with the depth frame nearest in time,
    if within ``max_gap_ms``; a depth frame pairs at most once, colour frames without a partner
    are dropped. Order: colour timestamps."""
    if not colors or not depths:
        return []
    d_times = np.array([t for t, _, _ in depths])
    used: set[int] = set()
    pairs = []
    for t, number, rgb, meta in sorted(colors, key=lambda c: c[0]):
        k = int(np.argmin(np.abs(d_times - t)))
        if abs(d_times[k] - t) > max_gap_ms or k in used:
            continue
        used.add(k)
        pairs.append(
            RgbdFrame(rgb, depths[k][2], number, t, meta.get("exposure"), meta.get("gain"))
        )
    return pairs


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the 2x2-binned luminance: higher is sharper. Binning first
    keeps a dark frame's pixel noise from outweighing the blur of a moving camera."""
    y = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    h, w = (y.shape[0] // 2) * 2, (y.shape[1] // 2) * 2
    y = y[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    lap = 4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]
    return float(lap.var())


@dataclass
class CapturedView:
    """One pose: the low-light frame kept, the averaged normal-light frame, the median depth
    (registered to colour, mm) and the record of how they were made."""

    low: np.ndarray
    normal: np.ndarray
    depth_mm: np.ndarray
    record: dict[str, Any] = field(default_factory=dict)


def _frame_record(frames: list[RgbdFrame], kept: int | None = None) -> dict[str, Any]:
    def values(attr: str) -> list[float] | None:
        got = [getattr(f, attr) for f in frames]
        return (
            None if all(v is None for v in got) else [None if v is None else float(v) for v in got]
        )

    record: dict[str, Any] = {"frames": [f.number for f in frames]}
    if kept is not None:
        record["kept"] = frames[kept].number
    for attr in ("exposure", "gain"):
        if (got := values(attr)) is not None:
            record[attr] = got if kept is None else got[kept]
    return record


def reduce_pose(
    low: list[RgbdFrame], normal: list[RgbdFrame], geometry: StreamGeometry
) -> CapturedView:
    """One view from the bursts of one pose.

    * low light: the sharpest single frame, unaveraged: its noise is what the robot's camera
      gives the network at run time;
    * normal light: the mean of the burst (a static pose; less noise in the restoration target);
    * depth: registered to colour per frame (librealsense's align rule), then per pixel the
      median of the frames that measured it, 0 (invalid) where fewer than half did.

    Raises:
        DatasetError: on an empty burst or frames of different sizes.
    """
    if not low or not normal:
        raise DatasetError(
            f"a pose needs frames in both lightings, got {len(low)} low and {len(normal)} normal"
        )
    shape = low[0].color.shape
    if any(f.color.shape != shape for f in low + normal):
        raise DatasetError("the frames of one pose differ in size")
    kept = int(np.argmax([sharpness(f.color) for f in low]))
    mean = np.mean([f.color.astype(np.float32) for f in normal], axis=0)
    aligned = np.stack([align_depth_to_color(f.depth, geometry) for f in low + normal])
    flat = aligned.reshape(len(aligned), -1)
    measured = np.nonzero((flat > 0).sum(axis=0) * 2 >= len(flat))[0]  # by half the frames
    samples = flat[:, measured].astype(np.float32)
    depth_raw = np.zeros(flat.shape[1], np.uint16)
    depth_raw[measured] = np.rint(np.nanmedian(np.where(samples > 0, samples, np.nan), axis=0))
    depth_raw = depth_raw.reshape(aligned.shape[1:])
    return CapturedView(
        low=low[kept].color,
        normal=np.clip(np.rint(mean), 0, 255).astype(np.uint8),
        depth_mm=layout.depth_to_mm(depth_raw, geometry.depth_units),
        record={"low": _frame_record(low, kept), "normal": _frame_record(normal)},
    )


class CaptureWriter:
    """Writes views into a dataset directory without ever replacing one: a new capture into an
    existing directory continues its numbering, and must come from a camera of the same
    intrinsics (one dataset, one camera)."""

    def __init__(
        self,
        root: str | Path,
        split: str,
        geometry: StreamGeometry,
        session: dict[str, Any],
        prefix: str = "pose",
    ) -> None:
        if split not in layout.SPLITS:
            raise DatasetError(f"split must be one of {', '.join(layout.SPLITS)}, got {split!r}")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", prefix):
            raise DatasetError(f"name prefix {prefix!r}: use letters, digits, '_', '.', '-'")
        self.root, self.split, self.prefix = Path(root), split, prefix
        self.intrinsics: Intrinsics = geometry.color
        self._check_camera()
        self.record_path = self.root / CAPTURE_FILE
        self.record = {"sessions": []}
        if self.record_path.is_file():
            self.record = yaml.safe_load(self.record_path.read_text(encoding="utf-8")) or {}
            self.record.setdefault("sessions", [])
        self.session = {**session, "split": split, "views": []}
        self.record["sessions"].append(self.session)
        low_dir = self.root / layout.directory(split, layout.LOW)
        taken = [p.stem for p in low_dir.glob(f"{prefix}_*.png")] if low_dir.is_dir() else []
        pattern = re.compile(rf"{re.escape(prefix)}_(\d+)")
        numbers = [int(m.group(1)) for stem in taken if (m := pattern.fullmatch(stem))]
        self.next_index = max(numbers, default=-1) + 1

    def _check_camera(self) -> None:
        meta = self.root / layout.META_FILE
        if meta.is_file():
            existing = Intrinsics.from_dict(yaml.safe_load(meta.read_text(encoding="utf-8")))
            mine = self.intrinsics.to_dict()
            if any(abs(existing.to_dict()[k] - mine[k]) > 1e-3 for k in mine):
                raise DatasetError(
                    f"{meta} holds another camera ({existing.width}x{existing.height}, "
                    f"fx {existing.fx:.2f}) than this capture ({self.intrinsics.width}x"
                    f"{self.intrinsics.height}, fx {self.intrinsics.fx:.2f}): capture into a new "
                    "--out"
                )

    def write(self, view: CapturedView) -> str:
        """Write one view; returns its name (the file stem in every directory). A view is
        written whole or not at all: an error or Ctrl-C mid-way removes its files, so the
        dataset stays readable and the next view takes the same name."""
        name = f"{self.prefix}_{self.next_index:04d}"
        files = [
            (self.root / layout.directory(self.split, kind) / f"{name}.png", array)
            for kind, array in (
                (layout.LOW, view.low),
                (layout.NORMAL, view.normal),
                (layout.DEPTH, view.depth_mm),
            )
        ]
        try:
            for path, array in files:
                write_png(path, array)
        except BaseException:
            for path, _ in files:
                path.unlink(missing_ok=True)
            raise
        self.next_index += 1
        (self.root / layout.directory(self.split, layout.LABEL)).mkdir(parents=True, exist_ok=True)
        meta = {
            **self.intrinsics.to_dict(),
            "depth_scale": layout.DEPTH_SCALE,
            "shading_scale": layout.SHADING_SCALE,
        }
        atomic.write_text(self.root / layout.META_FILE, yaml.safe_dump(meta, sort_keys=False))
        self.session["views"].append({"name": name, **view.record})
        atomic.write_text(self.record_path, yaml.safe_dump(self.record, sort_keys=False))
        return name
