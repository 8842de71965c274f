r"""FVMGN choices re-made on source validation only (``--choice``): the classifier's view, stems, scales, ...

Settings once chosen or studied by looking at target test numbers (issue 21): FVMGN's default
``mwdis.logits: resampled`` (Trento → MUUFL test OA, one seed) and the in-scene configs' ``logits: original``
(Salinas-A test OA); and, on the LiDAR proxies' target OA, the stems (``sfie.stem``), the number of scales
(``sfie.scales``), the frequency pathway (``frequency.kind``) and the alignment loss (``alignment.loss``), whose
defaults were kept without a source-side reason; and, for the unified model on UC Merced, where MWDis
resamples (``mwdis.at``). This script makes each choice from the number checkpoint selection itself reads, the
best epoch's source-validation OA (``val/oa`` in the run's ``metrics.csv``), on spatially disjoint validation
tiles for the scenes (``data.val_split: blocks:16``, a ``patch_size - 1`` buffer;
docs/decisions.md#validation-split) and on the Karpathy split's validation images for UC Merced:

* ``trento_to_muufl`` / ``muufl_to_trento``: the inductive LiDAR configs of
  ``fvmgn_accuracy/cross_scene_inductive.md`` (height + intensity, ``fvmgn_accuracy.PROTOCOLS``), 15 epochs;
* ``indian_pines_disjoint``: ``experiments/indian_pines/`` with the disjoint split (its YAML already validates
  on 16-px tiles with a 3-px buffer), 10 epochs.
* ``ucm_unified``: the unified model on UC Merced with captions (``experiments/captioned_scenes/``, 160 px, 10
  epochs), validated on the Karpathy split's validation images; for ``--choice mwdis.at``, whose
  ``frozen_prefix`` value (with ``second_view: resampled``) makes the second view cheap.

Salinas-A is left out: with its 30 training pixels per class, 16-px tiles and a 10-px buffer leave 34–58
training pixels (seeds 42, 43), and random validation pixels lie inside training patches.

Every run is ``rsmg fit ... --test_after_fit false``: no test runs, so no target number exists to steer the
choice, and :func:`source_val_oa` refuses a run directory that holds one (``metrics.json``, a ``test/`` column)
or whose inputs were shaped by a target statistic (transductive). The rule, fixed before measuring: per setting,
the value with the higher mean source-validation OA over seeds (a tie keeps the value before); for a group of
settings (the cross-scene default, the in-scene configs), the higher mean of the settings' means. With
``--tolerance T`` the budget rule instead: of the values within T points of the best mean, the one whose fits
took less wall time wins (for options of equal accuracy that differ in cost, where validation saturates).

A cell whose value is the one the setting's configuration already holds runs that configuration unchanged
(folder ``config``), so the choices share those runs; any other value is passed as an override (folder
``<key>=<value>``, plus ``,<k>=<v>`` for each override bundled with the value, :attr:`Choice.extra`). Finished
runs are reused when their configuration is the cell's (``_reuse``).

Usage::

    OMP_NUM_THREADS=1 RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/source_choices.py --seeds 42 43 44
    OMP_NUM_THREADS=1 RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/source_choices.py \
        --choice sfie.stem --settings trento_to_muufl muufl_to_trento --seeds 42 43 44 45 46
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from _common import (
    FVMGN_LIDAR,
    ROOT,
    checkout,
    command,
    config_args,
    grid_run_args,
    machine,
    recorded_wall,
    write_result,
)
from _reuse import fit_or_reuse, resolved_config
from _source_val import source_val_oa
from _stats import mean_sd, paired_cell, paired_differences, require_paired
from fvmgn_accuracy import PROTOCOLS as LIDAR
from rsmg.cli.signature import Arg, cli
from rsmg.errors import DataError, UsageError
from scene_budget import choose

NET = "--model.init_args.net.init_args."
BLOCKS = ["--data.init_args.val_split", "blocks:16"]  # val_buffer keeps its default, patch_size - 1


@dataclass(frozen=True)
class Setting:
    """One setting: its experiments/ pieces, data overrides and epochs."""

    pieces: tuple[str, ...]
    data: tuple[str, ...]
    epochs: int
    description: str


INDIAN_PINES = tuple(
    f"experiments/indian_pines/{p}" for p in ("data_disjoint.yaml", "model_fvmgn.yaml", "trainer_cpu.yaml")
)
SETTINGS: dict[str, Setting] = {
    "trento_to_muufl": Setting(
        FVMGN_LIDAR,
        (*LIDAR["trento_to_muufl"].data, *BLOCKS),
        15,
        "Trento → MUUFL LiDAR (height + intensity), validation: 16-px tiles of Trento's standard training "
        "pixels, 10-px buffer",
    ),
    "muufl_to_trento": Setting(
        FVMGN_LIDAR,
        (*LIDAR["muufl_to_trento"].data, *BLOCKS),
        15,
        "MUUFL → Trento LiDAR (height + intensity), 100 px per class, validation: 16-px tiles, 10-px buffer",
    ),
    "indian_pines_disjoint": Setting(
        INDIAN_PINES,
        (),
        10,
        "Indian Pines in-scene HSI, disjoint split (test tiles never read), validation: 16-px tiles of what "
        "the test tiles leave, 3-px buffer",
    ),
}
SETTINGS["ucm_unified"] = Setting(
    tuple(
        f"experiments/{p}"
        for p in (
            "captioned_scenes/data_ucm21.yaml",
            "captioned_scenes/split_karpathy.yaml",
            "captioned_scenes/model_fvmgn_captions.yaml",
            "scenes/trainer_cpu.yaml",
        )
    ),
    ("--data.init_args.image_size", "160"),
    10,
    "UC Merced with leakage-controlled captions, the unified model at its chosen budget (160 px, 10 epochs; "
    "docs/decisions.md#ucm-budget), validation: the Karpathy split's 210 validation images (test never read)",
)
CROSS_SCENE = ("trento_to_muufl", "muufl_to_trento")
LIDAR_CONFIG = "`experiments/model/fvmgn_lidar.yaml`"


@dataclass(frozen=True)
class Choice:
    """One option of FVMGN's network to choose: two values, the value each setting had before, the groups.

    ``values[0] − values[1]`` is the paired difference; ``groups`` maps a group name to its settings and where its
    value is set; ``before`` is each setting's value before this choice (a setting not named: the value its
    configuration holds when the script runs); ``extra``: further network overrides that come with a value
    (a bundle chosen as one).
    """

    key: str
    values: tuple[str, str]
    title: str
    groups: dict[str, tuple[tuple[str, ...], str]]
    before: dict[str, str] = field(default_factory=dict)
    extra: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    def before_of(self, setting: str) -> str:
        """The setting's value before this choice."""
        return self.before.get(setting) or config_value(setting, self.key)


