"""File readers for every format rsmg consumes (the atomic writers for what it produces are in :mod:`rsmg.io`).

Each reader turns one file on disk into numpy arrays or plain Python objects and nothing else: no band
selection by name, no normalisation, no patching (those live in the dataset modules). What the readers do
own is *failing well*: a missing, truncated, mislabelled or badly encoded file raises
:class:`~rsmg.errors.DataError` naming the file, the field, what was expected, what was found and the fix,
instead of a traceback from deep inside GDAL, HDF5 or scipy.

Formats:

* GeoTIFF (and anything else GDAL opens) → :func:`read_geotiff` → :class:`Raster` (array + validity mask + geo
  metadata).
* MATLAB ``.mat`` v5 (scipy) and v7.3 (HDF5, h5py) → :func:`read_mat`, :func:`list_mat_keys`.
* numpy ``.npy`` / ``.npz`` → :func:`read_array`.
* 8-bit images (JPEG, PNG, RGB TIFF) → :func:`read_image`.
* captions: one-text-per-image folders (:func:`read_caption_txt`), Karpathy ``dataset_*.json``
  (:func:`read_captions_karpathy_json`), COCO captions (:func:`read_captions_coco_json`), the Sydney-captions
  description list (:func:`read_sydney_descriptions`) and plain name lists (:func:`read_name_list`).

Heavy libraries (rasterio, h5py, scipy, PIL) are imported inside the functions that need them so that
``import rsmg.data`` stays cheap for code that never touches a raster.
"""

from __future__ import annotations

import difflib
import json
import os
import struct
import warnings
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rsmg.errors import DataError

__all__ = [
    "CaptionRecord",
    "Raster",
    "check_finite",
    "list_mat_keys",
    "read_array",
    "read_caption_txt",
    "read_captions_coco_json",
    "read_captions_karpathy_json",
    "read_geotiff",
    "read_image",
    "read_mat",
    "read_name_list",
    "read_sydney_descriptions",
]

PathLike = str | os.PathLike[str]

_REDOWNLOAD = "re-download it (or restore it from the original archive); the copy on disk is damaged"


# ----------------------------------------------------------------------------------------------------------
# shared helpers
# ----------------------------------------------------------------------------------------------------------


