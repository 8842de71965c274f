"""Predict samples of a scene read in strips of rows: memory per strip, not per scene.

:class:`StripSceneDataset` serves the valid pixels of a :class:`~rsmg.data.windowed_scene.WindowedScene` in
row-major order, like :class:`~rsmg.data.scene.SceneDataset` serves a scene in memory, and cuts the same
patches: a strip of rows ``r0 … r1-1`` is read with ``patch_size // 2`` rows above and below (plus the
band preparation's own halo), padded at the scene's borders exactly as the whole raster is padded, normalised
with the source statistics, and kept while its samples are served (two strips at most: a batch may straddle
them). The samples and their indices are therefore the whole-raster path's, and so are the patches, up to
float32 rounding of the nDSM's smoothing (scipy's running sum starts at the strip's first row: equal on MUUFL
and the tests, not guaranteed for any raster; docs/decisions.md#windowed-prediction). What differs is
memory: a strip, the strip index (a bit per pixel of the strips with nodata) and nothing per pixel of the
scene.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from rsmg.data.scene import PadMode, PatchSamples, check_patch_size, standardize_patches
from rsmg.data.spec import image_key
from rsmg.data.windowed_scene import StripIndex, WindowedScene

__all__ = ["STRIP_BYTES", "StripSceneDataset", "strip_rows_for"]

STRIP_BYTES = 32 * 2**20
"""Default size of one strip's raw rows (all modalities, float32): sets the strip height of :func:`strip_rows_for`."""
_KEEP = 2  # strips kept: the one being served and the one before (a batch may straddle them)


