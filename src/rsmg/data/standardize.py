"""Robust standardisation of uncalibrated bands (LiDAR intensity), and which statistics it may use.

Two surveys' return intensities are in sensor-specific, uncalibrated units (Trento: median 77, IQR 15; MUUFL:
median 99, IQR 93). A band listed in ``data.standardize`` is z-scored robustly — median and IQR / 1.349, the
standard deviation of a normal distribution with that IQR, so a few very bright returns do not set the scale —
with statistics from one of three places (``data.standardize_stats``):

* ``source`` — fitted once on every pixel of the *source* scenes' rasters (label-free) and applied unchanged to
  every scene, the unseen targets included. Inductive. These replace the band's mean / std normalisation.
* ``per_patch`` — each sample's patch is z-scored with its own median and IQR (:func:`patch_standardize`).
  Inductive: a test pixel's input depends only on its own neighbourhood, never on other test pixels.
* ``per_scene`` — each scene with its *own* statistics (:func:`scene_standardize`). For a target scene that is
  not also a source this fits the preprocessing on the unseen test data: the run is **transductive**, and
  :func:`protocol` says so in ``metrics.json``, ``results.md`` and ``rsmg report``.

The rule behind the labels: a run is inductive when the input of a test pixel depends only on a bounded
neighbourhood of that pixel (a patch, the nDSM's terrain window) and on constants fitted on the sources; a
statistic over a whole target scene makes it transductive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

StandardizeStats = Literal["source", "per_patch", "per_scene"]
Protocol = Literal["inductive", "transductive"]
# The default of data.standardize_stats, chosen over per_patch on Trento *validation* OA only, never on a target:
# 6 of 6 paired runs (docs/decisions.md#intensity-standardisation).
DEFAULT_STATS: StandardizeStats = "source"
IQR_TO_STD = 1.349  # IQR of a standard normal distribution
PATCH_SCALE_FLOOR = (
    1e-2  # per-patch scale floor, in units of the band's source std (a flat patch stays finite)
)


def robust_stats(values: np.ndarray, eps: float = 1e-6) -> tuple[float, float]:
    """Median and IQR / 1.349 of ``values`` (any shape), the scale floored at ``eps``."""
    q25, med, q75 = np.percentile(values, [25, 50, 75])
    return float(med), max(float(q75 - q25) / IQR_TO_STD, eps)


def scene_standardize(band: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Z-score a band with its own scene-wide robust statistics (``per_scene``: transductive on a target)."""
    med, scale = robust_stats(band, eps)
    return ((band - med) / scale).astype(np.float32)


def patch_standardize(patches: torch.Tensor, floor: float = PATCH_SCALE_FLOOR) -> torch.Tensor:
    """Z-score each ``p×p`` patch of a ``B×p×p`` batch with its own median and IQR / 1.349 (``per_patch``).

    The scale is floored at ``floor`` (in the units of ``patches``) so that a flat patch maps to zeros rather
    than to noise divided by ~0.
    """
    import torch

    flat = patches.reshape(patches.shape[0], -1)
    q = torch.quantile(flat, torch.tensor([0.25, 0.5, 0.75], dtype=flat.dtype), dim=1)
    scale = ((q[2] - q[0]) / IQR_TO_STD).clamp_min(floor)
    return (patches - q[1].view(-1, 1, 1)) / scale.view(-1, 1, 1)


def protocol(
    standardize: dict[str, list[str]], stats: StandardizeStats, sources: list[str], targets: list[str]
) -> tuple[Protocol, str]:
    """``(protocol, why)`` of a cross-domain run's preprocessing.

    Per-scene statistics make a run transductive only when a target is not also a source: in-scene, the scene's
    raster is the training scene's own (its pixels already fill the training patches).
    """
    unseen = [t for t in targets if t not in sources]
    bands = {m: b for m, b in standardize.items() if b}
    if bands and stats == "per_scene" and unseen:
        return "transductive", (
            f"the unseen target(s) {', '.join(unseen)} are standardised with their own scene statistics "
            f"({bands}; data.standardize_stats: per_scene)"
        )
    if bands:
        where = {"source": "source-scene statistics", "per_patch": "each patch's own statistics"}.get(
            stats, "per-scene statistics of source scenes only"
        )
        return "inductive", f"{bands} standardised with {where}; no statistic of a target scene is used"
    return "inductive", "no statistic of a target scene is used"
