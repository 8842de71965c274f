"""A scene without labels read a strip of rows at a time: what ``rsmg predict`` maps when it is larger than memory.

:class:`WindowedScene` is the catalog scene of :func:`rsmg.data.catalog.load_scene` minus the arrays: per
modality a window reader (:mod:`rsmg.data.readers.windows`) and the scene's grid, names and files.
:meth:`WindowedScene.raw` gives rows as ``load_scene`` would (nodata and, with ``nonfinite="mask"``, NaN / inf
masked and zeroed; with ``"reject"`` an error), :meth:`WindowedScene.rows` after the data module's
:class:`~rsmg.data.band_prep.BandPrep` (reading its halo around the strip). :meth:`WindowedScene.scan` reads
every strip once, up front, to count the valid pixels of each: the predict samples are the valid pixels in
row-major order, as for a scene in memory, and a bad file fails before the model runs.

Formats: a GeoTIFF or ENVI raster is read through rasterio windows and a ``.npy`` through a read-only memory
map, so memory holds a strip, never the raster. A ``.mat`` (scipy / h5py read a variable whole) or a ``.npz``
(a zip member) is read whole once, then served in strips like the others (docs/decisions.md#windowed-prediction).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rsmg.data.band_prep import BandPrep
from rsmg.data.catalog import (
    _checked_sensor,
    _common_grid,
    _file,
    _modality_ref,
    _yaml,
    dataset_info,
    resolve_root,
)
from rsmg.data.catalog_yaml import RASTER_SUFFIXES
from rsmg.data.readers import read_array, read_mat
from rsmg.data.readers.windows import ArrayWindows, GdalWindows, open_gdal_windows
from rsmg.data.splits import require_nonempty
from rsmg.errors import DataError

__all__ = ["StripIndex", "WindowedScene", "open_windowed_scene", "windowable"]

Windows = GdalWindows | ArrayWindows
log = logging.getLogger(__name__)


@dataclass
class StripIndex:
    """Where the valid pixels of a scene are, strip by strip: predict sample ``i`` ↔ a flat pixel position.

    Attributes:
        rows: strip height (the last strip may be shorter).
        width: scene width.
        height: scene height.
        counts: valid pixels per strip; ``starts[s]`` = samples before strip ``s`` (``len(counts) + 1`` entries).
        bits: per strip, its validity packed row by row (``np.packbits(valid, axis=1)``) or None where every
            pixel is valid: one bit per pixel of the strips that have nodata, nothing for the others.
        row_starts: per strip with bits, the valid pixels before each of its rows (``n + 1`` entries), so a
            sample's pixel is found by unpacking its row only.
    """

    rows: int
    width: int
    height: int
    counts: np.ndarray
    bits: list[np.ndarray | None]
    starts: np.ndarray = field(init=False)
    row_starts: list[np.ndarray | None] = field(init=False)

    def __post_init__(self) -> None:
        self.starts = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)
        self.row_starts = [
            None
            if b is None
            else np.concatenate([[0], np.cumsum(np.unpackbits(b, axis=1).sum(axis=1))]).astype(np.int64)
            for b in self.bits
        ]

    @property
    def n(self) -> int:
        """Number of valid pixels (predict samples)."""
        return int(self.starts[-1])

    def strip_rows(self, s: int) -> tuple[int, int]:
        """Scene rows ``(r0, r1)`` of strip ``s``."""
        return s * self.rows, min((s + 1) * self.rows, self.height)

    def strip_of(self, samples: np.ndarray) -> np.ndarray:
        """The strip of each sample number."""
        return np.searchsorted(self.starts, samples, side="right") - 1

    def positions(self, samples: np.ndarray) -> np.ndarray:
        """Flat row-major pixel position of each sample number (``0 … n-1``)."""
        samples = np.asarray(samples, dtype=np.int64)
        out = np.empty(samples.shape, dtype=np.int64)
        strips = self.strip_of(samples)
        for s in np.unique(strips):
            sel = strips == s
            local = samples[sel] - self.starts[s]
            r0 = self.strip_rows(int(s))[0]
            bits, row_starts = self.bits[s], self.row_starts[s]
            if bits is None or row_starts is None:  # every pixel valid: the k-th sample is the k-th pixel
                out[sel] = r0 * self.width + local
                continue
            rows = np.searchsorted(row_starts, local, side="right") - 1
            flat = np.empty(len(local), dtype=np.int64)
            for r in np.unique(rows):  # the rows a batch touches, each unpacked once
                at = rows == r
                cols = np.flatnonzero(np.unpackbits(bits[r], count=self.width))
                flat[at] = (r0 + r) * self.width + cols[local[at] - row_starts[r]]
            out[sel] = flat
        return out


@dataclass
class WindowedScene:
    """One scene without labels, read in strips of rows (see the module docstring).

    Attributes mirror :class:`~rsmg.data.scene.Scene`'s; ``windows`` replaces ``modalities`` and ``prep`` (set by
    the data module) is applied to every strip.
    """

    name: str
    windows: dict[str, Windows]
    class_names: tuple[str, ...]
    band_names: dict[str, tuple[str, ...]]
    sensors: dict[str, str]
    files: dict[str, str]
    georef: dict[str, Any] | None = None
    nonfinite: str = "reject"
    prep: BandPrep = field(default_factory=BandPrep)
    labelled: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        """Height and width of the scene."""
        _, h, w = next(iter(self.windows.values())).shape
        return h, w

    def raw(self, r0: int, r1: int) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """Rows ``r0 … r1-1`` of every modality as ``load_scene`` reads them, and their validity (None: all valid).

        Raises:
            DataError: NaN / inf in a ``.npy`` / ``.mat`` raster with ``nonfinite="reject"``.
        """
        arrays: dict[str, np.ndarray] = {}
        masks: dict[str, np.ndarray | None] = {}
        for mod, win in self.windows.items():
            arrays[mod], masks[mod] = win.read(r0, r1)
        valid = None
        for mod, arr in arrays.items():
            bad = ~np.isfinite(arr)
            if not bad.any():
                continue
            if self.nonfinite != "mask":
                raise DataError(
                    f"{int(bad.sum())} NaN/inf values in modality {mod!r} of scene {self.name!r} (rows {r0}-{r1 - 1})",
                    file=self.files.get(mod),
                    field=mod,
                    expected="finite values",
                    found=f"{int(bad.sum())} non-finite",
                    fix="load with nonfinite='mask' to drop the affected pixels, or clean the file",
                )
            ok = ~bad.any(axis=0)
            valid = ok if valid is None else valid & ok
            arr[bad] = 0.0
        for mask in masks.values():  # a GeoTIFF's declared nodata is never data, whatever `nonfinite` says
            if mask is not None and not mask.all():
                valid = mask if valid is None else valid & mask
        return arrays, valid

    def rows(self, r0: int, r1: int) -> dict[str, np.ndarray]:
        """Rows ``r0 … r1-1`` after :attr:`prep`: those of the whole scene prepared at once (nDSM: up to rounding)."""
        h = self.shape[0]
        lo, hi = max(0, r0 - self.prep.halo), min(h, r1 + self.prep.halo)
        arrays, _ = self.raw(lo, hi)
        self.prep(arrays)
        return {m: a[:, r0 - lo : r1 - lo] for m, a in arrays.items()}

    def scan(self, rows: int) -> StripIndex:
        """Read every strip of ``rows`` rows once and index its valid pixels (errors of the files surface here).

        Raises:
            DataError: a file's error (see :meth:`raw`), or no valid pixel at all.
        """
        h, w = self.shape
        counts, bits = [], []
        for r0 in range(0, h, rows):
            r1 = min(r0 + rows, h)
            _, valid = self.raw(r0, r1)
            counts.append((r1 - r0) * w if valid is None else int(np.count_nonzero(valid)))
            bits.append(None if valid is None else np.packbits(valid, axis=1))
        index = StripIndex(rows, w, h, np.asarray(counts, dtype=np.int64), bits)
        require_nonempty(
            np.arange(min(index.n, 1)),
            what=f"valid pixels of target {self.name!r}",
            file=next(iter(self.files.values()), None),
            fix="check the rasters' nodata values",
        )
        return index


def windowable(name: str) -> bool:
    """Whether catalog scene ``name`` can be read in windows: a ``scene`` without labels, ``H×W×C`` rasters.

    A scene without labels that cannot (another layout) is read whole, with a warning saying so.
    """
    info = dataset_info(name)
    if info.kind != "scene" or info.labelled:
        return False
    entry = _yaml("datasets.yaml")[name]
    layouts = {mod: ref.get("layout", "HWC") for mod, ref in entry["modalities"].items()}
    other = {mod: layout for mod, layout in layouts.items() if layout != "HWC"}
    if other:
        log.warning(
            "%s: read whole, not in strips: only H×W×C rasters are read in strips, and modalities %s have layout "
            "%s; store them as GeoTIFF or as H×W×C arrays with layout: HWC to predict in strips", name,
            sorted(other), sorted(set(other.values())),
        )  # fmt: skip
    return not other


def _open(root: Path, ref: dict[str, Any], dataset: str, mod: str) -> Windows:
    """The window reader of one modality's file (a ``.mat`` / ``.npz`` is read whole here)."""
    path = _file(root, ref["file"], dataset, download=bool(ref.get("download")))
    suffix = path.suffix.lower()
    if suffix in RASTER_SUFFIXES:
        return open_gdal_windows(path)
    if suffix in (".npy", ".npz"):
        arr = read_array(path, key=ref.get("key"), candidates=tuple(ref.get("candidates", ())), mmap=True)
    else:
        arr = read_mat(path, key=ref.get("key"), candidates=tuple(ref.get("candidates", ())))
    mapped = isinstance(arr.base, np.memmap)
    if arr.ndim not in (2, 3):
        raise DataError(
            f"raster of {dataset!r} must be H×W×C or H×W",
            file=path,
            field=f"{dataset}.modalities.{mod}.file",
            expected="a 3-D (H×W×C) or 2-D (H×W, one band) array",
            found=arr.shape,
            fix="check the file and the catalog key",
        )
    return ArrayWindows(path, arr.shape, None if mapped else arr)  # a map is reopened per read, never pickled


