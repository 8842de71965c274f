"""The per-sample table of one predict dataloader, and its ``.npz`` / ``.csv`` files, written in chunks.

Why: ``rsmg predict`` on a whole scene has one row per pixel, millions of them. :class:`DiskTable` writes each
batch's rows to one raw ``.npy`` file per column, at the row of its sample (``index - index_offset``), as the
batch arrives, so memory holds one batch, not every pixel's probabilities. :class:`MemoryTable` is the same
table already in memory (predictions gathered from DDP ranks, or datasets without pixel slots). Both are read
back in chunks of rows, in sample order, by :func:`write_npz` and :func:`write_csv`; samples never predicted
(``limit_predict_batches``) are left out, as are repeats (the slot holds one row).

The ``.npz`` members are written through :mod:`zipfile` with the ``.npy`` header numpy writes, deflated as
``numpy.savez_compressed`` does; the archive goes through :func:`rsmg.io.atomic_open`, so an interrupted run
leaves no half-written file.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from math import prod
from pathlib import Path
from typing import IO, Protocol

import numpy as np

from rsmg.io import atomic_open

__all__ = ["COLUMNS", "DiskTable", "MemoryTable", "Table", "write_csv", "write_npz"]

Columns = dict[str, np.ndarray]
COLUMNS: tuple[str, ...] = ("index", "row", "col", "label", "pred", "probs")
"""The per-sample columns of a prediction table, in the ``.npz``'s order (``probs`` is ``N×K`` float32)."""
CHUNK_ROWS = 65_536


def _dtype(name: str) -> np.dtype:
    return np.dtype(np.float32 if name == "probs" else np.int64)


class Table(Protocol):
    """What the writers read: ``k`` classes, ``n`` rows and chunks of them in sample order."""

    k: int

    @property
    def n(self) -> int:
        """Number of rows."""
        ...

    def chunks(self, names: Sequence[str] = COLUMNS, size: int = CHUNK_ROWS) -> Iterator[Columns]:
        """The named columns, a range of rows at a time, in sample order."""
        ...


class MemoryTable:
    """A table whose columns (``COLUMNS``, equally long, sorted by ``index``) are already in memory."""

    def __init__(self, columns: Mapping[str, np.ndarray]) -> None:
        self.columns = {name: np.asarray(columns[name], dtype=_dtype(name)) for name in COLUMNS}
        self.k = int(self.columns["probs"].shape[1])

    @property
    def n(self) -> int:
        """Number of rows."""
        return len(self.columns["index"])

    def chunks(self, names: Sequence[str] = COLUMNS, size: int = CHUNK_ROWS) -> Iterator[Columns]:
        """Consecutive row ranges of the named columns."""
        for start in range(0, self.n, size):
            yield {name: self.columns[name][start : start + size] for name in names}