def _require_file(path: PathLike) -> Path:
    """Return ``path`` as a Path, or raise a DataError if it is missing or a directory.

    Checked up front because every backend (GDAL, HDF5, scipy, PIL) words "no such file" differently, and some
    (GDAL) make it look like a format error.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(
            "file does not exist",
            file=p,
            fix="check the path (and the dataset root in your config); "
            "the dataset README says how to get the file",
        )
    if not p.is_file():
        raise DataError(
            "path is not a regular file",
            file=p,
            expected="a file",
            found="a directory" if p.is_dir() else "not a regular file",
            fix="point at a file inside this folder",
        )
    return p


def _pick_key(
    keys: list[str],
    key: str | None,
    candidates: Iterable[str],
    *,
    file: Path,
    kind: str,
) -> str:
    """Choose which array of a multi-array file to return.

    Benchmark files name their arrays inconsistently (``TRLabel``, ``gt``, ``Trento_gt``, ``mask_test``), so
    callers pass the names they know as ``candidates`` and a file holding exactly one array needs no name at
    all. Guessing between several arrays would silently load the wrong one, so that is an error.
    """
    if key is not None:
        if key not in keys:
            same_case = [k for k in keys if k.lower() == key.lower()]
            close = same_case + [k for k in difflib.get_close_matches(key, keys, n=3) if k not in same_case]
            hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
            raise DataError(
                f"{kind} has no array named {key!r}",
                file=file,
                field="key",
                expected=f"one of {sorted(keys)}",
                found=repr(key),
                fix=f"{hint}pass key= with one of the names listed above",
            )
        return key
    candidates = tuple(candidates)
    for c in candidates:
        if c in keys:
            return c
    if len(keys) == 1:
        return keys[0]
    if not keys:
        raise DataError(
            f"{kind} holds no arrays",
            file=file,
            field="key",
            expected="at least one array",
            found="none",
            fix="check that this is the right file; " + _REDOWNLOAD,
        )
    tried = f" (none of the expected names {list(candidates)} is present)" if candidates else ""
    raise DataError(
        f"{kind} holds several arrays and it is ambiguous which one to read{tried}",
        file=file,
        field="key",
        expected="key= naming one array",
        found=f"keys {sorted(keys)}",
        fix="pass key= with one of the names listed above",
    )


def _check_numeric(arr: np.ndarray, *, file: Path, key: str, kind: str) -> np.ndarray:
    """Reject structs, cells, strings and object arrays: rasters and label maps are always numeric."""
    if arr.dtype.kind not in "biufc" or arr.dtype.names is not None:
        raise DataError(
            f"{kind} variable {key!r} is not a numeric array",
            file=file,
            field=key,
            expected="a numeric or logical array",
            found=f"dtype {arr.dtype}",
            fix="choose a numeric variable with key=, or re-save the data as a plain numeric matrix",
        )
    return arr


def _read_utf8(path: PathLike, *, what: str) -> tuple[Path, str]:
    """Read a whole text file as UTF-8 (a leading BOM is dropped).

    Captions are compared and tokenised as Unicode; silently decoding latin-1 or cp1252 bytes as something
    else would corrupt accents and punctuation without any error, so a bad byte stops the run instead.
    """
    p = _require_file(path)
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.start + 4]
        raise DataError(
            f"{what} is not valid UTF-8",
            file=p,
            field=f"byte {exc.start}",
            expected="UTF-8 text",
            found=f"byte(s) {bad!r} ({exc.reason})",
            fix=f"re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 {p.name} > fixed` "
            f"then `mv fixed {p.name}`",
        ) from exc
    return p, text


# ----------------------------------------------------------------------------------------------------------
# NaN / inf
# ----------------------------------------------------------------------------------------------------------


def check_finite(
    array: np.ndarray,
    *,
    file: PathLike | None,
    field: str,
    policy: Literal["mask", "reject"],
    axis: int | None = None,
) -> np.ndarray:
    """Find NaN/inf values and either mask them or stop.

    A single NaN reaching a batch poisons the loss and every running statistic, so non-finite values must be
    either masked out explicitly or refused; this is the one place that decision is made.

    Args:
        array: any numeric array (integer arrays are always finite).
        file: file the array came from, for the error message.
        field: key / band name, for the error message.
        policy: ``"mask"`` returns the validity mask; ``"reject"`` raises if any value is not finite.
        axis: if given, an element is valid only if every value along this axis is finite (e.g. ``axis=0``
            turns a ``C×H×W`` array into an ``H×W`` pixel mask).

    Returns:
        Boolean mask, True where the value (or the whole pixel, with ``axis``) is finite.

    Raises:
        DataError: ``policy="reject"`` and the array holds NaN or inf (the message gives the count).
        ValueError: unknown policy.
    """
    if policy not in ("mask", "reject"):
        raise ValueError(f"policy must be 'mask' or 'reject', got {policy!r}")
    arr = np.asarray(array)
    finite = np.ones(arr.shape, dtype=bool) if arr.dtype.kind in "biu" else np.isfinite(arr)
    if policy == "reject":
        n_bad = int(finite.size - np.count_nonzero(finite))
        if n_bad:
            n_nan = int(np.count_nonzero(np.isnan(arr)))
            raise DataError(
                "array holds non-finite values",
                file=None if file is None else os.fspath(file),
                field=field,
                expected="only finite values",
                found=f"{n_bad} of {finite.size} values non-finite ({n_nan} NaN, {n_bad - n_nan} ±inf)",
                fix="fill or mask them before training (e.g. nodata_policy='mask'), or fix the source file",
            )
    if axis is not None:
        finite = finite.all(axis=axis)
    return finite


# ----------------------------------------------------------------------------------------------------------
# GeoTIFF
# ----------------------------------------------------------------------------------------------------------


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
    if nodata_policy not in ("mask", "reject", "ignore"):
        raise ValueError(f"nodata_policy must be 'mask', 'reject' or 'ignore', got {nodata_policy!r}")
    p = _require_file(path)
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
                array = src.read(indexes, out_dtype="float32")
                if nodata_policy == "ignore":
                    valid = np.ones(array.shape[1:], dtype=bool)
                else:
                    valid = (src.read_masks(indexes) > 0).all(axis=0)
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
        raise DataError(
            "cannot read raster: file is corrupt or not a GeoTIFF",
            file=p,
            found=str(exc).strip(),
            fix="re-download it; if it is an ordinary image use read_image instead",
        ) from exc

    valid &= check_finite(array, file=p, field="pixel values", policy="mask", axis=0)
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
    if n_invalid:
        array[:, ~valid] = 0.0
    if scale is not None:
        array *= np.float32(scale)
    return Raster(array=array, mask=valid, meta=meta)


# ----------------------------------------------------------------------------------------------------------
# MATLAB
# ----------------------------------------------------------------------------------------------------------


def _is_hdf5(p: Path) -> bool:
    import h5py

    try:
        return bool(h5py.is_hdf5(p))
    except OSError:  # pragma: no cover - unreadable file; the v5 path reports it
        return False


def _check_v5_complete(p: Path) -> None:
    """Walk the top-level element tags of a MAT v5 file and raise if the last one runs past the end.

    scipy's ``whosmat`` silently lists only the variables before a truncation point, so a half-downloaded
    file would look like a file with fewer variables; the tag walk costs one seek per variable.
    """
    size = p.stat().st_size
    with p.open("rb") as fh:
        header = fh.read(128)
        if len(header) < 128 or header[124:126] not in (b"\x00\x01", b"\x01\x00"):
            return  # MAT v4 or not a MAT file at all: scipy decides
        endian = {b"IM": "<", b"MI": ">"}.get(header[126:128])
        if endian is None:
            return
        pos = 128
        while pos + 8 <= size:
            fh.seek(pos)
            mdtype, nbytes = struct.unpack(endian + "II", fh.read(8))
            pos += 8 if mdtype >> 16 else 8 + nbytes
    if pos > size:
        raise DataError(
            "MAT file is truncated",
            file=p,
            expected=f"{pos} bytes (from its variable headers)",
            found=f"{size} bytes",
            fix=_REDOWNLOAD,
        )


def _mat_corrupt(p: Path, exc: BaseException) -> DataError:
    return DataError(
        "cannot read MAT file: it is truncated, corrupt or not a MATLAB file",
        file=p,
        found=f"{type(exc).__name__}: {exc}".strip(),
        fix=_REDOWNLOAD,
    )


def _h5_vars(f: Any) -> dict[str, Any]:
    """Top-level MATLAB variables of a v7.3 file (``#refs#`` / ``#subsystem#`` hold cell/object internals)."""
    return {name: obj for name, obj in f.items() if not name.startswith("#")}


def _h5_shape(obj: Any) -> tuple[int, ...]:
    import h5py

    if isinstance(obj, h5py.Group):  # struct / object: MATLAB reports 1×1
        return (1, 1)
    if int(obj.attrs.get("MATLAB_empty", 0)):
        return (0, 0)
    return tuple(int(s) for s in reversed(obj.shape))


def _h5_read(obj: Any, *, p: Path, key: str) -> np.ndarray:
    """Read one v7.3 variable with the orientation scipy gives for v5.

    MATLAB writes column-major data, so HDF5 sees the axes reversed; reversing them back (a transpose, no
    copy) makes ``read_mat`` return the same shape and values for v5 and v7.3 files of the same variable.
    """
    import h5py

    mclass = obj.attrs.get("MATLAB_class", b"")
    mclass = mclass.decode() if isinstance(mclass, bytes) else str(mclass)
    if isinstance(obj, h5py.Group) or mclass in ("char", "cell", "struct"):
        raise DataError(
            f"MAT variable {key!r} is not a numeric array",
            file=p,
            field=key,
            expected="a numeric or logical array",
            found=f"MATLAB class {mclass or 'struct'}",
            fix="choose a numeric variable with key=, or re-save the data as a plain numeric matrix",
        )
    if int(obj.attrs.get("MATLAB_empty", 0)):
        return np.zeros((0, 0), dtype=np.float64)
    data = np.asarray(obj[()])
    if data.dtype.names is not None and set(data.dtype.names) >= {"real", "imag"}:
        data = data["real"] + 1j * data["imag"]
    return _check_numeric(data.T, file=p, key=key, kind="MAT")


def list_mat_keys(path: PathLike) -> dict[str, tuple[int, ...]]:
    """Variables of a MAT file (v5 or v7.3) and their shapes, without reading the data.

    Shapes are MATLAB's (the same for v5 and v7.3), i.e. the shapes :func:`read_mat` returns.

    Raises:
        DataError: missing, truncated or corrupt file.
    """
    p = _require_file(path)
    if _is_hdf5(p):
        import h5py

        try:
            with h5py.File(p, "r") as f:
                return {k: _h5_shape(v) for k, v in _h5_vars(f).items()}
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise _mat_corrupt(p, exc) from exc
    import scipy.io

    _check_v5_complete(p)
    try:
        return {name: tuple(int(s) for s in shape) for name, shape, _cls in scipy.io.whosmat(str(p))}
    except Exception as exc:  # scipy raises ValueError/OSError/IndexError/... for broken files
        raise _mat_corrupt(p, exc) from exc


def read_mat(path: PathLike, key: str | None = None, candidates: tuple[str, ...] = ()) -> np.ndarray:
    """Read one numeric variable of a MATLAB file (v5 via scipy, v7.3 via h5py).

    Both versions return the array MATLAB would show (same shape and values), so a dataset can be stored
    either way without the caller knowing. Only the requested variable is loaded.

    Args:
        path: ``.mat`` file.
        key: variable name; if None, the first of ``candidates`` present, else the only variable.
        candidates: names to try in order when ``key`` is None (e.g. ``("TRLabel", "gt")``).

    Returns:
        The array (logical variables come back as uint8, as with scipy).

    Raises:
        DataError: missing, truncated or corrupt file; ``key`` absent (the message lists the keys); several
            variables and no way to choose (pass ``key=``); non-numeric variable (struct, cell, string).
    """
    p = _require_file(path)
    if _is_hdf5(p):
        import h5py

        try:
            with h5py.File(p, "r") as f:
                variables = _h5_vars(f)
                k = _pick_key(list(variables), key, candidates, file=p, kind="MAT file")
                return _h5_read(variables[k], p=p, key=k)
        except DataError:
            raise
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise _mat_corrupt(p, exc) from exc
    import scipy.io

    keys = list(list_mat_keys(p))
    k = _pick_key(keys, key, candidates, file=p, kind="MAT file")
    try:
        loaded = scipy.io.loadmat(str(p), variable_names=[k])
    except NotImplementedError as exc:  # v7.3 header but no readable HDF5 body
        raise _mat_corrupt(p, exc) from exc
    except Exception as exc:  # scipy raises ValueError/OSError/IndexError/zlib.error for broken files
        raise _mat_corrupt(p, exc) from exc
    if (
        k not in loaded
    ):  # pragma: no cover - whosmat listed it, so loadmat only misses it if the file is broken
        raise _mat_corrupt(p, KeyError(k))
    return _check_numeric(np.asarray(loaded[k]), file=p, key=k, kind="MAT")


# ----------------------------------------------------------------------------------------------------------
# numpy
# ----------------------------------------------------------------------------------------------------------


def read_array(path: PathLike, key: str | None = None, candidates: tuple[str, ...] = ()) -> np.ndarray:
    """Read a ``.npy`` array or one array of a ``.npz`` archive.

    Pickled (object) arrays are refused: unpickling runs arbitrary code and rasters never need it.

    Args:
        path: ``.npy`` or ``.npz`` file.
        key: ``.npz`` member name; chosen as in :func:`read_mat` when None. Ignored for ``.npy``.
        candidates: ``.npz`` member names to try when ``key`` is None.

    Returns:
        The array.

    Raises:
        DataError: missing, corrupt or pickled file, unknown extension, or key problems as in
            :func:`read_mat`.
    """
    p = _require_file(path)
    suffix = p.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise DataError(
            "unsupported array file extension",
            file=p,
            expected=".npy or .npz",
            found=p.suffix or "(none)",
            fix="save the array with numpy.save / numpy.savez, or use read_mat / read_geotiff for other "
            "formats",
        )
    try:
        if suffix == ".npy":
            return np.asarray(np.load(p, allow_pickle=False))
        with np.load(p, allow_pickle=False) as z:
            k = _pick_key(list(z.files), key, candidates, file=p, kind="npz archive")
            return np.asarray(z[k])
    except DataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataError(
                "array file holds pickled Python objects",
                file=p,
                expected="a plain numeric array",
                found="object array (needs allow_pickle)",
                fix="re-save it as a numeric array (numpy.save(path, arr.astype(np.float32)))",
            ) from exc
        raise DataError(
            "cannot read array file: it is truncated or corrupt", file=p, found=str(exc), fix=_REDOWNLOAD
        ) from exc
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(
            "cannot read array file: it is truncated or corrupt",
            file=p,
            found=f"{type(exc).__name__}: {exc}",
            fix=_REDOWNLOAD,
        ) from exc


# ----------------------------------------------------------------------------------------------------------
# images
# ----------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------
# captions and name lists
# ----------------------------------------------------------------------------------------------------------


@dataclass
class CaptionRecord:
    """Captions of one image.

    Attributes:
        filename: image file name as written in the caption file (no directory).
        captions: the captions, in file order, whitespace-stripped.
        split: ``"train"`` / ``"val"`` / ``"test"`` (or the file's own word, e.g. ``"restval"``) when the
            caption file says; None otherwise.
    """

    filename: str
    captions: list[str]
    split: str | None = None


def read_caption_txt(path: PathLike) -> str:
    """Read a one-caption-per-image text file (AID / MultiAtt-RSSC layout) and return the stripped text.

    Raises:
        DataError: missing file, not UTF-8, or empty (only whitespace).
    """
    p, text = _read_utf8(path, what="caption file")
    text = text.strip()
    if not text:
        raise DataError(
            "caption file is empty",
            file=p,
            expected="a non-empty caption",
            found="no text (only whitespace)" if p.stat().st_size else "0 bytes",
            fix="write the caption into the file, or remove the image from the dataset",
        )
    return text


def _load_json(path: PathLike, *, what: str) -> tuple[Path, Any]:
    p, text = _read_utf8(path, what=what)
    try:
        return p, json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{what} is not valid JSON",
            file=p,
            field=f"line {exc.lineno}, column {exc.colno}",
            found=exc.msg,
            fix="re-download it (a truncated download ends mid-object); "
            "or fix the JSON syntax at that position",
        ) from exc


