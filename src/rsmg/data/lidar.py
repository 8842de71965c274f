"""LiDAR height above ground, so that rasters from different surveys are comparable.

Two scenes' LiDAR rasters differ for reasons that have nothing to do with land cover: one survey delivers a
*normalised* DSM (height above ground; Trento: ground ≈ 0 m) and another an absolute elevation (MUUFL: ground
≈ 3–6 m above the datum). A classifier trained on one survey then reads the other's ground as "low
vegetation". :func:`ndsm` is the standard, label-free fix: DSM minus a digital terrain model estimated by
morphological opening (grey erosion then dilation with a square window larger than any object) followed by
smoothing. It is only for absolute DSMs: on a raster that is already height above ground it removes part of
every object wider than the window (Trento's Woods: median 10.7 m → 6.5 m), so the data module applies it only
to scenes whose catalog entry says ``height: absolute``. The intensity band is handled by
:mod:`rsmg.data.standardize`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def ndsm(dsm: np.ndarray, window: int = 41, smooth: int = 15) -> np.ndarray:
    """Height above ground from a DSM (``H×W``), clipped at 0.

    Args:
        dsm: surface elevation in metres.
        window: side (px) of the opening window; larger than the widest object (building) in pixels.
        smooth: side of the uniform filter applied to the terrain estimate.
    """
    dtm = ndimage.grey_opening(dsm, size=(window, window), mode="nearest")
    if smooth > 1:
        dtm = ndimage.uniform_filter(dtm, size=smooth, mode="nearest")
    return np.maximum(dsm - dtm, 0.0).astype(np.float32)


def ndsm_halo(window: int = 41, smooth: int = 15) -> int:
    """Rows (and columns) around a pixel that its :func:`ndsm` value depends on.

    Erosion and dilation reach ``window // 2`` each, the smoothing ``smooth // 2`` more: a strip of rows read
    with this many extra rows on both sides (fewer at the scene's edges, where ``mode="nearest"`` repeats the
    edge row as it does for the whole raster) gives the whole raster's values on its own rows, up to float32
    rounding: the smoothing's running sum starts at the strip's first row (docs/decisions.md#windowed-prediction).
    """
    return 2 * (window // 2) + (smooth // 2 if smooth > 1 else 0)