class DiskTable:
    """A table of ``n`` sample slots in ``folder``, one raw file per column, filled batch by batch.

    Args:
        folder: an empty scratch directory (removed by :meth:`close`).
        n: number of samples of the dataset (slot ``i`` = sample ``index_offset + i``).
        k: number of classes.
        index_offset: the dataset's first sample index.
    """

    def __init__(self, folder: Path, n: int, k: int, index_offset: int = 0) -> None:
        self.folder, self.k, self.size, self.index_offset = folder, k, n, index_offset
        self.filled = np.zeros(n, dtype=bool)
        self._fds: dict[str, int] = {}
        for name in COLUMNS:
            width = _dtype(name).itemsize * (k if name == "probs" else 1)
            fd = os.open(folder / f"{name}.bin", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            self._fds[name] = fd
            os.ftruncate(fd, n * width)  # sparse: disk blocks only where rows are written
        self._width = {name: _dtype(name).itemsize * (k if name == "probs" else 1) for name in COLUMNS}

    @property
    def n(self) -> int:
        """Number of rows written (filled slots)."""
        return int(np.count_nonzero(self.filled))

    def slots(self, index: np.ndarray) -> np.ndarray:
        """Slot of each sample index.

        Raises:
            IndexError: an index outside ``[index_offset, index_offset + n)`` (not a sample of this dataset).
        """
        slots = np.asarray(index, dtype=np.int64) - self.index_offset
        if len(slots) and (slots.min() < 0 or slots.max() >= self.size):
            raise IndexError(
                f"sample index {int(index[np.argmax((slots < 0) | (slots >= self.size))])} is not one of the "
                f"{self.size} samples from {self.index_offset} of this predict dataset"
            )
        return slots

    def put(self, columns: Mapping[str, np.ndarray]) -> None:
        """Write one batch's rows (every name of ``COLUMNS``) at their slots; a run of slots is one write."""
        slots = self.slots(columns["index"])
        if not len(slots):
            return
        runs = np.split(np.arange(len(slots)), np.flatnonzero(np.diff(slots) != 1) + 1)
        for name in COLUMNS:
            values = np.ascontiguousarray(columns[name], dtype=_dtype(name))
            for run in runs:
                data = values[run[0] : run[-1] + 1].tobytes()
                os.pwrite(self._fds[name], data, int(slots[run[0]]) * self._width[name])
        self.filled[slots] = True

    def _read(self, name: str, start: int, stop: int) -> np.ndarray:
        width = self._width[name]
        data = os.pread(self._fds[name], (stop - start) * width, start * width)
        values = np.frombuffer(data, dtype=_dtype(name))
        return values.reshape(-1, self.k) if name == "probs" else values

    def chunks(self, names: Sequence[str] = COLUMNS, size: int = CHUNK_ROWS) -> Iterator[Columns]:
        """The filled rows of the named columns, in slot (= sample index) order, ``size`` slots at a time."""
        for start in range(0, self.size, size):
            stop = min(start + size, self.size)
            keep = self.filled[start:stop]
            if keep.any():
                yield {name: self._read(name, start, stop)[keep] for name in names}

    def close(self) -> None:
        """Close the files and remove the scratch folder (idempotent)."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}
        shutil.rmtree(self.folder, ignore_errors=True)


def _npy_header(fh: IO[bytes], dtype: np.dtype, shape: tuple[int, ...]) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(fh, header)


def write_npz(path: Path, table: Table, extra: Mapping[str, np.ndarray]) -> Path:
    """``path`` as ``numpy.savez_compressed`` would write ``COLUMNS`` of ``table`` plus ``extra``, chunk by chunk.

    Returns:
        The path.
    """
    with atomic_open(path) as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for name in COLUMNS:
            shape = (table.n, table.k) if name == "probs" else (table.n,)
            with zf.open(
                f"{name}.npy", "w", force_zip64=prod(shape) * _dtype(name).itemsize > 2**30
            ) as member:
                _npy_header(member, _dtype(name), shape)
                for chunk in table.chunks((name,)):
                    member.write(chunk[name].tobytes())
        for name, value in extra.items():
            with zf.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
    return path


def write_csv(path: Path, table: Table, classes: Sequence[str]) -> Path:
    """``index,row,col,label,pred,label_name,pred_name,confidence``, one line per row, written chunk by chunk.

    Returns:
        The path.
    """
    with atomic_open(path) as fh:
        text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        w = csv.writer(text, lineterminator="\n")
        w.writerow(["index", "row", "col", "label", "pred", "label_name", "pred_name", "confidence"])
        for chunk in table.chunks():
            conf = chunk["probs"].max(axis=1) if len(chunk["probs"]) else np.zeros(0)
            for i, r, c, y, p, q in zip(
                chunk["index"].tolist(),
                chunk["row"].tolist(),
                chunk["col"].tolist(),
                chunk["label"].tolist(),
                chunk["pred"].tolist(),
                conf.tolist(),
                strict=True,
            ):
                w.writerow(
                    [i, r, c, y, p, classes[y] if 0 <= y < len(classes) else "", classes[p], f"{q:.7g}"]
                )
        text.flush()
        text.detach()  # leave the binary handle to atomic_open (fsync, rename)
    return path
