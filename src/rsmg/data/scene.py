"""Pixel-level multimodal scenes and the dataset that cuts patches from them.

A :class:`Scene` holds one in-memory ``C×H×W`` float32 array per modality, co-registered, plus a label map
(0 = unlabelled). :class:`SceneDataset` turns a list of pixel positions into samples: a ``p×p`` patch of every
modality centred on the pixel, the label and the domain. Patches are cut on the fly from the one (padded)
array per modality; nothing is copied per sample until the patch itself.

Vector datasets (one spectrum per pixel, no image, e.g. the Houston 2013 MDL-RS release) are stored as scenes
of height 1 and width N, which makes them the same object with ``patch_size=1``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from rsmg.data.spec import image_key
from rsmg.data.standardize import patch_standardize
from rsmg.errors import DataError

PadMode = Literal["reflect", "constant", "edge"]


class BatchedSamples(dict[str, Any]):
    """A batch that a dataset already collated (marker type recognised by :func:`collate_samples`)."""


def collate_samples(data: Any) -> Any:
    """``collate_fn`` for rsmg loaders: pass pre-collated batches through, collate lists of samples normally."""
    if isinstance(data, BatchedSamples):
        return dict(data)
    return default_collate(data)


@dataclass
class Scene:
    """One co-registered multimodal scene.

    Attributes:
        name: domain name (e.g. ``"trento"``).
        modalities: modality → ``C×H×W`` float32 array.
        labels: ``H×W`` integer map of native class ids; 0 = unlabelled.
        class_names: native class names; id ``i`` (1-based) is ``class_names[i-1]``.
        band_names: modality → band names in channel order.
        sensors: modality → sensor name in the band registry.
        split_maps: named ``H×W`` maps (non-zero = pixel in that split), e.g. ``"train"``, ``"test"``.
        files: modality / ``"labels"`` → source file, for error messages.
        valid: ``H×W`` bool, False where any modality had nodata / NaN (masked, not rejected).
        georef: ``{"crs": str | None, "transform": (a, b, c, d, e, f)}`` of the GeoTIFFs the scene was read
            from (rasterio's affine order), or None (``.mat`` / ``.npy`` files have no grid): what a
            classification map of the scene is written on.
        labelled: False for a scene without a label map (``labels`` all 0): a target to predict, not to test.
    """

    name: str
    modalities: dict[str, np.ndarray]
    labels: np.ndarray
    class_names: tuple[str, ...]
    band_names: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sensors: dict[str, str] = field(default_factory=dict)
    split_maps: dict[str, np.ndarray] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    valid: np.ndarray | None = None
    georef: dict[str, Any] | None = None
    labelled: bool = True

    def __post_init__(self) -> None:
        self.validate()

    @property
    def shape(self) -> tuple[int, int]:
        """Height and width of the scene."""
        return int(self.labels.shape[0]), int(self.labels.shape[1])

    def validate(self) -> None:
        """Check that every raster is co-registered with the label map and finite.

        Raises:
            DataError: shapes differ or values are not finite; the message names the file and the fix.
        """
        if self.labels.ndim != 2:
            raise DataError(
                "label map must be 2-D (H×W)",
                file=self.files.get("labels"),
                field="labels",
                expected="H×W",
                found=self.labels.shape,
                fix="pass the class map, not a one-hot cube",
            )
        h, w = self.shape
        for mod, arr in self.modalities.items():
            if arr.ndim != 3 or arr.shape[1:] != (h, w):
                raise DataError(
                    f"modality {mod!r} is not co-registered with the label map of scene {self.name!r}",
                    file=self.files.get(mod),
                    field=f"{mod} height × width",
                    expected=f"C×{h}×{w} (label map {self.files.get('labels', '')})",
                    found="×".join(map(str, arr.shape)),
                    fix="resample/crop the rasters to the same grid before loading",
                )
            names = self.band_names.get(mod)
            if names is not None and len(names) != arr.shape[0]:
                raise DataError(
                    f"wrong band count for modality {mod!r}",
                    file=self.files.get(mod),
                    field="bands",
                    expected=f"{len(names)} bands ({self.sensors.get(mod, '?')})",
                    found=arr.shape[0],
                    fix="select the bands by name or use the matching sensor",
                )
            if not np.isfinite(arr).all():
                bad = int((~np.isfinite(arr)).sum())
                raise DataError(
                    f"{bad} NaN/inf values in modality {mod!r} of scene {self.name!r}",
                    file=self.files.get(mod),
                    field=mod,
                    expected="finite values",
                    found=f"{bad} non-finite",
                    fix="load with nonfinite='mask' to drop the affected pixels, or clean the file",
                )
        for name, m in self.split_maps.items():
            if m.shape != (h, w):
                raise DataError(
                    f"split map {name!r} has another shape than the label map",
                    file=self.files.get(name),
                    field=name,
                    expected=(h, w),
                    found=m.shape,
                    fix="use the split map of this scene",
                )

    def valid_positions(self) -> np.ndarray:
        """Flat (row-major) positions of every valid pixel, labelled or not: the pixels of a whole-scene map."""
        h, w = self.shape
        if self.valid is None:
            return np.arange(h * w, dtype=np.int64)
        return np.flatnonzero(self.valid.ravel())

    def labelled_positions(self, split: str | None = None) -> np.ndarray:
        """Flat (row-major) positions of labelled, valid pixels, optionally inside a named split map."""
        m = self.labels > 0
        if split is not None:
            if split not in self.split_maps:
                raise DataError(
                    f"scene {self.name!r} has no split {split!r}",
                    field="split",
                    expected=f"one of {sorted(self.split_maps)} or a sampling rule",
                    found=split,
                    fix="use 'per_class:N', 'fraction:F' or 'all' for seeded sampling",
                )
            m &= self.split_maps[split] > 0
        if self.valid is not None:
            m &= self.valid
        return np.flatnonzero(m.ravel())


def standardize_patches(batch: Mapping[str, object], bands: Mapping[str, tuple[int, ...]]) -> None:
    """Z-score, in place, each listed band of each ``B×C×p×p`` patch tensor with the patch's own statistics."""
    for mod, idx in bands.items():
        x = batch[image_key(mod)]
        assert isinstance(x, torch.Tensor)
        for i in idx:
            x[:, i] = patch_standardize(x[:, i])


def check_patch_size(patch_size: int, shape: tuple[int, int], name: str) -> None:
    """Refuse an even or non-positive patch side, or one larger than the scene (its padding would exceed it).

    Raises:
        DataError: naming the field and the limit.
    """
    if patch_size < 1 or patch_size % 2 == 0:
        raise DataError(
            "patch size must be a positive odd number",
            field="patch_size",
            expected="1, 3, 5, …",
            found=patch_size,
            fix="use an odd patch size such as 11",
        )
    h, w = shape
    if patch_size > 1 and (patch_size > h or patch_size > w):
        raise DataError(
            f"patch size larger than scene {name!r}",
            field="patch_size",
            expected=f"<= min(H, W) = {min(h, w)}",
            found=patch_size,
            fix="use a smaller patch_size",
        )


def _padded(
    arr: np.ndarray, r: int, pad_mode: PadMode, stats: tuple[np.ndarray, np.ndarray] | None
) -> np.ndarray:
    """``arr`` normalised with ``stats`` (per-band mean, std) and padded by ``r`` pixels: one new float32 array.

    Padding comes first and normalisation runs in place on the padded copy, so building a dataset holds the scene
    and one copy, not two (reflect / edge padding copies values, which normalise alike; a constant border is
    zeroed again after normalising, as if the normalised array had been padded).
    """
    out = np.pad(arr.astype(np.float32, copy=False), ((0, 0), (r, r), (r, r)), mode=pad_mode)  # a new array
    if stats is not None:
        mean, std = stats
        out -= mean[:, None, None].astype(np.float32)
        out /= std[:, None, None].astype(np.float32)
        if pad_mode == "constant" and r:
            out[:, :r], out[:, -r:], out[:, :, :r], out[:, :, -r:] = 0.0, 0.0, 0.0, 0.0
    return np.ascontiguousarray(out)


class PatchSamples:
    """Sample and batch access shared by the patch datasets: they differ only in how ``_gather`` cuts patches.

    A subclass sets ``labels`` (one class index per sample, -1 = none), ``domain`` and ``index_offset``.
    """

    labels: np.ndarray
    domain: int
    index_offset: int

    def __len__(self) -> int:
        raise NotImplementedError

    def _gather(self, idx: Sequence[int] | np.ndarray) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def __getitem__(self, i: int) -> dict[str, object]:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i = i % len(self)
        patches = self._gather([i])
        sample: dict[str, object] = {k: v[0] for k, v in patches.items()}
        sample["label"] = torch.tensor(self.labels[i])
        sample["domain"] = torch.tensor(self.domain)
        sample["index"] = torch.tensor(self.index_offset + i)
        return sample

    def __getitems__(self, idx: list[int]) -> BatchedSamples:
        """Batched fetch used by ``DataLoader``: one gather per modality for the whole batch.

        Returns an already-collated batch (see :func:`collate_samples`), which avoids building and re-stacking
        one dict per sample: this is what makes the loader reach tens of thousands of patches per second.
        """
        batch = BatchedSamples(self._gather(idx))
        n = len(idx)
        batch["label"] = torch.from_numpy(self.labels[np.asarray(idx)])
        batch["domain"] = torch.full((n,), self.domain, dtype=torch.int64)
        batch["index"] = torch.as_tensor(idx, dtype=torch.int64) + self.index_offset
        return batch


class SceneDataset(PatchSamples, Dataset[dict[str, object]]):
    """Samples = labelled pixels of one scene, each with a patch of every modality.

    Args:
        scene: the scene; its arrays are padded once here (one copy per modality, not per sample).
        positions: flat row-major pixel positions to serve.
        patch_size: odd side of the square patch.
        class_map: native class id → target class index (-1 = excluded). Positions whose class is excluded
            must already be filtered out by the caller.
        domain: domain index put in every sample.
        normalize: modality → (mean, std) arrays of length C; applied once to the padded arrays.
        patch_standardize: modality → band indices z-scored per patch with the patch's own median and IQR
            (:func:`rsmg.data.standardize.patch_standardize`), after ``normalize``.
        pad_mode: how patches are completed at the scene border.
        index_offset: added to ``index`` so indices are unique across the datasets of one datamodule.
        unlabelled: serve positions without a mapped class too (label ``-1``): the pixels of a whole-scene
            prediction, never of training or testing.
    """

    def __init__(
        self,
        scene: Scene,
        positions: np.ndarray,
        *,
        patch_size: int,
        class_map: np.ndarray,
        domain: int,
        normalize: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
        patch_standardize: dict[str, tuple[int, ...]] | None = None,
        pad_mode: PadMode = "reflect",
        index_offset: int = 0,
        unlabelled: bool = False,
    ) -> None:
        check_patch_size(patch_size, scene.shape, scene.name)
        h, w = scene.shape
        self.scene_name = scene.name
        self.patch_size = patch_size
        self.width = w
        self.shape = (h, w)
        self.georef = scene.georef
        self.files = dict(scene.files)
        self.domain = domain
        self.index_offset = index_offset
        self.positions = np.asarray(positions, dtype=np.int64)
        self.patch_standardize = {m: tuple(i) for m, i in (patch_standardize or {}).items() if i}
        if scene.labelled:
            labels_flat = scene.labels.ravel()[self.positions].astype(np.int64)
            self.labels = np.asarray(class_map, dtype=np.int64)[labels_flat]
        else:  # no ground truth: one read-only -1 for every sample, no array per pixel
            self.labels = np.broadcast_to(np.asarray(class_map, dtype=np.int64)[0], self.positions.shape)
        if not unlabelled and (self.labels < 0).any():  # with `unlabelled`, -1 = no (mapped) ground truth
            raise DataError(
                "positions include pixels of excluded classes",
                field="class_map",
                expected="only mapped classes",
                found=int((self.labels < 0).sum()),
                fix="filter positions with the class map first (CrossDomainDataModule does this)",
            )
        r = patch_size // 2
        self.modalities = sorted(scene.modalities)
        self._arrays: dict[str, torch.Tensor] = {}
        for mod in self.modalities:
            self._arrays[mod] = torch.from_numpy(
                _padded(scene.modalities[mod], r, pad_mode, (normalize or {}).get(mod))
            )
        offs = torch.arange(patch_size)
        self._row_off = offs.view(1, -1, 1)
        self._col_off = offs.view(1, 1, -1)

    def __len__(self) -> int:
        return len(self.positions)

    def _gather(self, idx: Sequence[int] | np.ndarray) -> dict[str, torch.Tensor]:
        pos = torch.from_numpy(self.positions[np.asarray(idx, dtype=np.int64)])
        rows = (pos // self.width).view(-1, 1, 1) + self._row_off
        cols = (pos % self.width).view(-1, 1, 1) + self._col_off
        out: dict[str, torch.Tensor] = {}
        for mod, arr in self._arrays.items():
            # advanced indexing: B×p×p index grids → C×B×p×p, then batch first
            out[image_key(mod)] = arr[:, rows, cols].permute(1, 0, 2, 3).contiguous()
        standardize_patches(out, self.patch_standardize)
        return out

    def pixel_rows_cols(self, samples: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of every sample, or of the given sample numbers (``0 … len - 1``), for maps."""
        pos = self.positions if samples is None else self.positions[np.asarray(samples, dtype=np.int64)]
        return pos // self.width, pos % self.width
