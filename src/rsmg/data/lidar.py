"""LiDAR preprocessing that makes rasters from different surveys comparable.

Two scenes' LiDAR rasters differ for reasons that have nothing to do with land cover: one survey delivers a
*normalised* DSM (height above ground; Trento: ground ≈ 0 m) and another an absolute elevation (MUUFL: ground
≈ 3–6 m above the datum), and return intensity is in uncalibrated, sensor-specific units. A classifier
trained on one survey then reads the other's ground as "low vegetation". Two standard, label-free fixes:

* :func:`ndsm` — height above ground: DSM minus a digital terrain model estimated by morphological opening
  (grey erosion then dilation with a square window larger than any object) followed by smoothing. Objects
  narrower than the window are removed from the terrain estimate.
* :func:`scene_standardize` — z-score a band with the scene's own statistics (uncalibrated intensity).

Both use only the raster itself (never labels) and are applied identically to source and target scenes.
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


def scene_standardize(band: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Z-score a band with its own scene-wide robust statistics (median, scaled IQR)."""
    med = float(np.median(band))
    q75, q25 = np.percentile(band, [75, 25])
    scale = max(float(q75 - q25) / 1.349, eps)
    return ((band - med) / scale).astype(np.float32)
