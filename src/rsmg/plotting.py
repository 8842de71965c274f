"""Figures of a run: confusion matrices, t-SNE, per-class accuracy, classification maps, attention maps.

Every function is pure: it takes arrays and names, returns a :class:`matplotlib.figure.Figure`, and never
touches the global pyplot state. Figures are built with :class:`~matplotlib.figure.Figure` directly and
rendered by matplotlib's Agg canvas when saved, whatever backend pyplot uses: they work headless, in worker
processes and under DDP, never leak memory through ``plt``'s figure registry, and do not switch a notebook's
inline backend. :func:`save_figure` writes a PNG atomically, like every other output of a run.

Conventions shared by the figures, so a reader can compare them:

* one colour per class, the same in every figure of a run (:func:`class_colors`; greys are never a class
  colour because grey means "no label" in the maps);
* domain names are always spelled out (never ``domain 0``), target domains are marked as such when known;
* accuracies are shown in %, row-normalised confusion matrices read "of the pixels of true class *r*, which
  fraction was predicted as *c*" (recall on the diagonal), the habit of remote-sensing papers.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.colors import ListedColormap, to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from rsmg.io import atomic_write_bytes

__all__ = [
    "NOT_EVALUATED",
    "UNLABELLED",
    "class_colors",
    "display_image",
    "domain_colors",
    "label_map_from_predictions",
    "plot_attention_maps",
    "plot_classification_map",
    "plot_confusion_matrix",
    "plot_method_comparison",
    "plot_per_class_accuracy",
    "plot_tsne",
    "save_figure",
    "subsample",
    "tsne_2d",
]

UNLABELLED = -1
"""Map value of a pixel without ground truth (drawn light grey)."""
NOT_EVALUATED = -2
"""Map value of a labelled pixel that was not evaluated: class outside the class set, or not tested."""

_GREY_UNLABELLED = "#d9d9d9"
_GREY_NOT_EVALUATED = "#8c8c8c"
_CORRECT = "#a6d96a"  # pale green and black: never a class colour, so the error panel cannot be misread
_WRONG = "#000000"


# ---------------------------------------------------------------------------------------------- colours
def _is_grey(rgb: tuple[float, float, float], tol: float = 0.06) -> bool:
    return max(rgb) - min(rgb) < tol


def class_colors(n: int) -> list[tuple[float, float, float]]:
    """``n`` distinct class colours, stable for a given ``n`` and never grey.

    Grey is reserved for unlabelled / not evaluated pixels in maps, so the qualitative tables ``tab10``,
    ``tab20``, ``tab20b`` and ``tab20c`` are concatenated with their greys removed (≈ 55 colours); beyond
    that, evenly spaced hues are added.
    """
    pool: list[tuple[float, float, float]] = []
    for name in ("tab10", "tab20", "tab20b", "tab20c"):
        for c in matplotlib.colormaps[name].colors:  # type: ignore[attr-defined]
            rgb = to_rgb(c)
            if not _is_grey(rgb) and rgb not in pool:
                pool.append(rgb)
    if n > len(pool):
        hsv = matplotlib.colormaps["hsv"]
        pool += [to_rgb(hsv(i / (n - len(pool)))) for i in range(n - len(pool))]
    return pool[:n]


def domain_colors(n: int) -> list[tuple[float, float, float]]:
    """``n`` domain colours, from a palette unlike :func:`class_colors` (``Dark2``, then hues)."""
    base = [to_rgb(c) for c in matplotlib.colormaps["Dark2"].colors]  # type: ignore[attr-defined]
    if n > len(base):
        hsv = matplotlib.colormaps["hsv"]
        base += [to_rgb(hsv(i / (n - len(base)))) for i in range(n - len(base))]
    return base[:n]


def _pct(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.1f} %"


# ---------------------------------------------------------------------------------------------- saving
def save_figure(fig: Figure, path: str | Path, dpi: int = 130) -> Path:
    """Write ``fig`` as a PNG atomically (temp file + rename), creating parent directories.

    A killed run never leaves a half-written PNG that a report or notebook would then try to read.

    Args:
        fig: the figure.
        path: target file (``.png``).
        dpi: resolution.

    Returns:
        The target path.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return atomic_write_bytes(path, buf.getvalue())


# ---------------------------------------------------------------------------------------------- confusion
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


