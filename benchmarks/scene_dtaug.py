r"""DTAug test-time augmentation on a scene protocol: the scene grid's own checkpoints, with and without TTA.

1. Train the protocol's source diffusion prior once (``experiments/dtaug/prior_scenes.yaml``: 64 px for the
   128-px images, source training images only; ``DiffusionPriorTask`` refuses a target sample).
2. For each method and seed, test the checkpoint ``benchmarks/scene_dg.py`` selected on source validation
   (``outputs/bench_scene_dg/<protocol>/<method>/seed<k>``) once more, with the ``DiffusionTTA`` callback:
   plain and TTA metrics of the same target images come from the same run. Nothing is retrained, so the TTA
   column is the only change.
3. Write ``benchmarks/results/<name>.md``: OA / AA / Kappa without and with TTA (mean ± sample std over
   seeds), the per-seed change from TTA, paired differences against ERM, the majority-class reference,
   per-class accuracy, and the cost: the TTA test's wall time against a plain test of the same checkpoint.

The TTA settings are the LiDAR experiment's (``experiments/dtaug/tta.yaml``: strength 0.3, 5 DDIM steps, 4
views, mean of probabilities), fixed before any scene number was seen; nothing here is tuned on the target.

Usage::

    RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/scene_dtaug.py --protocol lodo_ucm
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import yaml

from _common import RESULTS, ROOT, machine, rsmg_fit, slug, write_result
from _dtaug import prior_losses, tta_overlay
from _reuse import check_reuse, nest_renamed
from _stats import majority_share, mean_sd, paired_cell, paired_differences, per_class_table
from rsmg.cli.signature import Arg, cli
from rsmg.errors import DataError
from scene_dg import PROTOCOLS, SCENES, load

PRIOR = ROOT / "experiments" / "dtaug" / "prior_scenes.yaml"


def train_prior(protocol: str, out: Path, epochs: int, data_seed: int) -> tuple[Path, float]:
    """The protocol's source prior (trained once, then reused): its last checkpoint and training wall seconds."""
    run = out / protocol / "prior" / "seed0"
    ckpt, wall_file = run / "checkpoints" / "last.ckpt", run / "bench_wall_s.txt"
    args = [
        *("--config", str(SCENES / "data_lodo_ucm.yaml"), "--config", str(PRIOR)),
        *PROTOCOLS[protocol].args(),
        *("--data.init_args.seed", str(data_seed), "--trainer.max_epochs", str(epochs)),
        *(
            "--trainer.logger.init_args.save_dir",
            str(out / protocol),
            "--trainer.logger.init_args.name",
            "prior",
        ),
        *("--trainer.logger.init_args.version", "seed0", "--trainer.enable_progress_bar", "false"),
    ]
    if ckpt.exists() and wall_file.exists():
        check_reuse(run, args)  # the prior of these epochs and this split, not an older one
        return ckpt, float(wall_file.read_text())
    if run.exists():  # a killed training: start again (rsmg would not overwrite the folder)
        shutil.rmtree(run)
    t0 = time.perf_counter()
    if not rsmg_fit(args, f"[{protocol}] prior ({epochs} epochs, source images only)"):
        raise SystemExit("prior training failed")
    wall = time.perf_counter() - t0
    wall_file.write_text(f"{wall:.1f}\n")
    return ckpt, wall


def tta_key(views: int, steps: int, strength: float) -> str:
    """The result block ``DiffusionTTA`` writes for these settings (a reused test must carry exactly this one)."""
    from rsmg.callbacks.diffusion_tta import DiffusionTTA

    return DiffusionTTA(
        "unused", strength=strength, steps=steps, views=views, aggregate="mean_prob"
    ).block_name


def selected_checkpoint(run: Path) -> str:
    """The checkpoint the scene grid tested (chosen on source validation)."""
    path = json.loads((run / "metrics.json").read_text()).get("checkpoint", {}).get("path")
    if not path or not Path(path).is_file():
        raise DataError(
            "the scene grid's run does not name an existing checkpoint",
            file=run / "metrics.json",
            field="checkpoint.path",
            found=path,
            fix="rerun the cell with benchmarks/scene_dg.py (it keeps its best checkpoint)",
        )
    return str(path)


