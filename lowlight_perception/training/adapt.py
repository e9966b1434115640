"""Adapt a trained model to a new building without labels: self-training on the colour frames
of unlabelled bags ([Nguyen] §3.3.3, README references: pseudo-labels from the model's own
predictions, focal loss as an option).

Each round, a teacher labels every frame at the network's size; per class, only its most
confident pixels become pseudo-labels (class-balanced thresholds: one threshold per class, so
the rare classes, on which a shifted model is least sure, are not drowned by the walls and
floors a single global threshold would keep); the student then trains on them. LISU's two
stages are respected: the decomposition stays frozen (it trains on paired low/normal frames,
which a recording does not have) and only the task network learns, from the segmentation loss
alone (there is no normal-light restoration target either); after each round its BatchNorm
statistics are re-estimated on the recording (:func:`recalibrate_batchnorm`). The teacher is
the student as it was at the start of the round, or, with ``ema_teacher``, a slow average of
the student.

The result is an ordinary checkpoint (its training config kept, provenance saying how it was
adapted), so ``lowlight export`` and everything downstream take it unchanged.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..classes import load_classes
from ..data.transforms import resize_array
from ..errors import LowlightError
from ..models.checkpoint import load_model, save_checkpoint
from ..models.losses import SEG_KINDS, segmentation_loss
from .loop import WeightEma, resolve_device, seed_everything, set_stage


@dataclass(frozen=True)
class AdaptConfig:
    """How to adapt. ``keep``: per class, the share of the pixels the teacher gives that class
    that become its pseudo-labels (the most confident ones); ``max_threshold``: a pixel at least
    this confident is always kept, whatever its class's share."""

    rounds: int = 2
    epochs: int = 2  # per round
    batch_size: int = 8
    lr: float = 2e-4
    keep: float = 0.5
    max_threshold: float = 0.9
    seg_loss: str = "ce"
    focal_gamma: float = 2.0
    ema_teacher: float = 0.0  # EMA decay of a teacher that follows the student; 0 = off
    stride: int = 1  # use every n-th colour frame of the bags
    max_frames: int | None = None
    seed: int = 0
    device: str = "auto"

    def check(self) -> None:
        """Raises LowlightError naming the first bad value."""
        if self.rounds < 1 or self.epochs < 1 or self.batch_size < 1 or self.stride < 1:
            raise LowlightError("rounds, epochs, batch size and stride must be at least 1")
        if not 0 < self.keep <= 1:
            raise LowlightError(f"keep must be in (0, 1], got {self.keep}")
        if not 0 < self.max_threshold <= 1:
            raise LowlightError(f"max threshold must be in (0, 1], got {self.max_threshold}")
        if self.seg_loss not in SEG_KINDS:
            raise LowlightError(f"seg loss must be one of {', '.join(SEG_KINDS)}")
        if not 0 <= self.ema_teacher < 1:
            raise LowlightError(f"ema teacher decay must be in [0, 1), got {self.ema_teacher}")
        if not self.lr > 0:
            raise LowlightError(f"lr must be positive, got {self.lr}")


