"""Per-domain results: the table a person reads after ``rsmg test`` (or ``rsmg fit --test_after_fit``).

At the end of testing the task holds per-domain metrics computed from one confusion matrix per target domain
(synchronised across DDP ranks). This callback writes them atomically into the run directory as
``metrics.json`` (everything, incl. confusion matrices and which checkpoint was tested), ``results.csv`` and
``results.md`` (one row per domain: OA / AA / Kappa in %, then per-class accuracy) and prints the same table in
the terminal. Rank zero writes; other ranks only compute.

``metrics.json`` records the checkpoint the numbers come from (``{"kind": "best" | "last" | "other" |
"end of fit" | "no checkpoint", "path": ...}``): a fit's own test (``--test_after_fit``) uses the best
checkpoint, a later ``rsmg test --ckpt_path …/last.ckpt`` the last one, and the two are different results of
the same run and seed that ``rsmg report`` must never merge or silently replace one by the other.

``metrics.json`` also records the run's ``protocol``: ``inductive`` (no statistic of a target domain shaped its
inputs) or ``transductive`` (one did, e.g. ``data.standardize_stats: per_scene`` on an unseen target scene), with
``protocol_reason``, from the data module (``unknown`` when it declares none). ``results.md`` opens with it and
the printed tables carry the word in their titles, so a transductive number never appears without it.

A ``fast_dev_run`` is a smoke test, not a run. Lightning swaps its logger for a dummy one, so there is no
version directory and the run directory would be ``default_root_dir`` — the experiments root (``outputs/``)
that holds every real run. Tables and figures written there lie among the real runs, and ``rsmg report
outputs`` would read the root itself as a run. So :func:`run_dir` sends a fast_dev_run (and every writer that
asks it: figures, embeddings, attention maps, zero-shot) to ``<default_root_dir>/fast_dev_run/``: one clearly
named throwaway directory that the next fast_dev_run overwrites, with ``"fast_dev_run": true`` in its
``metrics.json`` so ``rsmg report`` lists it as a debug run and never counts it. It writes rather than writes
nothing because the writers and the figure code are part of "does the pipeline run at all?". Lightning means
fast_dev_run to save no checkpoint either, but ``ModelCheckpoint(save_last=True).on_train_end`` (Lightning
2.6) saves ``last.ckpt`` without the fast_dev_run check of its other hooks; a debug overlay cannot switch that
callback off (``enable_checkpointing: false`` is refused while the experiment's YAML lists a ModelCheckpoint,
and replacing ``trainer.callbacks`` would drop every other callback the smoke test should exercise), so
:meth:`PerDomainResults.setup` — present in every ``rsmg`` run — clears ``save_last`` for fast_dev_runs.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint

from rsmg.data.spec import module_spec
from rsmg.io import atomic_write_text

FAST_DEV_RUN_DIR = "fast_dev_run"


def run_dir(trainer: pl.Trainer) -> Path:
    """The directory of this run: the logger's version directory, else ``default_root_dir``.

    A ``fast_dev_run`` gets ``<default_root_dir>/fast_dev_run`` instead (see the module docstring): its dummy
    logger has no directory, and ``default_root_dir`` itself is the experiments root holding the real runs.
    """
    d = trainer.log_dir or trainer.default_root_dir  # a collective under DDP: every rank asks, in every case
    if getattr(trainer, "fast_dev_run", False):
        return Path(trainer.default_root_dir) / FAST_DEV_RUN_DIR
    return Path(d)


def checkpoint_used(trainer: pl.Trainer) -> dict[str, str | None]:
    """Which weights the test ran on, for ``metrics.json``: ``{"kind": ..., "path": ...}``.

    ``kind`` is ``best`` (the best checkpoint of a ModelCheckpoint of this trainer, or a file named ``best*``),
    ``last`` (a file named ``last*``), ``other`` (any other file), or, when no checkpoint was loaded,
    ``end of fit`` (this trainer trained the weights it tests: ``--test_after_fit`` without a ModelCheckpoint)
    or ``no checkpoint`` (the weights the module held; under ``rsmg test`` without ``--ckpt_path`` its initial
    ones — a trainer cannot tell whether another trainer trained them). ``path`` is the checkpoint as Lightning
    loaded it (``None`` when none was).
    """
    ckpt = getattr(trainer, "ckpt_path", None)  # getattr: callers and tests may hand in a stand-in trainer
    if not ckpt:
        trained = getattr(trainer, "global_step", 0) > 0
        return {"kind": "end of fit" if trained else "no checkpoint", "path": None}
    path = str(ckpt)
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    best = {
        os.path.abspath(cb.best_model_path)
        for cb in getattr(trainer, "checkpoint_callbacks", [])
        if isinstance(cb, ModelCheckpoint) and cb.best_model_path
    }
    if os.path.abspath(path) in best or name.startswith("best"):
        kind = "best"
    elif name.startswith("last"):
        kind = "last"
    else:
        kind = "other"
    return {"kind": kind, "path": path}


def _pct(x: object) -> str:
    return "–" if not isinstance(x, float) or math.isnan(x) else f"{100 * x:.2f}"


def run_protocol(trainer: pl.Trainer) -> tuple[str, str]:
    """``(protocol, reason)`` of the data the trainer tests on (see the module docstring)."""
    dm = getattr(trainer, "datamodule", None)
    proto = getattr(dm, "protocol", None)
    if proto is None:
        return "unknown", "the data module does not declare its protocol"
    return str(proto), str(getattr(dm, "protocol_reason", ""))


def protocol_line(protocol: str, reason: str) -> str:
    """The first line of ``results.md``: the protocol in words, bold unless inductive."""
    word = protocol if protocol == "inductive" else f"**{protocol}**"
    return f"Protocol: {word}" + (f" ({reason})" if reason else "") + "\n\n"


def results_markdown(results: dict[str, dict[str, Any]], classes: list[str], title: str = "") -> str:
    """Markdown table: one row per domain with OA / AA / Kappa and per-class accuracy (in %)."""
    head = ["domain", "n", "OA", "AA", "Kappa", *classes]
    lines = [f"### {title}" if title else "", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for dom, r in results.items():
        row = [dom, str(r.get("n", "")), _pct(r["oa"]), _pct(r["aa"]), _pct(r["kappa"])]
        row += [_pct(v) for v in r.get("per_class", [])]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines).strip() + "\n"


def results_csv(results: dict[str, dict[str, Any]], classes: list[str]) -> str:
    """CSV with the same content as :func:`results_markdown` (fractions, not %)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["domain", "n", "oa", "aa", "kappa", *[f"acc_{c}" for c in classes]])
    for dom, r in results.items():
        w.writerow([dom, r.get("n", ""), r["oa"], r["aa"], r["kappa"], *r.get("per_class", [])])
    return buf.getvalue()


