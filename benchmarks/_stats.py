"""Statistics every accuracy grid reports the same way: sample std, paired seed differences, the majority floor.

A reviewer reads a difference between two methods against the seed spread, so the spread is the *sample*
standard deviation (ddof = 1), and two methods run with the same seeds are compared seed by seed (paired
differences), never only by their means. Every table states the floor: always answering the target's most
frequent class.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

import numpy as np


def mean_sd(values: Sequence[float], digits: int = 2) -> str:
    """``mean ± sample std`` (ddof = 1); a single value has no spread (``± –``)."""
    if not values:
        return "failed"
    if len(values) == 1:
        return f"{values[0]:.{digits}f} ± –"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def paired_differences(method: Mapping[int, float], baseline: Mapping[int, float]) -> dict[int, float]:
    """``method − baseline`` for every seed both have (seed → difference)."""
    return {s: method[s] - baseline[s] for s in sorted(method) if s in baseline}


def require_paired(scores: Mapping[str, Mapping[int, float]], what: str) -> None:
    """Refuse to compare settings whose finished seeds differ: a dropped seed would unpair every difference.

    Raises:
        DataError: a setting has no finished seed, or two settings finished different seeds.
    """
    from rsmg.errors import DataError

    seeds = {k: sorted(v) for k, v in scores.items()}
    empty = [k for k, v in seeds.items() if not v]
    if empty or len({tuple(v) for v in seeds.values()}) > 1:
        raise DataError(
            f"{what}: the settings did not finish the same seeds, so they cannot be compared seed by seed",
            field="seeds",
            found=seeds,
            fix="rerun the missing cells (finished runs are reused) or drop the seeds one setting lacks",
        )


def paired_cell(diffs: Mapping[int, float]) -> str:
    """Paired differences as a table cell: each seed's, their mean, and how many are positive."""
    if not diffs:
        return "–"
    vals = list(diffs.values())
    each = ", ".join(f"{v:+.2f}" for v in vals)
    return f"{each} (mean {statistics.mean(vals):+.2f}; {sum(v > 0 for v in vals)}/{len(vals)} > 0)"


def majority_share(run: dict) -> float:
    """Share of the test samples in the most frequent class (from a run's confusion matrix): the floor of OA."""
    counts = np.asarray(run["confusion"]).sum(axis=1)
    return float(counts.max() / counts.sum())


def majority_reference(runs: list[dict]) -> str | None:
    """OA / AA / Kappa of always answering the target's most frequent class (the floor OA must be read against).

    The test samples are the same for every method and seed (a seeded target sample), so any run's confusion
    matrix gives the class counts.
    """
    if not runs or "confusion" not in runs[0]:
        return None
    counts = np.asarray(runs[0]["confusion"]).sum(axis=1)
    share = majority_share(runs[0])
    present = int((counts > 0).sum())  # AA averages over the classes the target has samples of
    return (
        f"Reference: always answering the most frequent target class ({runs[0]['classes'][int(counts.argmax())]}, "
        f"{int(counts.max())} of {int(counts.sum())} test samples) scores OA {share * 100:.2f} %, AA "
        f"{100 / present:.2f} % ({present} classes present), Kappa 0."
    )


def per_class_table(results: dict[str, list[dict]]) -> list[str]:
    """Per-class accuracy (recall) %, mean over seeds: where a method's OA comes from.

    Columns are every class any method has (methods may differ, e.g. closed-set rows drop source-only classes);
    a class a method does not have, or one without test samples, shows "—".
    """
    runs = [r for rs in results.values() for r in rs if "per_class" in r]
    if not runs:
        return []
    classes = list(dict.fromkeys(c for r in runs for c in r["classes"]))
    ref = majority_reference(runs)
    note = "Per-class accuracy % (mean over seeds; — : no test samples, or not one of the method's classes):"
    lines = [*([ref, ""] if ref else []), note, ""]
    lines += [f"| method | {' | '.join(classes)} |", "|---|" + "---:|" * len(classes)]
    for method, rs in results.items():
        if rs:
            per_class = np.full((len(rs), len(classes)), np.nan)  # NaN where a class has no samples
            for i, r in enumerate(rs):
                for name, acc in zip(r["classes"], r["per_class"], strict=True):
                    per_class[i, classes.index(name)] = acc
            mean = per_class.mean(axis=0) * 100
            lines.append(f"| {method} | {' | '.join('—' if np.isnan(v) else f'{v:.1f}' for v in mean)} |")
    return [*lines, ""]
