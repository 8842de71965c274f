r"""FVMGN choices re-made on source validation only: which view the classifier reads (``mwdis.logits``).

Two settings were once chosen by looking at target test numbers (issue 21): FVMGN's default
``mwdis.logits: resampled`` (Trento → MUUFL test OA, one seed) and the in-scene configs' ``logits: original``
(Salinas-A test OA). This script makes both choices again from the number checkpoint selection itself reads,
the best epoch's source-validation OA (``val/oa`` in the run's ``metrics.csv``), on spatially disjoint validation
tiles (``data.val_split: blocks:16``, a ``patch_size - 1`` buffer; docs/decisions.md#validation-split):

* ``trento_to_muufl`` / ``muufl_to_trento``: the inductive LiDAR configs of
  ``fvmgn_accuracy/cross_scene_inductive.md`` (height + intensity, ``fvmgn_accuracy.PROTOCOLS``), 15 epochs;
* ``indian_pines_disjoint``: ``experiments/indian_pines/`` with the disjoint split (its YAML already validates
  on 16-px tiles with a 3-px buffer), 10 epochs.

Salinas-A is left out: with its 30 training pixels per class, 16-px tiles and a 10-px buffer leave 34–58
training pixels (seeds 42, 43), and random validation pixels lie inside training patches.

Every run is ``rsmg fit ... --test_after_fit false``: no test runs, so no target number exists to steer the
choice, and :func:`source_val_oa` refuses a run directory that holds one (``metrics.json``, a ``test/`` column)
or whose inputs were shaped by a target statistic (transductive). The rule, fixed before measuring: per setting,
the value with the higher mean source-validation OA over seeds (a tie keeps the value before); for a group of
settings (the cross-scene default, the in-scene configs), the higher mean of the settings' means.

Usage::

    OMP_NUM_THREADS=1 RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/source_choices.py --seeds 42 43 44
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from _common import (
    FVMGN_LIDAR,
    RESULTS,
    ROOT,
    command,
    config_args,
    grid_run_args,
    machine,
    recorded_wall,
    timed_fit,
    write_result,
)
from _source_val import source_val_oa
from _stats import mean_sd, paired_cell, paired_differences, require_paired
from fvmgn_accuracy import PROTOCOLS as LIDAR
from rsmg.cli.signature import Arg, cli

NET = "--model.init_args.net.init_args."
VALUES = ("resampled", "original")  # mwdis.logits; the paired differences are the first minus the second
BLOCKS = ["--data.init_args.val_split", "blocks:16"]  # val_buffer keeps its default, patch_size - 1


@dataclass(frozen=True)
class Setting:
    """One setting: its experiments/ pieces, data overrides, epochs, and its value before this choice."""

    pieces: tuple[str, ...]
    data: tuple[str, ...]
    epochs: int
    current: str
    description: str


INDIAN_PINES = tuple(
    f"experiments/indian_pines/{p}" for p in ("data_disjoint.yaml", "model_fvmgn.yaml", "trainer_cpu.yaml")
)
SETTINGS: dict[str, Setting] = {
    "trento_to_muufl": Setting(
        FVMGN_LIDAR,
        (*LIDAR["trento_to_muufl"].data, *BLOCKS),
        15,
        "resampled",
        "Trento → MUUFL LiDAR (height + intensity), validation: 16-px tiles of Trento's standard training "
        "pixels, 10-px buffer",
    ),
    "muufl_to_trento": Setting(
        FVMGN_LIDAR,
        (*LIDAR["muufl_to_trento"].data, *BLOCKS),
        15,
        "resampled",
        "MUUFL → Trento LiDAR (height + intensity), 100 px per class, validation: 16-px tiles, 10-px buffer",
    ),
    "indian_pines_disjoint": Setting(
        INDIAN_PINES,
        (),
        10,
        "original",
        "Indian Pines in-scene HSI, disjoint split (test tiles never read), validation: 16-px tiles of what "
        "the test tiles leave, 3-px buffer",
    ),
}
# what each group of settings decides, and where that value is set
GROUPS: dict[str, tuple[tuple[str, ...], str]] = {
    "cross-scene LiDAR config": (
        ("trento_to_muufl", "muufl_to_trento"),
        "`experiments/model/fvmgn_lidar.yaml` (until issue 21: the option default, `MWDisOptions.logits`)",
    ),
    "in-scene configs": (
        ("indian_pines_disjoint",),
        "`experiments/indian_pines/model_fvmgn.yaml`, `experiments/model/fvmgn_salinas_a.yaml`",
    ),
}


def fit_args(setting: str, value: str) -> list[str]:
    """The ``rsmg fit`` arguments of one cell (before the run directory and seeds)."""
    s = SETTINGS[setting]
    return [
        *config_args(s.pieces),
        *s.data,
        NET + "mwdis.logits",
        value,
        "--trainer.max_epochs",
        str(s.epochs),
    ]


def cell_args(setting: str, value: str, seed: int, out: Path) -> list[str]:
    """Every ``rsmg fit`` argument of one cell: the run lands in ``out/setting/value/seed<seed>``, untested."""
    return [*fit_args(setting, value), *grid_run_args(out / setting, value, seed, test=False)]


def run(setting: str, value: str, seed: int, out: Path) -> Path | None:
    """Fit one cell without a test (reused when it finished before); its run directory, or None if it failed."""
    run_dir = out / setting / value / f"seed{seed}"
    if recorded_wall(run_dir) == recorded_wall(run_dir):  # not NaN: timed_fit finished it
        return run_dir
    wall = timed_fit(cell_args(setting, value, seed, out), f"[{setting}] logits={value} seed {seed}", run_dir)
    return run_dir if wall is not None else None


@dataclass(frozen=True)
class Decision:
    """The value a rule picks from per-seed source-validation OA, with what it read."""

    means: dict[str, float]
    chosen: str
    diffs: dict[int, float]  # VALUES[0] − VALUES[1] per seed (paired)
    within_spread: bool  # |mean difference| < 2 sample std of the paired differences


def decide(oa: dict[str, dict[int, float]], current: str) -> Decision:
    """The value with the higher mean OA over seeds; an exact tie keeps ``current`` (the value before).

    Raises:
        DataError: a value has no run, or the values were run on different seeds (not paired).
    """
    require_paired({v: oa.get(v, {}) for v in VALUES}, "mwdis.logits")
    means = {v: statistics.mean(oa[v].values()) for v in VALUES}
    top = max(means.values())
    best = [v for v in VALUES if means[v] == top]
    chosen = current if current in best else best[0]
    diffs = paired_differences(oa[VALUES[0]], oa[VALUES[1]])
    d = list(diffs.values())
    within = len(d) > 1 and abs(statistics.mean(d)) < 2 * statistics.stdev(d)
    return Decision(means, chosen, diffs, within)


def decide_group(decisions: list[Decision], current: str) -> str:
    """The value with the higher mean of the settings' means (each setting weighs the same); a tie keeps ``current``."""
    means = {v: statistics.mean(d.means[v] for d in decisions) for v in VALUES}
    top = max(means.values())
    return current if means[current] == top else max(VALUES, key=lambda v: means[v])


