"""Offline evaluation on bags and datasets: metrics, per-frame log, report, robustness grid.

Why one loop: a model is judged on bags recorded on the drone, on dataset directories, and on
the node's own recorded outputs (``--predictions-topic``); :func:`evaluate` scores all three, so
the modes can differ only by their frames, never by how they are scored. Predictions come from
the one :class:`~lowlight_perception.inference.Segmenter` (the node's code path) or from the bag.

Why incremental: evaluating a long bag takes minutes to hours. Each scored frame is appended to
``per_frame.csv`` at once and ``metrics.json`` is rewritten every few frames (``complete``:
false), so an interrupted run, a bag that breaks off or a crash still leaves the results of what
was read; the final report then says it is incomplete and why.

The robustness grid (:func:`robustness`) follows the degradation benchmark of [Xia] (README,
References): every corruption of :data:`~lowlight_perception.data.degrade.KINDS` at levels
1..4 (the darkness sweep is ``darken``) applied to the colour frame before ``segment()``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..classes import ClassSet, load_classes
from ..data.degrade import DARKNESS_LEVELS, KINDS, LEVELS
from ..data.degrade import degrade as apply_degradation
from ..errors import LowlightError, stop_reason
from ..frame import Frame
from ..inference import FrameError, Result, Segmenter
from ..inference.refine import RefineConfig
from ..latency import p50_p99
from . import report
from .metrics import ConfusionMatrix, SegmentationMetrics
from .restoration import RestorationScores

Degradation = tuple[str, int]
"""(kind, level 1..4) of :func:`~lowlight_perception.data.degrade.degrade`."""

CHECKPOINT_EVERY = 20
"""Frames between rewrites of ``metrics.json`` while an evaluation runs."""

FRAME_FIELDS = ("index", "stamp_ns", "name", "mIoU", "OA", "pixels", "latency_ms")
"""Columns of ``per_frame.csv``."""


class EvalError(LowlightError):
    """An evaluation cannot start: no model nor predictions, both, or a bad option."""


# --------------------------------------------------------------------------- scoring one frame


@dataclass
class Scored:
    """What scoring one frame gave: its confusion counts, prediction and model outputs."""

    counts: ConfusionMatrix
    metrics: SegmentationMetrics
    prediction: np.ndarray
    rgb: np.ndarray
    result: Result | None


def score_frame(
    frame: Any,
    segmenter: Segmenter | None,
    classes: ClassSet,
    degrade: Degradation | None = None,
) -> Scored | str:
    """Predict one frame (Segmenter, or the recorded prediction) and score it.

    The degradation, if any, is seeded by the frame index, so a run is repeatable.

    Args:
        frame: a :class:`~lowlight_perception.frame.Frame`.
        segmenter: the model; None scores ``frame.prediction`` instead.
        classes: the class list (void ignored).
        degrade: (kind, level) applied to the colour frame before ``segment()``.

    Returns:
        A :class:`Scored`, or the reason the frame was skipped (a short string to count).
    """
    if frame.label is None:
        return "no ground truth"
    rgb = frame.rgb
    if degrade is not None:
        rgb = apply_degradation(rgb, degrade[0], degrade[1], seed=int(frame.index))
    result = None
    if segmenter is None:
        result = getattr(frame, "recorded", None)
        prediction = frame.prediction
        if prediction is None:
            return "no recorded prediction"
    else:
        depth = frame.depth_mm if getattr(segmenter, "refine", None) is not None else None
        if depth is not None and depth.shape[:2] != rgb.shape[:2]:
            depth = None  # not aligned to the colour: scored unrefined (counted in metrics)
        try:
            result = segmenter.segment(rgb) if depth is None else segmenter.segment(rgb, depth)
        except FrameError as err:
            return str(err)
        prediction = result.labels
    if prediction.shape != frame.label.shape:
        return "prediction and ground truth differ in size"
    counts = ConfusionMatrix(classes.num_classes, ignore_index=classes.void_index)
    try:
        counts.update(prediction, frame.label)
    except ValueError:
        return "ground-truth id outside the class list"
    return Scored(counts, counts.compute(), prediction, rgb, result)


# --------------------------------------------------------------------------- run state


class _Tally:
    """Running totals of one evaluation: confusion matrix, latencies, per-frame scores, skips."""

    def __init__(self, classes: ClassSet) -> None:
        self.classes = classes
        self.matrix = ConfusionMatrix(classes.num_classes, ignore_index=classes.void_index)
        self.latency_ms: list[float] = []
        self.timeline: list[tuple[int, int | None, float]] = []  # index, stamp, mIoU
        self.skipped: Counter[str] = Counter()
        self.restoration = RestorationScores()
        self.refined = 0

    @property
    def frames(self) -> int:
        return len(self.timeline)

    def add(self, frame: Any, scored: Scored) -> None:
        self.matrix.merge(scored.counts)
        self.timeline.append((int(frame.index), frame.stamp_ns, scored.metrics.mIoU))
        if scored.result is not None and "total" in scored.result.timings:  # recorded: none
            self.latency_ms.append(float(scored.result.timings["total"]))
        if scored.result is not None and scored.result.depth is not None:
            self.refined += 1  # depth goes into segment() only to refine
        normal = getattr(frame, "normal", None)  # bags carry no normal-light twin
        restored = None if scored.result is None else scored.result.reflectance
        if normal is not None and restored is not None:
            albedo = getattr(frame, "albedo", None)
            self.restoration.add(scored.rgb, normal, restored, albedo=albedo, normal=normal)

    def metrics(self, header: dict, read_stats: Any, reason: str | None) -> dict:
        """The ``metrics.json`` document for the frames so far."""
        m = self.matrix.compute()
        names = self.classes.names
        skipped = Counter(dict(getattr(read_stats, "skipped", None) or {}))
        skipped.update(self.skipped)
        doc: dict[str, Any] = {
            "mIoU": m.mIoU,
            "OA": m.OA,
            "mAcc": m.mAcc,
            "FWIoU": m.FWIoU,
            "per_class_IoU": {
                names[c]: v for c, v in m.per_class_IoU.items() if c != self.classes.void_index
            },
            "per_class_acc": {
                names[c]: v for c, v in m.per_class_acc.items() if c != self.classes.void_index
            },
            "per_class_note": "null: the class is absent from both prediction and ground truth "
            "(no IoU, left out of mIoU); void is never scored",
            "frames": self.frames,
            "pixels": m.num_pixels,
            "skipped": dict(skipped),
        }
        if self.restoration.sums:
            doc["restoration"] = self.restoration.summary()
        if self.latency_ms:
            # the first call warms the runtime up (allocations, engine set-up): not counted
            ms = self.latency_ms[1:] if len(self.latency_ms) > 1 else self.latency_ms
            p50, p99 = p50_p99(ms)
            doc["latency_ms"] = {
                "p50": p50,
                "p99": p99,
                "mean": float(np.mean(ms)),
                "frames": len(ms),
            }
        doc.update(header)
        if header.get("refine") is not None:
            doc["refined_frames"] = self.refined
        doc["complete"] = reason is None
        if reason is not None:
            doc["incomplete_reason"] = reason
        return doc


class _SamplePicker:
    """Chooses a handful of evenly spaced evaluated frames for the side-by-side images.

    With a known total the positions are spread over it; otherwise every ``stride``-th frame
    is kept and, when too many are kept, the stride doubles and every other one is dropped
    (its file deleted), so between ``n/2`` and ``n`` images span everything read so far.
    """

    def __init__(self, n: int, total: int | None) -> None:
        self.n, self.stride = n, 1
        self.wanted = None
        if total:
            self.wanted = {round(float(p)) for p in np.linspace(0, total - 1, min(n, total))}
        self.kept: dict[int, Path] = {}

    def wants(self, position: int) -> bool:
        if self.n <= 0:
            return False
        if self.wanted is not None:
            return position in self.wanted
        return position % self.stride == 0

    def keep(self, position: int, path: Path) -> None:
        self.kept[position] = path
        if self.wanted is None and len(self.kept) > self.n:
            self.stride *= 2
            for pos in [p for p in self.kept if p % self.stride]:
                self.kept.pop(pos).unlink(missing_ok=True)


def _write_sample(path: Path, frame: Any, scored: Scored, classes: ClassSet) -> None:
    """One side-by-side PNG: what the model saw, what it made of it, and the truth."""
    result = scored.result
    caption = (
        f"frame {frame.index}{' ' + frame.name if getattr(frame, 'name', '') else ''}   "
        f"mIoU {scored.metrics.mIoU:.3f}   OA {scored.metrics.OA:.3f}"
    )
    panels = [
        ("input (brightened)", report.brighten(scored.rgb)),
        ("reflectance", None if result is None else result.reflectance),
        ("prediction", classes.colorize(scored.prediction)),
        ("ground truth", classes.colorize(frame.label)),
        ("errors", report.error_map(scored.prediction, frame.label, classes.void_index)),
        ("confidence", None if result is None else result.confidence),
    ]
    shown = np.union1d(np.unique(scored.prediction), np.unique(frame.label))
    legend = [(classes.names[c], classes.palette[c]) for c in shown if c < classes.num_classes]
    report.side_by_side(panels, caption, legend).save(path)


# --------------------------------------------------------------------------- the loop


def evaluate(
    frames: Iterable[Any],
    out: str | Path,
    *,
    segmenter: Segmenter | None = None,
    classes: ClassSet | None = None,
    model_name: str | None = None,
    backend_name: str | None = None,
    source: str = "",
    degrade: Degradation | None = None,
    samples: int = 6,
    total: int | None = None,
    read_stats: Any = None,
    predictions_topic: str | None = None,
    machine: dict | None = None,
    checkpoint_every: int = CHECKPOINT_EVERY,
    progress: bool = True,
) -> dict:
    """Score every frame and write the report under ``out``; the one loop of every mode.

    Files written: ``per_frame.csv`` (a row per frame, as it comes), ``metrics.json`` (every
    ``checkpoint_every`` frames with ``complete: false``, and at the end), ``samples/NNNNN.png``
    (side-by-sides, as they come), then ``confusion.png``, ``timeline.png`` and ``report.md``.
    A user interrupt (Ctrl-C), a bag that broke off (``read_stats.error``) or an exception
    still writes the report of what was scored, with ``complete: false`` and the reason;
    an exception is re-raised afterwards.

    Args:
        frames: :class:`~lowlight_perception.frame.Frame` objects.
        out: output directory (created; files of an earlier run are replaced).
        segmenter: the model; None scores each frame's recorded ``prediction``.
        classes: class names and palette; default: the segmenter's, else the project's.
        model_name: for the report; default: the segmenter's model.
        backend_name: for the report; default: the segmenter's backend.
        source: what was evaluated (bag path, dataset), for the report.
        degrade: (kind, level) applied to every colour frame before ``segment()``.
        samples: number of side-by-side images.
        total: number of frames expected, if known (progress bar, sample spacing).
        read_stats: ``bags.ReadStats`` filled by the frame source (skips, error), or None.
        predictions_topic: the topic recorded predictions came from (report only).
        machine: description of the machine (``tools.common.machine()``).
        checkpoint_every: frames between rewrites of ``metrics.json``.
        progress: show a tqdm bar.

    Returns:
        The ``metrics.json`` document.
    """
    out = Path(out)
    sample_dir = out / "samples"
    sample_dir.mkdir(parents=True, exist_ok=True)
    for old in sample_dir.glob("*.png"):
        old.unlink()
    if segmenter is not None:
        classes = classes or segmenter.classes
        model_name = model_name or segmenter.metadata.model
        backend_name = backend_name or segmenter.backend.name
    classes = classes or load_classes()
    header = {
        "model": model_name or ("recorded predictions" if segmenter is None else "?"),
        "backend": backend_name or ("none" if segmenter is None else "?"),
        "device": None if segmenter is None else str(segmenter.backend.device),
        "source": source,
        "predictions_topic": predictions_topic,
        "degrade": None if degrade is None else {"kind": degrade[0], "level": degrade[1]},
        "refine": None
        if getattr(segmenter, "refine", None) is None
        else dataclasses.asdict(segmenter.refine),
        "machine": machine or {},
    }
    tally = _Tally(classes)
    picker = _SamplePicker(samples, total)
    frame_log = report.FrameLog(out / "per_frame.csv", FRAME_FIELDS)
    bar = tqdm(total=total, desc="evaluating", unit="frame", disable=not progress)
    reason: str | None = None
    failure: BaseException | None = None
    try:
        for frame in frames:
            bar.update()
            scored = score_frame(frame, segmenter, classes, degrade)
            if isinstance(scored, str):
                tally.skipped[scored] += 1
                continue
            position = tally.frames
            tally.add(frame, scored)
            frame_log.add(
                {
                    "index": frame.index,
                    "stamp_ns": frame.stamp_ns,
                    "name": getattr(frame, "name", ""),
                    "mIoU": _round(scored.metrics.mIoU),
                    "OA": _round(scored.metrics.OA),
                    "pixels": scored.metrics.num_pixels,
                    "latency_ms": None
                    if scored.result is None or "total" not in scored.result.timings
                    else round(scored.result.timings["total"], 3),
                }
            )
            if picker.wants(position):
                path = sample_dir / f"{int(frame.index):05d}.png"
                _write_sample(path, frame, scored, classes)
                picker.keep(position, path)
            if tally.frames % checkpoint_every == 0:
                running = tally.metrics(header, read_stats, "still running")
                report.write_json(out / "metrics.json", running)
                bar.set_postfix(mIoU=f"{tally.matrix.compute().mIoU:.3f}")
    except KeyboardInterrupt as err:
        reason = f"{stop_reason(err)} after {tally.frames} frames"
    except Exception as err:
        failure = err
        reason = f"stopped by an error after {tally.frames} frames: {err}"
    finally:
        bar.close()
        frame_log.close()
    if reason is None and getattr(read_stats, "error", None):
        reason = f"the bag broke off after {tally.frames} frames: {read_stats.error}"
    metrics = tally.metrics(header, read_stats, reason)
    _finish(out, metrics, tally, sorted(picker.kept.values()))
    if failure is not None:
        raise failure
    return metrics


def _round(value: float) -> float | None:
    return None if not math.isfinite(value) else round(value, 6)


def _finish(out: Path, metrics: dict, tally: _Tally, samples: list[Path]) -> None:
    """Final metrics.json, plots and report.md."""
    report.write_json(out / "metrics.json", metrics)
    plots = report.plot_confusion(tally.matrix.matrix, tally.classes, out / "confusion.png")
    stamps = [s for _, s, _ in tally.timeline]
    if stamps and all(s is not None for s in stamps):
        x, xlabel = [(s - stamps[0]) / 1e9 for s in stamps], "time in the recording (s)"
    else:
        x, xlabel = [i for i, _, _ in tally.timeline], "frame"
    miou = [v for _, _, v in tally.timeline]
    plots = report.plot_timeline(x, miou, metrics["mIoU"], out / "timeline.png", xlabel) and plots
    rel = [p.relative_to(out).as_posix() for p in samples]
    text = report.report_markdown(metrics, plots=plots, samples=rel)
    (out / "report.md").write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------- sources


def _peeked(frames: Iterator[Any]) -> Iterator[Any]:
    """Read the first frame now, so a missing bag or topic fails before anything is written."""
    try:
        first = next(frames)
    except StopIteration:
        return iter(())
    return itertools.chain([first], frames)


def bag_frames(
    bag: str | Path,
    *,
    max_frames: int | None = None,
    topics: dict[str, str] | None = None,
    predictions_topic: str | None = None,
    stats: Any = None,
) -> Iterator[Any]:
    """The frames of a bag with ground truth (``bags.iter_frames``), at most ``max_frames``.

    The first frame is read at once, so a missing bag or topic raises ``BagError`` here.
    """
    from ..bags import iter_frames

    frames = _peeked(
        iter_frames(bag, predictions_topic=predictions_topic, stats=stats, **(topics or {}))
    )
    return frames if max_frames is None else itertools.islice(frames, max_frames)


def bag_length(bag: str | Path, color_topic: str | None, max_frames: int | None) -> int | None:
    """Colour messages in the bag (at most ``max_frames``): the progress bar's total."""
    from ..bags import bag_topics
    from ..topics import COLOR_TOPIC as DEFAULT_COLOR
    from ..topics import COLOUR_TRANSPORT, camera_topic

    topics = bag_topics(Path(bag))
    topic = camera_topic(topics, color_topic or DEFAULT_COLOR, COLOUR_TRANSPORT)
    count = topics.get(topic, ("", 0))[1]
    return count if max_frames is None else min(count, max_frames)


