"""Image-folder scene datasets (RSSCN7, AID, UC Merced) as domains: find, scan, deduplicate, decode, serve.

A dataset is a folder with one sub-folder per class (``<folder>/<Class>/<image>``), as its authors ship it; the
catalog (``resources/datasets.yaml``, ``kind: image_folder``) names the accepted folders and the full class list.
A *domain* is a whole dataset (``"aid"``) or, for a dataset with ``blocks``, one block of file numbers
(``"rsscn7_zoom2"`` = files 101–200 of every RSSCN7 class: its second zoom level). Folder classes are mapped
onto a shared class set (``resources/class_sets.yaml``, e.g. ``scene5``) with one reason per mapping.

Exact duplicates (same file bytes) are removed within a domain before any split: a duplicate pair split into
training and test would be a free correct answer. Copies with one label keep the first path in sorted order;
copies with different labels are all removed (no label can be trusted). The shared pack has two such pairs
(AID ``industrial_203`` = ``industrial_205``; UC Merced ``airplane01`` = ``airplane02``).

Decoded images can be kept in memory as uint8 (``ImageCache``): the three 150-px datasets take about 570 MB,
and every epoch after the first then costs no JPEG decode. Pixels served are identical with and without the
cache (see :class:`SceneTransform`).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from rsmg.data.catalog import resolve_root
from rsmg.data.catalog_yaml import _yaml
from rsmg.data.scene import BatchedSamples
from rsmg.data.spec import image_key
from rsmg.errors import ConfigError, DataError, MissingDatasetError, unknown_name_error

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})
INTERPOLATIONS = ("bicubic", "bilinear", "nearest")
CLASS_SETS_FILE = "rsmg/data/resources/class_sets.yaml"
DATASETS_FILE = "rsmg/data/resources/datasets.yaml"
ImageCache = dict[Path, torch.Tensor]

__all__ = [
    "IMAGE_SUFFIXES",
    "DedupReport",
    "ImageCache",
    "ImageRecord",
    "SceneDomain",
    "SceneImageDataset",
    "SceneTransform",
    "dataset_folder",
    "decode_image",
    "domain_names",
    "parse_domain",
    "read_images",
    "remove_duplicates",
    "scan_domain",
]


# ----------------------------------------------------------------------------------------------- domains
@dataclass(frozen=True)
class SceneDomain:
    """A domain: a catalog image-folder dataset, or one block of its file numbers.

    Attributes:
        name: the domain name used in configs and metric keys (``"ucm"``, ``"rsscn7_zoom2"``).
        dataset: the catalog dataset it reads.
        block: 1-based block number, or None for the whole dataset.
        first, last: file-number range of the block (inclusive); None for the whole dataset.
    """

    name: str
    dataset: str
    block: int | None = None
    first: int | None = None
    last: int | None = None


def _image_folder_entries() -> dict[str, dict[str, Any]]:
    return {k: v for k, v in _yaml("datasets.yaml").items() if v.get("kind") == "image_folder"}


def domain_names() -> list[str]:
    """Every valid scene domain: each image-folder dataset, then each block of those that have blocks."""
    names: list[str] = []
    for ds, entry in _image_folder_entries().items():
        names.append(ds)
        b = entry.get("blocks")
        if b:
            names += [f"{ds}_{b['prefix']}{k}" for k in range(1, int(b["count"]) + 1)]
    return names


def parse_domain(name: str, *, field: str = "data.sources / data.targets") -> SceneDomain:
    """The :class:`SceneDomain` of a name; an unknown name lists the valid ones.

    Raises:
        ConfigError: not a dataset or block name.
    """
    entries = _image_folder_entries()
    if name in entries:
        return SceneDomain(name, name)
    for ds, entry in entries.items():
        b = entry.get("blocks")
        m = re.fullmatch(rf"{re.escape(ds)}_{re.escape(str(b['prefix']))}(\d+)", name) if b else None
        if b and m and 1 <= int(m.group(1)) <= int(b["count"]):
            k, size = int(m.group(1)), int(b["size"])
            return SceneDomain(name, ds, k, (k - 1) * size + 1, k * size)
    raise unknown_name_error("scene domain", name, domain_names(), field=field)


def dataset_folder(dataset: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The folder of a catalog image-folder dataset: the first accepted folder that holds a class folder.

    "Holds a class folder" (not merely "exists") because ``rsmg download`` writes its archive and unpacked
    tree under a folder of the same name as the shared pack's.

    Raises:
        MissingDatasetError: no accepted folder holds any of the dataset's class folders.
    """
    entry = _image_folder_entries()[dataset]
    base = resolve_root(root)
    classes = set(entry["classes"])
    dirs = [entry["dir"]] if isinstance(entry["dir"], str) else list(entry["dir"])  # one folder, or several
    for rel in dirs:
        d = base / rel
        if d.is_dir() and any(c.is_dir() and c.name in classes for c in d.iterdir()):
            return d
    raise MissingDatasetError(
        f"dataset {dataset!r}: no folder with its class folders",
        file=base / dirs[0],
        expected=" or ".join(str(base / r) for r in dirs) + f", holding e.g. {entry['classes'][0]}/",
        found="nothing",
        fix=f"run `rsmg download {dataset} --root {base}` (it prints how to get files it cannot fetch), or "
        "point the data root at the shared data pack (root: or $RSMG_DATA_ROOT)",
    )


