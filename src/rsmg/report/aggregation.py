"""Aggregating runs for ``rsmg report``: rows of mean ± sample std over seeds, split where a mean would mix.

A mean is only ever taken over one checkpoint kind and distinct seeds, and a transductive run never shares a
row with inductive ones; older duplicates of a run are marked superseded, with the config keys that differ.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rsmg.report.runs import Run

__all__ = ["METRICS", "Cell", "Report", "aggregate"]

METRICS = ("oa", "aa", "kappa")


@dataclass
class Cell:
    """Mean, sample std and count of one (row, domain, metric)."""

    mean: float
    std: float
    n: int


@dataclass
class Report:
    """Aggregated results.

    Attributes:
        rows: row names (methods or experiments, split as :func:`aggregate` says) in order of first appearance.
        domains: target domains in order of first appearance.
        metrics: metric keys.
        cells: row → domain → metric → :class:`Cell`.
        per_class: row → domain → per-class mean accuracy (NaN where absent).
        classes: class names (from the first finished run).
        runs: every run, counted or not (``status`` says which).
        group_by: ``method`` or ``experiment``.
        best: (domain, metric) → rows holding the best mean.
        notes: why a method (or experiment) was split into several rows.
    """

    rows: list[str]
    domains: list[str]
    metrics: list[str]
    cells: dict[str, dict[str, dict[str, Cell]]]
    per_class: dict[str, dict[str, list[float]]]
    classes: list[str]
    runs: list[Run]
    group_by: str
    best: dict[tuple[str, str], list[str]]
    notes: list[str] = field(default_factory=list)

    def counted(self, row: str | None = None) -> list[Run]:
        """Finished runs counted in the table (of one row)."""
        return [r for r in self.runs if r.status == "finished" and (row is None or self.key(r) == row)]

    def not_counted(self) -> list[Run]:
        """Every run or path that is not in the table, with its reason."""
        return [r for r in self.runs if r.status != "finished"]

    def key(self, run: Run) -> str:
        """Row name of a run."""
        return run.row or (run.method if self.group_by == "method" else run.experiment)


def _mean_std(values: list[float]) -> Cell:
    vals = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    if not vals:
        return Cell(float("nan"), float("nan"), 0)
    std = statistics.stdev(vals) if len(vals) > 1 else float("nan")
    return Cell(statistics.fmean(vals), std, len(vals))


# where a run wrote or read files, not what it computed; ckpt_path is *not* one of them: it says which weights
# were tested
_PATH_KEYS = ("save_dir", "default_root_dir", "root", "dirpath", "config")
_CONSOLE_KEYS = ("verbose",)  # `rsmg validate|test` print options: never change a result


def _flatten(d: object, prefix: str = "") -> dict[str, object]:
    if isinstance(d, dict):
        out: dict[str, object] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): d}


def _differing_keys(configs: Sequence[dict[str, Any]]) -> list[str]:
    """Config keys whose values are not all equal across ``configs`` (output paths and print options ignored)."""
    flat = [_flatten(c) for c in configs]
    keys = sorted({k for f in flat for k in f})
    return [
        k
        for k in keys
        if len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flat}) > 1
        and k.rsplit(".", 1)[-1] not in _PATH_KEYS
        and k not in _CONSOLE_KEYS
    ]


def _config_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Keys whose values differ between two run configs: why a superseded run is not equal."""
    return _differing_keys([a, b])


def _listed(keys: list[str], at_most: int = 5) -> str:
    return ", ".join(keys[:at_most]) + (", …" if len(keys) > at_most else "")


def _base(run: Run, group_by: str) -> str:
    """The row group of a run; a transductive run never shares one with inductive runs."""
    base = run.method if group_by == "method" else run.experiment
    return base + (" · transductive" if run.protocol == "transductive" else "")


def _mark_superseded(runs: list[Run], group_by: str) -> None:
    """Keep the newest finished run per (row, experiment, seed, checkpoint); mark older ones ``superseded``.

    The checkpoint is part of the key: a later ``rsmg test`` of ``last.ckpt`` is another result than the
    fit's own test of the best checkpoint, not a newer copy of it (both are counted, in separate rows).
    """
    newest: dict[tuple[str, str, int | None, str], Run] = {}
    for r in runs:
        if r.status != "finished" or r.seed is None:
            continue
        k = (_base(r, group_by), r.experiment, r.seed, r.checkpoint)
        if k in newest:
            old, new = sorted([newest[k], r], key=lambda x: x.mtime)
            old.status = "superseded"
            diff = _config_diff(old.config, new.config)
            old.reason = f"same experiment, seed and checkpoint ({r.checkpoint}) as the newer {new.path}" + (
                f" (configs differ in {_listed(diff)})" if diff else ""
            )
            newest[k] = new
        else:
            newest[k] = r