def test_again(
    run: Path, out: Path, name: str, version: str, extra: list[str], key: str | None
) -> tuple[Path | None, float]:
    """``rsmg test`` of the run's selected checkpoint into ``out/name/version``: dir (None: failed), wall s.

    A finished test is reused only if it tested the same checkpoint and (``key``) carries this TTA's block;
    an unfinished folder (a killed test) is removed first, since ``rsmg`` never overwrites a run folder.
    """
    target = out / name / version
    wall_file = target / "bench_wall_s.txt"
    ckpt = selected_checkpoint(run)
    if (target / "metrics.json").exists() and wall_file.exists():
        saved = json.loads((target / "metrics.json").read_text())
        if saved.get("checkpoint", {}).get("path") != ckpt or (
            key is not None and key not in saved["results"]
        ):
            raise DataError(
                "a finished TTA test was made with another checkpoint or other TTA settings",
                file=target / "metrics.json",
                expected=f"checkpoint {ckpt}" + (f" and result block {key!r}" if key else ""),
                found=f"checkpoint {saved.get('checkpoint', {}).get('path')}, blocks {sorted(saved['results'])}",
                fix=f"move {target} aside (or delete it) so that it is tested again",
            )
        return target, float(wall_file.read_text())
    if target.exists():
        shutil.rmtree(target)
    # the run's own configuration, with option names of before 2026-12 nested as rsmg reads them now
    config = out / name / f"{version}.config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump(nest_renamed(yaml.safe_load((run / "config.yaml").read_text()))))
    cmd = [
        *(sys.executable, "-m", "rsmg", "test", "--config", str(config), "--ckpt_path", ckpt),
        *extra,
        *("--trainer.logger.init_args.save_dir", str(out), "--trainer.logger.init_args.name", name),
        *("--trainer.logger.init_args.version", version, "--trainer.enable_progress_bar", "false"),
    ]
    print(f"{run.relative_to(ROOT)} → {target.relative_to(ROOT)}: testing", flush=True)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if p.returncode != 0 or not (target / "metrics.json").exists():
        print(f"test failed ({p.returncode}):\n{p.stderr[-3000:]}", file=sys.stderr, flush=True)
        return None, wall
    wall_file.write_text(f"{wall:.1f}\n")
    print(f"  done in {wall:.0f} s", flush=True)
    return target, wall


def blocks(run: Path, key: str) -> tuple[dict, dict]:
    """Plain and TTA (block ``key``) test results of a run's target, with the class names."""
    saved = json.loads((run / "metrics.json").read_text())
    res, classes = saved["results"], saved["classes"]
    plain = {**next(iter(res["test"].values())), "classes": classes}
    return plain, {**next(iter(res[key].values())), "classes": classes}


