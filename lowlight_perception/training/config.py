"""Training configuration: YAML presets under ``config/train/`` plus ``--set key=value``
overrides, validated completely before any data is read or any weight is touched."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import load_yaml
from ..errors import ConfigError

STAGES = ("decomp", "joint", "all")
CLASS_WEIGHTINGS = ("median-frequency",)


@dataclass
class DataConfig:
    kind: str = "procedural"
    path: str | None = None  # dataset root / .mat file; None only for procedural
    train_split: str = "train"
    val_split: str = "val"
    size: list[int] = field(default_factory=lambda: [320, 240])  # network input W, H
    workers: int = 2
    options: dict[str, Any] = field(default_factory=dict)  # extra dataset kwargs


@dataclass
class LossConfig:
    lambda_cross: float = 0.01  # Eq. 6 lambda_1
    lambda_init: float = 0.1  # lambda_2
    lambda_smooth: float = 0.5  # lambda_3
    lambda_g: float = 10.0
    seg: str = "ce"
    focal_gamma: float = 2.0
    focal_alpha: float = 0.5
    depth_weight: float = 0.0  # berHu auxiliary depth loss ([Jiao]); needs depth_head
    # None: every class counts alike; "median-frequency": rare classes weigh more (SegNet)
    class_weights: str | None = None


@dataclass
class TrainConfig:
    """Everything one training run needs; see ``config/train/*.yaml`` for the presets."""

    model: str = "lisu"
    model_config: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    stage: str = "all"  # decomp, joint (decomp frozen), all (decomp then joint)
    epochs: int = 50  # joint-stage epochs
    decomp_epochs: int = 50
    batch_size: int = 12
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.95, 0.999])
    poly_power: float = 0.9
    weight_decay: float = 0.0
    init_from: str | None = None  # checkpoint to start from (e.g. synthetic pre-training)
    freeze_encoders: bool = False  # paper §6.5 fine-tuning: train decoders only
    out: str = ""  # run directory; "" = a new runs/<model>-<stage>-<time> for every run
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    amp: bool = True  # mixed precision on CUDA only
    max_batches: int | None = None  # cap batches per epoch (smoke tests)
    ema_decay: float = 0.999  # EMA of the weights, validated and saved; 0 = off (raw weights)
    training_note: str = ""  # free text carried into checkpoints and ONNX metadata

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls: type, doc: dict[str, Any], where: str) -> Any:
    """Instantiate a (nested) config dataclass, rejecting unknown keys with the valid ones."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {type(doc).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(doc) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key {where}{unknown[0]!r}; valid keys: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in doc.items():
        nested = {"data": DataConfig, "loss": LossConfig}.get(name) if cls is TrainConfig else None
        kwargs[name] = _build(nested, value, f"{name}.") if nested else value
    return cls(**kwargs)


def assign(doc: dict[str, Any], item: str) -> None:
    """Apply one ``key.sub=value`` assignment (value parsed as YAML) to a config document.

    The value replaces what was there, dicts included (``data.options={}`` clears them).

    Raises:
        ConfigError: if ``item`` is not ``key=value``.
    """
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r} must look like key=value (e.g. epochs=3)")
    node = doc
    *parents, leaf = key.split(".")
    for part in parents:
        child = node.get(part)
        node[part] = child = dict(child) if isinstance(child, dict) else {}
        node = child
    try:
        node[leaf] = yaml.safe_load(value)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or "not valid YAML"
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({problem})") from None


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(
    path: str | Path | None,
    overrides: dict[str, Any] | None = None,
    assignments: list[str] | tuple[str, ...] = (),
) -> TrainConfig:
    """A validated TrainConfig from a preset name (``config/train/<name>.yaml`` of this
    installation) or a YAML path, with ``overrides`` merged on top, then ``key=value``
    ``assignments`` (the CLI's ``--set``) applied in order.

    Raises:
        ConfigError: on a missing file, an unknown key, a bad value or a missing dataset path.
    """
    doc: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists() and len(path.parts) == 1:  # a preset name: config/train/<name>.yaml
            path = Path("config/train") / (path.name if path.suffix else f"{path.name}.yaml")
        doc = load_yaml(path) or {}
    doc = _merge(doc, overrides or {})
    for item in assignments:
        assign(doc, item)
    config = _build(TrainConfig, doc, "")
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    """Check values and paths so that a bad run fails before it starts, in one line.

    Raises:
        ConfigError: naming the offending key.
    """
    from ..data.datasets import DATASETS
    from ..models import list_models
    from ..models.losses import SEG_KINDS

    if config.model not in list_models():
        raise ConfigError(f"unknown model {config.model!r}; valid: {', '.join(list_models())}")
    if config.stage not in STAGES:
        raise ConfigError(f"stage must be one of {', '.join(STAGES)}, got {config.stage!r}")
    if config.loss.seg not in SEG_KINDS:
        raise ConfigError(
            f"loss.seg must be one of {', '.join(SEG_KINDS)}, got {config.loss.seg!r}"
        )
    if config.loss.class_weights not in (None, *CLASS_WEIGHTINGS):
        raise ConfigError(
            f"loss.class_weights must be null or one of {', '.join(CLASS_WEIGHTINGS)}, "
            f"got {config.loss.class_weights!r}"
        )
    data = config.data
    if data.kind not in DATASETS:
        raise ConfigError(f"data.kind must be one of {', '.join(DATASETS)}, got {data.kind!r}")
    if data.kind != "procedural":
        if not data.path:
            raise ConfigError(f"data.path is required for data.kind={data.kind}")
        if not Path(data.path).exists():
            raise ConfigError(f"data.path does not exist: {data.path}")
    if (
        not isinstance(data.size, list | tuple)
        or len(data.size) != 2
        or any(not isinstance(v, int) or v < 16 for v in data.size)
    ):
        raise ConfigError(f"data.size must be [width, height] in pixels, got {data.size!r}")
    if config.model.startswith("lisu") and any(v % 16 for v in data.size):
        raise ConfigError(f"data.size {data.size} must be multiples of 16 for LISU networks")
    for key in ("epochs", "decomp_epochs", "batch_size"):
        value, least = getattr(config, key), 0 if key.endswith("epochs") else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            kind = "a non-negative integer" if least == 0 else "a positive integer"
            raise ConfigError(f"{key} must be {kind}, got {value!r}")
    if not (isinstance(config.lr, int | float) and config.lr > 0):
        raise ConfigError(f"lr must be > 0, got {config.lr!r}")
    if len(config.betas) != 2 or not all(0 <= b < 1 for b in config.betas):
        raise ConfigError(f"betas must be two values in [0, 1), got {config.betas!r}")
    if not (isinstance(config.ema_decay, int | float) and 0 <= config.ema_decay < 1):
        raise ConfigError(f"ema_decay must be in [0, 1) (0 = no EMA), got {config.ema_decay!r}")
    if config.init_from and not Path(config.init_from).is_file():
        raise ConfigError(f"init_from checkpoint not found: {config.init_from}")
    if config.loss.depth_weight > 0 and not config.model_config.get("depth_head"):
        raise ConfigError("loss.depth_weight > 0 needs model_config.depth_head: true")
    if not isinstance(config.device, str) or not re.fullmatch(
        r"auto|cpu|cuda(:\d+)?", config.device
    ):
        raise ConfigError(f"device must be auto, cpu or cuda[:N], got {config.device!r}")
