"""What an evaluation leaves on disk: JSON, CSV, Markdown, plots and side-by-side images.

Kept apart from the evaluation loop so the loop stays a loop. Everything here writes files a
person opens after a long run on the drone's bags: numbers as JSON/CSV for scripts, a Markdown
report and PNGs for eyes. JSON is written atomically (temporary file + rename) because it is
rewritten while the evaluation runs; a reader never sees half a file. Side-by-side images use
Pillow only (fast enough to write while frames stream); the three plots use matplotlib (Agg) when
it is installed, and the report says so when it is not (it is in the ``train`` extra).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .. import atomic
from ..classes import ClassSet

PANEL_MIN_HEIGHT = 180
"""Side-by-side panels are upscaled (whole factors, nearest) to at least this many pixels."""


# --------------------------------------------------------------------------- machine-readable


def _finite(value: Any) -> Any:
    """NaN/inf (undefined metrics) as None, recursively: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path: Path, doc: dict) -> None:
    """Write ``doc`` as JSON atomically (NaN as null), so a reader never sees a partial file."""
    atomic.write_text(path, json.dumps(_finite(doc), indent=2) + "\n")


class FrameLog:
    """``per_frame.csv``, one row appended (and flushed) per evaluated frame.

    Args:
        path: the CSV file; truncated on open.
        fields: column names, in order.
    """

    def __init__(self, path: Path, fields: Sequence[str]) -> None:
        self._handle = open(path, "w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._handle, fieldnames=list(fields))
        self._writer.writeheader()
        self._handle.flush()

    def add(self, row: dict[str, Any]) -> None:
        """Append one row and flush it to disk."""
        self._writer.writerow({k: "" if v is None else v for k, v in row.items()})
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


# --------------------------------------------------------------------------- side-by-side PNGs


def brighten(rgb: np.ndarray) -> np.ndarray:
    """A dark frame made visible: gain to put the 99th percentile at white, then gamma 1/2.2.

    For display only; the model always sees the frame as recorded.
    """
    x = rgb.astype(np.float32)
    top = max(float(np.percentile(x, 99)), 1.0)
    x = np.clip(x / top, 0.0, 1.0) ** (1 / 2.2)
    return (x * 255 + 0.5).astype(np.uint8)


def error_map(prediction: np.ndarray, label: np.ndarray, void_index: int) -> np.ndarray:
    """RGB image: correct pixels dark grey, wrong ones red, void (not scored) black."""
    out = np.full((*label.shape, 3), 70, np.uint8)
    out[prediction != label] = (230, 40, 40)
    out[label == void_index] = 0
    return out


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed bitmap font
        return ImageFont.load_default()


def side_by_side(
    panels: Sequence[tuple[str, np.ndarray | None]],
    caption: str = "",
    legend: Sequence[tuple[str, Sequence[int]]] = (),
) -> Image.Image:
    """Panels next to each other, each titled; a missing panel (None) shows as 'not available'.

    Args:
        panels: (title, image) pairs; images (H, W, 3) RGB or (H, W) grey uint8, same size.
        caption: a line above the panels (frame, scores).
        legend: (class name, RGB) swatches drawn in a row below the panels.
    """
    shape = next(p.shape[:2] for _, p in panels if p is not None)
    scale = max(1, math.ceil(PANEL_MIN_HEIGHT / shape[0]))
    h, w = shape[0] * scale, shape[1] * scale
    font = _font(14)
    title_h, caption_h, gap = 22, 24 if caption else 0, 6
    legend_h = 24 if legend else 0
    sheet = Image.new(
        "RGB",
        (len(panels) * (w + gap) + gap, caption_h + title_h + h + gap + legend_h),
        (255, 255, 255),
    )
    draw = ImageDraw.Draw(sheet)
    if caption:
        draw.text((gap, 4), caption, fill=(0, 0, 0), font=font)
    for i, (title, image) in enumerate(panels):
        x0, y0 = gap + i * (w + gap), caption_h + title_h
        draw.text((x0, caption_h + 3), title, fill=(0, 0, 0), font=font)
        if image is None:
            draw.rectangle((x0, y0, x0 + w - 1, y0 + h - 1), fill=(225, 225, 225))
            draw.text((x0 + 8, y0 + h // 2 - 8), "not available", fill=(90, 90, 90), font=font)
            continue
        tile = Image.fromarray(np.ascontiguousarray(image))
        sheet.paste(tile.convert("RGB").resize((w, h), Image.NEAREST), (x0, y0))
    x, y = gap, caption_h + title_h + h + gap + 2
    for name, colour in legend:
        draw.rectangle(
            (x, y + 2, x + 14, y + 16), fill=tuple(int(c) for c in colour), outline=(0, 0, 0)
        )
        draw.text((x + 19, y), name, fill=(0, 0, 0), font=font)
        x += 19 + int(draw.textlength(name, font=font)) + 14
    return sheet


# --------------------------------------------------------------------------- plots


def pyplot():
    """matplotlib.pyplot on the Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(matrix: np.ndarray, classes: ClassSet, path: Path) -> bool:
    """Row-normalised confusion matrix (truth rows, prediction columns) with class names.

    The void row is left out (void pixels are not scored); the void column stays: predicting
    void is a real error. Rows of classes absent from the ground truth are blank. Returns False
    when matplotlib is missing.
    """
    plt = pyplot()
    if plt is None:
        return False
    rows = [c for c in range(classes.num_classes) if c != classes.void_index]
    counts = matrix[rows].astype(np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.where(totals > 0, counts / totals, np.nan)
    n = classes.num_classes
    fig, ax = plt.subplots(figsize=(0.55 * n + 2.5, 0.5 * len(rows) + 2))
    cmap = plt.get_cmap("Blues").with_extremes(bad="#e6e6e6")  # grey: absent from the truth
    image = ax.imshow(norm, cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    for r in range(len(rows)):
        for c in range(n):
            v = norm[r, c]
            if np.isfinite(v) and v >= 0.01:
                colour = "white" if v > 0.6 else "black"
                ax.text(c, r, f"{100 * v:.0f}", ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(n), classes.names, rotation=45, ha="right")
    ax.set_yticks(
        range(len(rows)),
        [classes.names[c] + ("" if totals[i, 0] else " (absent)") for i, c in enumerate(rows)],
    )
    ax.set(
        xlabel="predicted", ylabel="ground truth", title="confusion matrix (% of each true class)"
    )
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_timeline(
    x: Sequence[float], miou: Sequence[float], overall: float, path: Path, xlabel: str
) -> bool:
    """Per-frame mIoU over the sequence, a rolling mean, and the whole-run mIoU as a line.

    Returns False when matplotlib is missing.
    """
    plt = pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(9, 3.2))
    y = np.array(miou, dtype=np.float64)
    ax.plot(
        x,
        y,
        ".-" if len(y) <= 300 else ".",
        ms=4,
        lw=0.6,
        color="tab:blue",
        alpha=0.6,
        label="one frame",
    )
    window = len(y) // 20
    if window >= 3 and np.isfinite(y).sum() > window:
        kernel = np.ones(window) / window
        smooth = np.convolve(np.nan_to_num(y), kernel, mode="same") / np.convolve(
            np.isfinite(y).astype(float), kernel, mode="same"
        )
        ax.plot(x, smooth, "-", color="tab:blue", label=f"mean of {window} frames")
    if math.isfinite(overall):
        ax.axhline(overall, color="tab:red", ls="--", lw=1, label=f"whole run {overall:.3f}")
    ax.set(xlabel=xlabel, ylabel="mIoU", ylim=(0, 1), title="per-frame mIoU")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_robustness(doc: dict, path: Path) -> bool:
    """mIoU against severity (0 = clean), one line per degradation kind.

    Returns False when matplotlib is missing.
    """
    plt = pyplot()
    if plt is None:
        return False
    clean = doc.get("clean", {}).get("mIoU")
    fig, ax = plt.subplots(figsize=(7, 4))
    for kind, rows in doc.get("grid", {}).items():
        xs = [0] + [r["level"] for r in rows]
        ys = [clean] + [r["mIoU"] for r in rows]
        pts = [(a, np.nan if b is None else b) for a, b in zip(xs, ys, strict=True)]
        ax.plot(*zip(*pts, strict=True), "o-", label=kind.replace("_", " "))
    ax.set_xticks(range(5), ["clean", "1", "2", "3", "4"])
    ax.set(
        xlabel="severity level",
        ylabel="mIoU",
        ylim=(0, None),
        title="robustness: mIoU against degradation severity",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------- Markdown


def pct(value: float | None) -> str:
    """A fraction as a percentage with one decimal; a dash when undefined."""
    return "–" if value is None or not math.isfinite(value) else f"{100 * value:.1f} %"


def skipped_text(skipped: dict[str, int]) -> str:
    """``3 (no ground truth: 2, bad frame: 1)`` or ``none`` (the colon keeps a count apart
    from a reason that ends in a number)."""
    total = sum(skipped.values())
    if not total:
        return "none"
    return f"{total} (" + ", ".join(f"{k}: {v}" for k, v in skipped.items()) + ")"


def restoration_markdown(scores: dict[str, float]) -> list[str]:
    """A table of the restored reflectance against each reference, next to the baselines (the
    ``restoration`` scores of metrics.json); nothing when there are none."""
    refs = sorted({k.split("_vs_")[1] for k in scores})
    if not refs:
        return []
    names = {
        "restored": "restored reflectance (model)",
        "gain": "low x global gain (baseline)",
        "max_rgb": "max-RGB Retinex (baseline)",
    }
    lines = [
        "## Restoration",
        "",
        "PSNR (dB) / SSIM of each image against each reference, mean over the frames; the "
        "gain is fitted to the normal-light frame.",
        "",
        "| | " + " | ".join(f"vs {r}" for r in refs) + " |",
        "|---|" + "---:|" * len(refs),
    ]
    for key, label in names.items():
        cells = []
        for r in refs:
            p, s = scores.get(f"psnr_{key}_vs_{r}"), scores.get(f"ssim_{key}_vs_{r}")
            cells.append("–" if p is None else f"{p:.2f} / {s:.3f}")
        if any(c != "–" for c in cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def report_markdown(metrics: dict, *, plots: bool, samples: Sequence[str]) -> str:
    """The human report of one evaluation run (``report.md``).

    Args:
        metrics: the ``metrics.json`` document.
        plots: whether confusion.png and timeline.png were drawn.
        samples: relative paths of the side-by-side images.
    """
    on = f" on `{metrics['source']}`" if metrics.get("source") else ""
    lines = [f"# Evaluation of `{metrics['model']}`{on}", ""]
    if not metrics["complete"]:
        lines += [
            f"> **Incomplete**: {metrics.get('incomplete_reason', 'stopped early')}. "
            f"The figures below cover the {metrics['frames']} frames evaluated before that.",
            "",
        ]
    latency = metrics.get("latency_ms")
    rows = [
        ("mIoU", pct(metrics["mIoU"])),
        ("OA (pixel accuracy)", pct(metrics["OA"])),
        ("mAcc", pct(metrics["mAcc"])),
        ("FWIoU", pct(metrics["FWIoU"])),
        ("frames evaluated", str(metrics["frames"])),
        ("frames skipped", skipped_text(metrics["skipped"])),
    ]
    if latency:
        rows.append(
            ("latency of `segment()`", f"p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms")
        )
    elif metrics.get("predictions_topic"):
        rows.append(("predictions", f"recorded on `{metrics['predictions_topic']}`"))
    else:
        rows.append(("predictions", "recorded, given with the frames"))
    if metrics.get("degrade"):
        rows.append(("input degradation", str(metrics["degrade"])))
    if metrics.get("refine") is not None:
        rows.append(
            (
                "depth-aware refinement",
                f"{metrics['refined_frames']} of "
                f"{metrics['frames']} frames (with aligned depth); {metrics['refine']}",
            )
        )
    machine = metrics.get("machine") or {}
    rows += [
        (
            "backend",
            f"{metrics['backend']}"
            + (f" on {metrics['device']}" if metrics.get("device") is not None else ""),
        ),
        (
            "machine",
            ", ".join(
                f"{machine[k]} cores" if k == "cores" else str(machine[k])
                for k in ("cpu", "gpu", "cores")
                if machine.get(k)
            )
            or "–",
        ),
    ]
    lines += ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), ""]
    lines += restoration_markdown(metrics.get("restoration") or {})
    lines += [
        "## Per-class IoU",
        "",
        "Void is not scored. `–`: the class appears in neither prediction nor ground truth "
        "(no IoU; left out of mIoU, not counted as 0).",
        "",
        "| class | IoU | accuracy |",
        "|---|---:|---:|",
    ]
    acc = metrics.get("per_class_acc", {})
    for name, iou in metrics["per_class_IoU"].items():
        lines.append(f"| {name} | {pct(iou)} | {pct(acc.get(name))} |")
    lines.append("")
    if plots:
        lines += [
            "## Confusion matrix",
            "",
            "![confusion matrix](confusion.png)",
            "",
            "## Per-frame mIoU",
            "",
            "![per-frame mIoU](timeline.png)",
            "",
        ]
    else:
        lines += ["(plots not drawn: matplotlib is not installed; `pip install matplotlib`)", ""]
    if samples:
        lines += [
            "## Samples",
            "",
            "Input (brightened for display), reflectance, prediction, ground truth, errors "
            "(red wrong, black void), confidence (white = sure).",
            "",
        ]
        lines += [f"![{Path(s).stem}]({s})" for s in samples]
        lines.append("")
    lines += [
        "Numbers: [metrics.json](metrics.json); per frame: [per_frame.csv](per_frame.csv).",
        "",
    ]
    return "\n".join(lines)


def robustness_markdown(doc: dict) -> str:
    """Table of mIoU per degradation kind (rows) and severity (columns), plus the darkness sweep."""
    clean = doc["clean"]
    on = f" on `{doc['source']}`" if doc.get("source") else ""
    lines = [f"# Robustness of `{doc['model']}`{on}", ""]
    if not doc["complete"]:
        lines += [f"> **Incomplete**: {doc.get('incomplete_reason', 'stopped early')}.", ""]
    lines += [
        f"mIoU with each degradation applied to the colour frame before `segment()`; "
        f"{clean.get('frames', 0)} frames per cell; clean mIoU {pct(clean.get('mIoU'))}. "
        "Levels: `lowlight_perception.data.degrade.LEVELS` ([Xia] in the README's "
        "references, for the first four kinds).",
        "",
        "| degradation | clean | 1 | 2 | 3 | 4 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, rows in doc["grid"].items():
        cells = {r["level"]: pct(r["mIoU"]) for r in rows}
        lines.append(
            f"| {kind} | {pct(clean.get('mIoU'))} | "
            + " | ".join(cells.get(level, "") for level in range(1, 5))
            + " |"
        )
    if doc.get("darkness"):
        lines += ["", "## Darkness sweep", "", "| exposure | mIoU | OA |", "|---:|---:|---:|"]
        for row in doc["darkness"]:
            lines.append(f"| x{row['exposure']:g} | {pct(row['mIoU'])} | {pct(row['OA'])} |")
    lines += ["", "![mIoU against severity](robustness.png)", ""]
    return "\n".join(lines)