def setting_section(name: str, oa: dict[str, dict[int, float]], d: Decision) -> list[str]:
    """One setting: per-seed source-validation OA of each value, mean ± sample std, paired differences."""
    s = SETTINGS[name]
    seeds = sorted(oa[VALUES[0]])
    a, b = VALUES
    lines = [
        f"## {name}",
        "",
        f"{s.description}; {s.epochs} epochs. Value before this choice: `{s.current}`.",
        "",
        f"| seed | `{a}` | `{b}` | {a} − {b} |",
        "|---:|---:|---:|---:|",
        *(f"| {k} | {oa[a][k]:.2f} | {oa[b][k]:.2f} | {d.diffs[k]:+.2f} |" for k in seeds),
        f"| mean ± sd | {mean_sd(list(oa[a].values()))} | {mean_sd(list(oa[b].values()))} | "
        f"{mean_sd(list(d.diffs.values()))} |",
        "",
        f"Paired ({a} − {b}): {paired_cell(d.diffs)}. Source validation picks **`{d.chosen}`**"
        + (" (the difference is within 2 sample std of the paired differences: a weak preference)." if
           d.within_spread else "."),
        "",
    ]  # fmt: skip
    return lines


@dataclass(kw_only=True)
class Options:
    """Options of ``source_choices.py``.

    Attributes:
        settings: settings to run
        seeds: seeds of every fit (model seed and data seed: the validation tiles move with it)
        out: folder of the runs
        name: results file benchmarks/results/<name>.md
    """

    settings: Annotated[list[str], Arg(choices=tuple(SETTINGS))] = field(
        default_factory=lambda: list(SETTINGS)
    )
    seeds: list[int] = field(default_factory=lambda: [42, 43, 44])
    out: Path = ROOT / "outputs" / "bench_source_choices"
    name: str = "source_choices/mwdis_logits"


