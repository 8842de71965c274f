"""``build_report``: find, read and aggregate runs, then write every report file (and the figure) atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rsmg.errors import ConfigError
from rsmg.io import atomic_write_text
from rsmg.report.aggregation import METRICS, Report, aggregate
from rsmg.report.runs import find_runs, read_run
from rsmg.report.tables import runs_csv, to_csv, to_json, to_markdown

__all__ = ["build_report"]


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
