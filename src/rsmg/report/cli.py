"""The ``rsmg report`` command line: arguments, printed table, exit status (see :mod:`rsmg.report`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rsmg.errors import ConfigError
from rsmg.report.build import build_report
from rsmg.report.tables import to_markdown

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rsmg report",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Aggregate finished runs (metrics.json + config.yaml) into mean ± std tables per method "
        "and "
        "target domain, list every run that is not counted and why, and draw a comparison figure.",
        epilog="example: rsmg report outputs/baseline_trento_to_muufl outputs/fvmgn_trento_to_muufl_lidar "
        "--out outputs/report",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories, or folders searched for runs")
    p.add_argument("--out", default="report", help="output directory (default: ./report)")
    p.add_argument(
        "--group-by",
        choices=["method", "experiment"],
        default="method",
        help="one row per network class (method) or per experiment name (default: method)",
    )
    p.add_argument("--metric", default="oa,aa,kappa", help="comma-separated metrics (default: oa,aa,kappa)")
    p.add_argument(
        "--block",
        default="test",
        help="result block of metrics.json (default: test); a unique part of a name works, e.g. tta",
    )
    p.add_argument("--title", default="Cross-domain results", help="title of the report")
    p.add_argument("--no-figure", action="store_true", help="do not draw comparison.png")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when any run is not counted")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``rsmg report``; see ``rsmg report --help``.

    Args:
        argv: arguments after ``report`` (default: ``sys.argv[1:]``).

    Returns:
        0 when at least one run was counted (and, with ``--strict``, none was left out); 1 otherwise.
    """
    args = _parser().parse_args(argv)
    metrics = [m.strip().lower() for m in args.metric.split(",") if m.strip()]
    try:
        report = build_report(
            args.runs,
            args.out,
            group_by=args.group_by,
            metrics=metrics,
            block=args.block,
            title=args.title,
            figure=not args.no_figure,
        )
    except ConfigError as e:
        print(f"rsmg report: error: {e}", file=sys.stderr)
        return 1
    print(to_markdown(report, args.title))
    skipped = report.not_counted()
    for r in skipped:
        print(f"rsmg report: not counted: {r.path} ({r.status}: {r.reason})", file=sys.stderr)
    if not report.rows:
        print("rsmg report: error: no finished run (no metrics.json) among the paths given", file=sys.stderr)
        return 1
    print(
        f"report written to {Path(args.out)}/report.md, report.csv, runs.csv, report.json"
        + ("" if args.no_figure else ", comparison.png")
    )
    return 1 if args.strict and skipped else 0