@dataclass(kw_only=True)
class Options:
    """Options of ``scene_dtaug.py``.

    Attributes:
        protocol: the scene protocol (its checkpoints must exist: run benchmarks/scene_dg.py first)
        methods: the scene grid's methods to test with TTA
        seeds: model seeds of the scene grid's runs
        data_seed: the scene grid's data seed (the prior trains on the same source split)
        prior_epochs: epochs of the prior
        views: TTA views per image
        steps: DDIM steps per view
        strength: noise strength of a view
        runs: the scene grid's run folder
        out: folder of the prior and the TTA tests
        name: results file benchmarks/results/<name>.md (default: scene_dg/dtaug_<protocol>)
    """

    protocol: Annotated[str, Arg(choices=tuple(p for p in PROTOCOLS if not p.startswith("indomain_")))] = (
        "lodo_ucm"
    )
    methods: list[str] = field(default_factory=lambda: ["erm", "fvmgn"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    data_seed: int = 0
    prior_epochs: int = 4
    views: int = 4
    steps: int = 5
    strength: float = 0.3
    runs: Path = ROOT / "outputs" / "bench_scene_dg"
    out: Path = ROOT / "outputs" / "bench_scene_dtaug"
    name: str | None = None


def main(args: Options) -> None:
    """Train (or reuse) the prior, test every checkpoint with TTA (and one per method plainly), write the file."""
    out = args.out.resolve()
    name = args.name or f"scene_dg/dtaug_{args.protocol}"
    key = tta_key(args.views, args.steps, args.strength)
    prior, prior_wall = train_prior(args.protocol, out, args.prior_epochs, args.data_seed)
    overlay = tta_overlay(
        out / args.protocol / "tta_scenes.yaml", prior, args.views, args.steps, args.strength
    )
    plain: dict[str, dict[int, dict]] = {}
    tta: dict[str, dict[int, dict]] = {}
    walls: dict[str, list[tuple[float, float | None]]] = {}
    missing: list[str] = []
    for method in args.methods:
        plain[method], tta[method], walls[method] = {}, {}, []
        for seed in args.seeds:
            run = args.runs / args.protocol / slug(method) / f"seed{seed}"
            if not (run / "metrics.json").exists():
                missing.append(f"{method} seed {seed}")
                continue
            where = out / args.protocol
            done, wall = test_again(run, where, slug(method), f"seed{seed}", ["--config", str(overlay)], key)
            if done is None:
                missing.append(f"{method} seed {seed} (TTA test failed)")
                continue
            p, t = blocks(done, key)
            grid_plain = load(run)
            if abs(p["oa"] - grid_plain["oa"]) > 1e-9:
                raise SystemExit(
                    f"{done}: plain OA {p['oa']} differs from the grid's {grid_plain['oa']} ({run})"
                )
            plain[method][seed], tta[method][seed] = p, t
            base_wall = None
            if seed == args.seeds[0]:  # one plain test per method for the cost ratio
                plain_dir, base_wall = test_again(run, where, slug(method), f"seed{seed}_plain", [], None)
                base_wall = base_wall if plain_dir is not None else None
            walls[method].append((wall, base_wall))

    proto = PROTOCOLS[args.protocol]
    lines = [
        f"# DTAug test-time augmentation on scenes: {args.protocol} ({proto.description})",
        "",
        f"Command: `RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/scene_dtaug.py --protocol "
        f"{args.protocol} --methods {' '.join(repr(m) for m in args.methods)} --seeds "
        f"{' '.join(map(str, args.seeds))} --data-seed {args.data_seed} --prior-epochs {args.prior_epochs} "
        f"--views {args.views} --steps {args.steps} --strength {args.strength} --name {name}`"
        + (
            ""
            if args.runs == Options.runs and args.out == Options.out
            else f" (runs {args.runs}, out {args.out})"
        )
        + "  ",
        f"Machine: {machine()}  ",
        f"Classifiers: the checkpoints `benchmarks/scene_dg.py` selected on source validation "
        f"(`{args.runs.relative_to(ROOT) if args.runs.is_relative_to(ROOT) else args.runs}/{args.protocol}/`), "
        "tested once more with `DiffusionTTA`; the plain columns equal the grid's results (checked). Sources "
        f"{list(proto.sources)}, target {list(proto.targets)}, class set `{proto.class_set}`.  ",
        f"Prior: `experiments/dtaug/prior_scenes.yaml` at 64 px for the 128-px images "
        "(docs/decisions.md#dtaug-prior-resolution), "
        f"{args.prior_epochs} epochs on the source training images only, {prior_wall / 60:.0f} min; "
        f"{prior_losses(prior.parent.parent)}.  ",
        f"TTA: original + {args.views} views (strength {args.strength}, {args.steps} DDIM steps), mean of "
        "probabilities: the LiDAR experiment's settings, fixed before any scene number was seen. Mean ± sample "
        "std (ddof = 1) over model seeds; paired differences per seed. One prior and one view seed serve every "
        "model seed, so the spread does not include the prior's own variance.",
        "",
        *([f"Cells not run: {', '.join(missing)}.", ""] if missing else []),
        "| method | plain OA % | TTA OA % | TTA − plain per seed | TTA AA % | TTA Kappa % | seeds |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    oa = lambda runs: {s: r["oa"] * 100 for s, r in runs.items() if r}  # noqa: E731
    for m in args.methods:
        if not plain[m]:
            lines.append(f"| {m} | not run | | | | | 0 |")
            continue
        diffs = paired_cell(paired_differences(oa(tta[m]), oa(plain[m])))
        t_runs = [r for r in tta[m].values() if r]
        lines.append(
            f"| {m} | {mean_sd(list(oa(plain[m]).values()))} | {mean_sd(list(oa(tta[m]).values()))} | {diffs} | "
            f"{mean_sd([r['aa'] * 100 for r in t_runs])} | {mean_sd([r['kappa'] * 100 for r in t_runs])} | "
            f"{len(plain[m])} |"
        )
    if plain.get("erm"):
        lines += ["", "Paired against ERM (per seed, OA points):", ""]
        for m in args.methods:
            if m != "erm" and plain[m]:
                lines.append(
                    f"- {m} − erm, plain: {paired_cell(paired_differences(oa(plain[m]), oa(plain['erm'])))}"
                )
                lines.append(f"- {m} − erm, both with TTA: "
                             f"{paired_cell(paired_differences(oa(tta[m]), oa(tta['erm'])))}")  # fmt: skip
    first = next((r for m in args.methods for r in plain[m].values()), None)
    if first is not None:
        floor = 100 * majority_share(first)
        lines += [
            "",
            f"Reference: always answering the most frequent target class scores OA {floor:.2f} %.",
            "",
        ]
    lines += ["## Cost", "", "| method | plain test (s) | TTA test (s) | TTA / plain | UNet passes per image |",
              "|---|---:|---:|---:|---:|"]  # fmt: skip
    for m in args.methods:
        for wall, base in walls[m]:
            if base:
                lines.append(
                    f"| {m} | {base:.0f} | {wall:.0f} | {wall / base:.1f}× | {args.views * args.steps} |"
                )
    lines += [
        "",
        "Walls of whole `rsmg test` processes (start-up, data and model loading included) on a shared 2-core "
        "machine, seed "
        f"{args.seeds[0]}; the prior's training ({prior_wall / 60:.0f} min) is paid once per protocol.",
        "",
        "## Per-class accuracy (mean over seeds)",
        "",
        *per_class_table(
            {
                **{f"{m} (plain)": list(plain[m].values()) for m in args.methods if plain[m]},
                **{f"{m} (TTA)": [r for r in tta[m].values() if r] for m in args.methods if plain[m]},
            }
        ),
    ]
    (RESULTS / name).parent.mkdir(parents=True, exist_ok=True)
    write_result(f"{name}.md", "\n".join(lines))
    print(f"written benchmarks/results/{name}.md")


if __name__ == "__main__":
    main(cli(Options, description=__doc__))
