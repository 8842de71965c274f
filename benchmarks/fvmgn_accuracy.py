"""FVMGN, its ablations and the concat baseline on every cross-scene protocol runnable with the shared data.

Each (protocol, method, seed) is one ``rsmg fit ... --test_after_fit true`` run (same data, same protocol,
model selection on source validation only); the per-domain metrics.json files are aggregated into mean ± std
tables in ``benchmarks/results/fvmgn_accuracy.md``. Runs already finished are reused (delete ``--out`` to
start again), so the script can be interrupted and resumed.

Usage::

    RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/fvmgn_accuracy.py            # full grid, 3 seeds
    RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/fvmgn_accuracy.py --seeds 42 --epochs 10 \
        --methods baseline fvmgn --protocols trento_to_muufl
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from _common import ROOT, machine, write_result

FVMGN = "experiments/fvmgn/trento_to_muufl_lidar.yaml"
BASE = "experiments/baseline/trento_to_muufl.yaml"
NET = "--model.init_args.net.init_args."

# method -> (config, extra CLI arguments)
METHODS: dict[str, tuple[str, list[str]]] = {
    "baseline (concat CNN)": (BASE, []),
    "fvmgn": (FVMGN, []),
    "fvmgn image-only (no text)": (FVMGN, [NET + "texts", "none"]),
    "fvmgn, CE on original view": (FVMGN, [NET + "mwdis_logits", "original"]),
    "fvmgn w/o MWDis": (FVMGN, [NET + "use_mwdis", "false"]),
    "fvmgn w/o frequency branch": (FVMGN, [NET + "use_frequency", "false"]),
    "fvmgn shared texts only": (FVMGN, [NET + "texts", "shared"]),
    "fvmgn proprietary texts only": (FVMGN, [NET + "texts", "proprietary"]),
    "fvmgn single-scale alignment": (FVMGN, [NET + "multiscale_alignment", "false"]),
}
SHORT = {"baseline (concat CNN)": "baseline", "fvmgn": "fvmgn"}

# protocol -> data overrides (LiDAR rasters of both scenes are real; HSI cubes need `rsmg download`)
PROTOCOLS: dict[str, list[str]] = {
    "trento_to_muufl": ["--data.init_args.sources", "[trento]", "--data.init_args.targets", "[muufl]"],
    "muufl_to_trento": [
        "--data.init_args.sources",
        "[muufl]",
        "--data.init_args.targets",
        "[trento]",
        "--data.init_args.source_split",
        "per_class:100",
    ],
}

# The paper's tables could not be retrieved (papers.md); when they are, they go here, labelled as other data.
PAPER: dict[str, str] = {}


def slug(s: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in s).strip("_")


def run(protocol: str, method: str, seed: int, epochs: int, out: Path, target_split: str) -> Path | None:
    cfg, extra = METHODS[method]
    run_dir = out / slug(target_split) / protocol / slug(method) / f"seed{seed}"
    if (run_dir / "metrics.json").exists():
        return run_dir
    cmd = [
        sys.executable,
        "-m",
        "rsmg",
        "fit",
        "--config",
        str(ROOT / cfg),
        *PROTOCOLS[protocol],
        *extra,
        "--seed_everything",
        str(seed),
        "--data.init_args.seed",
        str(seed),
        "--trainer.max_epochs",
        str(epochs),
        "--data.init_args.target_split",
        target_split,
        "--trainer.logger.init_args.save_dir",
        str(out / slug(target_split) / protocol),
        "--trainer.logger.init_args.name",
        slug(method),
        "--trainer.logger.init_args.version",
        f"seed{seed}",
        "--trainer.enable_progress_bar",
        "false",
        "--test_after_fit",
        "true",
    ]
    print(f"[{protocol}] {method} seed {seed}: running", flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        print(p.stderr[-2000:], file=sys.stderr)
        return None
    return run_dir


def table(results: dict, protocol: str, seeds: list[int]) -> list[str]:
    target = PROTOCOLS[protocol][3].strip("[]")
    lines = [
        f"## {protocol.replace('_', ' ')} (target: {target})",
        "",
        "| method | OA % | AA % | Kappa % | seeds |",
        "|---|---:|---:|---:|---:|",
    ]
    for method, runs in results.items():
        vals = {k: [r[k] * 100 for r in runs] for k in ("oa", "aa", "kappa")}
        if not runs:
            lines.append(f"| {method} | failed | | | 0 |")
            continue
        cells = [f"{np.mean(v):.2f} ± {np.std(v):.2f}" for v in vals.values()]
        lines.append(f"| {method} | {' | '.join(cells)} | {len(runs)} |")
    return [*lines, ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument(
        "--methods", nargs="+", default=list(METHODS), help=f"subset of {list(SHORT.values())} or full names"
    )
    ap.add_argument("--protocols", nargs="+", default=list(PROTOCOLS))
    ap.add_argument(
        "--target-split",
        default="all",
        help="target pixels to test on: 'all' (whole scene) or 'fraction:F' (seeded stratified sample, faster)",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench_fvmgn")
    args = ap.parse_args()
    inverse = {v: k for k, v in SHORT.items()}
    target_desc = (
        "all labelled pixels"
        if args.target_split == "all"
        else f"a seeded stratified sample ({args.target_split}) of the labelled pixels"
    )
    methods = [inverse.get(m, m) for m in args.methods]
    lines = [
        "# FVMGN accuracy: cross-scene protocols on the real LiDAR rasters of the shared data pack",
        "",
        f"Command: `RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/fvmgn_accuracy.py "
        f"--seeds {' '.join(map(str, args.seeds))} --epochs {args.epochs} "
        f"--methods {' '.join(repr(m) for m in args.methods)} --protocols {' '.join(args.protocols)} "
        f"--target-split {args.target_split}`  ",
        f"Machine: {machine()}  ",
        "Data: LiDAR height (converted to height above ground) + intensity (per-scene standardised), "
        "shared class set; the HSI cubes are not in the data pack, so these are LiDAR-only numbers and "
        "**not comparable to the paper's HSI+LiDAR tables** (which could not be retrieved: papers.md).  ",
        f"OA / AA / Kappa on {target_desc} of the unseen target scene, mean ± std over seeds; model selection "
        "on source validation pixels only.",
        "",
    ]
    for protocol in args.protocols:
        results: dict[str, list[dict]] = {}
        for method in methods:
            results[method] = []
            for seed in args.seeds:
                d = run(protocol, method, seed, args.epochs, args.out, args.target_split)
                if d is not None:
                    m = json.loads((d / "metrics.json").read_text())["results"]["test"]
                    results[method].append(next(iter(m.values())))
        lines += table(results, protocol, args.seeds)
    write_result("fvmgn_accuracy.md", "\n".join(lines))


if __name__ == "__main__":
    main()