def _assign_rows(runs: list[Run], group_by: str) -> list[str]:
    """Give every finished run its row; split a group rather than average what must not be averaged.

    A group (method or experiment) becomes one row per checkpoint kind when its runs tested different ones,
    and, within that, one row per experiment (per method when grouping by experiment) when a seed occurs twice:
    a mean ± std "over seeds" of two runs with the same seed is a mean over two different set-ups.

    Returns:
        One note per split, naming the config keys in which the runs of a repeated seed differ.
    """
    other: Callable[[Run], str] = (lambda r: r.experiment) if group_by == "method" else (lambda r: r.method)
    other_name = "experiment" if group_by == "method" else "method"
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(_base(r, group_by), []).append(r)
    notes: list[str] = []
    for base, members in groups.items():
        kinds = list(dict.fromkeys(r.checkpoint for r in members))
        if len(kinds) > 1:
            notes.append(
                f"{base}: its runs tested different checkpoints ({', '.join(kinds)}), so one row per checkpoint: "
                "a best- and a last-checkpoint test are different results, even of the same run"
            )
        for kind in kinds:
            part = [r for r in members if r.checkpoint == kind]
            label = f"{base} · {kind}" if len(kinds) > 1 else base
            seeds = [r.seed for r in part if r.seed is not None]
            repeated = sorted({s for s in seeds if seeds.count(s) > 1})
            if repeated:
                clash = [r for r in part if r.seed in repeated]
                diff = [k for k in _differing_keys([r.config for r in clash]) if k != "seed_everything"]
                where = ", ".join(sorted({other(r) for r in clash}))
                notes.append(
                    f"{label}: seed {', '.join(map(str, repeated))} ran in more than one {other_name} ({where}), "
                    f"so one row per {other_name}, never one mean over a repeated seed"
                    + (f"; their configs differ in {_listed(diff, 8)}" if diff else "")
                )
            for r in part:
                r.row = f"{label} · {other(r)}" if repeated else label
    return notes


def aggregate(runs: list[Run], metrics: Sequence[str] = METRICS, group_by: str = "method") -> Report:
    """Group finished runs into rows and compute mean ± std per target domain and metric.

    Args:
        runs: every run (any status); only ``finished`` ones enter the numbers.
        metrics: metric keys present in ``metrics.json`` per domain.
        group_by: ``method`` (network class) or ``experiment`` (logger name); a group is split into several
            rows when its runs tested different checkpoints or repeat a seed (see :func:`_assign_rows`).

    Returns:
        The :class:`Report`.
    """
    _mark_superseded(runs, group_by)
    finished = [r for r in runs if r.status == "finished"]
    notes = _assign_rows(finished, group_by)
    report = Report([], [], list(metrics), {}, {}, [], runs, group_by, {}, notes)
    for r in finished:
        row = report.key(r)
        if row not in report.rows:
            report.rows.append(row)
        for d in r.results:
            if d not in report.domains:
                report.domains.append(d)
        if not report.classes and r.classes:
            report.classes = list(r.classes)
    for row in report.rows:
        members = report.counted(row)
        report.cells[row] = {}
        report.per_class[row] = {}
        for d in report.domains:
            with_d = [r.results[d] for r in members if d in r.results]
            report.cells[row][d] = {
                m: _mean_std([float(x.get(m, float("nan"))) for x in with_d]) for m in metrics
            }
            pcs: list[list[float]] = [x["per_class"] for x in with_d if isinstance(x.get("per_class"), list)]
            if pcs and len({len(p) for p in pcs}) == 1:
                report.per_class[row][d] = [
                    _mean_std([float(p[k]) for p in pcs]).mean for k in range(len(pcs[0]))
                ]
    for d in report.domains:
        for m in metrics:
            means = {row: report.cells[row][d][m].mean for row in report.rows}
            finite = [v for v in means.values() if math.isfinite(v)]
            if finite:
                top = max(finite)
                report.best[(d, m)] = [
                    row for row, v in means.items() if math.isfinite(v) and v >= top - 1e-12
                ]
    return report