def read_bag_frames(
    bags: list[Path], net_size: tuple[int, int], stride: int, max_frames: int | None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Every ``stride``-th colour frame of ``bags`` (raw or compressed; labels are not read),
    resized to the network's (W, H) as training resizes: (N, H, W, 3) uint8, and what was read."""
    from ..bags import ReadStats, iter_frames

    w, h = net_size
    frames: list[np.ndarray] = []
    read: dict[str, Any] = {}
    for bag in bags:
        stats = ReadStats()
        used = 0
        for frame in tqdm(
            iter_frames(bag, require_gt=False, stats=stats), desc=f"reading {bag}", unit="frame"
        ):
            if frame.index % stride:
                continue
            frames.append(resize_array(frame.rgb, w, h, nearest=False))
            used += 1
            if max_frames is not None and len(frames) >= max_frames:
                break
        read[str(bag)] = {
            "colour_frames": stats.colour_frames,
            "used": used,
            "skipped": dict(stats.skipped),
            "error": stats.error,
        }
        if max_frames is not None and len(frames) >= max_frames:
            break
    if not frames:
        raise LowlightError(f"no colour frame could be read from {', '.join(map(str, bags))}")
    return np.stack(frames), read


@torch.no_grad()
def predict(
    model: torch.nn.Module, frames: np.ndarray, device: torch.device, batch_size: int, void: int
) -> tuple[np.ndarray, np.ndarray]:
    """The model's labels and max softmax at net size among the real classes (void, never a
    training target, is left out): (N, H, W) uint8 and float32."""
    model.eval()
    labels, confidence = [], []
    for start in range(0, len(frames), batch_size):
        x = torch.from_numpy(frames[start : start + batch_size]).to(device)
        logits = model(x.permute(0, 3, 1, 2).float() / 255)["logits"].float()
        logits[:, void] = float("-inf")
        probs = logits.softmax(1)
        conf, label = probs.max(1)
        labels.append(label.to(torch.uint8).cpu().numpy())
        confidence.append(conf.cpu().numpy())
    return np.concatenate(labels), np.concatenate(confidence)


def class_thresholds(
    labels: np.ndarray, confidence: np.ndarray, num_classes: int, keep: float, max_threshold: float
) -> np.ndarray:
    """Per class, the confidence above which its predicted pixels become pseudo-labels: the
    (1 - keep) quantile of that class's confidences, capped at ``max_threshold`` (class-
    balanced self-training); classes never predicted get ``max_threshold``."""
    thresholds = np.full(num_classes, max_threshold, dtype=np.float32)
    for c in range(num_classes):
        mine = confidence[labels == c]
        if mine.size:
            thresholds[c] = min(max_threshold, float(np.quantile(mine, 1.0 - keep)))
    return thresholds


def pseudo_labels(
    labels: np.ndarray, confidence: np.ndarray, thresholds: np.ndarray, void: int
) -> np.ndarray:
    """The teacher's labels where it is at least its class's threshold sure, else ``void``
    (ignored by the loss)."""
    out = labels.copy()
    out[confidence < thresholds[labels]] = void
    out[labels == void] = void
    return out


def coverage(
    labels: np.ndarray,
    pseudo: np.ndarray,
    thresholds: np.ndarray,
    names: tuple[str, ...],
    void: int,
) -> list[dict[str, Any]]:
    """Per class: its threshold, the share of all pixels the teacher gave it, and the share
    that became its pseudo-labels."""
    total = labels.size
    predicted = np.bincount(labels.ravel(), minlength=len(names))
    kept = np.bincount(pseudo.ravel(), minlength=len(names))
    return [
        {
            "class": names[c],
            "threshold": round(float(thresholds[c]), 3),
            "predicted_%": round(100 * predicted[c] / total, 2),
            "pseudo_labelled_%": round(100 * kept[c] / total, 2),
        }
        for c in range(len(names))
        if c != void
    ]


@torch.no_grad()
def recalibrate_batchnorm(
    model: torch.nn.Module, frames: np.ndarray, device: torch.device, batch_size: int
) -> None:
    """Re-estimate the task network's BatchNorm statistics on ``frames`` with the final
    weights (a cumulative average over one pass), the decomposition's left as they are.

    Measured here: after a few fine-tuning steps on dark frames, the running statistics
    (updated with momentum while the weights moved) no longer match the weights: the model in
    eval mode labelled 84 % of a frame "window" while in train mode it still agreed with its
    teacher; with re-estimated statistics it agrees with it again (89 % of pixels)."""
    norms = [
        m
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and not name.startswith("decomp")
    ]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    if getattr(model, "decomp", None) is not None:
        model.decomp.eval()
    for start in range(0, len(frames), batch_size):
        x = torch.from_numpy(frames[start : start + batch_size]).to(device)
        model(x.permute(0, 3, 1, 2).float() / 255)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.eval()


def _fine_tune(
    model: torch.nn.Module,
    frames: np.ndarray,
    pseudo: np.ndarray,
    config: AdaptConfig,
    device: torch.device,
    void: int,
    desc: str,
    ema: WeightEma | None,
) -> float:
    """Epochs of the segmentation loss on the pseudo-labels, the decomposition frozen (its
    BatchNorm statistics too); the mean loss of the last epoch."""
    params = set_stage(model, "joint", freeze_encoders=False)
    optimizer = torch.optim.Adam(params, lr=config.lr, betas=(0.9, 0.999))
    generator = torch.Generator().manual_seed(config.seed)
    mean = float("nan")
    for epoch in range(config.epochs):
        model.train()
        if getattr(model, "decomp", None) is not None:
            model.decomp.eval()
        order = torch.randperm(len(frames), generator=generator).numpy()
        losses = []
        bar = tqdm(
            range(0, len(order), config.batch_size),
            desc=f"{desc} epoch {epoch + 1}",
            unit="batch",
            leave=False,
        )
        for start in bar:
            idx = order[start : start + config.batch_size]
            x = torch.from_numpy(frames[idx]).to(device).permute(0, 3, 1, 2).float() / 255
            y = torch.from_numpy(pseudo[idx]).to(device).long()
            logits = model(x)["logits"]
            loss = segmentation_loss(
                logits, y, kind=config.seg_loss, gamma=config.focal_gamma, ignore_index=void
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if ema is not None:
                ema.update(model)
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        mean = float(np.mean(losses))
    return mean


def adapt(checkpoint: Path, bags: list[Path], out: Path, config: AdaptConfig) -> dict[str, Any]:
    """Self-train ``checkpoint`` on the unlabelled ``bags``; writes ``out/adapted.pt``,
    ``out/report.json``, ``out/report.md`` and ``out/coverage.png``; returns the report.

    Raises:
        LowlightError: a bad config, an unreadable checkpoint or bag, no frame to adapt on.
    """
    config.check()
    start = time.perf_counter()
    model, state = load_model(checkpoint)
    train_config = state.get("train_config") or {}
    size = (train_config.get("data") or {}).get("size")
    if not size:
        raise LowlightError(
            f"{checkpoint} has no training config with the network size; "
            "adapt a checkpoint written by lowlight train"
        )
    net_size = (int(size[0]), int(size[1]))
    classes = load_classes()
    void = classes.void_index
    seed_everything(config.seed)
    device = resolve_device(config.device, torch.cuda.is_available())
    model.to(device)
    frames, read = read_bag_frames(bags, net_size, config.stride, config.max_frames)
    print(
        f"adapting {state['model_name']} ({checkpoint}) on {len(frames)} frames of "
        f"{len(bags)} bag(s) at {net_size[0]}x{net_size[1]}: {config.rounds} round(s) of "
        f"{config.epochs} epoch(s)"
    )
    ema = WeightEma(model, config.ema_teacher) if config.ema_teacher > 0 else None
    rounds = []
    for r in range(config.rounds):
        teacher = ema.module if ema is not None and r > 0 else copy.deepcopy(model)
        labels, confidence = predict(teacher, frames, device, config.batch_size, void)
        thresholds = class_thresholds(
            labels, confidence, classes.num_classes, config.keep, config.max_threshold
        )
        pseudo = pseudo_labels(labels, confidence, thresholds, void)
        table = coverage(labels, pseudo, thresholds, classes.names, void)
        loss = _fine_tune(model, frames, pseudo, config, device, void, f"round {r + 1}", ema)
        recalibrate_batchnorm(model, frames, device, config.batch_size)
        if ema is not None:  # the teacher of the next round gets statistics of its own
            recalibrate_batchnorm(ema.module, frames, device, config.batch_size)
        kept = 100 * float((pseudo != void).mean())
        rounds.append(
            {
                "round": r + 1,
                "pseudo_labelled_%": round(kept, 2),
                "mean_teacher_confidence": round(float(confidence.mean()), 4),
                "loss": round(loss, 4),
                "classes": table,
            }
        )
        tqdm.write(
            f"round {r + 1}: {kept:.1f} % of pixels pseudo-labelled "
            f"({sum(row['pseudo_labelled_%'] > 0 for row in table)} classes), "
            f"loss {loss:.4f}"
        )
    model.eval()
    report = {
        "checkpoint": str(checkpoint),
        "bags": read,
        "frames": len(frames),
        "net_size": list(net_size),
        "config": asdict(config),
        "rounds": rounds,
        "seconds": round(time.perf_counter() - start, 1),
        "device": str(device),
    }
    out.mkdir(parents=True, exist_ok=True)
    provenance = {
        **(state.get("provenance") or {}),
        "adapted": {k: report[k] for k in ("checkpoint", "frames", "config")}
        | {"bags": list(read)},
    }
    line = (
        f"{state.get('training', state['model_name'])}; adapted without labels on "
        f"{len(frames)} frames of {', '.join(map(str, bags))} ({config.rounds} rounds)"
    )
    save_checkpoint(
        out / "adapted.pt",
        model,
        train_config=train_config,
        provenance=provenance,
        training=line,
        adaptation=report,
    )
    (out / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    _write_report(out, report)
    return report


def _write_report(out: Path, report: dict[str, Any]) -> None:
    """report.md (a table per round) and coverage.png (pseudo-labelled share per class)."""
    lines = [
        "# lowlight adapt",
        "",
        f"From `{report['checkpoint']}` on {report['frames']} frames "
        f"({', '.join(report['bags'])}), {report['seconds']} s on {report['device']}.",
        f"Config: `{report['config']}`.",
        "",
    ]
    for r in report["rounds"]:
        lines += [
            f"## Round {r['round']}: {r['pseudo_labelled_%']} % of pixels pseudo-labelled,"
            f" loss {r['loss']}",
            "",
            "| class | threshold | predicted % | pseudo-labelled % |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {c['class']} | {c['threshold']} | {c['predicted_%']} | {c['pseudo_labelled_%']} |"
            for c in r["classes"]
        ]
        lines.append("")
    lines.append("![pseudo-label coverage](coverage.png)")
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    names = [c["class"] for c in report["rounds"][0]["classes"]]
    fig, ax = plt.subplots(figsize=(9, 3.5))
    width = 0.8 / len(report["rounds"])
    for i, r in enumerate(report["rounds"]):
        ax.bar(
            np.arange(len(names)) + i * width,
            [c["pseudo_labelled_%"] for c in r["classes"]],
            width,
            label=f"round {r['round']}",
        )
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, rotation=45, ha="right")
    ax.set_ylabel("% of pixels pseudo-labelled")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "coverage.png", dpi=100)
    plt.close(fig)