# ---------------------------------------------------------------------------------------------- t-SNE
def subsample(n: int, max_points: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``max_points`` of ``n`` items, drawn without replacement with ``seed``."""
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def tsne_2d(
    x: np.ndarray, *, seed: int = 0, perplexity: float = 30.0, pca_dims: int = 50, threads: int | None = 1
) -> np.ndarray:
    """2-D t-SNE of ``x`` (``N×D``) with a fixed seed; PCA to ``pca_dims`` first when ``D`` is larger.

    The PCA step is the usual t-SNE practice (van der Maaten 2014): it removes noise dimensions and makes the
    neighbour search fast. The perplexity is clipped below ``(N - 1) / 3`` so small test runs still work.
    One thread by default: for the ≤ 3000 points drawn here, sklearn's OpenMP threads spend their time
    synchronising, and on a machine shared with data loaders or other jobs one thread was measured 1.7× (3000
    points) to 10× (200 points) faster. ``threads=None`` lets OpenMP decide.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    n = len(x)
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {n}")
    with threadpool_limits(limits=threads):
        if x.shape[1] > pca_dims and n > pca_dims:
            x = PCA(n_components=pca_dims, random_state=seed).fit_transform(x)
        perp = float(min(perplexity, max(1.0, (n - 1) / 3)))
        tsne = TSNE(n_components=2, perplexity=perp, init="pca", learning_rate="auto", random_state=seed)
        return np.asarray(tsne.fit_transform(x), dtype=np.float32)


def plot_tsne(
    embeddings: np.ndarray,
    labels: np.ndarray,
    domains: np.ndarray,
    classes: Sequence[str],
    domain_names: Sequence[str],
    *,
    max_points: int = 3000,
    seed: int = 0,
    perplexity: float = 30.0,
    title: str = "t-SNE of the embeddings",
    source_domains: Sequence[str] = (),
    coords: np.ndarray | None = None,
) -> Figure:
    """t-SNE of embeddings, twice: coloured by class (left) and by domain (right).

    The pair answers the question of domain generalisation at a glance: classes should form clusters on the
    left while, on the right, the domains should be mixed inside each cluster (not separated).

    Args:
        embeddings: ``N×D`` features.
        labels: ``N`` class indices (into ``classes``; negative = unknown, drawn grey).
        domains: ``N`` domain indices (into ``domain_names``).
        classes: class names.
        domain_names: domain names.
        max_points: at most this many points (seeded subsample) are embedded and drawn.
        seed: seed of the subsample and of t-SNE.
        perplexity: t-SNE perplexity (clipped for small ``N``).
        title: suptitle.
        source_domains: names shown with ``(source)`` in the legend; the others with ``(target)``.
        coords: precomputed ``N×2`` coordinates (skips t-SNE; no subsampling is applied then).

    Returns:
        The figure.
    """
    labels = np.asarray(labels).reshape(-1)
    domains = np.asarray(domains).reshape(-1)
    if coords is None:
        keep = subsample(len(labels), max_points, seed)
        xy = tsne_2d(np.asarray(embeddings)[keep], seed=seed, perplexity=perplexity)
        labels, domains = labels[keep], domains[keep]
    else:
        xy = np.asarray(coords)
    fig = Figure(figsize=(12.5, 5.4), layout="constrained")
    ax_c, ax_d = fig.subplots(1, 2)
    ccol = class_colors(len(classes))
    for k, name in enumerate(classes):
        m = labels == k
        if m.any():
            ax_c.scatter(
                xy[m, 0],
                xy[m, 1],
                s=6,
                alpha=0.7,
                color=ccol[k],
                label=f"{name} ({int(m.sum())})",
                linewidths=0,
            )
    unknown = (labels < 0) | (labels >= len(classes))
    if unknown.any():
        ax_c.scatter(
            xy[unknown, 0],
            xy[unknown, 1],
            s=6,
            alpha=0.5,
            color=_GREY_NOT_EVALUATED,
            label=f"unknown ({int(unknown.sum())})",
            linewidths=0,
        )
    dcol = domain_colors(len(domain_names))
    for d, name in enumerate(domain_names):
        m = domains == d
        if m.any():
            role = " (source)" if name in source_domains else " (target)" if source_domains else ""
            ax_d.scatter(
                xy[m, 0],
                xy[m, 1],
                s=6,
                alpha=0.6,
                color=dcol[d],
                label=f"{name}{role} ({int(m.sum())})",
                linewidths=0,
            )
    for ax, what in ((ax_c, "class"), (ax_d, "domain")):
        ax.set_title(f"coloured by {what}")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
        leg = ax.legend(
            title=f"{what} (points)",
            fontsize=8,
            markerscale=2.5,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
        )
        for h in leg.legend_handles:
            if h is not None:
                h.set_alpha(1.0)
    fig.suptitle(f"{title}\n{len(xy)} points, seed {seed}")
    return fig


# ---------------------------------------------------------------------------------------------- maps
def label_map_from_predictions(
    shape: tuple[int, int], rows: np.ndarray, cols: np.ndarray, values: np.ndarray, fill: int = NOT_EVALUATED
) -> np.ndarray:
    """An ``H×W`` int map holding ``values`` at ``(rows, cols)`` and ``fill`` elsewhere."""
    out = np.full(shape, fill, dtype=np.int64)
    out[np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)] = np.asarray(
        values, dtype=np.int64
    )
    return out


