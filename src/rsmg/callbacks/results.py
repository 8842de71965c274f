"""Per-domain results: the table a person reads after ``rsmg test`` (or ``rsmg fit --test_after_fit``).

At the end of testing the task holds per-domain metrics computed from one confusion matrix per target domain
(synchronised across DDP ranks). This callback writes them atomically into the run directory as
``metrics.json`` (everything, incl. confusion matrices), ``results.csv`` and ``results.md`` (one row per
domain: OA / AA / Kappa in %, then per-class accuracy) and prints the same table in the terminal. Rank zero
writes; other ranks only compute.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from rsmg.data.spec import module_spec
from rsmg.io import atomic_write_text


def run_dir(trainer: pl.Trainer) -> Path:
    """The directory of this run: the logger's version directory, else ``default_root_dir``."""
    d = trainer.log_dir or trainer.default_root_dir
    return Path(d)


def _pct(x: object) -> str:
    return "–" if not isinstance(x, float) or math.isnan(x) else f"{100 * x:.2f}"


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
        extra: optional mapping of additional result blocks (e.g. TTA on/off) that other callbacks fill in.
        enabled: set False to write nothing.
    """

    def __init__(self, title: str | None = None, enabled: bool = True) -> None:
        self.title = title
        self.enabled = enabled
        self.extra: dict[str, dict[str, dict[str, Any]]] = {}

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
        payload = {"classes": classes, "domains": list(results), "results": blocks}
        atomic_write_text(out / "metrics.json", json.dumps(payload, indent=2))
        md = "".join(results_markdown(r, classes, f"{title} — {name}") + "\n" for name, r in blocks.items())
        atomic_write_text(out / "results.md", md)
        atomic_write_text(out / "results.csv", results_csv(results, classes))
        for name, r in blocks.items():
            print_results(r, classes, f"{title} — {name} (OA/AA/Kappa %, per-class accuracy %)")
        print(f"results written to {out}/results.md, results.csv, metrics.json")