CHOICES: dict[str, Choice] = {
    c.key: c
    for c in (
        Choice(
            "mwdis.logits",
            ("resampled", "original"),
            "Which view FVMGN's classifier reads (`mwdis.logits`)",
            {
                "cross-scene LiDAR config": (
                    CROSS_SCENE,
                    f"{LIDAR_CONFIG} (until issue 21: the option default, `MWDisOptions.logits`)",
                ),
                "in-scene configs": (
                    ("indian_pines_disjoint",),
                    "`experiments/indian_pines/model_fvmgn.yaml`, `experiments/model/fvmgn_salinas_a.yaml`",
                ),
            },
            {
                "trento_to_muufl": "resampled",
                "muufl_to_trento": "resampled",
                "indian_pines_disjoint": "original",
            },
        ),
        Choice(
            "sfie.stem",
            ("pointwise", "auto"),
            "FVMGN's stems (`sfie.stem`: `auto` is a 3×3 first layer on LiDAR's 1–2 bands)",
            {
                "cross-scene LiDAR config": (
                    CROSS_SCENE,
                    f"{LIDAR_CONFIG} (option default: `SFIEOptions.stem`)",
                )
            },
        ),
        Choice(
            "sfie.scales",
            ("2", "1"),
            "How many scales SFIE and the alignment use (`sfie.scales`)",
            {
                "cross-scene LiDAR config": (
                    CROSS_SCENE,
                    f"{LIDAR_CONFIG} (option default: `SFIEOptions.scales`)",
                ),
                "in-scene config": (
                    ("indian_pines_disjoint",),
                    "`experiments/indian_pines/model_fvmgn.yaml`",
                ),
            },
        ),
        Choice(
            "frequency.kind",
            ("wavelet", "fft"),
            "FVMGN's frequency pathway (`frequency.kind`)",
            {
                "cross-scene LiDAR config": (
                    CROSS_SCENE,
                    f"{LIDAR_CONFIG} (option default: `FrequencyOptions.kind`)",
                ),
                "in-scene config": (
                    ("indian_pines_disjoint",),
                    "`experiments/indian_pines/model_fvmgn.yaml`",
                ),
            },
        ),
        Choice(
            "mwdis.at",
            ("input", "frozen_prefix"),
            "Where the unified model's MWDis resamples (`mwdis.at`; `frozen_prefix` comes with `second_view: "
            "resampled`, the bundle that makes the second view cheap)",
            {
                "unified model": (
                    ("ucm_unified",),
                    "`experiments/captioned_scenes/model_fvmgn_captions.yaml`",
                )
            },
            before={"ucm_unified": "input"},
            extra={"input": (("second_view", "all"),), "frozen_prefix": (("second_view", "resampled"),)},
        ),
        Choice(
            "alignment.loss",
            ("infonce", "kl"),
            "MSFFA's alignment loss (`alignment.loss`)",
            {
                "cross-scene LiDAR config": (
                    CROSS_SCENE,
                    f"{LIDAR_CONFIG} (option default: `AlignmentOptions.loss`)",
                ),
                "in-scene config": (
                    ("indian_pines_disjoint",),
                    "`experiments/indian_pines/model_fvmgn.yaml`",
                ),
            },
        ),
    )
}