def _stride_for(shape: tuple[int, int], max_pixels: int | None) -> int:
    if not max_pixels or shape[0] * shape[1] <= max_pixels:
        return 1
    return math.ceil(math.sqrt(shape[0] * shape[1] / max_pixels))


def plot_classification_map(
    prediction: np.ndarray,
    truth: np.ndarray,
    classes: Sequence[str],
    domain: str | None = None,
    *,
    show_errors: bool = True,
    max_pixels: int | None = 4_000_000,
) -> Figure:
    """Ground truth and predicted label map of a whole scene side by side (plus, optionally, an error map).

    Both maps use the class colours of :func:`class_colors`; pixels without ground truth are light grey and
    labelled pixels that were not evaluated (class outside the class set, or not among the tested pixels) dark
    grey, so a reader never mistakes "no prediction" for a class. The error map shows correct pixels pale
    green and wrong ones black (colours no class uses), which makes spatially structured errors (a whole
    building confused with road, edges of fields) visible where the per-class table only gives a number.

    Args:
        prediction: ``H×W`` predicted class indices; :data:`NOT_EVALUATED` / :data:`UNLABELLED` where none.
        truth: ``H×W`` true class indices; :data:`UNLABELLED` for unlabelled pixels, :data:`NOT_EVALUATED` for
            labelled pixels whose class is not in the class set.
        classes: class names.
        domain: domain name for the title.
        show_errors: add a third panel with correct / wrong pixels.
        max_pixels: larger scenes are drawn with a pixel stride so at most this many pixels are drawn.

    Returns:
        The figure.
    """
    prediction = np.asarray(prediction)
    truth = np.asarray(truth)
    if prediction.shape != truth.shape or prediction.ndim != 2:
        raise ValueError(f"prediction {prediction.shape} and truth {truth.shape} must be the same H×W")
    s = _stride_for(truth.shape, max_pixels)
    pred_s, truth_s = prediction[::s, ::s], truth[::s, ::s]
    k = len(classes)
    ccol = class_colors(k)
    cmap = ListedColormap(
        [to_rgb(_GREY_NOT_EVALUATED), to_rgb(_GREY_UNLABELLED), *ccol]
    )  # values -2, -1, 0..k-1

    def canonical(m: np.ndarray) -> np.ndarray:
        # anything that is not a class is "unlabelled" where the truth has no label, else "not evaluated"
        return np.where((m >= 0) & (m < k), m, np.where(truth_s == UNLABELLED, UNLABELLED, NOT_EVALUATED))

    truth_c, pred_c = canonical(truth_s), canonical(pred_s)
    evaluated = (pred_c >= 0) & (truth_c >= 0)
    correct = evaluated & (pred_c == truth_c)
    n_eval = int(evaluated.sum())
    oa = correct.sum() / n_eval if n_eval else float("nan")

    h, w = truth_s.shape
    panels = 3 if show_errors else 2
    vertical = w > 1.6 * h  # wide scenes (Trento 166×600) are stacked, tall ones side by side
    if vertical:
        fig = Figure(figsize=(12.0, panels * 12.0 * h / w + 2.2), layout="constrained")
        axes = list(fig.subplots(panels, 1))
    else:
        fig = Figure(figsize=(min(18.0, panels * 5.0 * w / h + 1.0), 6.4), layout="constrained")
        axes = list(fig.subplots(1, panels))
    for ax, m in ((axes[0], truth_c), (axes[1], pred_c)):
        ax.imshow(m + 2, cmap=cmap, vmin=0, vmax=k + 1, interpolation="nearest")
    axes[0].set_title(f"ground truth ({int((truth_c >= 0).sum())} labelled pixels in the class set)")
    axes[1].set_title(f"prediction ({int((pred_c >= 0).sum())} tested pixels)")
    if show_errors:
        err = np.empty((h, w, 3))
        err[:] = to_rgb(_GREY_UNLABELLED)
        err[truth_c == NOT_EVALUATED] = to_rgb(_GREY_NOT_EVALUATED)
        err[(truth_c >= 0) & ~evaluated] = to_rgb(_GREY_NOT_EVALUATED)
        err[evaluated & ~correct] = to_rgb(_WRONG)
        err[correct] = to_rgb(_CORRECT)
        axes[2].imshow(err, interpolation="nearest")
        axes[2].set_title(f"errors (OA {_pct(oa)} on {n_eval} pixels)")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])

    def patch(colour: str | tuple[float, float, float], label: str) -> Patch:
        return Patch(facecolor=colour, edgecolor="black", linewidth=0.3, label=label)

    handles = [patch(ccol[i], c) for i, c in enumerate(classes)]
    handles.append(patch(_GREY_UNLABELLED, "unlabelled"))
    if (truth_c == NOT_EVALUATED).any() or (pred_c == NOT_EVALUATED).any():
        handles.append(
            patch(_GREY_NOT_EVALUATED, "labelled, not evaluated (class outside the class set, or not tested)")
        )
    if show_errors:
        handles += [patch(_CORRECT, "correct"), patch(_WRONG, "wrong")]
    fig.legend(
        handles=handles, loc="outside lower center", ncol=min(len(handles), 8), fontsize=8, frameon=False
    )
    where = f" — {domain}" if domain else ""
    stride = f", drawn every {s} pixels" if s > 1 else ""
    fig.suptitle(f"Classification map{where} ({truth.shape[0]}×{truth.shape[1]} pixels{stride})")
    return fig


