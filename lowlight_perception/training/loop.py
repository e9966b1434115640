"""Two-stage LISU training as small functions (torchvision references style).

Stage ``decomp`` trains LISU-decomp unsupervised on low/normal pairs (Eq. 6). Stage ``joint``
freezes it and trains the task network on cat(I, R) with the restoration target R(normal) and
cross-entropy (Eq. 9); seg-only models (lisu-seg, dlv3p) train only this stage on raw RGB.
``all`` runs both, as the paper does. One code path serves a single process and ``torchrun``
(DistributedDataParallel over gloo on CPU or NCCL on GPUs).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from ..classes import load_classes
from ..data.datasets import collate, open_dataset
from ..errors import ConfigError
from ..evaluation.metrics import ConfusionMatrix, majority_class_miou
from ..evaluation.restoration import RestorationScores
from ..models import build_model, summary
from ..models.checkpoint import read_checkpoint, save_checkpoint
from ..models.export import training_note
from ..models.losses import decomposition_loss, joint_loss
from .config import TrainConfig


@dataclass
class Runtime:
    """Where this process runs: device, rank and world size (1 without torchrun)."""

    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(want: str, cuda: bool, world: int = 1, local_rank: int = 0) -> torch.device:
    """The configured device with a concrete CUDA index (``torch.cuda.set_device`` needs one):
    ``cuda`` and ``auto`` with CUDA become ``cuda:LOCAL_RANK`` (``cuda:0`` in a single
    process); an explicit ``cuda:N`` is kept.

    Raises:
        ConfigError: CUDA asked for but ``cuda`` (availability) is false.
    """
    if want == "auto":
        want = "cuda" if cuda else "cpu"
    if want.startswith("cuda") and not cuda:
        raise ConfigError(f"device {want!r} asked for, but no CUDA device is available")
    return torch.device(f"cuda:{local_rank if world > 1 else 0}" if want == "cuda" else want)


def setup_runtime(config: TrainConfig) -> Runtime:
    """Pick the device and join the process group when launched by ``torchrun``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(config.device, torch.cuda.is_available(), world, local)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Runtime(device, rank, world)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_loader(config: TrainConfig, split: str, rt: Runtime, shuffle: bool) -> DataLoader:
    """DataLoader over the configured dataset; sharded per rank under torchrun.

    Training shards come from DistributedSampler (reshuffled per epoch, padded to equal length);
    evaluation shards (``shuffle=False``) are the plain split ``rank, rank + world, ...``, so
    no sample is repeated and the merged metrics are exactly those of the whole split.
    """
    data = config.data
    options = dict(data.options)
    options["size"] = tuple(data.size)
    try:
        dataset = open_dataset(data.kind, data.path, split, **options)
    except TypeError as err:  # an option the dataset class does not take
        raise ConfigError(f"data.options do not fit data.kind={data.kind}: {err}") from None
    if len(dataset) == 0:
        raise ConfigError(f"the {split} split of {data.kind} {data.path or ''} is empty")
    sampler: Any = None
    if rt.world > 1 and shuffle:
        sampler = DistributedSampler(dataset, rt.world, rt.rank, shuffle=True, seed=config.seed)
    elif rt.world > 1:
        sampler = range(rt.rank, len(dataset), rt.world)
    generator = torch.Generator().manual_seed(config.seed)
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=data.workers,
        collate_fn=collate_tensors,
        drop_last=shuffle and len(dataset) >= config.batch_size * rt.world,
        generator=generator,
        persistent_workers=data.workers > 0,
        pin_memory=rt.device.type == "cuda",  # so the non_blocking copies are asynchronous
    )


def collate_tensors(samples: list[Any]) -> dict[str, Any]:
    """``data.datasets.collate`` with the fields training reads as CPU tensors (depth as
    float32): DataLoader's ``pin_memory`` pins tensors but leaves numpy arrays pageable."""
    batch = collate(samples)
    for key in ("low", "normal", "label", "depth", "albedo"):
        if batch.get(key) is not None:
            array = batch[key]
            batch[key] = torch.from_numpy(array.astype(np.float32) if key == "depth" else array)
    return batch