def main(args: Options) -> None:
    """Fit (or reuse) every cell, choose per setting and per group, write the results file."""
    header = machine()
    t0 = time.perf_counter()
    oa: dict[str, dict[str, dict[int, float]]] = {}
    walls: list[float] = []
    for name in args.settings:
        oa[name] = {v: {} for v in VALUES}
        for value in VALUES:
            for seed in args.seeds:
                run_dir = run(name, value, seed, args.out)
                if run_dir is not None:
                    oa[name][value][seed] = source_val_oa(run_dir)
                    walls.append(recorded_wall(run_dir))
    decisions = {n: decide(oa[n], SETTINGS[n].current) for n in args.settings}
    lines = [
        "# Which view FVMGN's classifier reads (`mwdis.logits`), chosen on source validation only",
        "",
        f"Command: `OMP_NUM_THREADS=1 {command()}`  ",
        f"Machine: {header}  ",
        f"Wall: {(time.perf_counter() - t0) / 60:.1f} min for this invocation; {len(walls)} fits of "
        f"{statistics.mean(walls):.0f} s each on average, recorded when each was trained (runs found in "
        "`--out` are reused).  ",
        "Every run is `rsmg fit` with `--test_after_fit false`: **no target number was computed or used**. "
        "Cross-scene, the target's labels do not reach training or checkpoint selection "
        "(`tests/test_target_labels_unused.py`); in-scene, the test tiles and their buffer lie outside training "
        "and validation. A run directory holding a test result or a transductive input statistic is refused. "
        "The number "
        "compared is the best epoch's source-validation OA in % (`val/oa` in `metrics.csv`, what "
        "ModelCheckpoint keeps), on spatially disjoint validation tiles; model seed = data seed = the seed. "
        "Mean ± sample std (ddof = 1); paired differences per seed. Rule, fixed before measuring: per setting "
        "the higher mean wins; per group, the higher mean of its settings' means (a tie keeps the value before).",
        "",
        "## Decisions",
        "",
        "| group | settings | mean source-val OA % per value | before | source validation picks | set in |",
        "|---|---|---|---|---|---|",
    ]
    for group, (members, where) in GROUPS.items():
        ran = [m for m in members if m in decisions]
        if not ran:
            continue
        current = SETTINGS[ran[0]].current
        chosen = decide_group([decisions[m] for m in ran], current)
        means = ", ".join(f"`{v}` {statistics.mean(decisions[m].means[v] for m in ran):.2f}" for v in VALUES)
        lines.append(f"| {group} | {', '.join(ran)} | {means} | `{current}` | **`{chosen}`** | {where} |")
    lines.append("")
    for name in args.settings:
        lines += setting_section(name, oa[name], decisions[name])
    lines += [
        "## Runs",
        "",
        "Each cell: `rsmg fit` with the setting's pieces and overrides, plus "
        f"`{NET}mwdis.logits VALUE --test_after_fit false`:",
        "",
        "| setting | pieces | overrides |",
        "|---|---|---|",
    ]
    for name in args.settings:
        s = SETTINGS[name]
        pairs = [*zip(s.data[::2], s.data[1::2], strict=True), ("--trainer.max_epochs", str(s.epochs))]
        over = " ".join(f"`{k} {v}`" for k, v in pairs)
        lines.append(f"| {name} | {', '.join(f'`{p}`' for p in s.pieces)} | {over} |")
    (RESULTS / args.name).parent.mkdir(parents=True, exist_ok=True)
    write_result(f"{args.name}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main(cli(Options, description=__doc__))
