"""Pixel rasters: GeoTIFF (anything GDAL opens, with validity mask and geo metadata) and 8-bit images.

rasterio and PIL are imported inside the readers, so importing this module stays cheap.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rsmg.data.readers.checks import (
    PathLike,
    _require_file,
    check_finite,
)
from rsmg.errors import DataError

__all__ = ["Raster", "gdal_raster", "masked_read", "read_geotiff", "read_image"]


@dataclass
class Raster:
    """A raster read from disk.

    Pixels that are invalid (the file's nodata value, GDAL mask, NaN or inf) are marked False in ``mask`` and
    set to 0 in ``array`` in every band, so that no NaN or sentinel such as -9999 can leak into a batch or a
    normalisation statistic; use ``mask`` to exclude them.

    Attributes:
        array: float32 ``C×H×W`` (C = selected bands, in the order requested).
        mask: bool ``H×W``, True where every selected band is valid.
        meta: ``crs`` (string such as ``"EPSG:32633"`` or None), ``transform`` (the 6 affine coefficients
            ``(a, b, c, d, e, f)`` as in ``rasterio``/``affine``, or None when the file is not georeferenced),
            ``nodata`` (the file's nodata value of the first selected band, or None), ``dtype`` (the
            on-disk dtype, before the float32 cast), ``path`` (str), ``band_descriptions`` (tuple, one entry
            per selected band, None where the file has none), ``count`` (bands in the file), ``bands`` (the
            0-based indices read), ``scale`` (the factor applied, or None).
    """

    array: np.ndarray
    mask: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


def _rasterio_errors() -> tuple[type[BaseException], ...]:
    """Exception types rasterio/GDAL raise for unreadable files (CPLE_* errors live in a private module)."""
    from rasterio.errors import RasterioError

    errs: list[type[BaseException]] = [RasterioError]
    try:
        from rasterio._err import CPLE_BaseError

        errs.append(CPLE_BaseError)
    except ImportError:  # pragma: no cover - depends on the rasterio version
        pass
    return tuple(errs)


def read_geotiff(
    path: PathLike,
    bands: list[int] | None = None,
    expected_count: int | None = None,
    nodata_policy: Literal["mask", "reject", "ignore"] = "mask",
    scale: float | None = None,
) -> Raster:
    """Read a GeoTIFF (or any GDAL raster) into a float32 ``C×H×W`` array with a validity mask.

    Band counts are checked because a file from the wrong product (e.g. a 4-band S1 feature stack where a
    2-band one is expected) otherwise loads fine and fails much later as a shape error in a model.

    Args:
        path: raster file.
        bands: 0-based band indices to read, in this order (None = all bands).
        expected_count: if given, the file must have exactly this many bands.
        nodata_policy: ``"mask"`` marks nodata / NaN / inf pixels False in ``Raster.mask``; ``"reject"``
            raises if there is any; ``"ignore"`` treats the file's nodata value as ordinary data (for files
            whose nodata tag is wrong) but still masks NaN/inf, because no computation survives them.
        scale: multiply the values by this factor after the float32 cast (e.g. ``1e-4`` for Sentinel-2
            L2A digital numbers → reflectance).

    Returns:
        The :class:`Raster`.

    Raises:
        DataError: missing or corrupt file, wrong band count, band index out of range, or invalid pixels with
            ``nodata_policy="reject"``.
    """
    p = _require_file(path)
    unreadable = (
        "cannot read raster: file is corrupt or not a GeoTIFF",
        "re-download it; if it is an ordinary image use read_image instead",
    )
    return gdal_raster(p, bands, expected_count, nodata_policy, scale, unreadable=unreadable)


def gdal_raster(
    p: Path,
    bands: list[int] | None,
    expected_count: int | None,
    nodata_policy: Literal["mask", "reject", "ignore"],
    scale: float | None,
    *,
    unreadable: tuple[str, str],
) -> Raster:
    """:func:`read_geotiff` of a file GDAL opens; ``unreadable`` = (message, fix) of the error when it cannot."""
    if nodata_policy not in ("mask", "reject", "ignore"):
        raise ValueError(f"nodata_policy must be 'mask', 'reject' or 'ignore', got {nodata_policy!r}")
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    try:
        with warnings.catch_warnings():
            # Plain TIFFs (UC Merced) have no geotransform; meta["crs"] / meta["transform"] = None says so.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(p) as src:
                count = int(src.count)
                if expected_count is not None and count != expected_count:
                    raise DataError(
                        "raster has the wrong number of bands",
                        file=p,
                        field="band count",
                        expected=expected_count,
                        found=count,
                        fix="check that this file belongs to the configured sensor/product, or fix "
                        "expected_count (or the sensor's band list) to match the file",
                    )
                idx = list(range(count)) if bands is None else [int(b) for b in bands]
                bad = [b for b in idx if not 0 <= b < count]
                if bad or not idx:
                    raise DataError(
                        "band index out of range",
                        file=p,
                        field="bands",
                        expected=f"non-empty list of 0-based indices in [0, {count})",
                        found=list(bands) if bands is not None else idx,
                        fix="use 0-based band indices that exist in this file",
                    )
                indexes = [b + 1 for b in idx]
                array, valid = masked_read(src, indexes, p, ignore_nodata=nodata_policy == "ignore")
                nodata = src.nodatavals[idx[0]]
                transform = None if src.transform.is_identity else tuple(float(v) for v in src.transform[:6])
                meta: dict[str, Any] = {
                    "crs": src.crs.to_string() if src.crs else None,
                    "transform": transform,
                    "nodata": None if nodata is None else float(nodata),
                    "dtype": str(src.dtypes[idx[0]]),
                    "path": str(p),
                    "band_descriptions": tuple(src.descriptions[i] for i in idx),
                    "count": count,
                    "bands": idx,
                    "scale": scale,
                }
    except _rasterio_errors() as exc:
        raise DataError(unreadable[0], file=p, found=str(exc).strip(), fix=unreadable[1]) from exc

    n_invalid = int(valid.size - np.count_nonzero(valid))
    if nodata_policy == "reject" and n_invalid:
        raise DataError(
            "raster has nodata or non-finite pixels",
            file=p,
            field="pixel values",
            expected="every pixel valid (nodata_policy='reject')",
            found=f"{n_invalid} of {valid.size} pixels invalid (nodata value {meta['nodata']}, NaN or inf)",
            fix="use nodata_policy='mask' to keep the file and mask those pixels, or fill them in the source",
        )
    if scale is not None:
        array *= np.float32(scale)
    return Raster(array=array, mask=valid, meta=meta)


def masked_read(
    src: Any, indexes: list[int], p: Path, *, ignore_nodata: bool = False, window: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Bands ``indexes`` (1-based) of an open rasterio dataset as float32 ``C×h×w`` and their validity ``h×w``.

    Invalid pixels (the GDAL mask: nodata value, mask band, alpha; NaN and inf always) are False in the mask and
    0 in every band. One function for the whole raster (:func:`read_geotiff`) and for a window of it
    (:class:`~rsmg.data.readers.windows.GdalWindows`), so a scene read strip by strip has the same values.
    """
    array = src.read(indexes, out_dtype="float32", window=window)
    if ignore_nodata:
        valid = np.ones(array.shape[1:], dtype=bool)
    else:
        valid = (src.read_masks(indexes, window=window) > 0).all(axis=0)
    valid &= check_finite(array, file=p, field="pixel values", policy="mask", axis=0)
    if not valid.all():
        array[:, ~valid] = 0.0
    return array, valid


