"""Rasters read a strip of rows at a time, so a scene larger than memory can be predicted.

Two kinds, with one method ``read(r0, r1)`` → (float32 ``C×(r1-r0)×W`` rows, validity ``(r1-r0)×W`` or None):

* :class:`GdalWindows`: a GeoTIFF or ENVI raster read through rasterio windows; each call opens the file and
  reads only those rows (:func:`~rsmg.data.readers.rasters.masked_read`, the function that reads the whole
  raster, so nodata, masks and NaN are handled identically);
* :class:`ArrayWindows`: an ``H×W×C`` array, a ``np.memmap`` of a ``.npy`` (rows read from disk when sliced)
  or an array already in memory (a ``.mat`` or ``.npz``, which cannot be read in parts: scipy / h5py / zip
  read a variable whole).

Objects hold paths and arrays only, never an open file, so they pickle into DataLoader workers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rsmg.data.readers.checks import PathLike, _require_file
from rsmg.data.readers.envi import ENVI_SUFFIXES, read_envi_header
from rsmg.data.readers.rasters import _rasterio_errors, masked_read
from rsmg.errors import DataError

__all__ = ["ArrayWindows", "GdalWindows", "open_gdal_windows"]

_UNREADABLE = (
    "cannot read raster: file is corrupt or not a GeoTIFF",
    "re-download it; if it is an ordinary image use read_image instead",
)


@dataclass
class GdalWindows:
    """Row strips of a raster GDAL opens (all its bands), read on demand.

    Attributes:
        path: the raster (an ENVI binary, for ENVI).
        shape: ``(C, H, W)``.
        georef: ``{"crs", "transform"}`` or None (no geotransform), as :func:`rsmg.data.catalog.load_scene`.
        wavelengths_nm: an ENVI header's band centres (nm) or None; header: that header.
    """

    path: Path
    shape: tuple[int, int, int]
    georef: dict[str, Any] | None = None
    wavelengths_nm: np.ndarray | None = None
    header: Path | None = None

    def read(self, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``r0 … r1-1``: float32 ``C×n×W`` (0 at invalid pixels) and the ``n×W`` validity mask."""
        import rasterio
        from rasterio.errors import NotGeoreferencedWarning
        from rasterio.windows import Window

        c, _, w = self.shape
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(self.path) as src:
                    window = Window(0, r0, w, r1 - r0)
                    return masked_read(src, list(range(1, c + 1)), self.path, window=window)
        except _rasterio_errors() as exc:
            raise DataError(
                _UNREADABLE[0], file=self.path, found=str(exc).strip(), fix=_UNREADABLE[1]
            ) from exc


def open_gdal_windows(path: PathLike) -> GdalWindows:
    """A :class:`GdalWindows` of a GeoTIFF / ENVI raster: its size and grid read, no pixel.

    Raises:
        DataError: a missing or unreadable file, an ENVI binary shorter than its header says or whose
            wavelengths cannot be read (as :func:`~rsmg.data.readers.read_envi`).
    """
    p = Path(path)
    wavelengths = header = None
    if p.suffix.lower() in ENVI_SUFFIXES:
        header, p, wavelengths = read_envi_header(p)
    else:
        p = _require_file(p)
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(p) as src:
                shape = (int(src.count), int(src.height), int(src.width))
                georef = None
                if not src.transform.is_identity:
                    georef = {
                        "crs": src.crs.to_string() if src.crs else None,
                        "transform": tuple(float(v) for v in src.transform[:6]),
                    }
    except _rasterio_errors() as exc:
        raise DataError(_UNREADABLE[0], file=p, found=str(exc).strip(), fix=_UNREADABLE[1]) from exc
    return GdalWindows(p, shape, georef, wavelengths, header)


@dataclass
class ArrayWindows:
    """Row strips of an ``H×W×C`` (or ``H×W``) array: a ``.npy`` memory-mapped at each read, or an array in memory.

    ``read`` returns what :func:`rsmg.data.catalog.load_scene` makes of the whole array, for those rows: a
    float32 ``C×n×W`` copy; no validity mask (non-finite values are the scene's ``nonfinite`` policy's).

    Attributes:
        path: the file.
        file_shape: the array's shape in the file (``H×W×C`` or ``H×W``).
        array: the array when it is held in memory (``.mat``, ``.npz``); None: ``path`` is a ``.npy`` mapped
            read-only when rows are read, so the object pickles without the data.
    """

    path: Path
    file_shape: tuple[int, ...]
    array: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        h, w = self.file_shape[:2]
        return (self.file_shape[2] if len(self.file_shape) == 3 else 1), int(h), int(w)

    def read(self, r0: int, r1: int) -> tuple[np.ndarray, None]:
        """Rows ``r0 … r1-1`` as a new float32 ``C×n×W`` array (read from disk here for a memory map).

        Always a copy, never a view: callers edit the rows in place (NaN zeroed, nDSM), which must not reach a
        read-only memory map or the array held in memory (a later strip reads the same halo rows again).
        """
        arr = self.array if self.array is not None else np.load(self.path, mmap_mode="r", allow_pickle=False)
        rows = arr[r0:r1]
        if rows.ndim == 2:
            rows = rows[:, :, None]
        return np.array(np.moveaxis(rows, -1, 0), dtype=np.float32, order="C", copy=True), None
