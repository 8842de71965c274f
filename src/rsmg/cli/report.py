"""``rsmg report``: the command line of :mod:`rsmg.report` (tables and a figure from finished runs).

Built by :mod:`rsmg.cli.signature` from :func:`report`'s signature and docstring, so ``--config FILE`` and
``--print_config`` work as for the other verbs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from rsmg.cli.signature import Arg, parse_kwargs, signature_parser
from rsmg.errors import ConfigError

__all__ = ["main", "parser", "report"]

_EPILOG = (
    "example: rsmg report outputs/baseline_trento_to_muufl outputs/fvmgn_trento_to_muufl_lidar "
    "--out outputs/report"
)


def report(
    runs: Annotated[list[str], Arg(metavar="RUN_DIR")],
    *,
    out: str = "report",
    group_by: Literal["method", "experiment"] = "method",
    metric: str = "oa,aa,kappa",
    block: str = "test",
    title: str = "Cross-domain results",
    no_figure: bool = False,
    strict: bool = False,
) -> int:
    """Aggregate finished runs (metrics.json + config.yaml) into mean ± std tables and a figure.

    One row per method (or experiment), one column group per target domain; every run that is not counted
    is listed with the reason, and comparison.png compares the methods.

    Args:
        runs: run directories, or folders searched for runs
        out: output directory
        group_by: one row per network class (method) or per experiment name
        metric: comma-separated metrics
        block: result block of metrics.json; a unique part of a name works, e.g. tta
        title: title of the report
        no_figure: do not draw comparison.png
        strict: exit with status 1 when any run is not counted

    Returns:
        0 when at least one run was counted (and, with ``strict``, none was left out); 1 otherwise.
    """
    from rsmg.report import build_report, to_markdown

    metrics = [m.strip().lower() for m in metric.split(",") if m.strip()]
    try:
        rep = build_report(
            runs, out, group_by=group_by, metrics=metrics, block=block, title=title, figure=not no_figure
        )
    except ConfigError as e:
        print(f"rsmg report: error: {e}", file=sys.stderr)
        return 1
    print(to_markdown(rep, title))
    skipped = rep.not_counted()
    for r in skipped:
        print(f"rsmg report: not counted: {r.path} ({r.status}: {r.reason})", file=sys.stderr)
    if not rep.rows:
        print("rsmg report: error: no finished run (no metrics.json) among the paths given", file=sys.stderr)
        return 1
    print(
        f"report written to {Path(out)}/report.md, report.csv, runs.csv, report.json"
        + ("" if no_figure else ", comparison.png")
    )
    return 1 if strict and skipped else 0


def parser() -> Any:
    """The jsonargparse parser of ``rsmg report``, built from :func:`report`'s signature and docstring."""
    return signature_parser(report, prog="rsmg report", epilog=_EPILOG)


def main(argv: list[str] | None = None) -> int:
    """Run ``rsmg report``; see ``rsmg report --help``.

    Args:
        argv: arguments after ``report`` (default: ``sys.argv[1:]``).

    Returns:
        0 when at least one run was counted (and, with ``--strict``, none was left out); 1 otherwise. A bad
        command line exits 2.
    """
    return report(**parse_kwargs(parser(), report, argv))
