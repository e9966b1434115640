"""Render a procedural low-light RGB-D dataset in the LLRGBD-real layout (``lowlight synth``).

Views render in worker processes (one per core by default) that also encode the PNGs, so the
writer scales with cores; the files of a view are named by room and frame, never by order.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from .. import __version__, atomic
from ..camera import Intrinsics
from ..classes import load_classes
from ..errors import LowlightError
from . import layout
from .imageio import write_png
from .sample import Sample
from .synthetic import LOW_LIGHT_DOMAINS, random_view, sequence_frame


@dataclass(frozen=True)
class ViewTask:
    """One view to render: a random view (room = None) or a frame of a room's sequence."""

    split: str
    index: int
    room: int | None = None
    frame: int = 0
    frames_in_room: int = 0


@dataclass(frozen=True)
class ViewStats:
    split: str
    name: str
    label_hist: np.ndarray
    low_mean: float
    normal_mean: float


def plan_views(
    views: int, *, sequence: bool, frames_per_room: int, val_fraction: float
) -> list[ViewTask]:
    """Assign views to splits. Random views: the last ``val_fraction`` go to val. Sequences:
    whole rooms go to val (the last ones), so no val frame shares a room with training."""
    if views < 1:
        raise LowlightError("views must be at least 1")
    if not 0.0 <= val_fraction < 1.0:
        raise LowlightError("--val-fraction must be in [0, 1)")
    if not sequence:
        n_val = round(views * val_fraction)
        return [ViewTask("val" if i >= views - n_val else "train", i) for i in range(views)]
    if frames_per_room < 1:
        raise LowlightError("--frames-per-room must be at least 1")
    rooms = math.ceil(views / frames_per_room)
    n_val = round(rooms * val_fraction)
    if val_fraction > 0 and rooms >= 2:
        n_val = max(n_val, 1)
    tasks = []
    for i in range(views):
        room, frame = divmod(i, frames_per_room)
        in_room = min(frames_per_room, views - room * frames_per_room)
        split = "val" if room >= rooms - n_val else "train"
        tasks.append(ViewTask(split, i, room, frame, in_room))
    return tasks


def write_view(root: Path, split: str, sample: Sample) -> None:
    """Write one sample's files into the layout (the inverse of the LLRGBD-real reader)."""
    files = {
        layout.LOW: sample.low,
        layout.NORMAL: sample.normal,
        layout.LABEL: sample.label,
        layout.DEPTH: sample.depth,
        layout.ALBEDO: sample.albedo,
        layout.SHADING_LOW: _shading_png(sample.shading_low),
        layout.SHADING_NORMAL: _shading_png(sample.shading_normal),
    }
    for kind, array in files.items():
        if array is not None:
            write_png(root / layout.directory(split, kind) / f"{sample.name}.png", array)


def _shading_png(shading: np.ndarray | None) -> np.ndarray | None:
    if shading is None:
        return None
    return np.clip(np.rint(shading * layout.SHADING_SCALE), 0, 65535).astype(np.uint16)


def _render_and_write(args: tuple[Path, int, Intrinsics, ViewTask, str]) -> ViewStats:
    root, seed, K, task, low_light = args
    low = LOW_LIGHT_DOMAINS[low_light]
    if task.room is None:
        sample = random_view(seed, task.index, K, low=low)
    else:
        sample = sequence_frame(seed, task.room, task.frame, task.frames_in_room, K, low=low)
    write_view(root, task.split, sample)
    hist = np.bincount(sample.label.ravel(), minlength=load_classes().num_classes)
    return ViewStats(
        task.split, sample.name, hist, float(sample.low.mean()), float(sample.normal.mean())
    )


def render_dataset(
    out: Path,
    *,
    views: int,
    size: tuple[int, int],
    seed: int,
    sequence: bool = False,
    frames_per_room: int = 100,
    val_fraction: float = 0.1,
    workers: int | None = None,
    progress: bool = True,
    low_light: str = "led",
) -> list[ViewStats]:
    """Render and write a procedural dataset; returns per-view statistics in view order.
    ``low_light`` names the dark views' settings (``data.synthetic.LOW_LIGHT_DOMAINS``).

    Raises:
        LowlightError: if ``out`` already holds a dataset or cannot be created, or an unknown
            ``low_light``.
    """
    if seed < 0:
        raise LowlightError(f"seed must be a non-negative integer, got {seed}")
    if low_light not in LOW_LIGHT_DOMAINS:
        raise LowlightError(
            f"unknown low-light domain {low_light!r}; valid: {', '.join(LOW_LIGHT_DOMAINS)}"
        )
    out = Path(out)
    if (out / layout.META_FILE).exists():
        raise LowlightError(
            f"{out} already holds a dataset; choose another output directory or delete it"
        )
    if out.exists() and not out.is_dir():
        raise LowlightError(f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    tasks = plan_views(
        views, sequence=sequence, frames_per_room=frames_per_room, val_fraction=val_fraction
    )
    K = Intrinsics.d435i(*size)
    workers = workers or min(os.cpu_count() or 1, len(tasks))
    jobs = [(out, seed, K, task, low_light) for task in tasks]
    bar = tqdm(total=len(jobs), desc="rendering views", unit="view", disable=not progress)
    stats: list[ViewStats] = []
    if workers <= 1:
        iterator: Iterator[ViewStats] = map(_render_and_write, jobs)
        for item in iterator:
            stats.append(item)
            bar.update()
    else:
        # chunks of consecutive frames keep a worker on one room (its setup is cached)
        chunk = max(1, min(16, len(jobs) // (workers * 4)))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for item in pool.map(_render_and_write, jobs, chunksize=chunk):
                stats.append(item)
                bar.update()
    bar.close()
    meta = {
        **K.to_dict(),
        "depth_scale": layout.DEPTH_SCALE,
        "shading_scale": layout.SHADING_SCALE,
        "generator": {
            "name": "lowlight_perception procedural scenes",
            "version": __version__,
            "seed": seed,
            "views": views,
            "sequence": sequence,
            "frames_per_room": frames_per_room if sequence else None,
            "low_light": low_light,
        },
    }
    # written last: its presence marks a complete dataset
    atomic.write_text(out / layout.META_FILE, yaml.safe_dump(meta, sort_keys=False))
    return stats


def summarize(stats: list[ViewStats], seconds: float, out: Path) -> str:
    """Human summary: counts per split, speed, darkness ratio and class coverage."""
    classes = load_classes()
    hist = np.sum([s.label_hist for s in stats], axis=0)
    frac = hist / max(hist.sum(), 1)
    splits = {split: sum(s.split == split for s in stats) for split in layout.SPLITS}
    low = np.mean([s.low_mean for s in stats])
    normal = np.mean([s.normal_mean for s in stats])
    missing = [classes.names[i] for i in range(1, classes.num_classes) if hist[i] == 0]
    lines = [
        f"wrote {len(stats)} views to {out} "
        f"({', '.join(f'{k} {v}' for k, v in splits.items())}) in {seconds:.1f} s "
        f"= {len(stats) / seconds:.1f} views/s",
        f"mean intensity: low {low:.1f}, normal {normal:.1f} (low/normal = {low / normal:.3f})",
        "class pixel share: "
        + ", ".join(f"{classes.names[i]} {100 * frac[i]:.1f}%" for i in range(classes.num_classes)),
    ]
    if missing:
        lines.append(f"classes not seen (render more views): {', '.join(missing)}")
    return "\n".join(lines)
