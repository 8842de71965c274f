"""ENVI rasters: a text header (``.hdr``) beside a raw binary cube, read through GDAL's ENVI driver.

Why GDAL: it already parses the header (size, data type, interleave, byte order, ``map info``), maps
``data ignore value`` to the band's nodata value (masked like a GeoTIFF's) and exposes ``wavelength`` and
``wavelength units`` per band. What is added here is finding the two files from either one and failing
well: a missing header or binary, an unreadable pair, or wavelengths in units that cannot be converted.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import numpy as np

from rsmg.data.readers.checks import PathLike, _require_file
from rsmg.data.readers.rasters import Raster, _rasterio_errors, gdal_raster
from rsmg.errors import DataError

__all__ = ["ENVI_DATA_SUFFIXES", "ENVI_SUFFIXES", "envi_files", "read_envi", "read_envi_header"]

ENVI_DATA_SUFFIXES = (".img", ".dat", ".bsq", ".bil", ".bip", ".raw")
"""Extensions of an ENVI binary that mark it as ENVI by name (one without extension: name its ``.hdr``)."""
ENVI_SUFFIXES = (".hdr", *ENVI_DATA_SUFFIXES)
_NM_PER_UNIT = {"nanometers": 1.0, "nanometer": 1.0, "nm": 1.0, "micrometers": 1000.0, "micrometer": 1000.0,
                "microns": 1000.0, "micron": 1000.0, "um": 1000.0, "µm": 1000.0}  # fmt: skip


def envi_files(path: PathLike) -> tuple[Path, Path]:
    """``(header, binary)`` of an ENVI raster named by either file (ENVI: ``x.hdr`` with ``x`` or ``x.img`` …).

    Raises:
        DataError: the file is missing, or the header or the binary that goes with it is.
    """
    p = Path(path)
    if p.suffix.lower() == ".hdr":
        header = _require_file(p)
        candidates = [p.with_suffix(""), *(p.with_suffix(s) for s in ENVI_DATA_SUFFIXES)]
        data = next((c for c in candidates if c.is_file()), None)
        if data is None:
            raise DataError(
                "ENVI header without its binary data file",
                file=header,
                field="data file",
                expected=" or ".join(c.name for c in candidates),
                found="none beside the header",
                fix="put the binary cube beside its header under the same name (e.g. scene.img for scene.hdr)",
            )
        return header, data
    data = _require_file(p)
    candidates = [p.with_suffix(".hdr"), p.with_name(p.name + ".hdr")]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise DataError(
            "ENVI binary without its header",
            file=data,
            field="header (.hdr)",
            expected=" or ".join(c.name for c in dict.fromkeys(candidates)),
            found="no header beside the file",
            fix="put the .hdr that came with the file beside it (same name), or convert it to a GeoTIFF "
            "(gdal_translate -of GTiff)",
        )
    return found, data


def read_envi(
    path: PathLike,
    bands: list[int] | None = None,
    expected_count: int | None = None,
    nodata_policy: Literal["mask", "reject", "ignore"] = "mask",
    scale: float | None = None,
) -> Raster:
    """Read an ENVI raster (named by its ``.hdr`` or its binary) like :func:`~rsmg.data.readers.read_geotiff`.

    ``Raster.meta`` also has ``header`` (the ``.hdr`` path) and ``wavelengths_nm``: the header's ``wavelength``
    of each selected band in nanometres, or None when the header lists none. ``data ignore value`` is the
    nodata value (masked). Georeferencing comes from ``map info`` when the header has it.

    Raises:
        DataError: a missing header or binary, a pair GDAL cannot read (header and binary disagree, or not
            ENVI), or wavelengths whose ``wavelength units`` are missing or not a length.
    """
    header, data, tags, unreadable = _checked_pair(path)
    raster = gdal_raster(data, bands, expected_count, nodata_policy, scale, unreadable=unreadable)
    raster.meta["header"] = str(header)
    raster.meta["wavelengths_nm"] = _wavelengths_nm([tags[b] for b in raster.meta["bands"]], header)
    return raster


def read_envi_header(path: PathLike) -> tuple[Path, Path, np.ndarray | None]:
    """``(header, binary, wavelengths in nm of every band or None)`` of an ENVI raster, without its pixels.

    The checks are :func:`read_envi`'s (for :class:`~rsmg.data.readers.windows.GdalWindows`).
    """
    header, data, tags, _ = _checked_pair(path)
    return header, data, _wavelengths_nm(tags, header)


def _checked_pair(path: PathLike) -> tuple[Path, Path, list[dict[str, str]], tuple[str, str]]:
    """Header, binary, per-band tags and the unreadable-pair message (a binary shorter than its header raises)."""
    header, data = envi_files(path)
    unreadable = (
        f"cannot read the ENVI raster: {data.name} and its header {header.name} do not make a readable pair",
        "check the header's samples, lines, bands, data type and header offset against the binary's size, "
        "or re-export the file",
    )
    tags, expected = _inspect(data, unreadable)
    size = data.stat().st_size
    if size < expected:  # GDAL would read the missing part as zeros
        raise DataError(
            "ENVI binary is shorter than its header says",
            file=data,
            field=f"samples x lines x bands x data type + header offset ({header.name})",
            expected=f"{expected} bytes",
            found=f"{size} bytes",
            fix="copy the binary again (it is truncated), or fix the header if it describes another file",
        )
    return header, data, tags, unreadable


def _inspect(data: Path, unreadable: tuple[str, str]) -> tuple[list[dict[str, str]], int]:
    """Per-band header tags (``wavelength``, ``wavelength_units``) and the binary's size the header implies."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(data) as src:
                tags = [src.tags(b) for b in range(1, src.count + 1)]
                offset = int(src.tags(ns="ENVI").get("header_offset", 0))
                itemsize = sum(np.dtype(t).itemsize for t in src.dtypes)
                expected = offset + src.width * src.height * itemsize
    except _rasterio_errors() as exc:
        raise DataError(unreadable[0], file=data, found=str(exc).strip(), fix=unreadable[1]) from exc
    return tags, expected


def _wavelengths_nm(tags: list[dict[str, str]], header: Path) -> np.ndarray | None:
    if not any("wavelength" in t for t in tags):
        return None
    units = {t.get("wavelength_units", "").strip().lower() for t in tags}
    factor = _NM_PER_UNIT.get(units.pop()) if len(units) == 1 else None
    if factor is None or any("wavelength" not in t for t in tags):
        raise DataError(
            "ENVI header wavelengths in units that cannot be read as a length",
            file=header,
            field="wavelength units",
            expected="Nanometers or Micrometers, one wavelength per band",
            found=sorted({t.get("wavelength_units", "missing") for t in tags}),
            fix="add `wavelength units = Nanometers` (or Micrometers) to the header",
        )
    try:
        return np.array([float(t["wavelength"]) for t in tags]) * factor
    except ValueError as exc:
        raise DataError(
            "ENVI header wavelength is not a number",
            file=header,
            field="wavelength",
            expected="{w1, w2, ...}, one number per band",
            found=str(exc),
            fix="fix the header's wavelength list",
        ) from exc