# ----------------------------------------------------------------------------------------------- scanning
@dataclass(frozen=True)
class ImageRecord:
    """One image file (not yet read).

    Attributes:
        path: the file.
        label: index into the experiment's classes.
        folder_class: the dataset's own class (its folder name).
    """

    path: Path
    label: int
    folder_class: str


def file_number(path: Path) -> int | None:
    """The number at the end of a file's stem (``a101.jpg`` → 101, ``industrial_5.jpg`` → 5), or None."""
    m = re.search(r"(\d+)$", path.stem)
    return int(m.group(1)) if m else None


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def scan_domain(
    domain: SceneDomain,
    folder: Path,
    mapping: dict[str, str | None],
    classes: Sequence[str],
    *,
    class_set: str,
) -> tuple[list[ImageRecord], dict[str, int]]:
    """List a domain's images of the experiment's classes (directory listing only: no image file is opened).

    Args:
        domain: the domain.
        folder: its dataset's folder (:func:`dataset_folder`).
        mapping: folder class → class-set name (None: excluded), from ``class_sets.yaml``.
        classes: the experiment's classes, in label order.
        class_set: the class set's name, for error messages.

    Returns:
        The records, sorted by path, and the number of images per folder class left out because its class is
        not among ``classes`` (folders mapped to null are not listed and not counted).

    Raises:
        DataError: a folder whose class the mapping does not list, a mapped class without a folder, a class
            folder (or block) with no image, a file without a number in a dataset cut into blocks.
    """
    index = {c: i for i, c in enumerate(classes)}
    where = f"{class_set}.scenes.{domain.dataset}"
    present = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    for name in present:
        if name not in mapping:
            raise DataError(
                f"class folder {name!r} is not in the class set {class_set!r}",
                file=folder / name,
                field=where,
                expected=f"one of the classes of {domain.dataset!r}: {sorted(mapping)}",
                found=name,
                fix=f"map it in {CLASS_SETS_FILE} ({where}.{name}: {{to: <class or null>, why: ...}}) and add it "
                f"to {domain.dataset}'s classes in {DATASETS_FILE}, or move the folder out of {folder}",
            )
    records: list[ImageRecord] = []
    excluded: dict[str, int] = {}
    for cls in sorted(mapping):
        to = mapping[cls]
        if to is None:
            continue
        d = folder / cls
        if cls not in present:
            raise DataError(
                f"class folder {cls!r} of {domain.dataset!r} is missing",
                file=d,
                field=f"{where}.{cls}",
                expected=f"a folder of images (the class set maps {cls!r} to {to!r})",
                found="nothing",
                fix=f"restore the folder (`rsmg download {domain.dataset}`), or map {cls!r} to null in "
                f"{CLASS_SETS_FILE}",
            )
        images = _images_in(d)
        if domain.block is not None:
            numbers = [file_number(p) for p in images]
            for p, n in zip(images, numbers, strict=True):
                if n is None:
                    raise DataError(
                        f"{domain.dataset!r} is cut into blocks by file number, but this file has none",
                        file=p,
                        field=f"{domain.dataset}.blocks",
                        expected="a name ending in digits, e.g. a101.jpg",
                        found=p.name,
                        fix="rename or remove the file, or use the whole dataset as a domain",
                    )
            assert domain.first is not None and domain.last is not None
            images = [
                p
                for p, n in zip(images, numbers, strict=True)
                if n is not None and domain.first <= n <= domain.last
            ]
        if not images:
            span = "" if domain.block is None else f" numbered {domain.first}-{domain.last}"
            raise DataError(
                f"empty class folder: no image{span} of class {cls!r}",
                file=d,
                field=f"{where}.{cls}",
                expected=f"image files ({', '.join(sorted(IMAGE_SUFFIXES))})" + span,
                found="none",
                fix=f"put the images back (`rsmg download {domain.dataset}`), or map {cls!r} to null in "
                f"{CLASS_SETS_FILE}",
            )
        if to not in index:
            excluded[cls] = len(images)
            continue
        records += [ImageRecord(p, index[to], cls) for p in images]
    records.sort(key=lambda r: r.path)
    return records, excluded