def base_args(setting: str) -> list[str]:
    """The setting's ``rsmg fit`` arguments before any choice: pieces, data overrides, epochs."""
    s = SETTINGS[setting]
    return [*config_args(s.pieces), *s.data, "--trainer.max_epochs", str(s.epochs)]


@functools.cache
def _network_options(setting: str) -> dict:
    """The network's options as the setting's configuration resolves them (once per process: ~0.2 s each)."""
    return resolved_config(base_args(setting))["model"]["init_args"]["net"]["init_args"]


def config_value(setting: str, key: str) -> str:
    """The value the setting's configuration gives ``key`` (resolved as ``rsmg fit --print_config`` shows it)."""
    node = _network_options(setting)
    for part in key.split("."):
        node = node[part]
    return str(node).lower() if isinstance(node, bool) else str(node)


def extra_overrides(key: str, value: str) -> tuple[tuple[str, str], ...]:
    """The further network overrides that come with ``value`` (:attr:`Choice.extra`; none for most choices)."""
    choice = CHOICES.get(key)
    return choice.extra.get(value, ()) if choice is not None else ()


def cell_name(setting: str, key: str, value: str) -> str:
    """``config`` when the configuration already holds the cell's values, else ``key=value``.

    The runs of ``config`` are shared by every choice; a value's further overrides add ``,k=v`` to its name.
    """
    extra = extra_overrides(key, value)
    if config_value(setting, key) == value and all(config_value(setting, k) == v for k, v in extra):
        return "config"
    return f"{key}={value}" + "".join(f",{k}={v}" for k, v in extra)


def fit_args(setting: str, key: str, value: str) -> list[str]:
    """The ``rsmg fit`` arguments of one cell (before the run directory and seeds)."""
    if cell_name(setting, key, value) == "config":
        return base_args(setting)
    over = [NET + key, value, *(a for k, v in extra_overrides(key, value) for a in (NET + k, v))]
    return [*base_args(setting), *over]


