"""Classification maps of a whole scene: ground truth, prediction and errors, drawn on the scene's grid."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.colors import ListedColormap, to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from rsmg.plotting.style import (
    _CORRECT,
    _GREY_NOT_EVALUATED,
    _GREY_UNLABELLED,
    _WRONG,
    NOT_EVALUATED,
    UNLABELLED,
    _pct,
    class_colors,
)

__all__ = ["label_map_from_predictions", "plot_classification_map"]


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