# ---------------------------------------------------------------------------------------------- report
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


# ---------------------------------------------------------------------------------------------- attention
def display_image(image: np.ndarray, low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """``C×H×W`` (normalised) image → ``H×W×3`` in [0, 1] for display, by a per-image percentile stretch.

    The stretch undoes any normalisation without knowing its statistics (a figure must not depend on them);
    one or two channels are shown as grey, more than three as the first three.

    Args:
        image: ``C×H×W`` array.
        low: lower percentile mapped to 0.
        high: upper percentile mapped to 1.

    Returns:
        ``H×W×3`` float array.
    """
    x = np.asarray(image, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"expected a C×H×W image, got shape {x.shape}")
    x = x[:3] if x.shape[0] >= 3 else np.repeat(x[:1], 3, axis=0)
    lo, hi = np.nanpercentile(x, low), np.nanpercentile(x, high)
    x = np.clip((x - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    return np.nan_to_num(x).transpose(1, 2, 0)


def plot_attention_maps(
    images: Sequence[np.ndarray],
    maps: Sequence[np.ndarray],
    captions: Sequence[str],
    titles: Sequence[str],
    *,
    suptitle: str = "Caption→image attention",
    columns: int = 4,
    caption_chars: int = 160,
) -> Figure:
    """Text→image-patch attention drawn over each image, with the caption underneath.

    Each sample gets two panels: the image, and the image with the attention its caption's tokens pay to each
    image patch (heat overlay, bilinear-upsampled from the patch grid, min-max scaled per image so the
    pattern is visible whatever the entropy). Which regions a caption looks at is what the paper's attention
    figures show; the caption is printed (wrapped and shortened) so a reader can judge whether the attended
    regions match the words.

    Args:
        images: ``H×W×3`` images in [0, 1] (see :func:`display_image`).
        maps: ``gh×gw`` attention over the image patch grid, one per image (prefix tokens removed).
        captions: the caption each model read (after any leakage transform).
        titles: one line per sample (e.g. ``"true Beach / pred Beach"``).
        suptitle: figure title.
        columns: samples per row.
        caption_chars: captions are shortened to this many characters.

    Returns:
        The figure.
    """
    import textwrap

    n = len(images)
    if not (len(maps) == len(captions) == len(titles) == n) or n == 0:
        raise ValueError(
            f"need the same non-zero number of images ({n}), maps ({len(maps)}), captions ({len(captions)}) "
            f"and titles ({len(titles)})"
        )
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.0 * cols, 6.4 * rows), layout="constrained")
    grid = fig.add_gridspec(2 * rows, cols)
    for i, (img, amap, cap, title) in enumerate(zip(images, maps, captions, titles, strict=True)):
        r, c = divmod(i, cols)
        h, w = img.shape[:2]
        a = np.asarray(amap, dtype=np.float64)
        a = (a - a.min()) / max(a.max() - a.min(), 1e-12)
        ax = fig.add_subplot(grid[2 * r, c])
        ax.imshow(img)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
        ax = fig.add_subplot(grid[2 * r + 1, c])
        ax.imshow(img)
        # extent maps the patch grid onto the image; bilinear interpolation smooths patch borders
        ax.imshow(a, cmap="jet", alpha=0.45, extent=(-0.5, w - 0.5, h - 0.5, -0.5), interpolation="bilinear")
        ax.set_axis_off()
        short = cap if len(cap) <= caption_chars else cap[: caption_chars - 1] + "…"
        ax.text(
            0.0,
            -0.03,
            "\n".join(textwrap.wrap(short, 38)),
            transform=ax.transAxes,
            va="top",
            ha="left",
            fontsize=7,
        )
    fig.suptitle(suptitle)
    return fig
