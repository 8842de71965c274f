"""Per-image captions of image-folder scene datasets, and which caption a batch serves.

Captions are a modality (Cai et al., arXiv 2412.02531): a scene-folder dataset may name a caption file in its
catalog entry (``captions: {file: ..., format: ...}``), and :class:`~rsmg.data.scene_domains.
SceneDomainDataModule` with ``captions: true`` then serves ``batch["text"]``, one string per image. An empty
string means *no caption*: models that read captions must then classify from the image alone.

Which caption is served is a hash of (seed, epoch, sample index), never a draw from the global RNG, so it does
not depend on batch composition, workers or the number of DDP ranks, and a resumed run serves what an
uninterrupted one would (the same rule as :mod:`rsmg.data.augment`).

Formats:

* ``ucm_karpathy`` — UCM-captions' Karpathy-style ``dataset.json``: image ``<class>NN`` of class index ``c``
  (the catalog's class order) is entry ``n.tif`` with ``n = 100·c + NN + 1`` (``ucm_150/README.md``);
* ``txt_beside`` — one UTF-8 text per image at ``<folder>/<text_dir>/<Class>/<stem>.txt`` (the AID minitest's
  layout).

The ``ucm_karpathy`` file also carries the standard train / val / test split of each image
(:func:`karpathy_splits`), which ``SceneDomainDataModule(split="karpathy")`` uses.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from rsmg.data.catalog import resolve_root
from rsmg.data.catalog_yaml import _yaml
from rsmg.data.readers import CaptionRecord, read_caption_txt, read_captions_karpathy_json
from rsmg.data.scene_folders import ImageRecord
from rsmg.errors import ConfigError, DataError

__all__ = [
    "KARPATHY_SPLITS",
    "EvalCaption",
    "choose_train_captions",
    "eval_text",
    "karpathy_parts",
    "karpathy_spec",
    "karpathy_splits",
    "load_scene_captions",
]

log = logging.getLogger(__name__)

EvalCaption = Literal["first", "join", "none"]
CAPTION_FORMATS = ("ucm_karpathy", "txt_beside")
KARPATHY_SPLITS = ("train", "val", "test")


_NO_CAPTIONS_FIX = (
    "set data.init_args.captions: false, or give the dataset a captions entry in a user catalog"
)


def _spec(dataset: str, fix: str = _NO_CAPTIONS_FIX) -> dict[str, Any]:
    entry = _yaml("datasets.yaml").get(dataset, {})
    spec = entry.get("captions")
    if not isinstance(spec, dict) or spec.get("format") not in CAPTION_FORMATS or "file" not in spec:
        raise ConfigError(
            f"dataset {dataset!r} has no usable caption source",
            file="datasets.yaml (packaged catalog, or your $RSMG_CATALOG)",
            field=f"{dataset}.captions",
            expected=f"{{file: <path under the data root>, format: one of {list(CAPTION_FORMATS)}}}",
            found=repr(spec),
            fix=fix,
        )
    return spec


def load_scene_captions(
    dataset: str,
    records: Sequence[ImageRecord],
    *,
    root: str | None,
    classes: Sequence[str] | None = None,
) -> list[tuple[str, ...]]:
    """The captions of each record, in record order.

    Args:
        dataset: the catalog dataset the records come from.
        records: its images (``folder_class`` is the dataset's own class name).
        root: the data root the caption ``file`` is relative to.
        classes: the dataset's own class list (default: the catalog entry's), for ``ucm_karpathy`` numbering.

    Raises:
        ConfigError: the dataset has no caption source.
        DataError: the caption file is missing or malformed, or an image has no caption.
    """
    spec = _spec(dataset)
    path = _caption_path(spec, root)
    if spec["format"] == "ucm_karpathy":
        return [tuple(c.captions) for c in _karpathy_records(dataset, records, path, classes)]
    text_dir = path
    out: list[tuple[str, ...]] = []
    for r in records:
        txt = text_dir / r.folder_class / (r.path.stem + ".txt")
        if not txt.is_file():
            raise DataError(
                "missing caption for an image",
                file=r.path,
                field="caption",
                expected=str(txt),
                found="no file",
                fix="write the caption file (e.g. with `rsmg caption`) or set data.init_args.captions: false",
            )
        out.append((read_caption_txt(txt),))
    return out


def _caption_path(spec: dict[str, Any], root: str | None) -> Path:
    path = Path(spec["file"])
    return path if path.is_absolute() else resolve_root(root) / path


def _karpathy_records(
    dataset: str, records: Sequence[ImageRecord], path: Path, classes: Sequence[str] | None
) -> list[CaptionRecord]:
    """The caption-file entry of each record (``<class>NN`` → ``100·c + NN + 1``.tif), in record order."""
    table = read_captions_karpathy_json(path)
    order = list(classes or _yaml("datasets.yaml")[dataset]["classes"])
    out = []
    for r in records:
        number = r.path.stem[len(r.folder_class) :]
        if not number.isdigit():
            raise DataError(
                "image name is not <class><number>",
                file=r.path,
                field="file name",
                expected=f"{r.folder_class}NN",
                found=r.path.name,
                fix="keep UC Merced's file names, which index the caption file",
            )
        key = f"{100 * order.index(r.folder_class) + int(number) + 1}.tif"
        if key not in table:
            raise DataError(
                "no captions for an image",
                file=path,
                field="images[].filename",
                expected=f"{key} (for {r.path.name})",
                found="absent",
                fix="use the UCM-captions dataset.json that matches these images",
            )
        out.append(table[key])
    return out


def karpathy_spec(dataset: str) -> dict[str, Any]:
    """The dataset's catalog ``captions`` entry, checked to be a Karpathy-format file (which carries a split).

    Raises:
        ConfigError: the dataset has no caption source, or one of another format.
    """
    fix = "use data.init_args.split: seeded for this dataset"
    spec = _spec(dataset, fix=fix)
    if spec["format"] != "ucm_karpathy":
        raise ConfigError(
            f"dataset {dataset!r} has no Karpathy-format caption file to take a split from",
            file="datasets.yaml (packaged catalog, or your $RSMG_CATALOG)",
            field=f"{dataset}.captions.format",
            expected="ucm_karpathy (a dataset.json whose images carry a split field)",
            found=spec["format"],
            fix=fix,
        )
    return spec


def karpathy_splits(
    dataset: str,
    records: Sequence[ImageRecord],
    *,
    root: str | None,
    classes: Sequence[str] | None = None,
) -> list[str]:
    """Each record's ``split`` (``train`` / ``val`` / ``test``) in the dataset's Karpathy-format caption file.

    The standard split of UCM-captions (1,680 / 210 / 210) lives only in that field (``ucm_150/README.md``).

    Raises:
        ConfigError: the dataset's catalog ``captions`` entry is not a ``ucm_karpathy`` file.
        DataError: the caption file is missing or malformed, an image has no entry, or an entry has no split
            (or one other than train / val / test).
    """
    path = _caption_path(karpathy_spec(dataset), root)
    out = []
    for entry in _karpathy_records(dataset, records, path, classes):
        if entry.split not in KARPATHY_SPLITS:
            raise DataError(
                "caption file entry without a train / val / test split",
                file=path,
                field=f"images[].split ({entry.filename})",
                expected=f"one of {list(KARPATHY_SPLITS)}",
                found=repr(entry.split),
                fix="use a dataset.json that carries the standard split, or data.init_args.split: seeded",
            )
        out.append(entry.split)
    return out


def karpathy_parts(
    dataset: str,
    listed: Sequence[ImageRecord],
    kept: Sequence[ImageRecord],
    duplicates: Sequence[Sequence[str]],
    *,
    root: str | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Train / val / test positions in ``kept`` from the caption file, and how many duplicate groups straddle splits.

    ``listed`` are the dataset's images before exact-duplicate removal, ``kept`` after it, ``duplicates`` the
    groups of identical files (paths). Removal leaves one copy of a group at most, in its own split, so no image
    is in two splits even when the file puts copies in different ones; such groups are counted and logged.
    """
    of = dict(zip((str(r.path) for r in listed), karpathy_splits(dataset, listed, root=root), strict=True))
    across = [list(g) for g in duplicates if len({of[p] for p in g}) > 1]
    if across:
        log.warning(
            "%s: %d group(s) of identical images lie in different caption-file splits; one copy (none if their "
            "labels differ) is kept, in its own split: %s", dataset, len(across), across[:3],
        )  # fmt: skip
    parts = np.array([of[str(r.path)] for r in kept])
    train, val, test = (np.flatnonzero(parts == s) for s in KARPATHY_SPLITS)
    return train, val, test, len(across)


