"""Caption→image attention figures: each image, its attention overlay and the caption it read."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

__all__ = ["display_image", "plot_attention_maps"]


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
