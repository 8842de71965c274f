"""A precomputed, on-disk bank of DTAug views of the source training patches.

DTAug (FVMGN, arXiv 2511.10774, component 1) adds diffusion reconstructions of the source patches as training
inputs. Running ``steps`` UNet passes per view inside every training step multiplies the cost of an epoch; the
views of a fixed ``(prior, strength, steps, seed)`` are a deterministic function of each sample
(:mod:`rsmg.diffusion.augment`), so they can be computed once and read back as a memory map.

Layout of ``bank_dir``::

    views.npy   N×K×C×H×W (float16 by default), C = stacked channels in sorted modality order
    meta.json   prior checksum, augmenter settings, dataset fingerprint, shape, dtype, progress

Guarantees:

* **Atomic.** The bank is built in a sibling folder ``.<name>.partial`` and renamed into place when complete,
  so ``bank_dir`` is either absent or a complete bank, never half-written.
* **Reusable.** :meth:`ViewBank.build` returns the existing bank when its ``meta.json`` matches the prior,
  augmenter settings and dataset; on a mismatch it raises or rebuilds (``on_mismatch``).
* **Resumable.** Work is done in chunks of ``batch_size`` samples; after each chunk the memory map is flushed
  and the chunk recorded in the partial ``meta.json``, so an interrupted build resumes where it stopped. Views
  are seeded per sample, so a resumed bank equals an uninterrupted one, whatever the chunking.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from rsmg.data.spec import image_key
from rsmg.diffusion.augment import DiffusionAugmenter
from rsmg.errors import ConfigError, DataError
from rsmg.io import atomic_write_json

BANK_FORMAT = "rsmg.view_bank"
BANK_FORMAT_VERSION = 1
VIEWS_FILE = "views.npy"
META_FILE = "meta.json"
_DTYPES = ("float16", "float32")
# Fields of meta.json that must be equal for a bank to be reused (or a partial build resumed).
_KEY_FIELDS = (
    "format_version",
    "prior_checksum",
    "modalities",
    "patch_size",
    "strength",
    "steps",
    "views",
    "seed",
    "eta",
    "dataset_fingerprint",
    "num_samples",
    "dtype",
)


def _read_meta(bank_dir: Path) -> dict[str, Any]:
    path = bank_dir / META_FILE
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(
            "cannot read the view bank's meta.json",
            file=path,
            found=repr(exc),
            fix="delete the folder and build the bank again",
        ) from exc
    if not isinstance(meta, dict) or meta.get("format") != BANK_FORMAT:
        raise DataError(
            "folder is not an rsmg view bank",
            file=path,
            field="format",
            expected=BANK_FORMAT,
            found=meta.get("format") if isinstance(meta, dict) else type(meta).__name__,
        )
    return meta


def _images_of(sample: dict[str, Any], modalities: Sequence[str], position: int) -> dict[str, torch.Tensor]:
    out = {}
    for m in modalities:
        key = image_key(m)
        if key not in sample:
            raise DataError(
                f"dataset sample {position} has no {key!r}",
                field=key,
                expected=f"keys {[image_key(k) for k in modalities]}",
                found=sorted(sample),
            )
        out[key] = torch.as_tensor(sample[key])
    return out


def dataset_fingerprint(dataset: Any, modalities: Sequence[str]) -> str:
    """Identify the content of a dataset, to tell whether a bank was built from it.

    A dataset may provide its own cheap identity as a ``fingerprint`` attribute (a string, or a method
    returning one), e.g. a hash of its catalog entry and split. Otherwise rsmg hashes the length, every
    sample's ``index`` and the bytes of its ``image_<modality>`` tensors: one pass over the data, much
    cheaper than the diffusion passes it protects.
    """
    fp = getattr(dataset, "fingerprint", None)
    if callable(fp):
        fp = fp()
    if isinstance(fp, str):
        return "dataset:" + fp
    h = hashlib.sha256(f"n={len(dataset)}".encode())
    for i in range(len(dataset)):
        sample = dataset[i]
        h.update(f"|{int(sample.get('index', i))}".encode())
        for key, t in _images_of(sample, modalities, i).items():
            a = t.detach().cpu().float().contiguous().numpy()
            h.update(f"{key}{a.shape}".encode())
            h.update(a.tobytes())
    return "sha256:" + h.hexdigest()


class ViewBank:
    """Read access to a complete view bank; build one with :meth:`build`, open one with :meth:`open`.

    Attributes:
        bank_dir: the bank folder.
        meta: the parsed ``meta.json``.
        modalities: modality → channels, in stacking (sorted) order.
    """

    def __init__(self, bank_dir: Path, meta: dict[str, Any], views: np.ndarray) -> None:
        self.bank_dir = bank_dir
        self.meta = meta
        self.modalities: dict[str, int] = dict(meta["modalities"])
        self._views = views

    # ------------------------------------------------------------------ reading
    @classmethod
    def open(cls, bank_dir: str | Path) -> ViewBank:
        """Open a complete bank read-only (memory-mapped: nothing is loaded until indexed).

        Raises:
            DataError: the folder is missing, incomplete, or its files disagree with ``meta.json``.
        """
        bank_dir = Path(bank_dir)
        if not (bank_dir / META_FILE).is_file():
            raise DataError(
                "no view bank here",
                file=bank_dir,
                expected=f"{META_FILE} and {VIEWS_FILE}",
                fix="build it with ViewBank.build(dataset, augmenter, bank_dir)",
            )
        meta = _read_meta(bank_dir)
        if not meta.get("complete"):
            raise DataError(
                "view bank is incomplete",
                file=bank_dir,
                field="complete",
                fix="run ViewBank.build again with the same settings to finish it",
            )
        views = np.load(bank_dir / VIEWS_FILE, mmap_mode="r")
        if list(views.shape) != list(meta["shape"]) or str(views.dtype) != meta["dtype"]:
            raise DataError(
                "views.npy does not match meta.json",
                file=bank_dir / VIEWS_FILE,
                expected=f"{meta['shape']} {meta['dtype']}",
                found=f"{list(views.shape)} {views.dtype}",
                fix="delete the folder and build the bank again",
            )
        return cls(bank_dir, meta, views)

    def __len__(self) -> int:
        return int(self._views.shape[0])

    @property
    def array(self) -> np.ndarray:
        """The read-only memory map ``N×K×C×H×W`` (stacked channels, sorted modality order)."""
        return self._views

    @property
    def num_views(self) -> int:
        """Views ``K`` stored per sample."""
        return int(self._views.shape[1])

    def get(self, index: int, view: int) -> dict[str, torch.Tensor]:
        """One view of one sample, as ``image_<modality>`` float32 tensors ``C×H×W``.

        Args:
            index: the sample's position in the dataset the bank was built from.
            view: view number in ``[0, K)``.
        """
        if not 0 <= index < len(self):
            raise IndexError(f"view bank {self.bank_dir}: index {index} out of range [0, {len(self)})")
        if not 0 <= view < self.num_views:
            raise IndexError(f"view bank {self.bank_dir}: view {view} out of range [0, {self.num_views})")
        x = torch.from_numpy(np.array(self._views[index, view], dtype=np.float32))
        parts = torch.split(x, list(self.modalities.values()), dim=0)
        return {image_key(m): p for m, p in zip(self.modalities, parts, strict=True)}

    def views(self, index: int) -> list[dict[str, torch.Tensor]]:
        """All ``K`` views of one sample (see :meth:`get`)."""
        return [self.get(index, v) for v in range(self.num_views)]

    # ------------------------------------------------------------------ building
    @staticmethod
    def key(
        augmenter: DiffusionAugmenter, fingerprint: str, num_samples: int, dtype: str = "float16"
    ) -> dict[str, Any]:
        """The ``meta.json`` fields that identify a bank's content."""
        prior = augmenter.prior
        return {
            "format_version": BANK_FORMAT_VERSION,
            "prior_checksum": prior.checksum(),
            "modalities": dict(prior.modalities),
            "patch_size": prior.patch_size,
            **augmenter.config,
            "dataset_fingerprint": fingerprint,
            "num_samples": int(num_samples),
            "dtype": dtype,
        }

    @classmethod
    def build(
        cls,
        dataset: Any,
        augmenter: DiffusionAugmenter,
        bank_dir: str | Path,
        batch_size: int = 64,
        *,
        dtype: Literal["float16", "float32"] = "float16",
        on_mismatch: Literal["error", "rebuild"] = "error",
        fingerprint: str | None = None,
    ) -> ViewBank:
        """Build (or reuse, or resume) the bank of ``augmenter.views`` views per sample of ``dataset``.

        Args:
            dataset: map-style dataset of sample dicts (``image_<modality>`` ``C×H×W``, ``index``); the
                source training split. Row ``i`` of the bank holds the views of ``dataset[i]``, seeded by its
                ``index``.
            augmenter: the DTAug augmenter; its prior checksum and settings go into ``meta.json``.
            bank_dir: destination folder (created).
            batch_size: samples per augmenter call, and per resumable chunk (a resumed build keeps the chunk
                size it started with; the views do not depend on it).
            dtype: storage dtype; float16 halves the disk size and is ample for normalised inputs.
            on_mismatch: what to do when ``bank_dir`` holds a bank of other settings: ``"error"`` or
                ``"rebuild"`` (replace it, atomically).
            fingerprint: dataset identity; computed with :func:`dataset_fingerprint` when omitted.

        Returns:
            The opened bank.

        Raises:
            ConfigError: bad ``batch_size``, ``dtype``, ``on_mismatch``, or an augmenter with ``views == 0``.
            DataError: an existing different bank with ``on_mismatch="error"``, a folder that is not a bank,
                an empty dataset, or samples that do not fit the prior.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(
                "batch_size must be >= 1", field="batch_size", expected="int >= 1", found=batch_size
            )
        if dtype not in _DTYPES:
            raise ConfigError("unknown bank dtype", field="dtype", expected=f"one of {_DTYPES}", found=dtype)
        if on_mismatch not in ("error", "rebuild"):
            raise ConfigError(
                "unknown on_mismatch", field="on_mismatch", expected="'error' or 'rebuild'", found=on_mismatch
            )
        if augmenter.views < 1:
            raise ConfigError(
                "a view bank needs at least one view per sample",
                field="views",
                expected="views >= 1",
                found=augmenter.views,
                fix="do not build a bank when DTAug views are disabled",
            )
        n = len(dataset)
        if n == 0:
            raise DataError(
                "cannot build a view bank of an empty dataset", field="dataset", found="0 samples"
            )
        prior = augmenter.prior
        bank_dir = Path(bank_dir)
        if fingerprint is None:
            fingerprint = dataset_fingerprint(dataset, list(prior.modalities))
        key = cls.key(augmenter, fingerprint, n, dtype)

        if bank_dir.exists():
            if not (bank_dir / META_FILE).is_file():
                if bank_dir.is_dir() and not any(bank_dir.iterdir()):
                    bank_dir.rmdir()
                else:
                    raise DataError(
                        "bank_dir exists and is not a view bank; refusing to overwrite it",
                        file=bank_dir,
                        fix="choose another bank_dir or remove this one",
                    )
            else:
                existing = _read_meta(bank_dir)
                diff = {f: (existing.get(f), key[f]) for f in _KEY_FIELDS if existing.get(f) != key[f]}
                if not diff and existing.get("complete"):
                    return cls.open(bank_dir)
                if on_mismatch == "error":
                    raise DataError(
                        "an existing view bank was built with other settings",
                        file=bank_dir,
                        field=", ".join(diff) or "complete",
                        expected={f: new for f, (_, new) in diff.items()} or "a complete bank",
                        found={f: old for f, (old, _) in diff.items()} or "an incomplete bank",
                        fix="pass on_mismatch='rebuild', or another bank_dir",
                    )

        partial = bank_dir.with_name(f".{bank_dir.name}.partial")
        c = prior.num_channels
        p = prior.data_size  # views are at the data's resolution
        shape = [n, augmenter.views, c, p, p]
        meta: dict[str, Any] | None = None
        if (partial / META_FILE).is_file():
            with contextlib.suppress(DataError):
                old = _read_meta(partial)
                if all(old.get(f) == key[f] for f in _KEY_FIELDS) and (partial / VIEWS_FILE).is_file():
                    meta = old
        if meta is None:  # nothing to resume: start afresh
            if partial.exists():
                shutil.rmtree(partial)
            partial.mkdir(parents=True)
            meta = {
                "format": BANK_FORMAT,
                **key,
                "shape": shape,
                "chunk_size": batch_size,
                "completed_chunks": [],
                "complete": False,
            }
            views = np.lib.format.open_memmap(
                partial / VIEWS_FILE, mode="w+", dtype=dtype, shape=tuple(shape)
            )
            del views
            atomic_write_json(partial / META_FILE, meta, indent=1, sort_keys=True)

        views = np.load(partial / VIEWS_FILE, mmap_mode="r+")
        chunk = int(meta["chunk_size"])
        done = set(meta["completed_chunks"])
        modalities = list(prior.modalities)
        for ci, start in enumerate(range(0, n, chunk)):
            if ci in done:
                continue
            stop = min(start + chunk, n)
            samples = [dataset[i] for i in range(start, stop)]
            per = [_images_of(s, modalities, start + j) for j, s in enumerate(samples)]
            images = {k: torch.stack([d[k] for d in per]) for k in per[0]}
            indices = torch.tensor([int(s.get("index", start + j)) for j, s in enumerate(samples)])
            out = augmenter(images, indices)
            block = torch.stack([prior.stack(v) for v in out], dim=1)  # B×K×C×H×W
            views[start:stop] = block.detach().cpu().numpy().astype(dtype)
            views.flush()
            done.add(ci)
            meta["completed_chunks"] = sorted(done)
            atomic_write_json(partial / META_FILE, meta, indent=1, sort_keys=True)
        del views
        meta["complete"] = True
        atomic_write_json(partial / META_FILE, meta, indent=1, sort_keys=True)

        # Swap into place; an old bank (rebuild) is moved aside first, so bank_dir is never half-written.
        old_dir = bank_dir.with_name(f".{bank_dir.name}.old")
        if old_dir.exists():
            shutil.rmtree(old_dir)
        if bank_dir.exists():
            os.replace(bank_dir, old_dir)
        os.replace(partial, bank_dir)
        if old_dir.exists():
            shutil.rmtree(old_dir)
        return cls.open(bank_dir)
