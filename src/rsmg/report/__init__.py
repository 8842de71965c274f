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

from rsmg.report.aggregation import METRICS, Cell, Report, aggregate
from rsmg.report.build import build_report
from rsmg.report.runs import Run, find_runs, read_run
from rsmg.report.tables import runs_csv, to_csv, to_json, to_markdown


def main(argv: list[str] | None = None) -> int:
    """Run ``rsmg report`` (:func:`rsmg.cli.report.main`); the verb's parser loads only when it runs."""
    from rsmg.cli.report import main as report_main

    return report_main(argv)


__all__ = [
    "METRICS",
    "Cell",
    "Report",
    "Run",
    "aggregate",
    "build_report",
    "find_runs",
    "main",
    "read_run",
    "runs_csv",
    "to_csv",
    "to_json",
    "to_markdown",
]
