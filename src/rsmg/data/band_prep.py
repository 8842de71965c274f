"""What the data module does to a scene's rasters before cutting patches, as one picklable step.

Per modality a band selection by name or the spectral resampling of an HSI cube onto the common grid, then
the nDSM (height above ground) of named LiDAR bands. :class:`BandPrep` is applied to a whole scene read into
memory and, strip by strip, to a scene predicted in windows (:mod:`rsmg.data.strip_dataset`): one code path,
so both give the same float32 values (the nDSM up to rounding, :func:`~rsmg.data.lidar.ndsm_halo`). Band
selection and resampling work pixel by pixel; the nDSM looks :attr:`BandPrep.halo` rows around each pixel,
which a strip therefore reads on both sides.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rsmg.data.bands import get_sensor
from rsmg.data.catalog import datasets_files
from rsmg.data.lidar import ndsm, ndsm_halo
from rsmg.data.spectral import SpectralMode, resample_cube
from rsmg.errors import ConfigError, DataError

__all__ = ["BandPrep", "plan_band_prep"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BandPrep:
    """Band selection / spectral resampling per modality, then nDSM of LiDAR bands (in that order).

    Attributes:
        select: modality → band indices to keep, in order.
        resample: modality → (source wavelengths nm, grid wavelengths nm, mode) of
            :func:`rsmg.data.spectral.resample_cube`.
        ndsm_bands: indices (after selection) of the LiDAR bands made height above ground, in order.
        ndsm_window: the opening window of :func:`rsmg.data.lidar.ndsm`.
    """

    select: dict[str, tuple[int, ...]] = field(default_factory=dict)
    resample: dict[str, tuple[np.ndarray, np.ndarray, SpectralMode]] = field(default_factory=dict)
    ndsm_bands: tuple[int, ...] = ()
    ndsm_window: int = 41

    @property
    def halo(self) -> int:
        """Rows above and below a strip that its prepared values depend on (0 without nDSM)."""
        return ndsm_halo(self.ndsm_window) if self.ndsm_bands else 0

    def __call__(self, arrays: dict[str, np.ndarray]) -> None:
        """Prepare ``arrays`` (modality → ``C×H×W`` float32) in place: entries are replaced or edited."""
        for mod, idx in self.select.items():
            arrays[mod] = arrays[mod][list(idx)]
        for mod, (src_nm, dst_nm, mode) in self.resample.items():
            arrays[mod] = resample_cube(arrays[mod], src_nm, dst_nm, mode)
        for i in self.ndsm_bands:
            arrays["lidar"][i] = ndsm(arrays["lidar"][i], self.ndsm_window)


def plan_band_prep(
    name: str,
    sensors: Mapping[str, str],
    modalities: Sequence[str],
    *,
    bands: Mapping[str, Sequence[str]],
    band_names: Mapping[str, tuple[str, ...]],
    hsi_grid: np.ndarray | None,
    spectral_grid: SpectralMode,
    ndsm_bands: Sequence[str],
    ndsm_window: int,
    height: str | None,
) -> BandPrep:
    """The :class:`BandPrep` of scene ``name`` under the data module's options.

    ``bands`` / ``hsi_grid`` / ``ndsm_bands`` are ``data.bands``, the common HSI grid and ``data.ndsm_bands``;
    ``height`` is the catalog's ``height`` of the scene's LiDAR raster.

    Raises:
        ConfigError: an nDSM band that is not a loaded LiDAR band.
        DataError: nDSM bands asked for a scene whose catalog entry does not say what its height raster holds.
    """
    select, resample = {}, {}
    for mod in modalities:
        sensor = get_sensor(sensors[mod])
        if mod in bands:
            select[mod] = tuple(sensor.band_indices(list(bands[mod]), field=f"data.bands.{mod}"))
        elif mod == "hsi" and hsi_grid is not None:
            resample[mod] = (sensor.wavelengths, hsi_grid, spectral_grid)
    converted = []
    for band in ndsm_bands:
        if "lidar" not in band_names or band not in band_names["lidar"]:
            raise ConfigError(
                "ndsm band not among the loaded LiDAR bands",
                field="data.ndsm_bands",
                expected=list(band_names.get("lidar", ())),
                found=band,
                fix="name a loaded LiDAR band",
            )
        if height is None:
            raise DataError(
                f"the catalog does not say what {name!r}'s LiDAR height raster holds",
                file=datasets_files(),
                field=f"{name}.modalities.lidar.height",
                expected="absolute or above_ground",
                found="no height field",
                fix="add height: absolute (surface elevation) or height: above_ground (normalised DSM)",
            )
        if height == "above_ground":
            log.warning(
                "%s: LiDAR band %r is already height above ground (catalog), so data.ndsm_bands leaves it as it "
                "is", name, band,
            )  # fmt: skip
            continue
        converted.append(band_names["lidar"].index(band))
    return BandPrep(select, resample, tuple(converted), ndsm_window)