def open_windowed_scene(
    name: str,
    modalities: list[str] | tuple[str, ...],
    *,
    root: str | os.PathLike[str] | None = None,
    nonfinite: str = "reject",
) -> WindowedScene:
    """A :class:`WindowedScene` of catalog scene ``name``: files found and checked, no pixel read yet.

    Raises:
        ConfigError: unknown dataset or modality.
        MissingDatasetError: a file is absent.
        DataError: wrong band count, rasters of different sizes or on different grids (as ``load_scene``).
    """
    info = dataset_info(name)
    base = resolve_root(root)
    entry = _yaml("datasets.yaml")[name]
    windows: dict[str, Windows] = {}
    files: dict[str, str] = {}
    band_names: dict[str, tuple[str, ...]] = {}
    for mod in modalities:
        ref = _modality_ref(entry, name, mod)
        win = windows[mod] = _open(base, ref, name, mod)
        wavelengths = header = None
        if isinstance(win, GdalWindows):
            wavelengths, header = win.wavelengths_nm, win.header
        sensor = _checked_sensor(name, mod, ref, win.shape[0], win.path, wavelengths, header)
        files[mod], band_names[mod] = str(win.path), sensor.band_names
    shapes = {mod: win.shape[1:] for mod, win in windows.items()}
    first = next(iter(windows))
    for mod, hw in shapes.items():
        if hw != shapes[first]:
            raise DataError(
                f"modality {mod!r} is not co-registered with modality {first!r} of scene {name!r}",
                file=files[mod],
                field=f"{mod} height × width",
                expected="×".join(map(str, shapes[first])) + f" ({files[first]})",
                found="×".join(map(str, hw)),
                fix="resample/crop the rasters to the same grid before loading",
            )
    grids = {m: (w.path, w.georef if isinstance(w, GdalWindows) else None) for m, w in windows.items()}
    return WindowedScene(
        name=name,
        windows=windows,
        class_names=info.classes,
        band_names=band_names,
        sensors={m: info.modalities[m] for m in windows},
        files=files,
        georef=_common_grid(name, grids),
        nonfinite=nonfinite,
    )
