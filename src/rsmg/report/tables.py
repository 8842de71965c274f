"""Writing a :class:`~rsmg.report.aggregation.Report` as text: markdown, aggregated CSV, per-run CSV, JSON.

Numbers are fractions in the CSV and JSON files and % in markdown; every table names the runs it is made of
and lists the ones it does not count, with their reason.
"""

from __future__ import annotations

import csv
import io
import json
import math

from rsmg.report.aggregation import METRICS, Cell, Report
from rsmg.report.runs import Run

__all__ = ["runs_csv", "to_csv", "to_json", "to_markdown"]

_METRIC_NAMES = {"oa": "OA", "aa": "AA", "kappa": "Kappa"}


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
