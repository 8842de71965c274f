"""bf16 vs fp32 training on a GPU: does bf16 autocast change FVMGN's accuracy beyond the seed spread?

The README main job's FVMGN protocol (Trento → MUUFL, LiDAR, 15 epochs, checkpoint chosen on source
validation, test on the seeded 25 % of MUUFL) is trained with ``--trainer.precision 32-true`` and
``bf16-mixed`` for the same seeds. Only ``seed_everything`` (the model seed) changes between seeds; the data
split (``data.seed``) stays fixed, so the two precisions are paired per seed. All runs start at once on the one
device (independent processes; a small model leaves the GPU mostly idle).

Reported: OA / AA / Kappa per run, mean ± sample std (ddof = 1) per precision, the per-seed paired difference
bf16 − fp32 and whether its mean lies within the fp32 seed spread (the issue's criterion).

Usage: ``RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/gpu_precision.py --name gpu/precision_h200``
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import FVMGN_LIDAR, RESULTS, ROOT, command, config_args, machine, write_result
from rsmg.cli.signature import cli

OUT = Path("outputs/gpu_precision")
PRECISIONS = ("32-true", "bf16-mixed")


@dataclass(kw_only=True)
class Options:
    """Options of ``gpu_precision.py``.

    Attributes:
        seeds: model seeds (seed_everything)
        epochs: epochs of every fit
        split: MUUFL target_split (main job: fraction:0.25)
        name: result file benchmarks/results/<name>.md
        timeout: seconds for all fits together
    """

    seeds: list[int] = field(default_factory=lambda: [42, 43, 44])
    epochs: int = 15
    split: str = "fraction:0.25"
    name: str = "gpu/precision"
    timeout: int = 400


def main(args: Options) -> None:
    os.chdir(ROOT)
    runs = {}
    t0 = time.perf_counter()
    for prec in PRECISIONS:
        for seed in args.seeds:
            name = f"{prec}_seed{seed}"
            cmd = [".venv/bin/rsmg", "fit", *config_args(FVMGN_LIDAR, absolute=False),
                   "--seed_everything", str(seed), "--trainer.precision", prec,
                   "--trainer.max_epochs", str(args.epochs), "--data.init_args.target_split", args.split,
                   "--trainer.logger.init_args.save_dir", str(OUT), "--trainer.logger.init_args.name", prec,
                   "--trainer.logger.init_args.version", f"seed{seed}", "--test_after_fit", "true",
                   "--trainer.enable_progress_bar", "false"]  # fmt: skip
            OUT.mkdir(parents=True, exist_ok=True)
            with open(OUT / f"{name}.log", "w") as log:  # the child keeps its own copy of the handle
                runs[(prec, seed)] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    rcs = {}
    for key, p in runs.items():
        try:
            rcs[key] = p.wait(timeout=max(1.0, args.timeout - (time.perf_counter() - t0)))
        except subprocess.TimeoutExpired:
            p.kill()
            rcs[key] = 124
    wall = time.perf_counter() - t0
    res: dict[tuple[str, int], dict[str, float]] = {}
    for prec, seed in runs:
        f = OUT / prec / f"seed{seed}" / "metrics.json"
        if rcs[(prec, seed)] == 0 and f.is_file():
            m = json.loads(f.read_text())["results"]["test"]["muufl"]
            res[(prec, seed)] = {k: 100 * m[k] for k in ("oa", "aa", "kappa")}
    lines = [
        "# bf16 vs fp32 training of FVMGN on a GPU (README main-job protocol)",
        "",
        f"Command: `{command()}`  ",
        f"Machine: {machine()}  ",
        f"Protocol: `{' '.join(config_args(FVMGN_LIDAR, absolute=False))}`, {args.epochs} epochs, test on MUUFL "
        f"`{args.split}`; model seeds {args.seeds} (`seed_everything`), data split fixed (`data.seed` 42); "
        f"{len(runs)} runs at once on one device, {wall:.0f} s wall in all.",
        "",
        "| precision | seed | rc | OA | AA | Kappa |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for prec, seed in runs:
        r = res.get((prec, seed))
        cells = " | ".join(f"{r[k]:.2f}" for k in ("oa", "aa", "kappa")) if r else "– | – | –"
        lines.append(f"| {prec} | {seed} | {rcs[(prec, seed)]} | {cells} |")
    lines += ["", "| metric | fp32 mean ± std | bf16 mean ± std | paired bf16 − fp32 per seed | mean diff | "
              "within fp32 spread? |", "|---|---:|---:|---|---:|---|"]  # fmt: skip
    for k in ("oa", "aa", "kappa"):
        seeds = [s for s in args.seeds if ("32-true", s) in res and ("bf16-mixed", s) in res]
        if len(seeds) < 2:
            lines.append(f"| {k.upper()} | – | – | fewer than 2 complete seed pairs | – | – |")
            continue
        a = [res[("32-true", s)][k] for s in seeds]
        b = [res[("bf16-mixed", s)][k] for s in seeds]
        d = [y - x for x, y in zip(a, b, strict=True)]
        sd = statistics.stdev(a)
        ok = "yes" if abs(statistics.mean(d)) <= sd else "NO"
        lines.append(
            f"| {k.upper()} | {statistics.mean(a):.2f} ± {sd:.2f} | {statistics.mean(b):.2f} ± "
            f"{statistics.stdev(b):.2f} | {', '.join(f'{x:+.2f}' for x in d)} | {statistics.mean(d):+.2f} | {ok} |"
        )
    (RESULTS / args.name).parent.mkdir(parents=True, exist_ok=True)
    write_result(f"{args.name}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main(cli(Options, description=__doc__))
