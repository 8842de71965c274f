"""Reading run directories for ``rsmg report``: which runs there are, and what each one is and tested.

A run's method, experiment and seed come from its ``config.yaml``, its results, tested checkpoint and protocol
from ``metrics.json`` (inferred from ``config.yaml`` and ``checkpoints/`` for older files, and marked so). A
directory that cannot be counted gets a status and a reason, never silence.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["Run", "Status", "find_runs", "read_run"]

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
        row: the table row the run is counted in (set by :func:`rsmg.report.aggregation.aggregate`).
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
