"""DTAug on the README's cross-scene protocol (Trento → unseen MUUFL, real LiDAR): with and without TTA, 3 seeds.

1. Train the source diffusion prior once (``experiments/dtaug/prior_trento_lidar.yaml``: Trento patches only).
2. For each seed and method, train the classifier (optionally with DTAug training views read from a view bank
   built once from the prior) and test it with the ``DiffusionTTA`` callback, which reports plain and TTA
   metrics on the same target pixels in the same run.
3. Write ``benchmarks/results/<name>.md``: OA / AA / Kappa without and with TTA, mean ± sample std over seeds,
   the per-seed OA change from TTA and the paired per-seed differences against the baseline, each row's protocol
   (inductive / transductive, from the run's record), the majority-class reference and per-class accuracy.

TTA costs ``views × steps`` UNet passes per test pixel, so the target is a seeded stratified sample of MUUFL's
labelled pixels (``--target-split``, default 5 %; plain and TTA columns use the same pixels). Runs already
finished are reused (delete ``--out`` to start again).

Usage::

    RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/dtaug_accuracy.py
    RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/dtaug_accuracy.py --seeds 42 --methods baseline
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    BASELINE_LIDAR,
    FVMGN_LIDAR,
    ROOT,
    command,
    config_args,
    grid_run_args,
    machine,
    rsmg_fit,
    slug,
    write_result,
)
from _dtaug import prior_losses, tta_overlay
from _reuse import check_reuse
from _stats import mean_sd, paired_cell, paired_differences, per_class_table
from rsmg.cli.signature import cli

BASE = BASELINE_LIDAR  # experiments/ pieces: data, model, trainer
FVMGN = FVMGN_LIDAR
PRIOR = "experiments/dtaug/prior_trento_lidar.yaml"
METHODS: dict[
    str, tuple[tuple[str, ...], bool]
] = {  # name -> (classifier config pieces, DTAug training views)
    "baseline": (BASE, False),
    "baseline + DTAug training views": (BASE, True),
    "fvmgn": (FVMGN, False),
    "fvmgn + DTAug training views": (FVMGN, True),
}


def train_prior(out: Path, epochs: int) -> Path:
    ckpt = out / "prior" / "seed42" / "checkpoints" / "last.ckpt"
    if ckpt.exists():
        return ckpt
    ok = rsmg_fit(
        [
            "--config",
            str(ROOT / PRIOR),
            "--trainer.max_epochs",
            str(epochs),
            "--trainer.logger.init_args.save_dir",
            str(out),
            "--trainer.logger.init_args.name",
            "prior",
            "--trainer.enable_progress_bar",
            "false",
        ],
        f"prior ({epochs} epochs, Trento source patches only)",
    )
    if not ok:
        raise SystemExit("prior training failed")
    return ckpt


def prior_loss(out: Path) -> str:
    """The prior's logged losses (its run: ``out/prior/seed42``)."""
    return prior_losses(out / "prior" / "seed42")


def overlays(out: Path, prior: Path, views: int, steps: int, strength: float) -> tuple[Path, Path]:
    tta = tta_overlay(out / "tta.yaml", prior, views, steps, strength)
    train_views = out / "train_views.yaml"
    train_views.write_text(
        "model:\n  init_args:\n    train_views:\n      class_path: rsmg.diffusion.train_views.TrainingViews\n"
        f"      init_args: {{prior_path: {prior}, p: 0.5, strength: {strength}, steps: {steps}, seed: 0, "
        f"bank_dir: {out / 'view_bank'}, bank_views: 4}}\n"
    )
    return tta, train_views


def run(method: str, seed: int, args: Options, tta: Path, views_yaml: Path) -> Path | None:
    cfg, with_views = METHODS[method]
    run_dir = args.out / "classifiers" / slug(method) / f"seed{seed}"
    cmd = config_args(cfg)
    if with_views:
        cmd += ["--config", str(views_yaml)]
    cmd += [
        "--config",
        str(tta),
        "--trainer.max_epochs",
        str(args.epochs),
        "--data.init_args.target_split",
        args.target_split,
        *grid_run_args(args.out / "classifiers", slug(method), seed),
    ]
    if (run_dir / "metrics.json").exists():
        check_reuse(run_dir, cmd)
        return run_dir
    return run_dir if rsmg_fit(cmd, f"{method} seed {seed}") else None


def both(run_dir: Path) -> tuple[dict, dict, str]:
    """The run's plain and TTA test results (with its classes) and its protocol record."""
    saved = json.loads((run_dir / "metrics.json").read_text())
    blocks = saved["results"]
    plain = next(iter(blocks["test"].values()))
    tta_name = next(k for k in blocks if k.startswith("test with DTAug TTA"))
    tta = next(iter(blocks[tta_name].values()))
    classes = saved.get("classes", [])
    return (
        {**plain, "classes": classes},
        {**tta, "classes": classes},
        str(saved.get("protocol", "not recorded")),
    )


def cell(v: list[float]) -> str:
    return mean_sd(v) if v else "failed"