def evaluate_bag(
    bag: str | Path,
    model: str | Path | None,
    out: str | Path,
    *,
    backend: str = "auto",
    device: int | str = "auto",
    predictions_topic: str | None = None,
    degrade: Degradation | None = None,
    max_frames: int | None = None,
    topics: dict[str, str] | None = None,
    samples: int = 6,
    machine: dict | None = None,
    progress: bool = True,
    refine: RefineConfig | None = None,
) -> dict:
    """Evaluate a rosbag2 (mcap or sqlite3): a model on its colour frames, or its recorded
    predictions, against the ground truth on ``bags.GT_TOPIC``.

    Args:
        bag: the bag directory (or file).
        model: exported model for the Segmenter; None with ``predictions_topic``.
        out: output directory.
        backend: Segmenter backend ("auto", "tensorrt", "onnxruntime", "torch").
        device: "auto", "cpu" or a CUDA device index.
        predictions_topic: score the labels recorded on this topic instead of running a model.
        degrade: (kind, level) applied to each colour frame first.
        max_frames: stop after this many colour frames (the run still counts as complete).
        topics: overrides of ``iter_frames`` topic names (``color_topic``, ``gt_topic``...).
        samples: number of side-by-side images.
        machine: description of the machine, for the report.
        progress: show a tqdm bar.
        refine: depth-aware refinement of the model's labels on frames with aligned depth
            (``inference.refine``), or None.

    Returns:
        The ``metrics.json`` document.

    Raises:
        EvalError: neither or both of ``model`` and ``predictions_topic``.
        BagError: missing or unreadable bag, missing topics (before anything is written).
        BackendError: the model cannot be loaded.
    """
    from ..bags import ReadStats

    _check_source(model, predictions_topic, degrade)
    stats = ReadStats()
    frames = bag_frames(
        bag, max_frames=max_frames, topics=topics, predictions_topic=predictions_topic, stats=stats
    )
    total = bag_length(bag, (topics or {}).get("color_topic"), max_frames)
    segmenter = None if model is None else Segmenter(model, backend, device, refine=refine)
    try:
        return evaluate(
            frames,
            out,
            segmenter=segmenter,
            source=str(bag),
            degrade=degrade,
            samples=samples,
            total=total,
            read_stats=stats,
            predictions_topic=predictions_topic,
            machine=machine,
            progress=progress,
        )
    finally:
        if segmenter is not None:
            segmenter.close()


