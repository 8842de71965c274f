"""The number every source-only choice reads: a run's best source-validation OA, refused if the run saw a target.

Shared by ``source_choices.py`` (MWDis options) and ``scene_budget.py`` (the scene budget), so that both apply
the same refusal: a run that tested, or whose inputs were shaped by a target statistic, cannot choose.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import yaml

from rsmg.errors import DataError


def source_val_oa(run_dir: Path) -> float:
    """The best epoch's source-validation OA in % (what ModelCheckpoint chose on), from ``metrics.csv``.

    Raises:
        DataError: the run computed a test number (``metrics.json``, a ``test/`` column, ``test_after_fit``),
            or a statistic of an unseen target shaped its inputs (transductive): such a run may not choose.
    """
    from rsmg.data.standardize import DEFAULT_STATS, protocol

    config, metrics = run_dir / "config.yaml", run_dir / "metrics.csv"
    for path in (config, metrics):
        if not path.is_file():
            raise DataError(
                "the run has no such file: it did not finish",
                file=path,
                fix="fit the cell again (delete the folder)",
            )
    cfg: dict[str, Any] = yaml.safe_load(config.read_text()) or {}
    data = (cfg.get("data") or {}).get("init_args") or {}
    kind, why = protocol(
        data.get("standardize") or {},
        data.get("standardize_stats") or DEFAULT_STATS,
        list(data.get("sources") or []),
        list(data.get("targets") or []),
    )
    with metrics.open() as f:
        rows = list(csv.DictReader(f))
    tested = [c for c in (rows[0] if rows else {}) if c.startswith("test/")]
    reasons = [
        *(["it holds metrics.json (a test ran)"] if (run_dir / "metrics.json").exists() else []),
        *([f"metrics.csv logs {tested}"] if tested else []),
        *(["config.yaml has test_after_fit: true"] if cfg.get("test_after_fit") else []),
        *([f"it is transductive: {why}"] if kind == "transductive" else []),
    ]
    if reasons:
        raise DataError(
            f"the run may not choose on source validation: {'; '.join(reasons)}",
            file=run_dir,
            field="test_after_fit / data.init_args.standardize_stats",
            fix="fit it again with --test_after_fit false and an inductive data.standardize_stats, in an empty "
            "run directory",
        )
    vals = [float(r["val/oa"]) for r in rows if r.get("val/oa")]
    if not vals:
        raise DataError(
            "no validation OA logged: the fit did not validate once",
            file=metrics,
            field="val/oa",
            fix="fit the cell again with validation on (trainer.limit_val_batches > 0)",
        )
    return 100 * max(vals)
