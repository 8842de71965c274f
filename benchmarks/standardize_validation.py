"""Which inductive intensity standardisation is the default: chosen on *source validation* only.

``data.standardize_stats`` has two inductive values (:mod:`rsmg.data.standardize`): ``source`` (robust statistics
of the source rasters, applied unchanged to every scene) and ``per_patch`` (each patch's own). This script fits
the concat CNN and FVMGN on Trento with each (the cross-scene LiDAR configs, height + intensity), and reports the
Trento validation OA that checkpoint selection sees: the best epoch's and the last epoch's. The runs are
``rsmg fit`` *without* a test: no target (MUUFL) number is computed, so none can steer the choice. The rule,
fixed before measuring: the default is the variant with the higher mean best-epoch validation OA over both
models and all seeds (docs/decisions.md#intensity-standardisation).

Usage::

    RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/standardize_validation.py --seeds 42 43 44 --epochs 15
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    BASELINE_LIDAR,
    FVMGN_LIDAR,
    ROOT,
    command,
    config_args,
    machine,
    rsmg_fit,
    slug,
    write_result,
)
from _stats import mean_sd, paired_cell
from rsmg.cli.signature import cli

CONFIGS = {"concat CNN": BASELINE_LIDAR, "FVMGN": FVMGN_LIDAR}  # experiments/ pieces: data, model, trainer
VARIANTS = ("source", "per_patch")


def fit(method: str, stats: str, seed: int, epochs: int, out: Path) -> Path | None:
    """One fit on Trento without a test; returns its run directory (reused when already finished)."""
    run = out / slug(method) / stats / f"seed{seed}"
    if (run / "metrics.csv").exists() and (run / "checkpoints" / "last.ckpt").exists():
        return run
    args = [
        *config_args(CONFIGS[method]),
        "--data.init_args.standardize", "{lidar: [intensity]}",
        "--data.init_args.standardize_stats", stats,
        "--trainer.max_epochs", str(epochs),
        "--seed_everything", str(seed),
        "--data.init_args.seed", str(seed),
        "--trainer.logger.init_args.save_dir", str(out / slug(method)),
        "--trainer.logger.init_args.name", stats,
        "--trainer.logger.init_args.version", f"seed{seed}",
        "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip
    return run if rsmg_fit(args, f"{method} {stats} seed {seed}") else None


def val_oa(run: Path) -> tuple[float, float]:
    """(best, last) validation OA in % from the run's CSV log."""
    with (run / "metrics.csv").open() as f:
        vals = [float(r["val/oa"]) for r in csv.DictReader(f) if r.get("val/oa")]
    return 100 * max(vals), 100 * vals[-1]


@dataclass(kw_only=True)
class Options:
    """Options of ``standardize_validation.py``.

    Attributes:
        seeds: seeds of every fit
        epochs: epochs of every fit
        out: folder of the runs
        results: results file under benchmarks/results/
    """

    seeds: list[int] = field(default_factory=lambda: [42, 43, 44])
    epochs: int = 15
    out: Path = ROOT / "outputs" / "bench_standardize_validation"
    results: str = "fvmgn_accuracy/standardize_validation.md"


def main(args: Options) -> None:
    header = machine()
    best: dict[tuple[str, str], dict[int, float]] = {}
    last: dict[tuple[str, str], dict[int, float]] = {}
    for method in CONFIGS:
        for stats in VARIANTS:
            for seed in args.seeds:
                run = fit(method, stats, seed, args.epochs, args.out)
                if run is not None:
                    b, e = val_oa(run)
                    best.setdefault((method, stats), {})[seed] = b
                    last.setdefault((method, stats), {})[seed] = e
    lines = [
        "# Intensity standardisation: source-fitted vs per-patch statistics, on Trento validation",
        "",
        f"Command: `{command()}`  ",
        f"Machine: {header}  ",
        f"Protocol: `rsmg fit` of each cross-scene LiDAR config (LiDAR height + intensity, shared classes, "
        f"Trento standard training pixels, 20 % of them held out for validation), {args.epochs} epochs, "
        "`data.standardize: {lidar: [intensity]}` with `data.standardize_stats` as in the row; the model seed and "
        "the data seed are both the seed. Validation OA in %: the best epoch (what checkpoint selection keeps) and "
        "the last. No test ran: no MUUFL number exists for these runs. Mean ± sample std (ddof = 1).",
        "",
        "| method | standardize_stats | best val OA % | last-epoch val OA % | seeds |",
        "|---|---|---:|---:|---:|",
    ]
    for (method, stats), per_seed in best.items():
        lines.append(
            f"| {method} | {stats} | {mean_sd(list(per_seed.values()))} | "
            f"{mean_sd(list(last[method, stats].values()))} | {len(per_seed)} |"
        )
    pooled = {v: [x for (_, st), d in best.items() if st == v for x in d.values()] for v in VARIANTS}
    means = {v: sum(x) / len(x) for v, x in pooled.items() if x}
    paired = []
    for method in CONFIGS:
        if (method, "per_patch") in best and (method, "source") in best:
            pp, src = best[method, "per_patch"], best[method, "source"]
            paired.append(f"{method} {paired_cell({k: pp[k] - src[k] for k in sorted(pp) if k in src})}")
    if means:
        chosen = max(means, key=lambda v: means[v])
        pooled_text = ", ".join(f"{v} {m:.2f} % ({len(pooled[v])} runs)" for v, m in means.items())
        lines += [
            "",
            f"Best: `{chosen}`, by the rule fixed before measuring (the higher mean best-epoch validation OA over "
            f"both models and all seeds: {pooled_text}). Paired per-seed differences, per_patch − source, "
            f"best-epoch validation OA in points: {'; '.join(paired) or '–'}.",
        ]
    write_result(args.results, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main(cli(Options, description=__doc__))