# ----------------------------------------------------------------------------------------------- reading
def read_file_bytes(path: Path) -> bytes:
    """The bytes of an image file (the one place image files are opened, which tests watch).

    Raises:
        DataError: the file cannot be read.
    """
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(
            "cannot read image file", file=path, found=f"{type(e).__name__}: {e}", fix="check the file"
        ) from e


def decode_image(data: bytes, path: Path) -> torch.Tensor:
    """Decode an 8-bit image into a ``3×H×W`` uint8 tensor (grayscale, palette, CMYK and alpha → RGB).

    Raises:
        DataError: not an image, truncated or corrupt, or not 8 bits per channel.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            mode = img.mode
            wide = mode.startswith(("I", "F"))  # 16/32-bit integer or float: no 0-255 scale to assume
            arr = None if wide else np.asarray(img if mode == "RGB" else img.convert("RGB"))
    except UnidentifiedImageError as e:
        raise DataError(
            "cannot read image: the file is not an image",
            file=path,
            found=str(e),
            fix="re-download the dataset or remove the file",
        ) from e
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(
            "cannot read image: the file is truncated or corrupt",
            file=path,
            found=f"{type(e).__name__}: {e}",
            fix="re-download the dataset or remove the file",
        ) from e
    if arr is None:
        raise DataError(
            "expected an 8-bit image",
            file=path,
            field="mode",
            expected="8 bits per channel (RGB, L, P, ...)",
            found=mode,
            fix="convert the image to 8-bit RGB",
        )
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())


@dataclass
class DedupReport:
    """What :func:`remove_duplicates` removed from one domain.

    Attributes:
        images: images before removal.
        duplicates: extra copies removed (one copy of each same-label group kept).
        conflicting: copies removed because their labels differ.
        examples: up to 5 groups of identical files, as paths.
        groups: every group of identical files, as paths (sorted; the first is the copy a same-label group keeps).
    """

    images: int = 0
    duplicates: int = 0
    conflicting: int = 0
    examples: list[list[str]] = field(default_factory=list)
    groups: list[list[str]] = field(default_factory=list)

    @property
    def kept(self) -> int:
        """Images left."""
        return self.images - self.duplicates - self.conflicting


def read_images(
    records: Sequence[ImageRecord],
    *,
    decode: bool,
    transform: SceneTransform | None = None,
    threads: int | None = None,
) -> tuple[list[bytes], list[torch.Tensor] | None]:
    """Read every file once: the BLAKE2 digest of its bytes and, with ``decode``, the cached uint8 image.

    Files are read by a thread pool (PIL releases the GIL while decoding); the result order is the records'.

    Returns:
        (digests, images) with images None unless ``decode``; each image is what
        :meth:`SceneTransform.for_cache` keeps.
    """

    def one(r: ImageRecord) -> tuple[bytes, torch.Tensor | None]:
        data = read_file_bytes(r.path)
        digest = hashlib.blake2b(data, digest_size=16).digest()
        if not decode:
            return digest, None
        img = decode_image(data, r.path)
        return digest, transform.for_cache(img) if transform is not None else img

    n = threads or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=n) as pool:
        out = list(pool.map(one, records))
    digests = [d for d, _ in out]
    images = [i for _, i in out] if decode else None
    return digests, images  # type: ignore[return-value]


def remove_duplicates(
    records: Sequence[ImageRecord], digests: Sequence[bytes]
) -> tuple[np.ndarray, DedupReport]:
    """Positions of the records to keep after removing exact duplicates (equal digests), and the report."""
    groups: dict[bytes, list[int]] = {}
    for i, d in enumerate(digests):
        groups.setdefault(d, []).append(i)
    keep = np.ones(len(records), dtype=bool)
    report = DedupReport(images=len(records))
    for members in groups.values():
        if len(members) < 2:
            continue
        members = sorted(members, key=lambda i: records[i].path)
        report.groups.append([str(records[i].path) for i in members])
        if len(report.examples) < 5:
            report.examples.append(report.groups[-1])
        if len({records[i].label for i in members}) == 1:
            keep[members[1:]] = False
            report.duplicates += len(members) - 1
        else:
            keep[members] = False
            report.conflicting += len(members)
            log.warning("identical images with different labels, all removed: %s", report.examples[-1])
    return np.flatnonzero(keep), report


# ----------------------------------------------------------------------------------------------- transforms
@dataclass(frozen=True)
class SceneTransform:
    """Resize to ``image_size`` × ``image_size`` on uint8, then scale to [0, 1] and normalise (torchvision v2).

    The encoder's preprocessing is given as plain options (EfficientNet-Lite: bicubic, mean = std = 0.5). The
    resize runs on uint8, so an image cached already resized (:meth:`for_cache`: only images larger than the
    target are, which bounds the cache's memory) gives exactly the pixels of one resized per step. Non-square
    images are resized to a square (UC Merced has a few 242-257 px originals). Flips and 90° rotations are
    not here: the datamodule applies them on the batch, seeded per sample (:mod:`rsmg.data.augment`).

    Attributes:
        image_size: output side in pixels.
        interpolation: ``"bicubic"``, ``"bilinear"`` or ``"nearest"`` (antialiased when shrinking).
        mean: per-channel mean on the [0, 1] scale.
        std: per-channel standard deviation on the [0, 1] scale.
    """

    image_size: int = 224
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def __post_init__(self) -> None:
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or self.image_size < 8:
            raise ConfigError(
                "image_size must be an integer >= 8",
                field="data.image_size",
                expected="e.g. 224 (EfficientNet-Lite0), 128-224 on a CPU budget",
                found=self.image_size,
                fix="set data.init_args.image_size",
            )
        if self.interpolation not in INTERPOLATIONS:
            raise unknown_name_error(
                "interpolation", str(self.interpolation), INTERPOLATIONS, field="data.interpolation"
            )
        for key, value in (("mean", self.mean), ("std", self.std)):
            if len(value) != 3 or (key == "std" and min(value) <= 0):
                raise ConfigError(
                    f"{key} needs one {'positive ' if key == 'std' else ''}value per RGB channel",
                    field=f"data.{key}",
                    expected="3 numbers on the [0, 1] scale, e.g. [0.5, 0.5, 0.5]",
                    found=list(value),
                    fix=f"set data.init_args.{key} to the encoder's normalisation",
                )

    def _resize(self, img: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as F

        mode = InterpolationMode(self.interpolation)
        return F.resize(img, [self.image_size, self.image_size], interpolation=mode, antialias=True)

    def for_cache(self, img: torch.Tensor) -> torch.Tensor:
        """The form an image is cached in: resized if either side is larger than ``image_size``, else as is."""
        return self._resize(img) if max(img.shape[-2:]) > self.image_size else img

    def __call__(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        """``N`` uint8 ``3×H×W`` images (any sizes) → a normalised float32 ``N×3×S×S`` batch."""
        from torchvision.transforms.v2 import functional as F

        s = self.image_size
        batch = torch.stack([img if img.shape[-2:] == (s, s) else self._resize(img) for img in images])
        x = F.to_dtype(batch, torch.float32, scale=True)
        return F.normalize(x, list(self.mean), list(self.std))

    def to_dict(self) -> dict[str, object]:
        """Plain form, for checkpoints."""
        return {
            "image_size": self.image_size,
            "interpolation": self.interpolation,
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
        }


# ----------------------------------------------------------------------------------------------- dataset
class SceneImageDataset(Dataset[dict[str, Any]]):
    """Scene images, of one or several domains: ``{"image_rgb", "label", "domain", "index"}`` per sample.

    Images come from ``cache`` when there (filled by the datamodule), else are read and decoded on access.
    ``__getitems__`` returns a whole batch already collated (:class:`~rsmg.data.scene.BatchedSamples`), so a
    batch costs one stack and one normalisation; holding several domains in one dataset (rather than a
    ``ConcatDataset``, which has no batched fetch) keeps that true for multi-source training.

    Args:
        records: the images.
        transform: resize + normalisation.
        domains: domain index (into ``spec.domains``) of each record.
        indices: sample index of each record, unique across the datamodule's datasets (the per-sample
            augmentation hash reads it).
        cache: decoded images by path (shared, read-only here).
        captions: each record's captions (after leakage control); then a batch also has ``captions`` (all of
            them, per sample) and ``text`` (the one chosen by ``eval_caption``; training batches get theirs
            from :func:`rsmg.data.scene_captions.choose_train_captions`).
        eval_caption: ``"first"``, ``"join"`` or ``"none"`` (no caption: image only).
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        transform: SceneTransform,
        *,
        domains: np.ndarray,
        indices: np.ndarray,
        cache: ImageCache | None = None,
        captions: Sequence[tuple[str, ...]] | None = None,
        eval_caption: str = "first",
    ) -> None:
        self.records = list(records)
        n = len(self.records)
        if len(domains) != n or len(indices) != n:
            raise ValueError(f"{n} records but {len(domains)} domains and {len(indices)} indices")
        self.transform = transform
        self.domains = np.asarray(domains, dtype=np.int64)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.cache = cache if cache is not None else {}
        self.labels = np.array([r.label for r in self.records], dtype=np.int64)
        if captions is not None and len(captions) != n:
            raise ValueError(f"{n} records but {len(captions)} caption tuples")
        self.captions = list(captions) if captions is not None else None
        self.eval_caption = eval_caption

    def __len__(self) -> int:
        return len(self.records)

    @property
    def files(self) -> list[Path]:
        """The image files, in sample order (for prediction exports)."""
        return [r.path for r in self.records]

    def _image(self, i: int) -> torch.Tensor:
        path = self.records[i].path
        img = self.cache.get(path)
        if img is None:
            img = self.transform.for_cache(decode_image(read_file_bytes(path), path))
        return img

    def __getitems__(self, idx: Sequence[int]) -> BatchedSamples:
        """A collated batch of the samples at ``idx``."""
        pos = np.asarray(idx, dtype=np.int64)
        batch = BatchedSamples({image_key("rgb"): self.transform([self._image(int(i)) for i in pos])})
        batch["label"] = torch.from_numpy(self.labels[pos])
        batch["domain"] = torch.from_numpy(self.domains[pos])
        batch["index"] = torch.from_numpy(self.indices[pos])
        if self.captions is not None:
            from rsmg.data.scene_captions import eval_text

            caps = [self.captions[int(i)] for i in pos]
            batch["captions"] = caps
            batch["text"] = [eval_text(c, self.eval_caption) for c in caps]  # type: ignore[arg-type]
        return batch

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return {k: v[0] for k, v in self.__getitems__([i % len(self)]).items()}
