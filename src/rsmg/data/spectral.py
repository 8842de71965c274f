"""Reconcile hyperspectral cubes with different band counts onto one wavelength grid.

Cross-scene HSI generalisation needs one input layout: Trento has 63 bands, MUUFL 64, Houston 2013 144, and the
wavelength ranges differ. Two readings are offered (papers.md, "HSI band mismatch"):

* ``"interpolate"`` (default): linear interpolation in wavelength onto a grid inside the overlap of every
  sensor's range; keeps the spectral shape, which is what transfers across sensors.
* ``"common"``: for each grid wavelength take each sensor's nearest band; no mixing of bands, but sensors whose
  nearest band is far away contribute a different wavelength.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from rsmg.data.bands import Sensor
from rsmg.errors import ConfigError

SpectralMode = Literal["interpolate", "common"]


def common_grid(sensors: list[Sensor], num_bands: int | None = None) -> np.ndarray:
    """A uniform wavelength grid inside the overlap of the sensors' ranges.

    Args:
        sensors: the HSI sensors to reconcile.
        num_bands: grid size; default the smallest band count among the sensors restricted to the overlap.

    Raises:
        ConfigError: the sensors' ranges do not overlap.
    """
    lo = max(float(np.nanmin(s.wavelengths)) for s in sensors)
    hi = min(float(np.nanmax(s.wavelengths)) for s in sensors)
    if not hi > lo:
        raise ConfigError(
            "the HSI sensors have no common wavelength range",
            field="data.spectral_grid",
            expected="overlapping ranges",
            found={
                s.name: (float(np.nanmin(s.wavelengths)), float(np.nanmax(s.wavelengths))) for s in sensors
            },
            fix="use sensors that overlap or choose bands by name",
        )
    if num_bands is None:
        num_bands = min(int(np.sum((s.wavelengths >= lo) & (s.wavelengths <= hi))) for s in sensors)
    return np.linspace(lo, hi, max(num_bands, 1))


def resampling_matrix(
    src_nm: np.ndarray, dst_nm: np.ndarray, mode: SpectralMode = "interpolate"
) -> np.ndarray:
    """Matrix ``W`` (dst × src) such that ``W @ spectrum`` resamples one spectrum (at most two taps per row)."""
    src = np.asarray(src_nm, dtype=np.float64)
    dst = np.asarray(dst_nm, dtype=np.float64)
    w = np.zeros((len(dst), len(src)), dtype=np.float32)
    order = np.argsort(src)
    s_sorted = src[order]
    for i, x in enumerate(dst):
        if mode == "common":
            w[i, order[int(np.argmin(np.abs(s_sorted - x)))]] = 1.0
            continue
        j = int(np.clip(np.searchsorted(s_sorted, x), 1, len(s_sorted) - 1))
        x0, x1 = s_sorted[j - 1], s_sorted[j]
        t = 0.0 if x1 == x0 else float(np.clip((x - x0) / (x1 - x0), 0.0, 1.0))
        w[i, order[j - 1]] += 1.0 - t
        w[i, order[j]] += t
    return w


def resample_cube(
    cube: np.ndarray, src_nm: np.ndarray, dst_nm: np.ndarray, mode: SpectralMode = "interpolate"
) -> np.ndarray:
    """Resample a ``C×H×W`` cube to ``len(dst_nm)×H×W``: each output band is ``w0·band_a (+ w1·band_b)``.

    Why element-wise taps rather than one ``W @ cube`` matmul: BLAS sums a product in an order that depends on
    the matrix width, so a cube resampled strip by strip (a scene predicted in windows,
    :mod:`rsmg.data.strip_dataset`) differed from the whole cube in the last bit; the taps give the same float32
    values for any slice of pixels, and ``W`` has at most two non-zeros per row.
    """
    w = resampling_matrix(src_nm, dst_nm, mode)
    cube = np.asarray(cube, dtype=np.float32)
    out = np.empty((len(dst_nm), *cube.shape[1:]), dtype=np.float32)
    for i, row in enumerate(w):
        taps = np.flatnonzero(row)
        out[i] = row[taps[0]] * cube[taps[0]]
        for j in taps[1:]:
            out[i] += row[j] * cube[j]
    return out