def cell_args(setting: str, key: str, value: str, seed: int, out: Path) -> list[str]:
    """Every ``rsmg fit`` argument of one cell: it lands in ``out/setting/<cell_name>/seed<seed>``, untested."""
    name = cell_name(setting, key, value)
    return [*fit_args(setting, key, value), *grid_run_args(out / setting, name, seed, test=False)]


def run(setting: str, key: str, value: str, seed: int, out: Path) -> Path | None:
    """Fit one cell without a test, or reuse it (finished, same configuration); its run directory or None."""
    run_dir = out / setting / cell_name(setting, key, value) / f"seed{seed}"
    args = cell_args(setting, key, value, seed, out)
    return fit_or_reuse(run_dir, args, f"[{setting}] {key}={value} seed {seed}")


@dataclass(frozen=True)
class Decision:
    """The value a rule picks from per-seed source-validation OA, with what it read."""

    means: dict[str, float]
    chosen: str
    diffs: dict[int, float]  # values[0] − values[1] per seed (paired)
    within_spread: bool  # |mean difference| < 2 sample std of the paired differences


def pick(
    means: dict[str, float],
    current: str,
    tolerance: float | None = None,
    cost: dict[str, float] | None = None,
) -> str:
    """The value with the higher mean; a tie keeps ``current``.

    With ``tolerance`` (points of OA) the budget rule instead (``scene_budget.choose``): of the values within
    ``tolerance`` of the best mean, the one with the lower ``cost`` (mean recorded fit wall) wins.
    """
    top = max(means.values())
    if tolerance is not None and not tolerance >= 0:
        raise UsageError(f"--tolerance {tolerance}: give points of OA, 0 or more (0.48 is one of 210 images)")
    if tolerance is None:
        return current if means.get(current) == top else max(means, key=lambda v: means[v])
    if cost is None or any(v not in cost or math.isnan(cost[v]) for v in means):
        raise DataError(
            f"--tolerance {tolerance} compares fit walls, and a value has none: {cost}",
            fix="refit the runs with this script (it records each fit's wall), or leave --tolerance out",
        )
    first = sorted(
        means, key=lambda v: v != current
    )  # choose keeps the first of equals: a full tie keeps current
    return choose({v: [means[v]] for v in first}, cost, tolerance)


def decide(
    oa: dict[str, dict[int, float]],
    current: str,
    values: tuple[str, str],
    tolerance: float | None = None,
    cost: dict[str, float] | None = None,
) -> Decision:
    """The value :func:`pick` chooses from the means over seeds, with the paired differences.

    Raises:
        DataError: a value has no run, or the values were run on different seeds (not paired).
    """
    require_paired({v: oa.get(v, {}) for v in values}, "the values of the choice")
    means = {v: statistics.mean(oa[v].values()) for v in values}
    chosen = pick(means, current, tolerance, cost)
    diffs = paired_differences(oa[values[0]], oa[values[1]])
    d = list(diffs.values())
    within = len(d) > 1 and abs(statistics.mean(d)) < 2 * statistics.stdev(d)
    return Decision(means, chosen, diffs, within)


def decide_group(
    decisions: list[Decision],
    current: str,
    tolerance: float | None = None,
    cost: dict[str, float] | None = None,
) -> str:
    """:func:`pick` on the mean of the settings' means (each setting weighs the same)."""
    values = list(decisions[0].means)
    means = {v: statistics.mean(d.means[v] for d in decisions) for v in values}
    return pick(means, current, tolerance, cost)