@dataclass(kw_only=True)
class Options:
    """Options of ``dtaug_accuracy.py``.

    Attributes:
        seeds: seeds of every method
        methods: methods to run
        epochs: classifier epochs (the README main job's)
        prior_epochs: epochs of the DTAug prior
        views: DTAug views per sample (TTA and training views)
        steps: DDIM steps per view
        strength: noise strength of a view
        target_split: MUUFL target_split of the tests
        out: folder of the runs
        name: results file benchmarks/results/<name>.md
    """

    seeds: list[int] = field(default_factory=lambda: [42, 43, 44])
    methods: list[str] = field(default_factory=lambda: ["baseline", "baseline + DTAug training views"])
    epochs: int = 15
    prior_epochs: int = 40
    views: int = 4
    steps: int = 5
    strength: float = 0.3
    target_split: str = "fraction:0.05"
    out: Path = ROOT / "outputs" / "bench_dtaug"
    name: str = "dtaug/accuracy"


def main(args: Options) -> None:
    for m in args.methods:
        if m not in METHODS:
            raise SystemExit(f"unknown method {m!r}; choose from {list(METHODS)}")
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    prior = train_prior(args.out, args.prior_epochs)
    tta, views_yaml = overlays(args.out, prior, args.views, args.steps, args.strength)
    lines = [
        "# DTAug: diffusion training- and test-time augmentation on the cross-scene protocol (real LiDAR)",
        "",
        f"Command: `{command()}`  ",
        f"Machine: {machine()}  ",
        "Protocol: train on Trento (source), select on Trento validation pixels, test on unseen MUUFL; LiDAR height "
        "above ground + robustly standardised intensity (`data.standardize_stats` of the configs), shared class set "
        "(the README main job's setting); each row's protocol is its runs' record (`metrics.json`). "
        f"Target pixels: a seeded stratified sample ({args.target_split}) of MUUFL's labelled pixels, the same "
        "pixels for the plain and the TTA columns of a run.  ",
        f"Prior: `{PRIOR}` ({args.prior_epochs} epochs on Trento source patches only; "
        f"{prior_loss(args.out)}).  ",
        f"TTA: original + {args.views} views (strength {args.strength}, {args.steps} DDIM steps), mean of "
        "probabilities. Training views: p = 0.5 per sample and epoch, from a bank of 4 views per source patch "
        "built once from the same prior. Mean ± sample std (ddof = 1) over seeds; model seed = data seed.",
        "",
        "| method | protocol | plain OA % | plain AA % | plain Kappa % | TTA OA % | TTA AA % | TTA Kappa % "
        "| ΔOA per seed (TTA − plain) | plain OA − baseline (paired) | TTA OA − baseline plain (paired) | seeds |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|---|---:|",
    ]
    per_seed: dict[str, dict[int, tuple[dict, dict]]] = {}
    protocols: dict[str, set[str]] = {}
    for method in args.methods:
        per_seed[method], protocols[method] = {}, set()
        for seed in args.seeds:
            d = run(method, seed, args, tta, views_yaml)
            if d is not None:
                plain, with_tta, protocol = both(d)
                per_seed[method][seed] = (plain, with_tta)
                protocols[method].add(protocol)
    base = per_seed.get(args.methods[0], {})
    for method in args.methods:
        runs = per_seed[method]
        pairs = list(runs.values())
        plain_cells = [cell([p[k] * 100 for p, _ in pairs]) for k in ("oa", "aa", "kappa")]
        tta_cells = [cell([t[k] * 100 for _, t in pairs]) for k in ("oa", "aa", "kappa")]
        deltas = ", ".join(f"{100 * (t['oa'] - p['oa']):+.2f}" for p, t in pairs)
        base_plain = {k: 100 * v[0]["oa"] for k, v in base.items()}
        if method == args.methods[0]:
            vs_plain = "–"
        else:
            vs_plain = paired_cell(
                paired_differences({k: 100 * v[0]["oa"] for k, v in runs.items()}, base_plain)
            )
        vs_tta = paired_cell(paired_differences({k: 100 * v[1]["oa"] for k, v in runs.items()}, base_plain))
        protocol = ", ".join(sorted(protocols[method])) or "–"
        protocol = f"**{protocol}**" if "transductive" in protocol else protocol
        lines.append(
            f"| {method} | {protocol} | {' | '.join(plain_cells)} | {' | '.join(tta_cells)} | {deltas} | "
            f"{vs_plain} | {vs_tta} | {len(pairs)} |"
        )
    classes_table = {m: [p for p, _ in per_seed[m].values()] for m in args.methods}
    classes_table |= {f"{m} + TTA": [t for _, t in per_seed[m].values()] for m in args.methods}
    lines += [
        "",
        f"Paired differences are against `{args.methods[0]}` (plain), seed by seed.",
        "",
        *per_class_table(classes_table),  # opens with the majority-class reference
        "",
        f"Total wall time of this invocation: {time.perf_counter() - t0:.0f} s (finished runs reused).",
    ]
    write_result(f"{args.name}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main(cli(Options, description=__doc__))
