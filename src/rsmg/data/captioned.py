"""Image + caption scenes: ``CaptionedImageDataset`` and ``CaptionedSceneDataModule``.

Two on-disk layouts are read, both as shipped by their authors and never moved or renamed:

* ``aid`` — ``image/<Class>/<name>.jpg`` + ``text/<Class>/<name>.txt`` (MultiAtt-RSSC's AID minitest: one
  VLM-written description per image);
* ``ucm`` — ``images/<class>/<class>NN.tif`` + a Karpathy-style ``dataset.json`` (UCM-captions: five human
  captions per image, ``n.tif`` = class ``(n-1)//100``, image ``(n-1)%100``; the ``split`` field is kept).

A sample is ``{"image_rgb": 3×S×S float32, "text": str, "label", "domain", "index"}``. Images are decoded once,
resized to ``image_size`` and kept as uint8 in memory (200–2,100 scenes fit easily). Splits are seeded and
stratified over indices; ``split="official"`` uses a dataset's own split field where it has one. Classes in
``held_out_classes`` never reach training or validation: they are the unseen classes of zero-shot evaluation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from rsmg.data.catalog import dataset_info, resolve_root
from rsmg.data.catalog_yaml import _yaml
from rsmg.data.readers import read_caption_txt, read_captions_karpathy_json, read_image
from rsmg.data.spec import DataSpec
from rsmg.data.splits import require_nonempty, train_val_split
from rsmg.errors import ConfigError, DataError, MissingDatasetError, unknown_name_error

log = logging.getLogger(__name__)
CaptionChoice = Literal["first", "cycle", "join"]


@dataclass(frozen=True)
class CaptionedItem:
    """One image with its captions (not yet decoded)."""

    image: Path
    captions: tuple[str, ...]
    label: int
    split: str | None = None


def _dataset_dir(root: Path, name: str) -> Path:
    entry = _yaml("datasets.yaml")[name]
    for d in entry["dir"]:
        if (root / d).is_dir():
            return root / d
    raise MissingDatasetError(
        f"dataset {name!r}: folder not found",
        file=root / entry["dir"][0],
        expected="a folder",
        found="nothing",
        fix=f"run `rsmg download {name} --root {root}` or point RSMG_DATA_ROOT at the shared data pack",
    )


def scan_aid_layout(folder: Path, classes: tuple[str, ...]) -> list[CaptionedItem]:
    """Items of an ``image/<Class>/*.jpg`` + ``text/<Class>/*.txt`` folder.

    Raises:
        DataError: an image has no caption file, or a caption is empty / not UTF-8.
    """
    items = []
    for label, cls in enumerate(classes):
        img_dir = folder / "image" / cls
        if not img_dir.is_dir():
            raise DataError(
                f"class folder missing for {cls!r}",
                file=img_dir,
                field="classes",
                expected=f"image/{cls}/",
                found="nothing",
                fix="check the dataset folder and class names",
            )
        for img in sorted(
            p for p in img_dir.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".tif", ".tiff"}
        ):
            txt = folder / "text" / cls / (img.stem + ".txt")
            if not txt.exists():
                raise DataError(
                    "missing caption for an image",
                    file=img,
                    field="caption",
                    expected=str(txt),
                    found="no file",
                    fix="write the caption file (e.g. with `rsmg caption`) or remove the image",
                )
            items.append(CaptionedItem(img, (read_caption_txt(txt),), label))
    return items


def scan_ucm_layout(folder: Path, classes: tuple[str, ...], captions_file: str) -> list[CaptionedItem]:
    """Items of the UC Merced images present on disk, with their UCM-captions sentences and split."""
    records = read_captions_karpathy_json(folder / captions_file)
    items = []
    for label, cls in enumerate(classes):
        img_dir = folder / "images" / cls
        if not img_dir.is_dir():
            continue
        for img in sorted(img_dir.glob("*.tif")):
            number = int(img.stem[len(cls) :])
            key = f"{label * 100 + number + 1}.tif"
            if key not in records:
                raise DataError(
                    "no captions for an image",
                    file=img,
                    field="filename",
                    expected=f"{key} in {captions_file}",
                    found="absent",
                    fix="use the UCM-captions dataset.json that matches these images",
                )
            rec = records[key]
            items.append(CaptionedItem(img, tuple(rec.captions), label, rec.split))
    return items


def _load_rgb(path: Path, size: int) -> np.ndarray:
    arr = read_image(path)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if arr.shape[-1] != 3:
        raise DataError(
            "expected an RGB image",
            file=path,
            field="bands",
            expected=3,
            found=arr.shape[-1],
            fix="convert the image to 3-band RGB",
        )
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    img = Image.fromarray(arr).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img).transpose(2, 0, 1).copy()


class CaptionedImageDataset(Dataset[dict[str, Any]]):
    """Images (decoded once, uint8 in memory) with captions.

    Args:
        items: the scenes to serve.
        image_size: side of the square the images are resized to.
        label_map: dataset label → class index of this dataset's spec.
        mean: per-channel mean (on the 0-1 scale) from the training images.
        std: per-channel std.
        caption: which caption of a multi-caption image: ``"first"``, ``"cycle"`` (caption ``epoch % n``,
            set with :meth:`set_epoch`) or ``"join"`` (all, space-separated).
        text_transform: optional callable applied to every caption (leakage control).
        domain: domain index.
        index_offset: added to ``index``.
    """

    def __init__(
        self,
        items: list[CaptionedItem],
        *,
        image_size: int,
        label_map: dict[int, int],
        mean: np.ndarray,
        std: np.ndarray,
        caption: CaptionChoice = "first",
        text_transform: Callable[[str], str] | None = None,
        domain: int = 0,
        index_offset: int = 0,
        cache: dict[Path, np.ndarray] | None = None,
    ) -> None:
        self.items = items
        self.image_size = image_size
        self.label_map = label_map
        self.mean = torch.as_tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.caption = caption
        self.text_transform = text_transform
        self.domain = domain
        self.index_offset = index_offset
        self.epoch = 0
        cache = cache if cache is not None else {}
        self.images = [
            cache.setdefault(it.image, _load_rgb(it.image, image_size))
            if it.image not in cache
            else cache[it.image]
            for it in items
        ]

    def set_epoch(self, epoch: int) -> None:
        """Select the caption of multi-caption images for ``caption="cycle"``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def text(self, i: int) -> str:
        """The caption served for item ``i`` (after the text transform)."""
        caps = self.items[i].captions
        if self.caption == "join":
            t = " ".join(caps)
        elif self.caption == "cycle":
            t = caps[self.epoch % len(caps)]
        else:
            t = caps[0]
        return self.text_transform(t) if self.text_transform else t

    def __getitem__(self, i: int) -> dict[str, Any]:
        x = torch.from_numpy(self.images[i]).float().div_(255.0)
        return {
            "image_rgb": (x - self.mean) / self.std,
            "text": self.text(i),
            "label": torch.tensor(self.label_map[self.items[i].label]),
            "domain": torch.tensor(self.domain),
            "index": torch.tensor(self.index_offset + i),
        }


class CaptionedSceneDataModule(pl.LightningDataModule):
    """Image + caption scene classification with seeded stratified splits and held-out (unseen) classes.

    Args:
        dataset: catalog name (``aid_minitest``, ``ucm_captions``).
        root: data root (default ``$RSMG_DATA_ROOT`` or ``./data``).
        split: ``"fraction:F"`` (F of each class for training, the rest split evenly into val and test, as the
            reference's 80/50/20 % protocols) or ``"official"`` (the dataset's own split field).
        val_fraction: with ``fraction:F``, the share of the non-training part used for validation.
        held_out_classes: classes kept out of training and validation entirely (zero-shot test classes).
        image_size: images are resized to this square size.
        caption: caption choice for multi-caption images (see :class:`CaptionedImageDataset`).
        text_transforms: leakage-control transforms by name, applied in order (see ``rsmg.text.leakage``).
        batch_size: training batch size.
        eval_batch_size: val/test batch size.
        num_workers: DataLoader workers.
        seed: seed of the split.
    """

    def __init__(
        self,
        dataset: str = "aid_minitest",
        root: str | None = None,
        split: str = "fraction:0.5",
        val_fraction: float = 0.5,
        held_out_classes: list[str] | None = None,
        image_size: int = 224,
        caption: CaptionChoice = "first",
        text_transforms: list[str] | None = None,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 42,
    ) -> None:
        super().__init__()
        info = dataset_info(dataset)
        if info.kind != "captioned":
            raise ConfigError(
                "not an image+caption dataset",
                field="data.dataset",
                expected="aid_minitest or ucm_captions",
                found=dataset,
                fix="use CrossDomainDataModule for pixel-level scenes",
            )
        self.dataset = dataset
        self.root = root
        self.split = split
        self.val_fraction = val_fraction
        self.held_out = list(held_out_classes or [])
        for c in self.held_out:
            if c not in info.classes:
                raise unknown_name_error(
                    f"class of {dataset!r}", c, info.classes, field="data.held_out_classes"
                )
        self.all_classes = info.classes
        self.image_size = image_size
        self.caption = caption
        self.text_transforms = list(text_transforms or [])
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        seen = tuple(c for c in info.classes if c not in self.held_out)
        # seen classes first: the classifier head covers them; unseen ones are read by zero-shot prompts
        self.classes = seen + tuple(self.held_out)
        self.spec = DataSpec(
            classes=self.classes,
            modalities={"rgb": 3},
            domains=(dataset,),
            source_domains=(dataset,),
            patch_size=image_size,
            band_names={"rgb": ("red", "green", "blue")},
            has_text=True,
        )
        self.seen_classes = seen
        self.splits: dict[str, list[CaptionedItem]] = {}
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self._cache: dict[Path, np.ndarray] = {}

    @property
    def num_classes(self) -> int:
        """Number of classes (seen + held out)."""
        return len(self.classes)

    def _items(self) -> list[CaptionedItem]:
        entry = _yaml("datasets.yaml")[self.dataset]
        folder = _dataset_dir(resolve_root(self.root), self.dataset)
        if entry["layout"] == "aid":
            return scan_aid_layout(folder, self.all_classes)
        return scan_ucm_layout(folder, self.all_classes, entry["captions"])

    def setup(self, stage: str | None = None) -> None:
        """Scan the folder, split, and compute image statistics on the training images."""
        if self.splits:
            return
        items = self._items()
        unseen = {self.all_classes.index(c) for c in self.held_out}
        seen_items = [it for it in items if it.label not in unseen]
        held = [it for it in items if it.label in unseen]
        if self.split == "official":
            parts = {s: [it for it in seen_items if it.split == s] for s in ("train", "val", "test")}
        elif self.split.startswith("fraction:"):
            f = float(self.split.split(":", 1)[1])
            labels = np.array([it.label for it in seen_items])
            rest, train = train_val_split(labels, f, seed=self.seed)  # train_val_split returns (keep, carved)
            rest_labels = labels[rest]
            test_pos, val_pos = train_val_split(rest_labels, self.val_fraction, seed=self.seed + 1)
            parts = {
                "train": [seen_items[i] for i in train],
                "val": [seen_items[rest[i]] for i in val_pos],
                "test": [seen_items[rest[i]] for i in test_pos],
            }
        else:
            raise ConfigError(
                "unknown split",
                field="data.split",
                expected="'fraction:F' or 'official'",
                found=self.split,
                fix="e.g. split: fraction:0.5",
            )
        parts["test"] = parts["test"] + held
        for name in ("train", "val", "test"):
            require_nonempty(
                np.arange(len(parts[name])),
                what=f"{name} split of {self.dataset}",
                fix="check split / held_out_classes",
            )
        self.splits = parts
        if self.mean is None:
            imgs = (
                np.stack([_load_rgb(it.image, self.image_size) for it in parts["train"]]).astype(np.float64)
                / 255.0
            )
            self.mean = imgs.mean(axis=(0, 2, 3))
            self.std = imgs.std(axis=(0, 2, 3)) + 1e-6

    def _transform(self) -> Callable[[str], str] | None:
        if not self.text_transforms:
            return None
        from rsmg.text.leakage import build_text_transform

        return build_text_transform(self.text_transforms, list(self.all_classes))

    def _dataset(self, part: str) -> CaptionedImageDataset:
        label_map = {self.all_classes.index(c): i for i, c in enumerate(self.classes)}
        assert self.mean is not None and self.std is not None
        return CaptionedImageDataset(
            self.splits[part],
            image_size=self.image_size,
            label_map=label_map,
            mean=self.mean,
            std=self.std,
            caption=self.caption,
            text_transform=self._transform(),
            index_offset={"train": 0, "val": 1 << 30, "test": 2 << 30}[part],
            cache=self._cache,
        )

    def _loader(self, part: str, train: bool) -> DataLoader[Any]:
        return DataLoader(
            self._dataset(part),
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            generator=torch.Generator().manual_seed(self.seed),
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader[Any]:
        """Training images of the seen classes."""
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader[Any]:
        """Validation images of the seen classes (model selection)."""
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader[Any]:
        """Test images: seen classes' test split plus every image of the held-out classes."""
        return self._loader("test", False)

    def state_dict(self) -> dict[str, Any]:
        """Image statistics and spec, saved in checkpoints."""
        assert self.mean is not None and self.std is not None, "setup() must run before saving"
        return {
            "mean": [float(x) for x in self.mean],
            "std": [float(x) for x in self.std],
            "spec": self.spec.to_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore image statistics from a checkpoint."""
        self.mean = np.asarray(state_dict["mean"])
        self.std = np.asarray(state_dict["std"])
