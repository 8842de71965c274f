"""``rsmg report``: aggregate finished runs into mean ± std tables per method and target domain, and a figure.

A cross-scene result is only worth a row in a paper table when it is averaged over seeds, and a table is
only trustworthy when it says which runs it is made of. This command reads every run directory it is given
(or finds them below the given directories, also below a directory that is itself a run directory), and:

* takes the method name from the run's ``config.yaml`` (short class name of ``model.init_args.net``), the
  experiment name from the logger's ``name`` (else the parent directory), the seed from ``seed_everything``;
* takes the run's protocol, ``inductive`` or ``transductive`` (a statistic of a target scene shaped its
  inputs), from ``metrics.json`` (for older files inferred from ``config.yaml``, and marked so); a transductive
  run is never averaged with inductive ones: its row name ends in ``· transductive``, and the table has a
  ``protocol`` column;
* takes OA / AA / Kappa (and per-class accuracy) of every target domain from ``metrics.json``, and which
  checkpoint they were tested on (``best``, ``last``, ``end of fit``, …: recorded in ``metrics.json`` by
  :mod:`rsmg.callbacks.results`; for older files inferred from ``config.yaml`` and ``checkpoints/``, and
  marked so);
* groups the runs by method (or by experiment) and reports mean ± sample std over the seeds, one column
  group per target domain, the best mean of each column in bold. A mean is only ever taken over one
  checkpoint kind and distinct seeds: a group whose runs tested different checkpoints gets one row per
  checkpoint (``FVMGN · best``, ``FVMGN · last``), and a group that holds a seed twice (the same method run
  in two experiments) gets one row per experiment; a note under the table says why and names the config
  keys in which the runs differ;
* lists every run it could **not** use — no ``metrics.json`` (unfinished or crashed), a ``rsmg validate`` or
  ``rsmg predict`` directory (no test results by design), a ``fast_dev_run`` (a smoke test), results without
  a ``config.yaml`` (nothing says what they are), unreadable files, a path that does not exist, a run
  superseded by a newer run of the same experiment, seed and checkpoint — in the table file itself, never
  silently dropping one;
* writes ``report.md``, ``report.csv`` (aggregated), ``runs.csv`` (one line per run and domain),
  ``report.json`` (everything) and ``comparison.png`` atomically to ``--out``.

Example::

    rsmg report outputs/baseline_trento_to_muufl outputs/fvmgn_trento_to_muufl_lidar --out outputs/report
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rsmg.errors import ConfigError
from rsmg.io import atomic_write_text

__all__ = ["METRICS", "Report", "Run", "aggregate", "build_report", "find_runs", "main", "read_run"]

METRICS = ("oa", "aa", "kappa")
_METRIC_NAMES = {"oa": "OA", "aa": "AA", "kappa": "Kappa"}
_SKIP_DIRS = {"checkpoints", "figures", "wandb", "report", "__pycache__", ".ipynb_checkpoints"}
_MAX_DEPTH = 4

Status = Literal[
    "finished",
    "unfinished",
    "unreadable",
    "missing",
    "superseded",
    "validate",
    "predict",
    "debug",
    "unidentified",
]


@dataclass
class Run:
    """One run directory and what could be read from it.

    Attributes:
        path: the run directory (or the path given, when it does not exist).
        status: ``finished`` (metrics read), or why it is not counted.
        reason: human-readable reason for a status other than ``finished``.
        experiment: experiment name (logger name, else the parent directory's name).
        method: short class name of the network (``model.init_args.net``), else of the model.
        seed: ``seed_everything`` of the run (``None`` when unknown).
        results: target domain → metrics (``oa``, ``aa``, ``kappa``, ``per_class``, ``n``, …).
        classes: class names from ``metrics.json``.
        mtime: modification time of ``metrics.json`` (newest run wins among duplicates).
        config: the parsed ``config.yaml`` (empty when absent).
        checkpoint: which weights were tested: ``best``, ``last``, ``other``, ``end of fit`` or
            ``no checkpoint`` (empty when nothing was tested).
        checkpoint_path: the checkpoint file tested (empty when none was loaded or it is unknown).
        checkpoint_inferred: ``metrics.json`` predates the record, so ``checkpoint`` was inferred from
            ``config.yaml`` and ``checkpoints/``.
        protocol: ``inductive``, ``transductive`` or ``unknown`` (see :func:`_protocol`).
        protocol_inferred: ``metrics.json`` predates the record, so ``protocol`` was inferred from ``config.yaml``.
        row: the table row the run is counted in (set by :func:`aggregate`).
    """

    path: Path
    status: Status
    reason: str = ""
    experiment: str = "?"
    method: str = "?"
    seed: int | None = None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    mtime: float = 0.0
    config: dict[str, Any] = field(default_factory=dict, repr=False)
    checkpoint: str = ""
    checkpoint_path: str = ""
    checkpoint_inferred: bool = False
    protocol: str = ""
    protocol_inferred: bool = False
    row: str = ""


# ---------------------------------------------------------------------------------------------- reading
def _is_run_dir(p: Path) -> bool:
    return (
        (p / "metrics.json").is_file()
        or (p / "config.yaml").is_file()
        or (p / "hparams.yaml").is_file()
        or (p / "checkpoints").is_dir()
    )


def find_runs(paths: Sequence[str | Path]) -> tuple[list[Path], list[Run]]:
    """Run directories given or found below ``paths`` (depth ≤ 4), and the paths that hold none.

    A run directory is one with ``metrics.json``, ``config.yaml``, ``hparams.yaml`` or ``checkpoints/`` — so a
    run that crashed before testing is still found (and then reported as unfinished). The search goes on
    below a run directory: a folder of runs can hold files of its own (a logger-less run, or what an older
    ``fast_dev_run`` wrote into the experiments root), and stopping there would silently drop every run in it.

    Returns:
        ``(run directories in order, without duplicates; Run entries with status "missing")``.
    """
    found: list[Path] = []
    missing: list[Run] = []

    def walk(p: Path, depth: int) -> list[Path]:
        out = [p] if _is_run_dir(p) else []
        if depth >= _MAX_DEPTH:
            return out
        for child in sorted(c for c in p.iterdir() if c.is_dir() and c.name not in _SKIP_DIRS):
            out += walk(child, depth + 1)
        return out

    for raw in paths:
        p = Path(raw)
        if not p.exists():
            missing.append(Run(p, "missing", "path does not exist"))
            continue
        if not p.is_dir():
            missing.append(Run(p, "missing", "not a directory (give a run directory or a folder of runs)"))
            continue
        runs = walk(p, 0)
        if not runs:
            missing.append(
                Run(
                    p,
                    "missing",
                    "no run directory below (none has metrics.json, config.yaml or checkpoints/)",
                )
            )
        for r in runs:
            if r.resolve() not in {f.resolve() for f in found}:
                found.append(r)
    return found, missing


def _short(class_path: object) -> str | None:
    if isinstance(class_path, str) and class_path:
        return class_path.rsplit(".", 1)[-1]
    return None


def _method_from_config(cfg: dict[str, Any]) -> str:
    model = cfg.get("model") or {}
    if isinstance(model, str):
        return _short(model) or "?"
    init = model.get("init_args") or {}
    net = init.get("net") if isinstance(init, dict) else None
    if isinstance(net, dict) and _short(net.get("class_path")):
        return _short(net.get("class_path")) or "?"
    if isinstance(net, str) and _short(net):
        return _short(net) or "?"
    name = _short(model.get("class_path")) or "?"
    return f"{name} (default net)" if net is None and name == "ClassificationTask" else name


def _experiment_from_config(cfg: dict[str, Any], run: Path) -> str:
    logger = (cfg.get("trainer") or {}).get("logger")
    loggers = logger if isinstance(logger, list) else [logger]
    for lg in loggers:
        if isinstance(lg, dict):
            name = (lg.get("init_args") or {}).get("name")
            if isinstance(name, str) and name:
                return name
    # outputs/<experiment>/version_N → <experiment>; a bare run directory → its own name
    return run.parent.name if run.name.startswith("version_") else run.name


def _verb(cfg: dict[str, Any]) -> str:
    """The ``rsmg`` verb that saved ``config.yaml``: ``fit``, ``validate or test``, ``predict`` or ``?``.

    LightningCLI writes each verb's own arguments at the top level: ``verbose`` for validate and test (the
    two are indistinguishable from their config), ``return_predictions`` for predict, neither for fit.
    """
    if not cfg:
        return "?"
    if "return_predictions" in cfg:
        return "predict"
    if "verbose" in cfg:
        return "validate or test"
    return "fit"


def _logged_stages(run: Path) -> set[str]:
    """Stages whose metrics the CSV logger wrote (``val``, ``test``, …): the header of ``metrics.csv``."""
    try:
        with (run / "metrics.csv").open() as f:
            header = f.readline()
    except OSError:
        return set()
    return {c.split("/", 1)[0] for c in header.strip().split(",") if "/" in c}


def _why_no_metrics(run: Path, cfg: dict[str, Any], verb: str) -> tuple[Status, str]:
    """Status and reason of a run directory without ``metrics.json``: what it is, not only what it lacks."""
    if verb == "predict":
        return "predict", "a `rsmg predict` run: predictions only, no test results to count"
    if verb == "validate or test":
        logged = _logged_stages(run)
        if "test" in logged:
            return (
                "unfinished",
                "a `rsmg test` run that logged test metrics but wrote no metrics.json "
                "(--results.enabled false?)",
            )
        if "val" in logged:
            return "validate", "a `rsmg validate` run: validation metrics only (metrics.csv), no test results"
        return (
            "unfinished",
            "no metrics.json: a `rsmg validate` run, or a `rsmg test` that did not finish (their config.yaml "
            "are alike, and no metrics.csv tells them apart)",
        )
    if cfg.get("test_after_fit") is False:
        return (
            "unfinished",
            "no metrics.json: fit without --test_after_fit true (or it did not finish); test a checkpoint of "
            "it with `rsmg test ... --ckpt_path <run>/checkpoints/<file>.ckpt`",
        )
    return (
        "unfinished",
        "no metrics.json (training or testing did not finish, or --test_after_fit was not set)",
    )


def _kind_of(ckpt: str) -> str:
    """Checkpoint kind from its file name (the rule of :func:`rsmg.callbacks.results.checkpoint_used`)."""
    name = ckpt.replace("\\", "/").rsplit("/", 1)[-1]
    return "best" if name.startswith("best") else "last" if name.startswith("last") else "other"


def _checkpoint(payload: dict[str, Any], cfg: dict[str, Any], verb: str, run: Path) -> tuple[str, str, bool]:
    """``(kind, path, inferred)`` of the weights a run's ``metrics.json`` was computed with.

    Newer files record it (``"checkpoint"``). For older ones: a ``rsmg test`` tested its ``ckpt_path`` (none:
    ``no checkpoint``, the initial weights); a ``rsmg fit --test_after_fit`` tested its best checkpoint when
    its ModelCheckpoint kept one (a file in ``checkpoints/`` not named ``last*``), else the weights at the end
    of fit.
    """
    ck = payload.get("checkpoint")
    if isinstance(ck, dict) and isinstance(ck.get("kind"), str) and ck["kind"]:
        return ck["kind"], str(ck.get("path") or ""), False
    if verb == "validate or test":
        given = cfg.get("ckpt_path")
        return (_kind_of(str(given)), str(given), True) if given else ("no checkpoint", "", True)
    best = sorted(f for f in run.glob("checkpoints/*.ckpt") if not f.name.startswith("last"))
    if best:
        return "best", str(best[0]) if len(best) == 1 else "", True
    return "end of fit", "", True


def _protocol(payload: dict[str, Any], cfg: dict[str, Any]) -> tuple[str, bool]:
    """``(protocol, inferred)`` of a run: from ``metrics.json``, else from the data options of ``config.yaml``.

    Before the record, a run was transductive when it standardised bands with each scene's own statistics
    (``scene_standardize``, or ``standardize`` with ``standardize_stats: per_scene``) and tested on a target
    that was not a source.
    """
    if "protocol" in payload:
        return str(payload["protocol"]), False
    data = cfg.get("data")
    args = data.get("init_args") if isinstance(data, dict) else None
    if not isinstance(args, dict):
        return "unknown", True

    def bands(key: str) -> bool:
        value = args.get(key)
        return isinstance(value, dict) and any(value.values())

    per_scene = bands("scene_standardize") or (
        bands("standardize") and args.get("standardize_stats") == "per_scene"
    )
    sources = args.get("sources") or []
    unseen = [t for t in args.get("targets") or [] if t not in sources]
    return ("transductive" if per_scene and unseen else "inductive"), True


def read_run(path: Path, block: str = "test") -> Run:
    """Read one run directory: config (method, experiment, seed), metrics of ``block`` and checkpoint tested."""
    import yaml

    run = Run(path, "finished")
    cfg: dict[str, Any] = {}
    cfg_file = path / "config.yaml"
    if cfg_file.is_file():
        try:
            cfg = yaml.safe_load(cfg_file.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            run.reason = f"config.yaml unreadable ({e.__class__.__name__}); method/seed unknown"
    run.config = cfg if isinstance(cfg, dict) else {}
    run.method = _method_from_config(cfg) if cfg else "?"
    run.experiment = _experiment_from_config(cfg, path)
    seed = cfg.get("seed_everything")
    run.seed = int(seed) if isinstance(seed, int | float) and not isinstance(seed, bool) else None
    verb = _verb(run.config)
    metrics = path / "metrics.json"
    if not metrics.is_file():
        run.status, run.reason = _why_no_metrics(path, run.config, verb)
        return run
    try:
        payload = json.loads(metrics.read_text())
        blocks = payload["results"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        run.status = "unreadable"
        run.reason = f"metrics.json unreadable: {e.__class__.__name__}: {e}"
        return run
    if payload.get("fast_dev_run"):
        run.status = "debug"
        run.reason = "a fast_dev_run (one batch per stage): a smoke test of the pipeline, never a result"
        return run
    if not cfg_file.is_file():
        run.status = "unidentified"
        run.reason = (
            "metrics.json but no config.yaml: method, experiment, seed and checkpoint unknown (e.g. what an "
            "older fast_dev_run wrote straight into the experiments root: delete it)"
        )
        return run
    if block not in blocks:  # e.g. --block tta for "test with DTAug TTA (K=4, …)"
        matches = [b for b in blocks if block.lower() in b.lower()]
        if len(matches) != 1:
            run.status = "unreadable"
            which = "several result blocks match" if matches else "no result block matches"
            run.reason = f"metrics.json: {which} {block!r} (blocks: {sorted(blocks)})"
            return run
        block = matches[0]
    run.results = {d: r for d, r in blocks[block].items() if r.get("n", 1) != 0}  # n = 0: domain not tested
    run.classes = list(payload.get("classes", []))
    run.mtime = metrics.stat().st_mtime
    run.checkpoint, run.checkpoint_path, run.checkpoint_inferred = _checkpoint(
        payload, run.config, verb, path
    )
    run.protocol, run.protocol_inferred = _protocol(payload, run.config)
    if not run.results:
        run.status = "unreadable"
        run.reason = f"metrics.json block {block!r} holds no domain"
    return run


# ---------------------------------------------------------------------------------------------- aggregating
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


# ---------------------------------------------------------------------------------------------- writing
def _fmt(c: Cell, bold: bool, of: int) -> str:
    if c.n == 0:
        return "–"
    s = f"{100 * c.mean:.2f}" + (f" ± {100 * c.std:.2f}" if math.isfinite(c.std) else "")
    if bold:
        s = f"**{s}**"
    if c.n < of:
        s += f" ({c.n}/{of} runs)"
    return s


def _seeds(runs: list[Run]) -> str:
    return ", ".join(
        str(r.seed) if r.seed is not None else "?"
        for r in sorted(runs, key=lambda r: (r.seed is None, r.seed or 0))
    )


def _kinds(runs: list[Run]) -> str:
    return ", ".join(dict.fromkeys(r.checkpoint or "?" for r in runs))


def _protocols(runs: list[Run]) -> str:
    return ", ".join(
        dict.fromkeys((r.protocol or "?") + (" (inferred)" if r.protocol_inferred else "") for r in runs)
    )


def _checkpoint_text(run: Run) -> str:
    """Which weights a run was tested with, as a reader needs it: kind, file, and whether it was inferred."""
    s = (run.checkpoint or "?") + (f": {run.checkpoint_path}" if run.checkpoint_path else "")
    return s + (" (inferred: metrics.json predates the record)" if run.checkpoint_inferred else "")


def to_markdown(report: Report, title: str = "Cross-domain results") -> str:
    """The report as markdown: main table, why rows were split, per-class tables, runs not counted and counted."""
    row_head = report.group_by
    other = "experiments" if report.group_by == "method" else "methods"
    head = [row_head, "runs", "seeds", "checkpoint", "protocol", other]
    for d in report.domains:
        head += [f"{d} · {_METRIC_NAMES.get(m, m)}" for m in report.metrics]
    lines = [
        f"# {title}",
        "",
        f"Mean ± sample std over seeds, in %, one row per {report.group_by} and tested checkpoint, one column "
        "group per target domain; "
        "**bold** = best mean of the column. A cell counted over fewer runs than its row says so. Protocol "
        "*transductive*: a statistic of the target scene shaped its inputs (not a cross-scene generalisation "
        "result); *inductive*: none did.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * 2 + ["---"] * 3 + ["---:"] * (len(head) - 6)) + "|",
    ]
    for row in report.rows:
        members = report.counted(row)
        others = sorted({(r.experiment if report.group_by == "method" else r.method) for r in members})
        cells = [
            row,
            str(len(members)),
            _seeds(members),
            _kinds(members),
            _protocols(members),
            ", ".join(others),
        ]
        for d in report.domains:
            for m in report.metrics:
                cells.append(_fmt(report.cells[row][d][m], row in report.best.get((d, m), []), len(members)))
        lines.append("| " + " | ".join(cells) + " |")
    if report.notes:
        lines += ["", "Rows split so that no mean mixes checkpoints or repeats a seed:", ""]
        lines += [f"- {n}" for n in report.notes]
    if report.classes and any(report.per_class.values()):
        for d in report.domains:
            rows = [row for row in report.rows if d in report.per_class[row]]
            if not rows:
                continue
            lines += [
                "",
                f"## Per-class accuracy on {d} (mean over seeds, %)",
                "",
                "| " + " | ".join([report.group_by, *report.classes]) + " |",
                "|" + "|".join(["---"] + ["---:"] * len(report.classes)) + "|",
            ]
            for row in rows:
                vals = ["–" if not math.isfinite(v) else f"{100 * v:.2f}" for v in report.per_class[row][d]]
                lines.append("| " + " | ".join([row, *vals]) + " |")
    lines += ["", "## Runs not counted", ""]
    skipped = report.not_counted()
    if skipped:
        lines += ["| path | status | reason |", "|---|---|---|"]
        lines += [f"| {r.path} | {r.status} | {r.reason} |" for r in skipped]
    else:
        lines.append("None: every run directory found has test results and is counted above.")
    lines += [
        "",
        "## Runs counted",
        "",
        "| path | experiment | method | seed | checkpoint | protocol |",
        "|---|---|---|---:|---|---|",
    ]
    lines += [
        f"| {r.path} | {r.experiment} | {r.method} | {r.seed if r.seed is not None else '?'} | "
        f"{_checkpoint_text(r)} | {_protocols([r])} |"
        for r in report.counted()
    ]
    return "\n".join(lines) + "\n"


def to_csv(report: Report) -> str:
    """Aggregated table as CSV (fractions, not %): ``<domain>/<metric>/{mean,std,n,best}`` columns."""
    buf = io.StringIO()
    w = csv.writer(buf)
    head = [report.group_by, "runs", "seeds", "checkpoint", "protocol"]
    for d in report.domains:
        for m in report.metrics:
            head += [f"{d}/{m}/mean", f"{d}/{m}/std", f"{d}/{m}/n", f"{d}/{m}/best"]
    w.writerow(head)
    for row in report.rows:
        members = report.counted(row)
        line: list[object] = [row, len(members), _seeds(members), _kinds(members), _protocols(members)]
        for d in report.domains:
            for m in report.metrics:
                c = report.cells[row][d][m]
                line += [c.mean, c.std, c.n, row in report.best.get((d, m), [])]
        w.writerow(line)
    return buf.getvalue()


def runs_csv(report: Report) -> str:
    """One line per run and target domain (plus one per run not counted), for notebooks and spreadsheets."""
    buf = io.StringIO()
    w = csv.writer(buf)
    cls = [f"acc_{c}" for c in report.classes]
    w.writerow(
        [
            "path",
            "status",
            "reason",
            "experiment",
            "method",
            "seed",
            "row",
            "checkpoint",
            "checkpoint_path",
            "protocol",
            "domain",
            "n",
            *METRICS,
            *cls,
        ]
    )
    for r in report.runs:
        who = [
            r.path,
            r.status,
            r.reason,
            r.experiment,
            r.method,
            r.seed,
            r.row,
            r.checkpoint,
            r.checkpoint_path,
            _protocols([r]) if r.status == "finished" else "",
        ]
        if not r.results:
            w.writerow([*who, "", "", *[""] * len(METRICS), *[""] * len(cls)])
        for d, res in r.results.items():
            pc = res.get("per_class", []) if len(res.get("per_class", [])) == len(cls) else [""] * len(cls)
            w.writerow([*who, d, res.get("n", ""), *[res.get(m, "") for m in METRICS], *pc])
    return buf.getvalue()


def to_json(report: Report) -> str:
    """Everything in the report as JSON (NaN written as null)."""

    def clean(x: float) -> float | None:
        return x if math.isfinite(x) else None

    payload = {
        "group_by": report.group_by,
        "metrics": report.metrics,
        "domains": report.domains,
        "classes": report.classes,
        "notes": report.notes,
        "rows": {
            row: {
                "runs": [str(r.path) for r in report.counted(row)],
                "seeds": [r.seed for r in report.counted(row)],
                "checkpoints": [_checkpoint_text(r) for r in report.counted(row)],
                "protocols": [_protocols([r]) for r in report.counted(row)],
                "domains": {
                    d: {
                        m: {
                            "mean": clean(c.mean),
                            "std": clean(c.std),
                            "n": c.n,
                            "best": row in report.best.get((d, m), []),
                        }
                        for m, c in report.cells[row][d].items()
                    }
                    for d in report.domains
                },
                "per_class": {d: [clean(v) for v in pc] for d, pc in report.per_class[row].items()},
            }
            for row in report.rows
        },
        "not_counted": [
            {"path": str(r.path), "status": r.status, "reason": r.reason} for r in report.not_counted()
        ],
    }
    return json.dumps(payload, indent=2)


def build_report(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    group_by: str = "method",
    metrics: Sequence[str] = METRICS,
    block: str = "test",
    title: str = "Cross-domain results",
    figure: bool = True,
) -> Report:
    """Find, read and aggregate runs, then write every report file into ``out`` (atomically).

    Args:
        paths: run directories or folders holding runs.
        out: output directory.
        group_by: ``method`` or ``experiment``.
        metrics: subset of ``oa``, ``aa``, ``kappa``.
        block: result block of ``metrics.json`` (``test``, or an extra block such as a TTA variant).
        title: title of the markdown report and figure.
        figure: also draw ``comparison.png``.

    Returns:
        The :class:`Report`.

    Raises:
        ConfigError: an unknown metric or grouping.
    """
    bad = [m for m in metrics if m not in METRICS]
    if bad or not metrics:
        raise ConfigError(
            "unknown metric",
            field="--metric",
            expected=f"comma-separated subset of {list(METRICS)}",
            found=",".join(bad) or "(empty)",
            fix="e.g. --metric oa,aa,kappa",
        )
    if group_by not in {"method", "experiment"}:
        raise ConfigError(
            "unknown grouping",
            field="--group-by",
            expected="method or experiment",
            found=group_by,
            fix="use --group-by method or --group-by experiment",
        )
    found, missing = find_runs(paths)
    runs = [read_run(p, block) for p in found] + missing
    report = aggregate(runs, list(metrics), group_by)
    out = Path(out)
    atomic_write_text(out / "report.md", to_markdown(report, title))
    atomic_write_text(out / "report.csv", to_csv(report))
    atomic_write_text(out / "runs.csv", runs_csv(report))
    atomic_write_text(out / "report.json", to_json(report))
    if figure and report.rows:
        from rsmg import plotting

        means = {
            row: {d: {m: c.mean for m, c in report.cells[row][d].items()} for d in report.domains}
            for row in report.rows
        }
        stds = {
            row: {d: {m: c.std for m, c in report.cells[row][d].items()} for d in report.domains}
            for row in report.rows
        }
        counts = {row: len(report.counted(row)) for row in report.rows}
        fig = plotting.plot_method_comparison(
            means,
            stds,
            list(metrics),
            row_label=group_by,
            counts=counts,
            title=f"{title}: mean ± std over seeds (best value in bold)",
        )
        plotting.save_figure(fig, out / "comparison.png")
    return report


# ---------------------------------------------------------------------------------------------- CLI
def _parser() -> Any:
    """The parser of ``rsmg report`` (:mod:`rsmg.cli.report`)."""
    from rsmg.cli.report import parser

    return parser()


def main(argv: list[str] | None = None) -> int:
    """Run ``rsmg report`` (:func:`rsmg.cli.report.main`); see ``rsmg report --help``."""
    from rsmg.cli.report import main as report_main

    return report_main(argv)