def read_image(path: PathLike) -> np.ndarray:
    """Read an ordinary image (JPEG, PNG, 8-bit TIFF, ...) as ``H×W×C``.

    Always three axes, so a grayscale image and an RGB one go through the same code downstream. 8-bit modes
    come back as uint8; 16-bit and 32-bit integer / float modes as float32 (their value range is not 0-255,
    and the caller must normalise them knowingly). Palette, CMYK and YCbCr images are converted to RGB.

    Raises:
        DataError: missing file, not an image, or a truncated/corrupt image.
    """
    p = _require_file(path)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(p) as opened:
            opened.load()
            img: Image.Image = opened
            if img.mode in ("P", "PA"):
                img = img.convert("RGBA" if "transparency" in img.info or img.mode == "PA" else "RGB")
            elif img.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                img = img.convert("RGB")
            elif img.mode == "1":
                img = img.convert("L")
            arr = np.asarray(img)
    except UnidentifiedImageError as exc:
        raise DataError(
            "cannot read image: file is not an image PIL can open",
            file=p,
            found=str(exc),
            fix="re-download it; for multi-band or georeferenced rasters use read_geotiff",
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(
            "cannot read image: file is truncated or corrupt",
            file=p,
            found=f"{type(exc).__name__}: {exc}",
            fix="re-download it",
        ) from exc
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float32)
    return np.ascontiguousarray(arr)
