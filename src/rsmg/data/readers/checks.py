"""What every reader checks: the file exists, the key is there, the values are numeric and finite, text is UTF-8.

Shared so that a missing file or a NaN is worded the same whichever format it came from.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np

from rsmg.errors import DataError

__all__ = ["PathLike", "check_finite"]


PathLike = str | os.PathLike[str]

_REDOWNLOAD = "re-download it (or restore it from the original archive); the copy on disk is damaged"


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
