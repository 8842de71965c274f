"""What every figure shares: class and domain colours, the map values of "no label", % text, atomic saving.

One colour per class, the same in every figure of a run, and greys only for pixels without a label or not
evaluated, so maps, bars and t-SNE plots can be read side by side.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from rsmg.io import atomic_write_bytes

__all__ = ["NOT_EVALUATED", "UNLABELLED", "class_colors", "domain_colors", "save_figure"]

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
