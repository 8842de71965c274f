"""The modality / band registry used everywhere in rsmg.

Every raster rsmg reads belongs to a *sensor* (e.g. ``aisa_trento``, ``lidar_trento``, ``s2``), and every
sensor has a list of named bands with a centre wavelength (``None`` for SAR and LiDAR) and a nodata value.
Bands are chosen by name; an unknown name is an error listing the valid ones. Spectral resampling between
HSI sensors with different band counts (Trento 63, MUUFL 64, Houston 144) uses the wavelengths here.

Wavelength tables of the airborne HSI sensors are *nominal*: the benchmark ``.mat`` files carry no wavelength
list, so each sensor's range as published is sampled uniformly (documented per sensor). Replace them with the
calibrated centres if you have the sensor's header file: :func:`register_sensor` accepts any table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsmg.errors import unknown_name_error

MODALITIES: tuple[str, ...] = ("hsi", "msi", "rgb", "sar", "lidar")


@dataclass(frozen=True)
class Band:
    """One band of a sensor.

    Attributes:
        name: unique within its sensor (``"B04"``, ``"VV"``, ``"dsm"``, ``"b017"``).
        wavelength_nm: centre wavelength, or ``None`` for non-optical bands.
        nodata: value that marks missing data in the raw file, or ``None``.
    """

    name: str
    wavelength_nm: float | None = None
    nodata: float | None = None


@dataclass(frozen=True)
class Sensor:
    """A sensor: its modality and ordered bands.

    Attributes:
        name: registry key.
        modality: one of :data:`MODALITIES`.
        bands: bands in file order.
        description: one line for humans.
    """

    name: str
    modality: str
    bands: tuple[Band, ...]
    description: str = ""

    @property
    def band_names(self) -> tuple[str, ...]:
        """Band names in file order."""
        return tuple(b.name for b in self.bands)

    @property
    def wavelengths(self) -> np.ndarray:
        """Centre wavelengths in nm (NaN where a band has none)."""
        return np.array([np.nan if b.wavelength_nm is None else b.wavelength_nm for b in self.bands])

    def band_indices(self, names: list[str] | tuple[str, ...] | None, *, field: str = "bands") -> list[int]:
        """Indices of the named bands (all bands if ``names`` is None).

        Raises:
            ConfigError: a name is not a band of this sensor; the message lists the valid names.
        """
        if names is None:
            return list(range(len(self.bands)))
        lookup = {n: i for i, n in enumerate(self.band_names)}
        out = []
        for n in names:
            if n not in lookup:
                raise unknown_name_error(f"band of sensor {self.name!r}", n, self.band_names, field=field)
            out.append(lookup[n])
        return out


_SENSORS: dict[str, Sensor] = {}


def register_sensor(sensor: Sensor) -> Sensor:
    """Add (or replace) a sensor in the registry and return it."""
    if sensor.modality not in MODALITIES:
        raise unknown_name_error(
            "modality", sensor.modality, MODALITIES, field=f"sensor {sensor.name}.modality"
        )
    _SENSORS[sensor.name] = sensor
    return sensor


def get_sensor(name: str) -> Sensor:
    """Look a sensor up by name.

    Raises:
        ConfigError: unknown sensor; the message lists the registered ones.
    """
    if name not in _SENSORS:
        raise unknown_name_error("sensor", name, list(_SENSORS), field="sensor")
    return _SENSORS[name]


def list_sensors() -> list[str]:
    """Names of all registered sensors."""
    return sorted(_SENSORS)


def _uniform_hsi(name: str, n: int, lo: float, hi: float, description: str) -> Sensor:
    wl = np.linspace(lo, hi, n)
    bands = tuple(Band(f"b{i + 1:03d}", float(round(w, 2))) for i, w in enumerate(wl))
    return Sensor(name, "hsi", bands, description)


def _plain(
    name: str, modality: str, names: list[str], description: str, nodata: float | None = None
) -> Sensor:
    return Sensor(name, modality, tuple(Band(n, None, nodata) for n in names), description)


def _aviris_salinas() -> Sensor:
    # AVIRIS: 224 channels over ~400-2500 nm; the "corrected" Salinas cube drops the 20 water-absorption
    # bands [108-112], [154-167] and 224 (1-based), leaving 204.
    wl = np.linspace(400.0, 2500.0, 224)
    dropped = set(range(107, 112)) | set(range(153, 167)) | {223}
    bands = tuple(Band(f"b{i + 1:03d}", float(round(w, 2))) for i, w in enumerate(wl) if i not in dropped)
    return Sensor("aviris_salinas", "hsi", bands, "AVIRIS (Salinas, corrected: 204 of 224 bands)")


def _casi_muufl64() -> Sensor:
    # MUUFL CASI-1500: 72 bands 367.7-1043 nm (wavelengths shipped with the MUUFL toolkit crops); the
    # benchmark cube drops the 4 noisiest bands at each end, leaving 64 (bands 5..68).
    wl = np.linspace(367.7, 1043.0, 72)[4:68]
    bands = tuple(Band(f"b{i + 5:03d}", float(round(w, 2))) for i, w in enumerate(wl))
    return Sensor("casi_muufl", "hsi", bands, "CASI-1500 (MUUFL Gulfport, 64 of 72 bands)")


_S2 = [
    ("B01", 443),
    ("B02", 490),
    ("B03", 560),
    ("B04", 665),
    ("B05", 705),
    ("B06", 740),
    ("B07", 783),
    ("B08", 842),
    ("B8A", 865),
    ("B09", 945),
    ("B11", 1610),
    ("B12", 2190),
]

for _s in (
    _uniform_hsi("aisa_trento", 63, 402.89, 989.09, "AISA Eagle (Trento), 63 bands 402.89-989.09 nm"),
    _casi_muufl64(),
    _uniform_hsi("casi_muufl72", 72, 367.7, 1043.0, "CASI-1500 (MUUFL toolkit crops, all 72 bands)"),
    _uniform_hsi("casi_houston", 144, 380.0, 1050.0, "CASI-1500 (Houston 2013), 144 bands 380-1050 nm"),
    _uniform_hsi("hyspex_augsburg", 180, 400.0, 2500.0, "HySpex (Augsburg), 180 bands 0.4-2.5 um"),
    _uniform_hsi("rosis_pavia", 103, 430.0, 860.0, "ROSIS (Pavia University), 103 bands 430-860 nm"),
    _aviris_salinas(),
    _plain("lidar_dsm", "lidar", ["dsm"], "LiDAR digital surface model (one raster)"),
    _plain("lidar_dsm_intensity", "lidar", ["dsm", "intensity"], "LiDAR: surface height + return intensity"),
    _plain(
        "lidar_houston_features",
        "lidar",
        [f"f{i:02d}" for i in range(1, 22)],
        "21 LiDAR-derived features per pixel (MDL-RS Houston 2013 release)",
    ),
    _plain("s1", "sar", ["VV", "VH"], "Sentinel-1 GRD backscatter in dB"),
    _plain(
        "augsburg_sar", "sar", ["VV", "VH", "C12_real", "C12_imag"], "Sentinel-1 dual-pol features (Augsburg)"
    ),
    Sensor(
        "s2", "msi", tuple(Band(n, float(w), 0.0) for n, w in _S2), "Sentinel-2 L2A, 12 bands (B10 absent)"
    ),
    Sensor("rgb", "rgb", (Band("red", 665.0), Band("green", 560.0), Band("blue", 490.0)), "8-bit RGB"),
):
    register_sensor(_s)
