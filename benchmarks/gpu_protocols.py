"""Whole protocols timed end to end on one device: what a user waits for, not a single training step.

Runs, one after another, each through the ``rsmg`` CLI exactly as a user would (plus the opt-in
:class:`rsmg.callbacks.timing.PhaseTimer`, which writes ``timing.json`` into every run directory):

1. the LiDAR job (``scripts/main_job_lidar.sh``, the README main job until issue 20: concat CNN + FVMGN, Trento →
   MUUFL, test on 25 % of MUUFL);
2. the DTAug source prior (``experiments/dtaug/prior_trento_lidar.yaml``, Trento patches only);
3. FVMGN with DTAug training views (``experiments/dtaug/train_views.yaml``: a bank of 4 views per patch);
4. plain test of the main job's FVMGN on every labelled MUUFL pixel (``target_split all``);
5. the same with DTAug TTA (K = 4 views, 5 DDIM steps, ``experiments/dtaug/tta.yaml``).

Each row gives the wall time of the whole command (start-up, data, model building, text tower, figures
included), and per stage the samples/s, the peak CUDA memory and the shares of data wait, batch time, MWDis,
text tower and diffusion prior (from ``timing.json``). Works on CPU too (slowly); the numbers in the results are
from the device named in the file.

Usage::

    RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/gpu_protocols.py --name gpu/protocols_h200
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from _common import FVMGN_LIDAR, RESULTS, ROOT, command, config_args, machine, write_result
from rsmg.cli.signature import Arg, cli

TIMER = ["--trainer.callbacks+", "rsmg.callbacks.timing.PhaseTimer"]
OUT = Path("outputs/gpu_protocols")
FVMGN = config_args(FVMGN_LIDAR, absolute=False)  # --config for each piece: data, model, trainer


def protocols(
    eval_batch: int, epochs: int, prior_epochs: int, split: str
) -> list[tuple[str, list[str], dict[str, str], list[Path]]]:
    """(label, command, extra environment, directories holding its timing.json files)."""
    rsmg = [".venv/bin/rsmg"]
    log = ["--trainer.logger.init_args.save_dir", str(OUT), "--trainer.logger.init_args.version", "seed42"]
    main_out = Path("outputs/main_job_lidar")
    ckpt = main_out / "fvmgn/seed42/checkpoints/last.ckpt"
    where = "every labelled MUUFL pixel" if split == "all" else f"MUUFL target_split {split}"
    test_all = ["--data.init_args.target_split", split, "--data.init_args.eval_batch_size", str(eval_batch)]
    return [
        (
            f"README main job (concat CNN + FVMGN, {epochs} epochs each, test on 25 % of MUUFL)",
            ["bash", "scripts/main_job_lidar.sh"],
            {"MAIN_JOB_EXTRA": " ".join(TIMER), "EPOCHS": str(epochs)},
            [main_out / "baseline/seed42", main_out / "fvmgn/seed42"],
        ),
        (
            f"DTAug source prior (Trento patches, {prior_epochs} epochs)",
            [*rsmg, "fit", "--config", "experiments/dtaug/prior_trento_lidar.yaml", *TIMER,
             "--trainer.max_epochs", str(prior_epochs)],
            {},
            [Path("outputs/dtaug_prior_trento_lidar/seed42")],
        ),
        (
            f"FVMGN with DTAug training views (bank of 4 views per patch, {epochs} epochs, test on 25 % of MUUFL)",
            [*rsmg, "fit", *FVMGN, "--config", "experiments/dtaug/train_views.yaml", *TIMER, *log,
             "--trainer.logger.init_args.name", "fvmgn_train_views", "--trainer.max_epochs", str(epochs),
             "--data.init_args.target_split", "fraction:0.25", "--test_after_fit", "true"],
            {},
            [OUT / "fvmgn_train_views/seed42"],
        ),
        (
            f"plain test of the main job's FVMGN on {where}",
            [*rsmg, "test", *FVMGN, "--ckpt_path", str(ckpt), *test_all, *TIMER, *log,
             "--trainer.logger.init_args.name", "test_all_muufl"],
            {},
            [OUT / "test_all_muufl/seed42"],
        ),
        (
            f"DTAug TTA (K = 4, 5 DDIM steps) of the same FVMGN on {where}",
            [*rsmg, "test", *FVMGN, "--config", "experiments/dtaug/tta.yaml", "--ckpt_path", str(ckpt),
             *test_all, *TIMER, *log, "--trainer.logger.init_args.name", "tta_all_muufl"],
            {},
            [OUT / "tta_all_muufl/seed42"],
        ),
    ]  # fmt: skip


def stage_cells(stage: dict[str, float]) -> str:
    """One table row's per-stage cells."""
    pct = lambda key: f"{100 * stage.get(key, 0.0):.1f} %"  # noqa: E731
    peak = stage.get("peak_cuda_mib")
    return (
        f"{stage.get('wall_s', 0.0):.1f} | {int(stage.get('samples', 0)):,} | {stage.get('samples_per_s', 0.0):,.0f} | "
        f"{pct('data_wait_share')} | {pct('batch_share')} | {pct('mwdis_share')} | {pct('text_share')} | "
        f"{pct('diffusion_prior_share')} | {'–' if peak is None else f'{peak:,.0f}'}"
    )


