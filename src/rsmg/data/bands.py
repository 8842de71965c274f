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

from rsmg.errors import DataError, unknown_name_error

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

    def check_wavelengths(self, found_nm: np.ndarray, *, file: object, field: str) -> None:
        """A file's band centres (an ENVI header's) must be this sensor's, within half its median band spacing.

        Why: spectral resampling and band names use the sensor's wavelengths; a file of another sensor with the
        same band count would otherwise be read as this one. Sensors without wavelengths (LiDAR, SAR) and band
        counts that differ (reported by the caller) are not checked here.

        Raises:
            DataError: a band centre further off, naming the file, the header field and the fix.
        """
        ours = self.wavelengths
        if not np.isfinite(ours).all() or len(ours) != len(found_nm):
            return
        tolerance = 0.5 * float(np.median(np.abs(np.diff(ours)))) if len(ours) > 1 else 1.0
        off = np.abs(np.asarray(found_nm, dtype=float) - ours)
        if off.max() > tolerance:
            i = int(off.argmax())
            raise DataError(
                f"the file's band centres are not those of sensor {self.name!r} (catalog {field})",
                file=str(file),
                field="wavelength",
                expected=f"{self.name}'s centres within {tolerance:.1f} nm, e.g. band {i + 1}: {ours[i]:.1f} nm",
                found=f"band {i + 1}: {found_nm[i]:.1f} nm ({int((off > tolerance).sum())} bands off)",
                fix="name the sensor the file comes from in the catalog, or register one with these centres "
                "(rsmg.data.bands.register_sensor)",
            )

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


# AVIRIS band centres (nm) of the 200 bands of the corrected Indian Pines cube, in file order, as listed by
# tensorly 0.10.0's ``load_indian_pines`` (shared/data/indian_pines/wavelengths.json). Calibrated, not nominal:
# the spectrometers overlap, so band 32 (686.91 nm) lies below band 31 (696.5 nm).
_INDIAN_PINES_NM = (
    400.02,
    409.82,
    419.62,
    429.43,
    439.25,
    449.07,
    458.9,
    468.73,
    478.57,
    488.41,
    498.26,
    508.12,
    517.98,
    527.85,
    537.72,
    547.6,
    557.49,
    567.38,
    577.28,
    587.18,
    597.09,
    607.01,
    616.93,
    626.85,
    636.78,
    646.72,
    656.67,
    666.61,
    676.57,
    686.53,
    696.5,
    686.91,
    696.55,
    706.19,
    715.83,
    725.47,
    735.11,
    744.74,
    754.38,
    764.01,
    773.64,
    783.27,
    792.91,
    802.53,
    812.21,
    821.79,
    831.41,
    841.04,
    850.66,
    860.28,
    869.91,
    879.53,
    889.14,
    898.76,
    908.38,
    917.99,
    927.61,
    937.22,
    946.83,
    956.45,
    966.06,
    975.66,
    985.27,
    994.88,
    1004.48,
    1014.09,
    1023.69,
    1033.29,
    1042.89,
    1052.49,
    1062.09,
    1071.69,
    1081.29,
    1090.88,
    1100.48,
    1110.07,
    1119.66,
    1129.25,
    1138.84,
    1148.43,
    1158.02,
    1167.61,
    1177.19,
    1186.77,
    1196.36,
    1205.94,
    1215.52,
    1225.1,
    1234.68,
    1244.26,
    1253.83,
    1263.41,
    1272.98,
    1282.55,
    1273,
    1282.96,
    1292.93,
    1302.89,
    1312.85,
    1322.81,
    1332.77,
    1342.73,
    1352.68,
    1422.34,
    1432.28,
    1442.23,
    1452.17,
    1462.11,
    1472.05,
    1481.99,
    1491.92,
    1501.86,
    1511.79,
    1521.73,
    1531.66,
    1541.59,
    1551.52,
    1561.44,
    1571.37,
    1581.3,
    1591.22,
    1601.14,
    1611.06,
    1620.98,
    1630.9,
    1640.81,
    1650.73,
    1660.64,
    1670.56,
    1680.47,
    1690.38,
    1700.28,
    1710.19,
    1720.1,
    1730,
    1739.9,
    1749.81,
    1759.71,
    1769.6,
    1779.5,
    1789.4,
    1799.29,
    1809.19,
    1819.08,
    1953.26,
    1963.25,
    1973.24,
    1983.23,
    1993.22,
    2003.2,
    2013.18,
    2023.16,
    2033.13,
    2043.1,
    2053.07,
    2063.04,
    2073,
    2082.97,
    2092.92,
    2102.88,
    2112.83,
    2122.78,
    2132.73,
    2142.68,
    2152.62,
    2162.56,
    2172.5,
    2182.43,
    2192.37,
    2202.3,
    2260.22,
    2270.15,
    2232.07,
    2241.99,
    2251.9,
    2261.82,
    2271.73,
    2281.64,
    2291.54,
    2301.45,
    2311.35,
    2321.25,
    2331.14,
    2341.03,
    2350.92,
    2360.81,
    2370.7,
    2380.58,
    2390.46,
    2400.33,
    2410.21,
    2420.08,
    2429.95,
    2439.81,
    2449.68,
    2459.54,
    2469.4,
    2479.25,
    2489.11,
    2498.96,
)


def _aviris_indian_pines() -> Sensor:
    # The published scene has 220 AVIRIS bands; the corrected cube drops the water-absorption bands [104-108],
    # [150-163] and 220 (1-based, per the UPV/EHU scene page), leaving 200. Names keep the 220-band numbering.
    dropped = set(range(104, 109)) | set(range(150, 164)) | {220}
    channels = [c for c in range(1, 221) if c not in dropped]
    bands = tuple(Band(f"b{c:03d}", w) for c, w in zip(channels, _INDIAN_PINES_NM, strict=True))
    return Sensor(
        "aviris_indian_pines", "hsi", bands, "AVIRIS (Indian Pines 1992, corrected: 200 of 224 bands)"
    )


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
    _aviris_indian_pines(),
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
