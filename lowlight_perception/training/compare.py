"""Compare finished training runs over seeds: mean ± std of what each model reached, per model,
and paired per-seed gaps against a reference model (LISU's central claim, issue 15).

Reads only what every run directory holds (``config.yaml`` and ``metrics.json``, written by the
training loop each epoch), so it works on runs made anywhere, CPU or GPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..errors import LowlightError

# Restoration figures on validation, when the data carries the albedo (procedural sets do).
RESTORATION_KEYS = (
    "psnr_restored_vs_albedo",
    "psnr_gain_vs_albedo",
    "psnr_max_rgb_vs_albedo",
    "ssim_restored_vs_albedo",
)


def read_run(run: Path) -> dict[str, Any]:
    """One run's summary: model, seed, epochs, best and last val mIoU, restoration, time."""
    try:
        config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))  # or JSON
        rows = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise LowlightError(f"{run}: not a finished training run ({err})") from err
    joint = [r for r in rows if r.get("stage") == "joint" and "mIoU" in r]
    if not joint:
        raise LowlightError(f"{run}: no validated joint epoch in metrics.json")
    last = joint[-1]
    summary = {
        "run": run.name,
        "model": config["model"],
        "seed": config["seed"],
        "decomp_epochs": sum(r.get("stage") == "decomp" for r in rows),
        "joint_epochs": len(joint),
        "best_mIoU": round(max(r["mIoU"] for r in joint), 4),
        "last_mIoU": round(last["mIoU"], 4),
        "last_OA": round(last["OA"], 4),
        "seconds": round(sum(r.get("seconds", 0.0) for r in rows), 1),
    }
    summary.update({k: round(last[k], 3) for k in RESTORATION_KEYS if k in last})
    return summary


def mean_std(values: list[float]) -> str:
    """ "mean ± std" with the sample standard deviation (n - 1), or the value for one run."""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def compare_runs(runs: list[Path], reference: str) -> dict[str, Any]:
    """Per model over its seeds, and ``reference`` minus each other model on the seeds both ran
    (paired: same data, same seed). Runs must share data and budget; that is the caller's
    script's job, recorded in each row."""
    rows = sorted((read_run(r) for r in runs), key=lambda r: (r["model"], r["seed"]))
    models = sorted({r["model"] for r in rows}, key=lambda m: (m != reference, m))
    per_model = []
    for model in models:
        mine = [r for r in rows if r["model"] == model]
        entry = {
            "model": model,
            "seeds": " ".join(str(r["seed"]) for r in mine),
            "last_mIoU": mean_std([r["last_mIoU"] for r in mine]),
            "best_mIoU": mean_std([r["best_mIoU"] for r in mine]),
            "minutes_per_run": round(float(np.mean([r["seconds"] for r in mine])) / 60, 1),
        }
        for key in RESTORATION_KEYS:
            if all(key in r for r in mine):
                entry[key] = mean_std([r[key] for r in mine])
        per_model.append(entry)
    by_seed = {(r["model"], r["seed"]): r for r in rows}
    gaps = []
    for model in models:
        if model == reference:
            continue
        seeds = sorted(s for m, s in by_seed if m == model and (reference, s) in by_seed)
        diffs = [
            by_seed[(reference, s)]["last_mIoU"] - by_seed[(model, s)]["last_mIoU"] for s in seeds
        ]
        if diffs:
            gaps.append(
                {
                    "difference": f"{reference} - {model}, last val mIoU",
                    "mean_std": mean_std(diffs),
                    "seeds": " ".join(map(str, seeds)),
                    "positive_seeds": sum(d > 0 for d in diffs),
                }
            )
    return {"reference": reference, "models": per_model, "gaps": gaps, "rows": rows}