def _json_error(p: Path, what: str, where: str, expected: str, found: object) -> DataError:
    return DataError(
        f"{what} does not have the expected structure",
        file=p,
        field=where,
        expected=expected,
        found=found,
        fix="check that this is the right file for this reader; " + _REDOWNLOAD,
    )


def _clean_caption(raw: object, *, p: Path, where: str, what: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise _json_error(p, what, where, "a non-empty caption string", repr(raw))
    return raw.strip()


def read_captions_karpathy_json(path: PathLike) -> dict[str, CaptionRecord]:
    """Read a Karpathy-style caption file (``dataset_*.json`` of UCM-captions, Sydney-captions, RSICD).

    Format: ``{"images": [{"filename": ..., "split": ..., "sentences": [{"raw": ...}, ...]}, ...]}``. The
    ``raw`` text is used (``tokens`` joined by spaces when ``raw`` is missing); the file's ``split`` is kept
    as is, because the official splits are not derivable from file names (see the UCM-captions README).

    Returns:
        ``filename`` → :class:`CaptionRecord`, in file order.

    Raises:
        DataError: missing/non-UTF-8/invalid JSON, wrong structure, an image without captions, or a file name
            listed twice.
    """
    what = "Karpathy caption file"
    p, doc = _load_json(path, what=what)
    images = doc.get("images") if isinstance(doc, dict) else None
    if not isinstance(images, list):
        raise _json_error(p, what, "images", 'a top-level object with an "images" list', type(doc).__name__)
    out: dict[str, CaptionRecord] = {}
    for i, entry in enumerate(images):
        where = f"images[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
            raise _json_error(p, what, f"{where}.filename", "a file name string", repr(entry)[:80])
        name = entry["filename"]
        sentences = entry.get("sentences")
        if not isinstance(sentences, list) or not sentences:
            raise _json_error(
                p, what, f"{where}.sentences ({name})", "a non-empty list", repr(sentences)[:80]
            )
        caps = []
        for j, s in enumerate(sentences):
            if not isinstance(s, dict):
                raise _json_error(p, what, f"{where}.sentences[{j}] ({name})", "an object", repr(s)[:80])
            raw = s.get("raw")
            if raw is None and isinstance(s.get("tokens"), list):
                raw = " ".join(str(t) for t in s["tokens"])
            caps.append(_clean_caption(raw, p=p, where=f"{where}.sentences[{j}].raw ({name})", what=what))
        if name in out:
            raise _json_error(p, what, f"{where}.filename", "unique file names", f"{name!r} listed twice")
        split = entry.get("split")
        out[name] = CaptionRecord(name, caps, None if split is None else str(split))
    return out


def read_captions_coco_json(path: PathLike, split: str | None = None) -> dict[str, CaptionRecord]:
    """Read a COCO-captions file.

    Format: ``{"images": [{"id", "file_name"}, ...], "annotations": [{"image_id", "caption"}, ...]}``. COCO
    files carry no split field (the split is the file: ``captions_val2017.json``), so the caller passes it.

    Args:
        path: the JSON file.
        split: split name stored in every record.

    Returns:
        ``file_name`` → :class:`CaptionRecord`, in the order of ``images``; captions in annotation order.

    Raises:
        DataError: missing/non-UTF-8/invalid JSON, wrong structure, an annotation pointing at an unknown
            image, an image without captions, or a duplicate image id / file name.
    """
    what = "COCO caption file"
    p, doc = _load_json(path, what=what)
    if not isinstance(doc, dict):
        raise _json_error(p, what, "(top level)", "an object", type(doc).__name__)
    images, annotations = doc.get("images"), doc.get("annotations")
    if not isinstance(images, list) or not isinstance(annotations, list):
        raise _json_error(
            p, what, "images / annotations", 'top-level "images" and "annotations" lists', sorted(doc)[:10]
        )
    by_id: dict[Any, CaptionRecord] = {}
    out: dict[str, CaptionRecord] = {}
    for i, img in enumerate(images):
        if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
            raise _json_error(p, what, f"images[{i}]", 'an object with "id" and "file_name"', repr(img)[:80])
        if img["id"] in by_id or img["file_name"] in out:
            raise _json_error(p, what, f"images[{i}]", "unique ids and file names", repr(img)[:80])
        rec = CaptionRecord(img["file_name"], [], split)
        by_id[img["id"]] = out[img["file_name"]] = rec
    for j, ann in enumerate(annotations):
        if not isinstance(ann, dict) or "image_id" not in ann:
            raise _json_error(p, what, f"annotations[{j}]", 'an object with "image_id"', repr(ann)[:80])
        target = by_id.get(ann["image_id"])
        if target is None:
            raise _json_error(
                p, what, f"annotations[{j}].image_id", "the id of an entry in images", repr(ann["image_id"])
            )
        target.captions.append(
            _clean_caption(ann.get("caption"), p=p, where=f"annotations[{j}].caption", what=what)
        )
    empty = [name for name, rec in out.items() if not rec.captions]
    if empty:
        raise _json_error(
            p, what, "annotations", "at least one caption per image", f"no caption for {empty[:5]}"
        )
    return out


def read_sydney_descriptions(path: PathLike, extension: str = ".tif") -> dict[str, CaptionRecord]:
    """Read the Sydney-captions description list (``descriptions_SIDNEY.txt``).

    Each line is ``"<image number> <caption>"`` (CRLF line ends, 5 lines per image); image ``n`` is file
    ``f"{n}{extension}"``, matching the split lists ``filenames_{train,val,test}.txt``. Splits are not in this
    file: combine with :func:`read_name_list`.

    Returns:
        ``"<n>.tif"`` → :class:`CaptionRecord` (split None), in order of first appearance.

    Raises:
        DataError: missing/non-UTF-8 file, a line not of the form ``<number> <caption>``, or no lines at all.
    """
    p, text = _read_utf8(path, what="Sydney description file")
    out: dict[str, CaptionRecord] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        num, _, caption = line.partition(" ")
        if not num.isdigit() or not caption.strip():
            raise DataError(
                "line is not of the form '<image number> <caption>'",
                file=p,
                field=f"line {lineno}",
                expected="an integer, a space, then the caption",
                found=repr(line[:80]),
                fix="fix or delete that line; " + _REDOWNLOAD,
            )
        name = f"{int(num)}{extension}"
        out.setdefault(name, CaptionRecord(name, [], None)).captions.append(caption.strip())
    if not out:
        raise DataError(
            "description file holds no captions",
            file=p,
            expected="lines '<n> <caption>'",
            found="none",
            fix=_REDOWNLOAD,
        )
    return out


def read_name_list(path: PathLike) -> list[str]:
    """Read a split / class list: one file name per line (blank lines ignored, CRLF accepted).

    Raises:
        DataError: missing/non-UTF-8 file, a name listed twice (a split list with duplicates double-counts
            samples), or no names.
    """
    p, text = _read_utf8(path, what="name list")
    names = [ln.strip() for ln in text.splitlines() if ln.strip()]
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            raise DataError(
                "name listed twice",
                file=p,
                field=f"entry {i + 1}",
                expected="unique names",
                found=repr(n),
                fix="remove the duplicate line",
            )
        seen.add(n)
    if not names:
        raise DataError(
            "name list is empty", file=p, expected="one name per line", found="none", fix=_REDOWNLOAD
        )
    return names