def setting_section(
    name: str, choice: Choice, oa: dict[str, dict[int, float]], d: Decision, picker: str = "Source validation"
) -> list[str]:
    """One setting: per-seed source-validation OA of each value, mean ± sample std, paired differences."""
    s = SETTINGS[name]
    a, b = choice.values
    seeds = sorted(oa[a])
    lines = [
        f"## {name}",
        "",
        f"{s.description}; {s.epochs} epochs. Value before this choice: `{choice.before_of(name)}`.",
        "",
        f"| seed | `{a}` | `{b}` | {a} − {b} |",
        "|---:|---:|---:|---:|",
        *(f"| {k} | {oa[a][k]:.2f} | {oa[b][k]:.2f} | {d.diffs[k]:+.2f} |" for k in seeds),
        f"| mean ± sd | {mean_sd(list(oa[a].values()))} | {mean_sd(list(oa[b].values()))} | "
        f"{mean_sd(list(d.diffs.values()))} |",
        "",
        f"Paired ({a} − {b}): {paired_cell(d.diffs)}. {picker} picks **`{d.chosen}`**"
        + (" (the difference is within 2 sample std of the paired differences: a weak preference)." if
           d.within_spread else "."),
        "",
    ]  # fmt: skip
    return lines


@dataclass(kw_only=True)
class Options:
    """Options of ``source_choices.py``.

    Attributes:
        choice: the network option to choose
        settings: settings to run (none given: the choice's)
        seeds: seeds of every fit (model seed and data seed: the validation tiles move with it)
        out: folder of the runs
        name: results file benchmarks/results/<name>.md (none: source_choices/<choice, dots as _>)
        tolerance: points of mean source-val OA within which the value with the lower mean fit wall wins (the
            budget rule); none: the higher mean wins and a tie keeps the value before
        note: a sentence written after the rule in the results file: when the rule was fixed, before or after
            which runs (a rule chosen after seeing an outcome is labelled post hoc there)
    """

    choice: Annotated[str, Arg(choices=tuple(CHOICES))] = "mwdis.logits"
    settings: Annotated[list[str], Arg(choices=tuple(SETTINGS))] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [42, 43, 44])
    out: Path = ROOT / "outputs" / "bench_source_choices"
    name: str | None = None
    tolerance: float | None = None
    note: str | None = None