def dataset_frames(dataset: Any, max_frames: int | None = None) -> Iterator[Frame]:
    """The views of a dataset as frames (low-light image, label, depth, twins)."""
    count = len(dataset) if max_frames is None else min(len(dataset), max_frames)
    for index in range(count):
        sample = dataset[index]
        yield Frame(
            index,
            sample.low,
            sample.label,
            sample.depth,
            name=sample.name,
            normal=sample.normal,
            albedo=sample.albedo,
        )


def evaluate_dataset(
    kind: str,
    path: str | Path | None,
    split: str,
    model: str | Path,
    out: str | Path,
    *,
    size: tuple[int, int] | None = None,
    backend: str = "auto",
    device: int | str = "auto",
    degrade: Degradation | None = None,
    max_frames: int | None = None,
    samples: int = 6,
    machine: dict | None = None,
    progress: bool = True,
    refine: RefineConfig | None = None,
) -> dict:
    """Evaluate a model on a dataset split (its low-light views) with the same loop as bags.

    Args:
        kind: dataset kind of ``data.datasets.open_dataset`` (``llrgbd-real``...).
        path: dataset root (or NYUv2 ``.mat``).
        split: ``train``, ``val`` or ``test``.
        model: exported model.
        out: output directory.
        size: (W, H) to resize views to, or None for their own size.
        backend, device, degrade, max_frames, samples, machine, progress, refine: as
            :func:`evaluate_bag`.

    Returns:
        The ``metrics.json`` document.

    Raises:
        DatasetError: unreadable dataset. BackendError: the model cannot be loaded.
    """
    from ..data.datasets import open_dataset

    _check_source(model, None, degrade)
    dataset = open_dataset(kind, path, split, size=size)
    total = len(dataset) if max_frames is None else min(len(dataset), max_frames)
    with Segmenter(model, backend, device, refine=refine) as segmenter:
        return evaluate(
            dataset_frames(dataset, max_frames),
            out,
            segmenter=segmenter,
            source=f"{kind}:{path} ({split})",
            degrade=degrade,
            samples=samples,
            total=total,
            machine=machine,
            progress=progress,
        )