def to_tensors(batch: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    """Collated batch (numpy arrays or CPU tensors) -> float images in [0, 1] NCHW, long
    labels, depth in metres, copied to ``device`` without blocking (from pinned memory)."""

    def move(a: Any) -> torch.Tensor:
        return torch.as_tensor(a).to(device, non_blocking=True)

    def image(a: Any) -> torch.Tensor:
        return move(a).permute(0, 3, 1, 2).float() / 255

    out = {"low": image(batch["low"]), "normal": image(batch["normal"])}
    if batch.get("albedo") is not None:  # procedural views: the true reflectance
        out["albedo"] = image(batch["albedo"])
    if batch.get("label") is not None:
        out["label"] = move(batch["label"]).long()
    if batch.get("depth") is not None:
        depth = batch["depth"]
        if isinstance(depth, np.ndarray):
            depth = depth.astype(np.float32)
        out["depth_m"] = move(depth).float()[:, None] / 1000
    return out


class TrainStep(nn.Module):
    """The loss of one stage as a module, so DistributedDataParallel syncs what it trains."""

    def __init__(
        self,
        model: nn.Module,
        stage: str,
        config: TrainConfig,
        class_weights: torch.Tensor | None = None,
    ):
        super().__init__()
        self.model, self.stage, self.config = model, stage, config
        self.class_weights = class_weights

    def forward(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss_cfg = self.config.loss
        decomp = self.model.decomp
        if self.stage == "decomp":
            r_low, i_low = decomp(batch["low"])
            r_normal, i_normal = decomp(batch["normal"])
            return decomposition_loss(
                batch["low"],
                batch["normal"],
                r_low,
                i_low,
                r_normal,
                i_normal,
                lambda_cross=loss_cfg.lambda_cross,
                lambda_init=loss_cfg.lambda_init,
                lambda_smooth=loss_cfg.lambda_smooth,
                lambda_g=loss_cfg.lambda_g,
            )
        targets = dict(batch)
        if decomp is not None:
            with torch.no_grad():  # frozen: the restoration target is R(normal) (paper §3.2)
                targets["reflectance_target"] = decomp(batch["normal"])[0]
        outputs = self.model(batch["low"])
        return joint_loss(
            outputs,
            targets,
            seg_kind=loss_cfg.seg,
            gamma=loss_cfg.focal_gamma,
            alpha=loss_cfg.focal_alpha,
            depth_weight=loss_cfg.depth_weight,
            class_weights=self.class_weights,
        )


def restore_scaler(scaler: torch.amp.GradScaler, saved: dict[str, Any]) -> str | None:
    """Load a checkpoint's GradScaler state only when it has one and this run uses AMP.

    A run saved without AMP holds an empty state, which ``load_state_dict`` refuses; resuming
    across AMP on/off starts the scaler fresh instead. Returns the line to log then, else None.
    """
    if scaler.is_enabled() and saved:
        scaler.load_state_dict(saved)
        return None
    if scaler.is_enabled():
        return "resume: the checkpoint was saved without AMP; the gradient scaler starts fresh"
    if saved:
        return "resume: this run has no AMP; the checkpoint's gradient-scaler state is not used"
    return None


def poly_schedule(optimizer: torch.optim.Optimizer, total_steps: int, power: float):
    """Polynomial decay lr = base * (1 - step / total) ** power, stepped per iteration."""
    total = max(total_steps, 1)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1 - min(step, total) / total) ** power
    )


def set_stage(model: nn.Module, stage: str, freeze_encoders: bool) -> list[nn.Parameter]:
    """Freeze what the stage does not train; return the parameters to optimise."""
    for p in model.parameters():
        p.requires_grad_(False)
    params = list(model.decomp_parameters() if stage == "decomp" else model.task_parameters())
    for p in params:
        p.requires_grad_(True)
    if freeze_encoders:
        model.freeze_encoders()
    return [p for p in params if p.requires_grad]


SYNC_EVERY = 10
"""Batches between host syncs in training (progress bar, finiteness check), not one per batch."""


def _means(sums: dict[str, torch.Tensor], count: int, desc: str) -> dict[str, float]:
    """The summed terms as means: one device->host sync; raises if the loss went non-finite
    since the previous sync (a non-finite sum stays non-finite)."""
    means = dict(zip(sums, (torch.stack(list(sums.values())) / count).tolist(), strict=True))
    if not math.isfinite(means["loss"]):
        first = (count - 1) // SYNC_EVERY * SYNC_EVERY
        raise FloatingPointError(
            f"{desc}: loss became {means['loss']} in batches {first}-{count - 1}"
        )
    return means


