"""``lowlight bench adapt``: adaptation to a domain shift the generator makes (issue 16).

Trained checkpoints (one per seed, e.g. the LISU runs of ``bench/training/seeds.sh``) meet a
procedural set rendered with a third of the LED power on a noisier sensor (``lowlight synth
--low-light dim-noisy``, other rooms). Its train split, written as an unlabelled bag, is what
``lowlight adapt`` sees; its val split, with labels, is only scored: each checkpoint before
and after adaptation, with and without depth-aware refinement. Reported per seed and as mean ±
std over seeds, whatever the sign.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

from ..errors import LowlightError
from ..training.compare import mean_std
from .common import size_arg

CONDITIONS = (("source", False), ("source", True), ("adapted", False), ("adapted", True))
"""(model, refined) pairs scored on the shifted val split."""


def bench_adapt(
    checkpoints: list[Path], work: Path, views: int, size: tuple[int, int], rounds: int, epochs: int
) -> dict:
    """Render the shifted set and its unlabelled bag once (kept in ``work``), adapt each
    checkpoint, score the four conditions; the result table."""
    from ..bags import write_bag
    from ..data.datasets import open_dataset
    from ..data.layout import META_FILE
    from ..data.synth import render_dataset
    from ..evaluation.evaluate import evaluate_dataset
    from ..inference.refine import RefineConfig
    from ..training.adapt import AdaptConfig, adapt
    from .common import machine

    data, bag = work / "data", work / "unlabelled"
    if not (data / META_FILE).exists():
        render_dataset(data, views=views, size=size, seed=23, low_light="dim-noisy")
    meta = yaml.safe_load((data / META_FILE).read_text(encoding="utf-8"))
    made = (
        meta["width"],
        meta["height"],
        meta["generator"]["views"],
        meta["generator"].get("low_light"),
    )
    if made != (size[0], size[1], views, "dim-noisy"):  # a --work of another run: not reused
        raise LowlightError(
            f"{work} holds a shifted set of {made[2]} {made[3]} views at {made[0]}x{made[1]}, "
            f"not {views} at {size[0]}x{size[1]}: choose another --work or delete it"
        )
    if not bag.exists():
        write_bag(open_dataset("llrgbd-real", data, "train"), bag, include_labels=False)
    rows = []
    start = time.perf_counter()
    for index, checkpoint in enumerate(checkpoints):
        out = work / f"model{index}"
        config = AdaptConfig(rounds=rounds, epochs=epochs, seed=index)
        report = adapt(checkpoint, [bag], out / "adapt", config)
        models = {"source": checkpoint, "adapted": out / "adapt" / "adapted.pt"}
        row: dict = {
            "checkpoint": str(checkpoint),
            "pseudo_labelled_%": report["rounds"][-1]["pseudo_labelled_%"],
        }
        for name, refined in CONDITIONS:
            metrics = evaluate_dataset(
                "llrgbd-real",
                data,
                "val",
                models[name],
                out / f"eval_{name}{'_refined' if refined else ''}",
                backend="torch",
                device="cpu",
                samples=2,
                progress=False,
                refine=RefineConfig() if refined else None,
            )
            row[f"{name}{' + refine' if refined else ''} mIoU"] = round(metrics["mIoU"], 4)
        rows.append(row)
        print(
            f"  {checkpoint}: "
            + ", ".join(f"{k} {v}" for k, v in row.items() if k.endswith("mIoU"))
        )
    keys = [k for k in rows[0] if k.endswith("mIoU")]
    summary = [
        {"condition": k[: -len(" mIoU")], "mIoU mean ± std": mean_std([r[k] for r in rows])}
        for k in keys
    ]
    gains = {
        "adaptation (adapted - source)": [r["adapted mIoU"] - r["source mIoU"] for r in rows],
        "refinement on the source": [r["source + refine mIoU"] - r["source mIoU"] for r in rows],
        "refinement on the adapted": [r["adapted + refine mIoU"] - r["adapted mIoU"] for r in rows],
    }
    summary += [
        {"condition": f"gain: {k}", "mIoU mean ± std": mean_std(v)} for k, v in gains.items()
    ]
    return {
        "benchmark": "adapt to a domain shift",
        "shift": "lowlight synth --low-light dim-noisy (a third of the LED power, more sensor "
        f"noise), seed 23, {views} views at {size[0]}x{size[1]}: train split as an unlabelled "
        "bag for adaptation, val split (labels) scored only",
        "adapt": f"lowlight adapt defaults, {rounds} rounds x {epochs} epochs, seed = index",
        "refine": str(RefineConfig()),
        "seconds": round(time.perf_counter() - start, 1),
        "summary": summary,
        "rows": rows,
        "machine": machine(),
    }


def add_parser(benches: argparse._SubParsersAction) -> None:
    from .bench import OUT, OUT_HELP

    a = benches.add_parser(
        "adapt",
        help="adaptation to a generated domain shift: mIoU before / after lowlight adapt, with "
        "and without depth-aware refinement, over the given checkpoints (seeds)",
    )
    a.add_argument(
        "--checkpoints",
        type=Path,
        nargs="+",
        required=True,
        help="trained checkpoints, one per seed (e.g. out/seeds/lisu-small-seed*/best.pt)",
    )
    a.add_argument(
        "--work",
        type=Path,
        default=Path("out/bench_adapt"),
        help="where the shifted data, bag, adapted checkpoints and evaluations go",
    )
    a.add_argument("--views", type=int, default=600, help="shifted views (default 600)")
    a.add_argument("--size", type=size_arg, default=(160, 120), help="WxH (default 160x120)")
    a.add_argument("--rounds", type=int, default=2, help="adapt rounds (default 2)")
    a.add_argument("--epochs", type=int, default=2, help="adapt epochs per round (default 2)")
    a.add_argument("--name", default="adapt_dim_noisy", help="result file stem")
    a.add_argument("--out", type=Path, default=OUT, help=OUT_HELP)
    a.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .bench import write_result

    missing = [str(c) for c in args.checkpoints if not c.is_file()]
    if missing:
        raise LowlightError(f"checkpoint not found: {', '.join(missing)}")
    result = bench_adapt(
        args.checkpoints, args.work, args.views, args.size, args.rounds, args.epochs
    )
    for row in result["summary"]:
        print(f"  {row['condition']}: mIoU {row['mIoU mean ± std']}")
    print(f"-> {write_result(result, args.out, args.name)}")
    return 0