def eval_text(captions: tuple[str, ...], mode: EvalCaption) -> str:
    """The caption an evaluation batch serves: the first, all joined, or none (``""``: image only)."""
    if mode == "none" or not captions:
        return ""
    return " ".join(captions) if mode == "join" else captions[0]


def _hash(index: torch.Tensor, seed: int, epoch: int, salt: int) -> torch.Tensor:
    """A non-negative 31-bit integer per sample: a deterministic hash of (seed, epoch, index, salt)."""
    x = index.detach().to("cpu", torch.int64) * 0x9E3779B1 + epoch * 0x85EBCA77 + (seed + salt) * 0xC2B2AE3D
    x = x ^ (x >> 15)
    x = (x * 0x2C1B3C6D) & 0x7FFFFFFF
    x = x ^ (x >> 13)
    x = (x * 0x297A2D39) & 0x7FFFFFFF
    return x ^ (x >> 16)


def choose_train_captions(
    captions: Sequence[tuple[str, ...]],
    index: torch.Tensor,
    *,
    seed: int,
    epoch: int,
    dropout: float = 0.0,
) -> list[str]:
    """One caption per training sample: a hashed choice among its captions, or ``""`` with prob. ``dropout``.

    Dropping captions in training teaches the fused model the image-only path it needs for images without a
    caption at test time.
    """
    pick = _hash(index, seed, epoch, salt=1).tolist()
    keep = (_hash(index, seed, epoch, salt=2).double() / 2**31 >= dropout).tolist()
    out = []
    for caps, p, k in zip(captions, pick, keep, strict=True):
        out.append(caps[p % len(caps)] if caps and k else "")
    return out