def main(args: Options) -> None:
    """Fit (or reuse) every cell, choose per setting and per group, write the results file."""
    header = machine()
    t0 = time.perf_counter()
    choice = CHOICES[args.choice]
    own = [s for members, _ in choice.groups.values() for s in members]
    foreign = [s for s in args.settings if s not in own]
    if foreign:
        raise UsageError(
            f"--settings: --choice {choice.key} is not made on {foreign}; drop them, or leave --settings out to run "
            f"all of {own}"
        )
    settings = args.settings or own
    oa: dict[str, dict[str, dict[int, float]]] = {}
    wall: dict[str, dict[str, list[float]]] = {}  # setting -> value -> recorded fit walls
    for name in settings:
        oa[name] = {v: {} for v in choice.values}
        wall[name] = {v: [] for v in choice.values}
        for value in choice.values:
            for seed in args.seeds:
                run_dir = run(name, choice.key, value, seed, args.out)
                if run_dir is not None:
                    oa[name][value][seed] = source_val_oa(run_dir)
                    wall[name][value].append(recorded_wall(run_dir))
    cost = {n: {v: statistics.mean(w) if w else math.nan for v, w in wall[n].items()} for n in settings}
    walls = [w for by_value in wall.values() for ws in by_value.values() for w in ws]
    decisions = {
        n: decide(oa[n], choice.before_of(n), choice.values, args.tolerance, cost[n]) for n in settings
    }
    picker = "Source validation" if args.tolerance is None else "The budget rule"
    if args.tolerance is None:
        rule = (
            "Rule, fixed before measuring: per setting the higher mean wins; per group, the higher mean of its "
            "settings' means (a tie keeps the value before)."
        )
    else:
        rule = (
            f"Rule (`--tolerance {args.tolerance}`, the budget rule): of the values whose mean (per group: mean of "
            f"the settings' means) is within {args.tolerance} points of the best, the one with the lower mean "
            "recorded fit wall wins."
        )
    if args.note:
        rule += f" {args.note}"
    lines = [
        f"# {choice.title}, chosen on source validation only"
        + ("" if args.tolerance is None else " and, within the tolerance, fit wall"),
        "",
        f"Command: `OMP_NUM_THREADS=1 {command()}`  ",
        f"Machine: {header}  ",
        f"Configuration: the experiment pieces at commit {checkout()} (a later commit may hold other values: the "
        "command, with a fresh `--out`, then measures the same choice on that configuration).  ",
        f"Wall: {(time.perf_counter() - t0) / 60:.1f} min for this invocation; {len(walls)} fits of "
        f"{statistics.mean(walls):.0f} s each on average, recorded when each was trained (runs found in "
        "`--out` are reused).  ",
        "Every run is `rsmg fit` with `--test_after_fit false`: **no target number was computed or used**. "
        "Cross-scene, the target's labels do not reach training or checkpoint selection "
        "(`tests/test_target_labels_unused.py`); in-scene, the test tiles and their buffer lie outside training "
        "and validation; on UC Merced, the Karpathy split's test images are never read. A run directory holding "
        "a test result or a transductive input statistic is refused. "
        "The number "
        "compared is the best epoch's source-validation OA in % (`val/oa` in `metrics.csv`, what "
        "ModelCheckpoint keeps), on spatially disjoint validation tiles (UC Merced: the Karpathy split's "
        "validation images); model seed = data seed = the seed. "
        f"Mean ± sample std (ddof = 1); paired differences per seed. {rule}",
        "",
        "## Decisions",
        "",
        f"| group | settings | mean source-val OA % per value | before | {picker.lower()} picks | set in |",
        "|---|---|---|---|---|---|",
    ]
    for group, (members, where) in choice.groups.items():
        ran = [m for m in members if m in decisions]
        if not ran:
            continue
        current = choice.before_of(ran[0])
        group_cost = {v: statistics.mean(cost[m][v] for m in ran) for v in choice.values}
        chosen = decide_group([decisions[m] for m in ran], current, args.tolerance, group_cost)
        means = ", ".join(
            f"`{v}` {statistics.mean(decisions[m].means[v] for m in ran):.2f}"
            + (f" ({group_cost[v]:,.0f} s per fit)" if args.tolerance is not None else "")
            for v in choice.values
        )
        lines.append(f"| {group} | {', '.join(ran)} | {means} | `{current}` | **`{chosen}`** | {where} |")
    lines.append("")
    for name in settings:
        lines += setting_section(name, choice, oa[name], decisions[name], picker)
        if args.tolerance is None and any(math.isnan(c) for c in cost[name].values()):
            continue  # runs trained before walls were recorded, and no rule reads them
        lines += [
            "Recorded fit wall per value, s (same machine and session as the runs, under its load): "
            + "; ".join(
                f"`{v}` " + ", ".join(f"{w:,.0f}" for w in wall[name][v]) + f" (mean {cost[name][v]:,.0f})"
                for v in choice.values
            )
            + ".",
            "",
        ]
    lines += [
        "## Runs",
        "",
        f"Each cell: `rsmg fit` with the setting's pieces and overrides, plus `{NET}{choice.key} VALUE` where "
        "the configuration holds another value"
        + "".join(
            f" (with `{v}`: " + ", ".join(f"`{NET}{k} {x}`" for k, x in extra) + ")"
            for v, extra in choice.extra.items()
        )
        + ", and `--test_after_fit false`:",
        "",
        "| setting | pieces | overrides |",
        "|---|---|---|",
    ]
    for name in settings:
        s = SETTINGS[name]
        pairs = [*zip(s.data[::2], s.data[1::2], strict=True), ("--trainer.max_epochs", str(s.epochs))]
        over = " ".join(f"`{k} {v}`" for k, v in pairs)
        lines.append(f"| {name} | {', '.join(f'`{p}`' for p in s.pieces)} | {over} |")
    name = args.name or f"source_choices/{choice.key.replace('.', '_')}"
    write_result(f"{name}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main(cli(Options, description=__doc__))