def _check_source(model: Any, predictions_topic: str | None, degrade: Any) -> None:
    if (model is None) == (predictions_topic is None):
        raise EvalError("give either a model or a predictions topic (exactly one)")
    if degrade is not None:
        if predictions_topic is not None:
            raise EvalError("degradations need a model: recorded predictions cannot be re-run")
        kind, level = degrade
        if kind not in LEVELS or not 1 <= level <= len(LEVELS[kind]):
            raise EvalError(f"unknown degradation {kind} level {level}; kinds: {', '.join(KINDS)}")


# --------------------------------------------------------------------------- robustness


def robustness(
    frames_factory: Callable[[], Iterable[Any]],
    segmenter: Segmenter,
    out: str | Path,
    *,
    kinds: Iterable[str] = KINDS,
    source: str = "",
    total: int | None = None,
    machine: dict | None = None,
    progress: bool = True,
) -> dict:
    """The robustness grid of [Xia]: mIoU of the clean frames and of every degradation
    kind at levels 1..4 (``darken`` is the darkness sweep over ``DARKNESS_LEVELS``).

    Each cell re-reads the frames from ``frames_factory`` (a bag is not held in memory) and
    scores them with :func:`score_frame`. ``robustness.json`` is rewritten after every cell;
    at the end ``robustness.md`` (table) and ``robustness.png`` (mIoU vs severity) follow.
    Ctrl-C stops early and still writes them, marked incomplete.

    Args:
        frames_factory: returns a fresh iterable of frames on every call.
        segmenter: the model.
        out: output directory.
        kinds: degradation kinds (default every kind of ``data.degrade.KINDS``).
        source: what was evaluated, for the report.
        total: frames per pass, if known (progress bar).
        machine: description of the machine, for the report.
        progress: show a tqdm bar.

    Returns:
        The ``robustness.json`` document: ``clean``, ``grid`` (kind -> rows with ``level``,
        ``param``, ``mIoU``, ``OA``, ``mAcc``, ``FWIoU``, ``frames``), ``darkness`` (exposure ->
        mIoU, OA) when ``darken`` is among the kinds, and ``complete``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    kinds = list(kinds)
    for kind in kinds:
        if kind not in LEVELS:
            raise EvalError(f"unknown degradation {kind!r}; valid: {', '.join(KINDS)}, all")
    classes = segmenter.classes
    cells: list[Degradation | None] = [None] + [(k, lv) for k in kinds for lv in range(1, 5)]
    doc: dict[str, Any] = {
        "model": segmenter.metadata.model,
        "backend": segmenter.backend.name,
        "device": str(segmenter.backend.device),
        "source": source,
        "clean": {},
        "grid": {k: [] for k in kinds},
        "complete": False,
        "machine": machine or {},
    }
    bar = tqdm(
        total=None if total is None else total * len(cells),
        desc="robustness",
        unit="frame",
        disable=not progress,
    )
    try:
        for cell in cells:
            matrix = ConfusionMatrix(classes.num_classes, ignore_index=classes.void_index)
            frames = 0
            bar.set_postfix_str("clean" if cell is None else f"{cell[0]} {cell[1]}")
            for frame in frames_factory():
                bar.update()
                scored = score_frame(frame, segmenter, classes, cell)
                if not isinstance(scored, str):
                    matrix.merge(scored.counts)
                    frames += 1
            m = matrix.compute()
            row = {"mIoU": m.mIoU, "OA": m.OA, "mAcc": m.mAcc, "FWIoU": m.FWIoU, "frames": frames}
            if cell is None:
                doc["clean"] = row
            else:
                param = LEVELS[cell[0]][cell[1] - 1]
                doc["grid"][cell[0]].append({"level": cell[1], "param": param, **row})
            report.write_json(out / "robustness.json", doc)
        doc["complete"] = True
    except KeyboardInterrupt as err:
        doc["incomplete_reason"] = stop_reason(err)
    finally:
        bar.close()
    if "darken" in doc["grid"] and doc["clean"]:
        rows = [doc["clean"], *doc["grid"]["darken"]]
        doc["darkness"] = [
            {"exposure": factor, "mIoU": r["mIoU"], "OA": r["OA"]}
            for factor, r in zip(DARKNESS_LEVELS, rows, strict=False)
        ]
    report.write_json(out / "robustness.json", doc)
    report.plot_robustness(doc, out / "robustness.png")
    (out / "robustness.md").write_text(report.robustness_markdown(doc), encoding="utf-8")
    return doc
