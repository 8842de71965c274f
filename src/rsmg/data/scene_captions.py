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
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from rsmg.data.catalog import resolve_root
from rsmg.data.catalog_yaml import _yaml
from rsmg.data.readers import read_caption_txt, read_captions_karpathy_json
from rsmg.data.scene_folders import ImageRecord
from rsmg.errors import ConfigError, DataError

__all__ = ["EvalCaption", "choose_train_captions", "eval_text", "load_scene_captions"]

EvalCaption = Literal["first", "join", "none"]
CAPTION_FORMATS = ("ucm_karpathy", "txt_beside")


def _spec(dataset: str) -> dict[str, Any]:
    entry = _yaml("datasets.yaml").get(dataset, {})
    spec = entry.get("captions")
    if not isinstance(spec, dict) or spec.get("format") not in CAPTION_FORMATS or "file" not in spec:
        raise ConfigError(
            f"dataset {dataset!r} has no usable caption source",
            file="datasets.yaml (packaged catalog, or your $RSMG_CATALOG)",
            field=f"{dataset}.captions",
            expected=f"{{file: <path under the data root>, format: one of {list(CAPTION_FORMATS)}}}",
            found=repr(spec),
            fix="set data.init_args.captions: false, or give the dataset a captions entry in a user catalog",
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
    base = resolve_root(root)
    path = Path(spec["file"])
    path = path if path.is_absolute() else base / path
    if spec["format"] == "ucm_karpathy":
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
            out.append(tuple(table[key].captions))
        return out
    text_dir = path
    out = []
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