@dataclass(kw_only=True)
class Options:
    """Options of ``gpu_protocols.py``.

    Attributes:
        name: result file benchmarks/results/<name>.md
        eval_batch: test batch size on the whole MUUFL scene
        epochs: epochs of the classifier fits (main job: 15)
        prior_epochs: epochs of the DTAug prior (experiment: 40)
        split: target_split of the whole-scene tests (all: all pixels)
        only: 1-based protocol numbers to run (none: all)
        timeout: seconds per protocol
    """

    name: str = "gpu/protocols"
    eval_batch: int = 4096
    epochs: int = 15
    prior_epochs: int = 40
    split: str = "all"
    only: Annotated[list[int] | None, Arg(nargs="*")] = None
    timeout: int = 600


def main(args: Options) -> None:
    os.chdir(ROOT)
    rows = []
    for i, (label, cmd, env, dirs) in enumerate(
        protocols(args.eval_batch, args.epochs, args.prior_epochs, args.split), start=1
    ):
        if args.only and i not in args.only:
            continue
        print(f"=== {i}. {label}\n    {' '.join(cmd)}", flush=True)
        t0 = time.perf_counter()
        try:
            rc = subprocess.run(cmd, env={**os.environ, **env}, timeout=args.timeout).returncode
        except subprocess.TimeoutExpired:
            rc = 124
        wall = time.perf_counter() - t0
        print(f"=== {i}. rc {rc}, {wall:.1f} s", flush=True)
        timings = []
        for d in dirs:
            f = d / "timing.json"
            if f.is_file() and f.stat().st_mtime >= time.time() - wall - 1:
                timings.append((d, json.loads(f.read_text())))
        rows.append((i, label, rc, wall, timings))
    lines = [
        "# Whole protocols on one device, end to end",
        "",
        f"Command: `{command()}`  ",
        f"Machine: {machine()}  ",
        "Wall = the whole command (Python start-up, data, model and text tower building, fit, test, figures). "
        "Per stage (from `PhaseTimer`'s `timing.json`, CUDA synchronised at each boundary): wall time, samples, "
        "samples/s, and the shares of the stage's wall time spent waiting for data, inside batches, in MWDis, in "
        "the text tower and in the diffusion prior (the prior runs in callbacks, partly outside the batch), and "
        "the peak CUDA memory. Class-text embeddings are computed once when the model is built, so the text "
        "tower's share of a step is 0 by design; its cost is in the command's wall time.",
        "",
        "| # | protocol | rc | wall (s) | run | stage | stage wall (s) | samples | samples/s | data wait | batch | "
        "MWDis | text | diffusion prior | peak CUDA MiB |",
        "|---|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, label, rc, wall, timings in rows:
        first = True
        for d, t in timings or [(Path("–/–"), {"stages": {}})]:
            for stage, s in sorted(t["stages"].items()) or [("–", {})]:
                head = f"| {i} | {label} | {rc} | {wall:.1f}" if first else "| | | |"
                lines.append(f"{head} | {d.parent.name} | {stage} | {stage_cells(s)} |")
                first = False
    (RESULTS / args.name).parent.mkdir(parents=True, exist_ok=True)
    write_result(f"{args.name}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main(cli(Options, description=__doc__))