def print_results(results: dict[str, dict[str, Any]], classes: list[str], title: str) -> None:
    """Print the per-domain table with rich (plain text when not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ["domain", "n", "OA %", "AA %", "Kappa %", *classes]:
        table.add_column(col, justify="left" if col == "domain" else "right")
    for dom, r in results.items():
        table.add_row(
            dom,
            str(r.get("n", "")),
            _pct(r["oa"]),
            _pct(r["aa"]),
            _pct(r["kappa"]),
            *[_pct(v) for v in r.get("per_class", [])],
        )
    Console(width=200).print(table)


class PerDomainResults(pl.Callback):
    """Write ``metrics.json`` / ``results.csv`` / ``results.md`` and print the table after testing.

    Args:
        title: title of the table (default: the run directory).
        enabled: set False to write nothing (the fast_dev_run checkpoint guard of :meth:`setup` still applies).

    Attributes:
        extra: additional result blocks (e.g. TTA on/off) that other callbacks fill in, written beside ``test``.
    """

    def __init__(self, title: str | None = None, enabled: bool = True) -> None:
        self.title = title
        self.enabled = enabled
        self.extra: dict[str, dict[str, dict[str, Any]]] = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Under ``fast_dev_run``, stop ModelCheckpoints from saving ``last.ckpt`` at the end of training.

        Lightning skips every checkpoint of a fast_dev_run except the ``save_last`` one of ``on_train_end``
        (see the module docstring); without this a smoke test leaves ``<default_root_dir>/checkpoints/last.ckpt``
        in the experiments root. Real runs are untouched.
        """
        if not getattr(trainer, "fast_dev_run", False):  # an undeclared Trainer attribute: getattr for mypy
            return
        for cb in getattr(trainer, "checkpoint_callbacks", []):
            if isinstance(cb, ModelCheckpoint) and cb.save_last:
                cb.save_last = False

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Gather the task's per-domain results and write them."""
        results: dict[str, dict[str, Any]] = getattr(pl_module, "test_results", {})
        if not self.enabled:
            return
        out = run_dir(trainer)  # trainer.log_dir broadcasts under DDP: every rank must ask
        if not results or not trainer.is_global_zero:
            return
        classes = list(module_spec(pl_module).classes)
        title = self.title or str(out)
        blocks = {"test": results, **self.extra}
        protocol, reason = run_protocol(trainer)
        payload: dict[str, Any] = {
            "classes": classes,
            "domains": list(results),
            "results": blocks,
            "checkpoint": checkpoint_used(trainer),
            "protocol": protocol,
            "protocol_reason": reason,
        }
        if getattr(trainer, "fast_dev_run", False):
            payload["fast_dev_run"] = True
        atomic_write_text(out / "metrics.json", json.dumps(payload, indent=2))
        md = protocol_line(protocol, reason)
        md += "".join(
            results_markdown(r, classes, f"{title} — {name} — {protocol}") + "\n"
            for name, r in blocks.items()
        )
        atomic_write_text(out / "results.md", md)
        atomic_write_text(out / "results.csv", results_csv(results, classes))
        for name, r in blocks.items():
            print_results(r, classes, f"{title} — {name} — {protocol} (OA/AA/Kappa %, per-class accuracy %)")
        print(f"results written to {out}/results.md, results.csv, metrics.json")
