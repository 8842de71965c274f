"""Embedding figures: seeded t-SNE of features, coloured by class and by domain."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from rsmg.plotting.style import _GREY_NOT_EVALUATED, class_colors, domain_colors

__all__ = ["plot_tsne", "subsample", "tsne_2d"]


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