class WeightEma:
    """Exponential moving average of a model's weights and buffers: what is validated and
    checkpointed when ``ema_decay`` > 0, so validation scores a smoothed model instead of the
    last step's weights. The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates,
    so a short run is not held at its initial weights."""

    def __init__(self, model: nn.Module, decay: float, updates: int = 0):
        import copy

        self.decay, self.updates = decay, updates
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        current = model.state_dict()
        for key, value in self.module.state_dict().items():
            if value.dtype.is_floating_point:  # e += (1 - d)(w - e): exact where w == e
                value.add_(current[key].detach() - value, alpha=1 - d)  # (frozen weights)
            else:  # e.g. BatchNorm's num_batches_tracked
                value.copy_(current[key])


def train_one_epoch(
    step: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    rt: Runtime,
    config: TrainConfig,
    desc: str,
    ema: WeightEma | None = None,
) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss and mean of every logged term.

    Losses are summed as float64 device tensors and read back every ``SYNC_EVERY`` batches, so
    a CUDA run does not wait for the GPU each batch; the means equal those of per-batch
    ``.item()`` sums.

    Raises:
        FloatingPointError: the loss became NaN or infinite, naming the batch range.
    """
    step.train()
    base = getattr(step, "module", step)
    if base.stage == "joint" and base.model.decomp is not None:
        base.model.decomp.eval()  # frozen decomposition: no BatchNorm/dropout updates
    sums: dict[str, torch.Tensor] = {}
    count = 0
    limit = config.max_batches or len(loader)
    bar = tqdm(
        loader,
        total=min(limit, len(loader)),
        desc=desc,
        unit="batch",
        disable=not rt.main,
        leave=False,
    )
    for i, raw in enumerate(bar):
        if i >= limit:
            break
        batch = to_tensors(raw, rt.device)
        with torch.autocast(rt.device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
            loss, terms = step(batch)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if ema is not None:
            ema.update(base.model)
        count += 1
        for key, value in {"loss": loss, **terms}.items():
            value = torch.as_tensor(value).detach().to(rt.device, torch.float64)
            sums[key] = sums[key] + value if key in sums else value
        if count % SYNC_EVERY == 0:
            bar.set_postfix(loss=f"{_means(sums, count, desc)['loss']:.4f}")
    return _means(sums, count, desc) if count else {}


def gathered(value: Any, rt: Runtime) -> list[Any]:
    """``value`` from every rank, in rank order (``[value]`` in a single process)."""
    if rt.world == 1:
        return [value]
    values: list[Any] = [None] * rt.world
    dist.all_gather_object(values, value)
    return values


@torch.no_grad()
def evaluate(
    model: nn.Module, step: nn.Module, loader: DataLoader, rt: Runtime, config: TrainConfig
) -> dict[str, Any]:
    """Validation loss and, for the joint stage, OA/mAcc/mIoU/FWIoU over the whole split, and
    restoration: PSNR / SSIM of the restored reflectance against the target R(normal) and the
    true albedo where the data has it, next to the gain and max-RGB Retinex baselines
    (:mod:`~lowlight_perception.evaluation.restoration`).

    Under torchrun every rank must call it: each scores its shard with rank 0's BatchNorm
    statistics (the model rank 0 saves), and the confusion matrices and loss sums are merged, so
    every rank returns the metrics of the whole split. ``val_loss`` is the mean of the batch
    losses weighted by batch size.
    """
    model.eval()
    if rt.world > 1:  # DDP syncs buffers at a training forward's start: the last batch's
        for buffer in model.buffers():  # BatchNorm statistics differ; score rank 0's model
            dist.broadcast(buffer, 0)
    base = getattr(step, "module", step)
    matrix = ConfusionMatrix(load_classes().num_classes, ignore_index=0)
    scores = RestorationScores()
    loss_sum = torch.zeros((), dtype=torch.float64, device=rt.device)
    count = 0
    limit = config.max_batches or len(loader)
    for i, raw in enumerate(loader):
        if i >= limit:
            break
        batch = to_tensors(raw, rt.device)
        loss, _ = base(batch)
        size = len(batch["low"])
        loss_sum += loss.double() * size
        count += size
        if base.stage != "joint":
            continue
        with torch.no_grad():
            outputs = model(batch["low"])
        if "label" in batch:
            matrix.update(outputs["logits"].argmax(1).cpu().numpy(), batch["label"].cpu().numpy())
        if outputs.get("reflectance") is not None and model.decomp is not None:
            with torch.no_grad():
                target = model.decomp(batch["normal"])[0]
            _score_restoration(scores, batch, outputs["reflectance"], target)
    parts = gathered((matrix, loss_sum.item(), count, scores), rt)
    for other, _, _, other_scores in parts[1:]:
        matrix.merge(other)
        scores.merge(other_scores)
    total, count = sum(p[1] for p in parts), sum(p[2] for p in parts)
    result: dict[str, Any] = {"val_loss": total / max(count, 1)}
    if base.stage == "joint":
        m = matrix.compute()
        result.update(mIoU=m.mIoU, OA=m.OA, mAcc=m.mAcc, FWIoU=m.FWIoU)
        result.update(scores.summary())
    return result


def _score_restoration(
    scores: RestorationScores,
    batch: dict[str, torch.Tensor],
    restored: torch.Tensor,
    target: torch.Tensor,
) -> None:
    """Add a batch's frames to ``scores`` as uint8 HWC images."""

    def u8(t: torch.Tensor | None) -> np.ndarray | None:
        if t is None:
            return None
        return (t.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()

    low, normal, out, tgt = u8(batch["low"]), u8(batch["normal"]), u8(restored), u8(target)
    albedo = u8(batch.get("albedo"))
    for i in range(len(low)):
        scores.add(
            low[i], normal[i], out[i], target=tgt[i], albedo=None if albedo is None else albedo[i]
        )


def majority_baseline(loader: DataLoader, rt: Runtime) -> float:
    """mIoU of predicting the most frequent ground-truth class everywhere (a floor for mIoU),
    over the whole split (every rank calls it under torchrun)."""
    n = load_classes().num_classes
    hist = np.zeros(n, np.int64)
    for raw in loader:
        hist += np.bincount(np.asarray(raw["label"]).ravel(), minlength=n)[:n]
    return majority_class_miou(sum(gathered(hist, rt)))


MAX_CLASS_WEIGHT = 10.0
"""Cap of a median-frequency weight: a class seen in a handful of pixels must not dominate."""


def label_frequencies(loader: DataLoader, rt: Runtime) -> tuple[np.ndarray, np.ndarray]:
    """Per class: its pixels, and the pixels of the images it appears in (over every rank)."""
    n = load_classes().num_classes
    pixels, present_in = np.zeros(n, np.int64), np.zeros(n, np.int64)
    for raw in loader:
        for label in np.asarray(raw["label"]):
            counts = np.bincount(label.ravel(), minlength=n)[:n]
            pixels += counts
            present_in += np.where(counts > 0, label.size, 0)
    return sum(gathered(pixels, rt)), sum(gathered(present_in, rt))


def median_frequency_weights(pixels: np.ndarray, present_in: np.ndarray) -> np.ndarray:
    """SegNet's median frequency balancing (Eigen & Fergus): w_c = median(f) / f_c with f_c a
    class's pixels over the pixels of the images it appears in; void (0) and classes never
    seen get weight 1, and no weight exceeds :data:`MAX_CLASS_WEIGHT`."""
    freq = np.zeros(len(pixels))
    seen = (pixels > 0) & (present_in > 0)
    seen[0] = False
    freq[seen] = pixels[seen] / present_in[seen]
    weights = np.ones(len(pixels))
    if seen.any():
        weights[seen] = np.minimum(np.median(freq[seen]) / freq[seen], MAX_CLASS_WEIGHT)
    return weights


class RunLog:
    """metrics.csv + metrics.json + curves.png in the run directory, rewritten every epoch."""

    def __init__(self, out: Path):
        self.out = out
        self.rows: list[dict[str, Any]] = []
        if (out / "metrics.json").exists():
            self.rows = json.loads((out / "metrics.json").read_text())

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        (self.out / "metrics.json").write_text(json.dumps(self.rows, indent=1))
        keys = sorted(
            {k for r in self.rows for k in r}, key=lambda k: (k not in ("stage", "epoch"), k)
        )
        with open(self.out / "metrics.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.rows)
        self.plot()

    def plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        for stage in ("decomp", "joint"):
            rows = [r for r in self.rows if r["stage"] == stage]
            if not rows:
                continue
            x = [r["epoch"] for r in rows]  # markers: a 1-epoch run is a point, not nothing
            axes[0].plot(x, [r["loss"] for r in rows], "o-", label=f"{stage} train")
            axes[0].plot(x, [r["val_loss"] for r in rows], "o--", label=f"{stage} val")
            if stage == "joint":
                axes[1].plot(x, [r["mIoU"] for r in rows], "o-", label="val mIoU")
        axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
        axes[1].set(xlabel="epoch", ylabel="mIoU", title="validation mIoU", ylim=(0, 1))
        for ax in axes:
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend()
        fig.tight_layout()
        fig.savefig(self.out / "curves.png", dpi=100)
        plt.close(fig)


def run_dir(config: TrainConfig) -> Path:
    """``config.out``, else a new ``runs/<model>-<stage>-<YYYYmmdd-HHMMSS>`` (a suffix when
    taken): runs without ``--out`` never replace each other's checkpoints."""
    if config.out:
        return Path(config.out)
    base = Path("runs") / f"{config.model}-{config.stage}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _git_commit(here: Path | None = None) -> str | None:
    """The package checkout's commit, when it is one (a wheel install has none), with
    ``+dirty`` when the package's tracked files differ from it: the code that trained a model
    was then not that commit's. ``here``: the package directory (this one by default)."""
    import subprocess

    here = here or Path(__file__).resolve().parents[1]

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=here, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return None
    changed = git("status", "--porcelain", "--untracked-files=no", "--", str(here))
    return f"{commit}+dirty" if changed else commit


def provenance(config: TrainConfig, train_views: int, val_views: int) -> dict[str, Any]:
    """What a checkpoint (and the ONNX exported from it) says it was trained on."""
    from .. import __version__

    data = config.data
    return {
        "model": config.model,
        "stage": config.stage,
        "data": {
            "kind": data.kind,
            "path": data.path,
            "size": list(data.size),
            "train_split": data.train_split,
            "val_split": data.val_split,
            "train_views": train_views,
            "val_views": val_views,
        },
        "seed": config.seed,
        "init_from": config.init_from,
        "freeze_encoders": config.freeze_encoders,
        "lowlight_perception": __version__,
        "commit": _git_commit(),
    }


def training_line(prov: dict[str, Any], row: dict[str, Any], note: str) -> str:
    """The one-line ``training`` record: data, sizes, seed, stage and epoch, metrics, recipe."""
    data = prov["data"]
    source = data["kind"] + (f" {data['path']}" if data["path"] else "")
    size = "x".join(str(v) for v in data["size"])
    metric = f", val mIoU {row['mIoU']:.3f}" if "mIoU" in row else ""
    parts = [
        f"{prov['model']} on {source} (train {data['train_views']}, val {data['val_views']} "
        f"views at {size}), seed {prov['seed']}, {row['stage']} epoch {row['epoch']}{metric}",
    ]
    if prov["init_from"]:
        frozen = ", encoders frozen" if prov["freeze_encoders"] else ""
        parts.append(f"from {prov['init_from']}{frozen}")
    if prov["commit"]:
        parts.append(f"commit {prov['commit']}")
    if note:
        parts.append(f"recipe: {note}")
    return "; ".join(parts)


def _stages(config: TrainConfig, model: nn.Module) -> list[tuple[str, int]]:
    if not model.uses_decomposition:
        if config.stage == "decomp":
            raise ConfigError(f"{config.model} has no decomposition network to train")
        return [("joint", config.epochs)]
    if config.stage == "all":
        return [("decomp", config.decomp_epochs), ("joint", config.epochs)]
    return [(config.stage, config.epochs if config.stage == "joint" else config.decomp_epochs)]


def train(config: TrainConfig, resume: str | None = None) -> dict[str, Any]:
    """Run the configured stages; returns a summary (best metrics, paths, time; ``best`` is None
    on torchrun ranks other than 0).

    Checkpoints: ``last.pt`` every epoch (resumable: model, optimizer, scheduler, scaler, stage,
    epoch), ``best.pt`` at the best val mIoU (joint) or lowest val loss (decomp-only runs).
    """
    rt = setup_runtime(config)
    seed_everything(config.seed + rt.rank)
    model = build_model(config.model, **config.model_config).to(rt.device)
    stages = _stages(config, model)
    state = None
    if resume:
        state = read_checkpoint(resume)
        if "optimizer" not in state:
            raise ConfigError(
                f"{resume} holds no optimizer state (best.pt is weights and metrics only): "
                "resume from the run's last.pt"
            )
    elif not config.init_from and model.uses_decomposition and [s for s, _ in stages] == ["joint"]:
        raise ConfigError(
            "--stage joint trains the task network on a frozen decomposition, which would be "
            "random here: give --set init_from=RUN/best.pt (a decomp or all run), or train "
            "--stage all"
        )
    out = run_dir(config) if state is None else Path(config.out or Path(resume).parent)
    config = dataclasses.replace(config, out=str(out))
    if rt.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    if state is not None:  # with EMA, "model" holds the averaged weights, "raw_model" the trained
        model.load_state_dict(state.get("raw_model", state["model"]))
    elif config.init_from:
        loaded = read_checkpoint(config.init_from)
        model.load_state_dict(loaded["model"])
        if rt.main:
            print(
                f"init_from {config.init_from}: {len(loaded['model'])} tensors of "
                f"{loaded.get('model_name', '?')} ({training_note(loaded)})"
            )
    if rt.world > 1:  # every rank starts from rank 0's weights (ranks seed differently), as
        for tensor in model.state_dict().values():  # DDP would make them, before the EMA copy
            dist.broadcast(tensor, 0)
    ema = None
    if config.ema_decay > 0:
        ema = WeightEma(model, config.ema_decay, (state or {}).get("ema", {}).get("updates", 0))
        if state is not None and "raw_model" in state:
            ema.module.load_state_dict(state["model"])
    if rt.main:
        print(summary(model))
    train_loader = make_loader(config, config.data.train_split, rt, shuffle=True)
    val_loader = make_loader(config, config.data.val_split, rt, shuffle=False)
    for split, loader in (
        (config.data.train_split, train_loader),
        (config.data.val_split, val_loader),
    ):
        if "joint" in [s for s, _ in stages] and not getattr(loader.dataset, "labelled", True):
            raise ConfigError(
                f"the {split} split of {config.data.path} has no labels yet (its {split}_lbl/ "
                "is empty): add class-id PNGs named like the views, train --stage decomp "
                "(low/normal pairs only), or adapt to unlabelled frames with `lowlight bag "
                "write` + `lowlight adapt`"
            )
    prov = provenance(config, len(train_loader.dataset), len(val_loader.dataset))
    class_weights = None
    if config.loss.class_weights == "median-frequency" and any(s == "joint" for s, _ in stages):
        weights = median_frequency_weights(*label_frequencies(train_loader, rt))
        class_weights = torch.tensor(weights, dtype=torch.float32, device=rt.device)
        prov["class_weights"] = [round(float(w), 4) for w in weights]
        if rt.main:
            names = load_classes().names
            print(
                "class weights (median frequency): "
                + ", ".join(
                    f"{name} {w:.2f}" for name, w in zip(names[1:], weights[1:], strict=True)
                )
            )
    log = RunLog(out) if rt.main else None
    if log is not None and state is None:
        log.rows = []
    amp = config.amp and rt.device.type == "cuda"
    best = state.get("best", {}) if state else {}
    start = time.perf_counter()
    names = [name for name, _ in stages]
    for stage, epochs in stages:
        if state and names.index(stage) < names.index(state["stage"]):
            continue  # finished before the checkpoint we resume from
        # §6.5: the encoders of LISU-decomp and LISU-joint stay frozen in both stages
        params = set_stage(model, stage, config.freeze_encoders)
        if rt.main:
            frozen = ", encoders frozen" if config.freeze_encoders else ""
            print(
                f"{stage} stage: training {sum(p.numel() for p in params):,} of "
                f"{sum(p.numel() for p in model.parameters()):,} parameters{frozen}"
            )
        step: nn.Module = TrainStep(model, stage, config, class_weights)
        if rt.world > 1:
            step = nn.parallel.DistributedDataParallel(
                step, device_ids=[rt.device.index] if rt.device.type == "cuda" else None
            )
        optimizer = torch.optim.Adam(
            params, lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay
        )
        per_epoch = min(config.max_batches or len(train_loader), len(train_loader))
        scheduler = poly_schedule(optimizer, epochs * per_epoch, config.poly_power)
        scaler = torch.amp.GradScaler("cuda", enabled=amp)
        first = 0
        if state and state["stage"] == stage:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            note = restore_scaler(scaler, state.get("scaler") or {})
            if note and rt.main:
                print(note)
            first = state["epoch"] + 1
            state = None
        for epoch in range(first, epochs):
            if isinstance(train_loader.sampler, DistributedSampler):
                train_loader.sampler.set_epoch(epoch)
            t0 = time.perf_counter()
            row = train_one_epoch(
                step,
                train_loader,
                optimizer,
                scheduler,
                scaler,
                rt,
                config,
                desc=f"{stage} {epoch + 1}/{epochs}",
                ema=ema,
            )
            scored = model if ema is None else ema.module  # what is validated and saved
            scored_step = (
                step if ema is None else TrainStep(ema.module, stage, config, class_weights)
            )
            row.update(evaluate(scored, scored_step, val_loader, rt, config))  # collective
            if rt.main:
                row.update(
                    stage=stage,
                    epoch=epoch + 1,
                    lr=scheduler.get_last_lr()[0],
                    seconds=round(time.perf_counter() - t0, 2),
                )
                log.add(row)
                key = "mIoU" if stage == "joint" else "val_loss"
                better = key not in best.get(stage, {}) or (
                    row[key] > best[stage][key] if key == "mIoU" else row[key] < best[stage][key]
                )
                best.setdefault(stage, {})
                if better and not math.isnan(row[key]):
                    best[stage] = {key: row[key], "epoch": epoch + 1}
                extra = {
                    "stage": stage,
                    "epoch": epoch,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "best": best,
                    "metrics": row,
                    "train_config": config.to_dict(),
                    "training": training_line(prov, row, config.training_note),
                    "provenance": {**prov, "metrics": row, "best": best},
                }
                if ema is not None:  # "model": the validated average; raw weights to resume
                    extra["ema"] = {"decay": ema.decay, "updates": ema.updates}
                    extra["raw_model"] = model.state_dict()
                save_checkpoint(out / "last.pt", scored, **extra)
                if better:  # weights and records only: resuming is last.pt's job
                    resumable = ("optimizer", "scheduler", "scaler", "raw_model")
                    save_checkpoint(
                        out / "best.pt",
                        scored,
                        **{k: v for k, v in extra.items() if k not in resumable},
                    )
                tqdm.write(_epoch_line(row))
            if rt.world > 1:
                dist.barrier()
    result = {
        "best": best if rt.main else None,  # None: other ranks print no summary
        "seconds": round(time.perf_counter() - start, 1),
        "out": str(out),
        "processes": rt.world,
        "device": str(rt.device),
    }
    if any(s == "joint" for s, _ in stages):
        result["majority_baseline_mIoU"] = majority_baseline(val_loader, rt)
        if log is not None:
            result["val_mIoU_spread"] = miou_spread(log.rows)
    if rt.world > 1:
        dist.barrier()  # every rank done with its collectives before gloo's threads go
        dist.destroy_process_group()
    return result


SPREAD_EPOCHS = 5


def miou_spread(rows: list[dict[str, Any]]) -> dict[str, float] | None:
    """Val mIoU over the last :data:`SPREAD_EPOCHS` joint epochs: mean, std, min, max and the
    mean change from one epoch to the next, so a reader sees how much one epoch's figure is
    noise. None without joint epochs."""
    values = [r["mIoU"] for r in rows if r.get("stage") == "joint" and "mIoU" in r]
    values = values[-SPREAD_EPOCHS:]
    if not values:
        return None
    steps = np.abs(np.diff(values))
    return {
        "epochs": len(values),
        "mean": round(float(np.mean(values)), 4),
        "std": round(float(np.std(values)), 4),
        "min": round(float(np.min(values)), 4),
        "max": round(float(np.max(values)), 4),
        "mean_epoch_change": round(float(steps.mean()), 4) if len(steps) else 0.0,
    }


def _epoch_line(row: dict[str, Any]) -> str:
    parts = [
        f"{row['stage']} epoch {row['epoch']}",
        f"loss {row['loss']:.4f}",
        f"val {row['val_loss']:.4f}",
    ]
    if "mIoU" in row:
        parts.append(f"mIoU {row['mIoU']:.3f} OA {row['OA']:.3f}")
    if "psnr_restored_vs_albedo" in row:
        parts.append(
            f"PSNR vs albedo {row['psnr_restored_vs_albedo']:.2f} dB (gain "
            f"{row['psnr_gain_vs_albedo']:.2f}, max-RGB {row['psnr_max_rgb_vs_albedo']:.2f})"
        )
    parts.append(f"{row['seconds']:.1f} s")
    return ", ".join(parts)
