"""Array files: MATLAB ``.mat`` v5 (scipy) and v7.3 (HDF5, h5py), and numpy ``.npy`` / ``.npz``.

A truncated ``.mat`` is caught before scipy or h5py read it, so the error names the file rather than a
struct offset; scipy and h5py are imported inside the readers.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from rsmg.data.readers.checks import (
    _REDOWNLOAD,
    PathLike,
    _check_numeric,
    _pick_key,
    _require_file,
)
from rsmg.errors import DataError

__all__ = ["list_mat_keys", "read_array", "read_mat"]


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


def read_array(
    path: PathLike, key: str | None = None, candidates: tuple[str, ...] = (), *, mmap: bool = False
) -> np.ndarray:
    """Read a ``.npy`` array or one array of a ``.npz`` archive.

    Pickled (object) arrays are refused: unpickling runs arbitrary code and rasters never need it.

    Args:
        path: ``.npy`` or ``.npz`` file.
        key: ``.npz`` member name; chosen as in :func:`read_mat` when None. Ignored for ``.npy``.
        candidates: ``.npz`` member names to try when ``key`` is None.
        mmap: map a ``.npy`` read-only (``np.memmap``: rows are read from disk when sliced, so a scene larger
            than memory can be predicted strip by strip). A ``.npz`` member is a zip entry that cannot be
            mapped: it is read whole whatever ``mmap`` says.

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
            return np.asarray(np.load(p, allow_pickle=False, mmap_mode="r" if mmap else None))
        with np.load(p, allow_pickle=False) as z:
            k = _pick_key(list(z.files), key, candidates, file=p, kind="npz archive")
            return np.asarray(z[k])
    except DataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "python objects" in str(exc).lower():  # np.load / its memmap
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