def strip_rows_for(scene: WindowedScene, halo: int) -> int:
    """Rows per strip: :data:`STRIP_BYTES` of raw float32 rows, and at least 4 × the halo read around a strip."""
    _, w = scene.shape
    channels = sum(win.shape[0] for win in scene.windows.values())
    return max(1, 4 * halo, STRIP_BYTES // (4 * channels * w))


def _source_rows(first: int, last: int, h: int, r: int, pad_mode: PadMode) -> tuple[np.ndarray, np.ndarray]:
    """Scene row of each padded row ``first … last-1`` (``-r ≤ first``, ``last ≤ H+r``) and which lie outside it.

    ``np.pad`` of the row numbers gives the row the whole raster's ``np.pad`` copies there (``constant``: a
    placeholder, the edge row, zeroed by the caller).
    """
    rows = np.pad(np.arange(h), r, mode="edge" if pad_mode == "constant" else pad_mode)[first + r : last + r]
    i = np.arange(first, last)
    return rows, (i < 0) | (i >= h)


class StripSceneDataset(PatchSamples, Dataset[dict[str, object]]):
    """Every valid pixel of a windowed scene without labels, each with a patch of every modality.

    Args:
        scene: the scene, with its band preparation set.
        index: its :meth:`~rsmg.data.windowed_scene.WindowedScene.scan`: the strips and their valid pixels.
        patch_size: odd side of the square patch.
        domain: domain index put in every sample.
        normalize / patch_standardize / pad_mode / index_offset: as :class:`~rsmg.data.scene.SceneDataset`.
    """

    def __init__(
        self,
        scene: WindowedScene,
        index: StripIndex,
        *,
        patch_size: int,
        domain: int,
        normalize: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
        patch_standardize: dict[str, tuple[int, ...]] | None = None,
        pad_mode: PadMode = "reflect",
        index_offset: int = 0,
    ) -> None:
        check_patch_size(patch_size, scene.shape, scene.name)  # as SceneDataset: the padding needs the rows
        self.scene = scene
        self.index = index
        self.scene_name = scene.name
        self.patch_size = patch_size
        self.shape = scene.shape
        self.width = self.shape[1]
        self.georef = scene.georef
        self.files = dict(scene.files)
        self.domain = domain
        self.index_offset = index_offset
        self.normalize = normalize or {}
        self.patch_standardize = {m: tuple(i) for m, i in (patch_standardize or {}).items() if i}
        self.pad_mode = pad_mode
        self.labels = np.broadcast_to(np.int64(-1), (index.n,))  # no ground truth, no array per pixel
        self._strips: OrderedDict[int, dict[str, torch.Tensor]] = OrderedDict()
        offs = torch.arange(patch_size)
        self._row_off = offs.view(1, -1, 1)
        self._col_off = offs.view(1, 1, -1)

    def __len__(self) -> int:
        return self.index.n

    def __getstate__(self) -> dict[str, object]:
        """Pickled into DataLoader workers without the strips in memory (each worker reads its own)."""
        return {**self.__dict__, "_strips": OrderedDict()}

    def _strip(self, s: int) -> dict[str, torch.Tensor]:
        """Strip ``s`` padded by ``patch_size // 2`` on every side and normalised: ``C×(n+2r)×(W+2r)``."""
        if s in self._strips:
            self._strips.move_to_end(s)
            return self._strips[s]
        r = self.patch_size // 2
        r0, r1 = self.index.strip_rows(s)
        h = self.shape[0]
        lo, hi = max(0, r0 - r), min(h, r1 + r)
        prepared = self.scene.rows(lo, hi)
        src, outside = _source_rows(r0 - r, r1 + r, h, r, self.pad_mode)
        out: dict[str, torch.Tensor] = {}
        for mod, arr in prepared.items():
            rows = arr[:, src - lo]  # a new array: the padded rows, top and bottom included
            if self.pad_mode == "constant":
                rows[:, outside] = 0.0
            padded = np.pad(rows, ((0, 0), (0, 0), (r, r)), mode=self.pad_mode)
            stats = self.normalize.get(mod)
            if (
                stats is not None
            ):  # as rsmg.data.scene._padded: normalise after padding, zero a constant border
                mean, std = stats
                padded -= mean[:, None, None].astype(np.float32)
                padded /= std[:, None, None].astype(np.float32)
                if self.pad_mode == "constant":
                    padded[:, outside] = 0.0
                    if r:
                        padded[:, :, :r], padded[:, :, -r:] = 0.0, 0.0
            out[mod] = torch.from_numpy(np.ascontiguousarray(padded))
        self._strips[s] = out
        while len(self._strips) > _KEEP:
            self._strips.popitem(last=False)
        return out

    def _gather(self, idx: Sequence[int] | np.ndarray) -> dict[str, torch.Tensor]:
        samples = np.asarray(idx, dtype=np.int64)
        pos = self.index.positions(samples)
        strips = self.index.strip_of(samples)
        parts: dict[str, list[torch.Tensor]] = {}
        order: list[np.ndarray] = []
        for s in dict.fromkeys(strips.tolist()):  # strips in the order the batch first meets them
            sel = np.flatnonzero(strips == s)
            order.append(sel)
            p = torch.from_numpy(pos[sel])
            rows = (p // self.width - self.index.strip_rows(s)[0]).view(-1, 1, 1) + self._row_off
            cols = (p % self.width).view(-1, 1, 1) + self._col_off
            for mod, arr in self._strip(s).items():
                parts.setdefault(mod, []).append(arr[:, rows, cols].permute(1, 0, 2, 3))
        out: dict[str, torch.Tensor] = {}
        for mod, chunks in parts.items():
            if len(chunks) == 1:  # one strip: its samples are the batch, in order
                out[image_key(mod)] = chunks[0].contiguous()
            else:  # back to the batch's order
                back = torch.from_numpy(np.argsort(np.concatenate(order), kind="stable"))
                out[image_key(mod)] = torch.cat(chunks)[back].contiguous()
        standardize_patches(out, self.patch_standardize)
        return out

    def pixel_rows_cols(self, samples: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of every sample, or of the given sample numbers (``0 … len - 1``), for maps."""
        if samples is None:
            samples = np.arange(len(self), dtype=np.int64)
        pos = self.index.positions(np.asarray(samples, dtype=np.int64))
        return pos // self.width, pos % self.width
