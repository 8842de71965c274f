"""Accuracy figures: confusion matrix, per-class accuracy by domain, and the method comparison of ``rsmg report``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from rsmg.plotting.style import _pct, class_colors, domain_colors

__all__ = ["plot_confusion_matrix", "plot_method_comparison", "plot_per_class_accuracy"]


def plot_confusion_matrix(
    cm: np.ndarray | Sequence[Sequence[float]],
    classes: Sequence[str],
    domain: str | None = None,
    *,
    normalize: bool = True,
    annotate: bool | None = None,
) -> Figure:
    """Confusion matrix of one domain, rows = true class, columns = predicted class.

    Row normalisation makes domains with very different class frequencies comparable (the diagonal is each
    class's recall, whose mean is AA); the raw counts stay in the cells so a reader sees how much evidence a
    percentage rests on. Classes absent from the domain's ground truth get an ``absent`` row label instead of
    a row of zeros that would read as 0 % recall.

    Args:
        cm: ``K×K`` counts.
        classes: ``K`` class names.
        domain: domain name for the title.
        normalize: colour and annotate by row-normalised % (else raw counts).
        annotate: write values in the cells (default: when ``K ≤ 15``).

    Returns:
        The figure.
    """
    counts = np.asarray(cm, dtype=np.float64)
    k = counts.shape[0]
    if counts.shape != (k, k) or k != len(classes):
        raise ValueError(f"confusion matrix of shape {counts.shape} does not match {len(classes)} classes")
    support = counts.sum(axis=1)
    total = counts.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        rows = np.where(support[:, None] > 0, counts / np.maximum(support[:, None], 1), np.nan)
    values = 100 * rows if normalize else counts
    annotate = k <= 15 if annotate is None else annotate
    side = max(4.0, 0.55 * k + 2.5)
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(np.nan_to_num(values, nan=0.0), cmap="Blues", vmin=0, vmax=100 if normalize else None)
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label("% of the true class's pixels" if normalize else "pixels")
    ylabels = [
        f"{c} (n={int(s)})" if s > 0 else f"{c} (absent)" for c, s in zip(classes, support, strict=True)
    ]
    ax.set_xticks(range(k), labels=list(classes), rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(k), labels=ylabels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if annotate:
        vmax = np.nanmax(values) if np.isfinite(values).any() else 1.0
        for i in range(k):
            for j in range(k):
                if support[i] == 0:
                    continue
                v = values[i, j]
                text = f"{v:.1f}%\n({int(counts[i, j])})" if normalize else f"{int(counts[i, j])}"
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if v > 0.6 * vmax else "black",
                )
    oa = np.trace(counts) / total if total else float("nan")
    where = f" — {domain}" if domain else ""
    norm = "row-normalised, " if normalize else ""
    ax.set_title(f"Confusion matrix{where}\n({norm}n={int(total)}, OA {_pct(oa)})")
    return fig


# ---------------------------------------------------------------------------------------------- per class
def plot_per_class_accuracy(
    per_class: Mapping[str, Sequence[float]],
    classes: Sequence[str],
    *,
    overall: Mapping[str, Mapping[str, float]] | None = None,
    title: str = "Per-class accuracy by target domain",
) -> Figure:
    """Grouped bars: per-class accuracy (recall, %) with one bar per domain.

    Classes absent from a domain's ground truth (NaN accuracy) get an ``absent`` mark rather than a zero bar,
    because "no pixel to classify" and "every pixel wrong" mean different things.

    Args:
        per_class: domain → per-class accuracy in [0, 1] (NaN for absent classes), in ``classes`` order.
        classes: class names.
        overall: optional domain → ``{"oa": …, "aa": …}`` shown in the legend.
        title: figure title.

    Returns:
        The figure.
    """
    domains = list(per_class)
    k = len(classes)
    width = 0.8 / max(1, len(domains))
    fig = Figure(figsize=(max(6.0, 0.9 * k * max(1, len(domains)) ** 0.5 + 2.5), 4.2), layout="constrained")
    ax = fig.add_subplot()
    colors = domain_colors(len(domains))
    x = np.arange(k)
    for d, (dom, color) in enumerate(zip(domains, colors, strict=True)):
        acc = np.asarray(per_class[dom], dtype=np.float64)
        if acc.shape != (k,):
            raise ValueError(f"domain {dom!r}: {acc.shape[0]} per-class values for {k} classes")
        pos = x - 0.4 + width * (d + 0.5)
        label = dom
        if overall and dom in overall:
            oa, aa = overall[dom].get("oa", math.nan), overall[dom].get("aa", math.nan)
            label += f" (OA {_pct(oa)}, AA {_pct(aa)})"
        bars = ax.bar(pos, np.nan_to_num(100 * acc, nan=0.0), width=width * 0.95, color=color, label=label)
        for p, a, bar in zip(pos, acc, bars, strict=True):
            if not math.isfinite(a):
                ax.text(p, 1, "absent", rotation=90, ha="center", va="bottom", fontsize=7, color="dimgray")
            elif len(domains) * k <= 40:
                ax.text(p, bar.get_height() + 1, f"{100 * a:.0f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, labels=list(classes), rotation=30 if k > 6 else 0, ha="right" if k > 6 else "center")
    ax.set_ylim(0, 110)
    ax.set_ylabel("accuracy of the class (recall, %)")
    ax.set_xlabel("class")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="domain", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def plot_method_comparison(
    means: Mapping[str, Mapping[str, Mapping[str, float]]],
    stds: Mapping[str, Mapping[str, Mapping[str, float]]] | None,
    metrics: Sequence[str],
    *,
    title: str = "Comparison on the target domains (mean ± std over seeds; best value in bold)",
    row_label: str = "method",
    counts: Mapping[str, int] | None = None,
) -> Figure:
    """Grouped bars for ``rsmg report``: one panel per metric, target domains on x, one bar per method.

    Args:
        means: row (method or experiment) → domain → metric → mean value in [0, 1] (NaN = no value).
        stds: same layout with standard deviations (NaN or missing = no error bar).
        metrics: metric keys to draw, e.g. ``["oa", "aa", "kappa"]``.
        title: suptitle.
        row_label: what a row is, for the legend title.
        counts: optional row → number of runs, shown in the legend (a mean of one run has no error bar).

    Returns:
        The figure.
    """
    rows = list(means)
    domains: list[str] = []
    for r in rows:
        for d in means[r]:
            if d not in domains:
                domains.append(d)
    n_m = max(1, len(metrics))
    panel_w = max(3.5, 0.9 * len(domains) * max(1, len(rows)) ** 0.5 + 1.5)
    fig = Figure(figsize=(panel_w * n_m + 2.5, 4.3), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n_m, squeeze=False)[0])
    width = 0.8 / max(1, len(rows))
    x = np.arange(len(domains))
    colours = class_colors(len(rows))
    names = {"oa": "OA", "aa": "AA", "kappa": "Kappa"}
    for ax, metric in zip(axes, metrics, strict=True):
        best = []
        for d in domains:
            vals = [v for r in rows if math.isfinite(v := means[r].get(d, {}).get(metric, math.nan))]
            best.append(max(vals) if vals else math.inf)
        for i, (row, colour) in enumerate(zip(rows, colours, strict=True)):
            mu = np.array([means[row].get(d, {}).get(metric, np.nan) for d in domains], dtype=np.float64)
            sd = np.array(
                [(stds or {}).get(row, {}).get(d, {}).get(metric, np.nan) for d in domains], dtype=np.float64
            )
            pos = x - 0.4 + width * (i + 0.5)
            n_runs = (counts or {}).get(row)
            label = row if n_runs is None else f"{row} ({n_runs} run{'s' if n_runs != 1 else ''})"
            ax.bar(pos, np.nan_to_num(100 * mu), width * 0.95, color=colour, label=label)
            has_sd = np.isfinite(sd) & np.isfinite(mu)
            if has_sd.any():
                ax.errorbar(
                    pos[has_sd],
                    100 * mu[has_sd],
                    yerr=100 * sd[has_sd],
                    fmt="none",
                    ecolor="black",
                    capsize=3,
                    linewidth=1,
                )
            for j, (p, m_, s_) in enumerate(zip(pos, mu, sd, strict=True)):
                text = "no run" if not math.isfinite(m_) else f"{100 * m_:.1f}"
                top = 100 * (max(0.0, m_) + (s_ if math.isfinite(s_) else 0.0)) if math.isfinite(m_) else 0.0
                ax.text(
                    p,
                    top + 1,
                    text,
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    rotation=90 if len(rows) > 3 else 0,
                    fontweight="bold" if math.isfinite(m_) and m_ >= best[j] - 1e-12 else "normal",
                )
        ax.set_xticks(x, labels=domains)
        ax.set_xlabel("target domain")
        ax.set_ylabel(f"{names.get(metric, metric)} (%)")
        ax.set_title(names.get(metric, metric))
        ax.axhline(0, color="black", linewidth=0.6)
        ax.grid(axis="y", alpha=0.3)
        lo = min(
            0.0,
            *(
                100 * v.get(metric, 0.0)
                for r in rows
                for v in means[r].values()
                if math.isfinite(v.get(metric, 0.0))
            ),
        )
        ax.set_ylim(min(0.0, lo - 10), 110)
    axes[-1].legend(title=row_label, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(title)
    return fig
