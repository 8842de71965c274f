r"""``SceneDomainDataModule``: scene datasets (or RSSCN7 zoom blocks) as domains, for cross-dataset generalisation.

Leave-one-dataset-out on RSSCN7 / AID / UC Merced (issue 20): the model is fitted on the source domains'
training images, selected on their validation images, and tested on each target domain. Target folders are
*listed* at setup, so a missing or mislabelled folder stops the run before training, but target files are
opened only by the test stage (``setup("test")`` / :meth:`test_dataloader`): model selection cannot see them.

Per source domain, after exact duplicates are removed (:func:`~rsmg.data.scene_folders.remove_duplicates`),
the images are split by a seeded, stratified draw whose seed depends on the run seed and the domain *name*, so a
domain's split does not change with the order or the company it is listed in; or (``split: karpathy``) as the
``split`` field of the dataset's Karpathy-format caption file says (UCM-captions' standard split). A domain
listed as both source and target is split three ways (train / val / test: the in-domain ceiling). Target images
identical to a source image are dropped from the test set and counted.

Batches are ``{"image_rgb": B×3×S×S float32, "label", "domain", "index"}``, the contract of
:mod:`rsmg.data.spec`, so every network of :class:`~rsmg.tasks.ClassificationTask` reads them, with
``data.spec`` linked into the model as for pixel scenes. Training batches get a random flip / 90° rotation
per sample (scenes have no up), seeded by (seed, epoch, index) on the device (:mod:`rsmg.data.augment`).

Example::

    rsmg fit --config my_model.yaml --data rsmg.data.scene_domains.SceneDomainDataModule \
        --data.sources '[ucm, aid]' --data.targets '[rsscn7]' --data.class_set scene5
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from torch.utils.data import DataLoader

from rsmg.data.bands import get_sensor
from rsmg.data.catalog import class_mapping, class_set_names, use_catalog
from rsmg.data.resumable import ResumableDataModule, check_loader_options
from rsmg.data.scene_folders import (
    CLASS_SETS_FILE,
    DedupReport,
    ImageCache,
    ImageRecord,
    SceneDomain,
    SceneImageDataset,
    SceneTransform,
    dataset_folder,
    parse_domain,
    read_images,
    remove_duplicates,
    scan_domain,
)
from rsmg.data.spec import DataSpec
from rsmg.data.splits import check_val_fraction, require_nonempty, stratified_sample, train_val_split
from rsmg.errors import ConfigError, DataError, check_choice, unknown_name_error

log = logging.getLogger(__name__)

__all__ = ["SceneDomainDataModule"]

_PARTS = {"train": 0, "val": 1, "test": 2}


@dataclass
class _Domain:
    """One domain's images (after deduplication) and its split positions."""

    records: list[ImageRecord]
    excluded: dict[str, int]
    report: DedupReport = field(default_factory=DedupReport)
    train: np.ndarray = field(default_factory=lambda: np.arange(0))
    val: np.ndarray = field(default_factory=lambda: np.arange(0))
    test: np.ndarray = field(default_factory=lambda: np.arange(0))
    in_a_source: int = 0
    across_splits: int = 0
    read: bool = False


class SceneDomainDataModule(ResumableDataModule):
    """Image-folder scene domains: sources → train / val, each target → its own test loader.

    Args:
        sources: training domains: ``rsscn7``, ``aid``, ``ucm``, or an RSSCN7 zoom block ``rsscn7_zoom1`` ..
            ``rsscn7_zoom4`` (files 001-100 ... 301-400 of each class).
        targets: test domains, one test loader each, in this order. A name also in ``sources`` is tested on
            a held-out part of itself (in-domain).
        class_set: the mapping of folder classes onto shared classes in ``class_sets.yaml``: ``scene5`` (the 5
            classes all three datasets share) or ``scene7`` (the 7 RSSCN7 and AID share). The experiment's
            classes are those every source has; a target class outside them is an error.
        root: data root (default ``$RSMG_DATA_ROOT`` or ``./data``).
        image_size: side of the square input, in pixels (224 for EfficientNet-Lite0; 128-224 fits a CPU).
        interpolation: resize interpolation of the encoder (``bicubic`` for EfficientNet-Lite).
        mean: per-channel mean of the encoder's preprocessing, on the [0, 1] scale.
        std: per-channel standard deviation of the encoder's preprocessing.
        split: ``"seeded"`` (stratified draws: ``val_fraction``, ``test_fraction``) or ``"karpathy"`` (each
            source's caption-file ``split`` field, e.g. UCM-captions' 1,680 / 210 / 210; docs/decisions.md).
        val_fraction: stratified share of each source domain's training pool held out for validation.
        source_split: which images of each source form the training pool: ``"all"``, ``"fraction:F"`` or
            ``"per_class:N"`` (seeded, stratified; e.g. to fit a CPU budget).
        target_split: which images of each target are tested: ``"all"``, ``"fraction:F"`` or ``"per_class:N"``.
        test_fraction: in-domain only: stratified share of the domain held out for testing.
        batch_size: training batch size.
        eval_batch_size: batch size of val/test/predict loaders (default 2 × ``batch_size``).
        num_workers: DataLoader workers.
        augment: random flips and 90° rotations of training images.
        cache: keep decoded images in memory as uint8 (about 67 KB per 150-px image), decoded once in the main
            process and shared with forked workers.
        seed: seed of every split and of the augmentation.
        catalog: a user catalog YAML merged over the packaged one (your own datasets and class mappings; see
            :func:`rsmg.data.catalog.use_catalog`); ``$RSMG_CATALOG`` does the same.
        captions: serve each image's caption as ``batch["text"]`` (the dataset's catalog ``captions`` entry;
            :mod:`rsmg.data.scene_captions`). Training: one of the image's captions, hashed per epoch.
        text_transforms: leakage control on every caption (:mod:`rsmg.text.leakage`, e.g. ``[drop_verdicts]``).
        caption_dropout: share of training samples served without a caption (``""``): the image-only path.
        eval_caption: the caption of validation/test images: ``"first"``, ``"join"`` (all, joined) or
            ``"none"`` (test without captions).
        held_out_classes: classes kept out of training and validation (zero-shot); every image of them in a
            target is tested. The seen classes' splits are those without held-out classes (either ``split``).
    """

    def __init__(
        self,
        sources: list[str],
        targets: list[str],
        class_set: str = "scene5",
        root: str | None = None,
        image_size: int = 224,
        interpolation: Literal["bicubic", "bilinear", "nearest"] = "bicubic",
        mean: tuple[float, float, float] = (0.5, 0.5, 0.5),
        std: tuple[float, float, float] = (0.5, 0.5, 0.5),
        split: Literal["seeded", "karpathy"] = "seeded",
        val_fraction: float = 0.2,
        source_split: str = "all",
        target_split: str = "all",
        test_fraction: float = 0.2,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        augment: bool = True,
        cache: bool = True,
        seed: int = 42,
        catalog: str | None = None,
        captions: bool = False,
        text_transforms: list[Any] | None = None,
        caption_dropout: float = 0.0,
        eval_caption: Literal["first", "join", "none"] = "first",
        held_out_classes: list[str] | None = None,
    ) -> None:
        super().__init__()
        if catalog is not None:
            use_catalog(catalog)  # before any name below is looked up
        self.sources = _unique(sources, "data.sources")
        self.targets = _unique(targets, "data.targets")
        if not self.sources:
            raise ConfigError(
                "no source domain",
                field="data.sources",
                expected=">= 1 domain name",
                found=sources,
                fix="list the training domains, e.g. [ucm, aid]",
            )
        self._domains = {n: parse_domain(n) for n in dict.fromkeys(self.sources + self.targets)}
        _check_disjoint(list(self._domains.values()))
        self.domains = tuple(self._domains)
        self.class_set = class_set
        self.root = root
        self.transform = SceneTransform(image_size, interpolation, tuple(mean), tuple(std))  # type: ignore[arg-type]
        check_val_fraction(val_fraction, field="data.val_fraction")
        if not 0 < test_fraction < 1:
            raise ConfigError(
                "test fraction out of range", field="data.test_fraction", expected="0 < f < 1",
                found=test_fraction, fix="use e.g. 0.2",
            )  # fmt: skip
        for key, rule in (("source_split", source_split), ("target_split", target_split)):
            stratified_sample(np.zeros(1, dtype=np.int64), rule, seed=0, field=f"data.{key}")  # syntax check
        check_choice("split", split, ("seeded", "karpathy"), field="data.split")
        if split == "karpathy":  # the catalog entries are checked before any file is read
            from rsmg.data.scene_captions import karpathy_spec

            for name in self.sources:
                karpathy_spec(self._domains[name].dataset)
            if source_split != "all":
                raise ConfigError(
                    "the Karpathy split is fixed: it cannot be subsampled", field="data.source_split",
                    expected="all (with split: karpathy)", found=source_split,
                    fix="use source_split: all, or split: seeded to draw a smaller training pool",
                )  # fmt: skip
        self.split = split
        self.val_fraction = val_fraction
        self.source_split = source_split
        self.target_split = target_split
        self.test_fraction = test_fraction
        check_loader_options(batch_size, eval_batch_size, num_workers)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or 2 * batch_size
        self.num_workers = num_workers
        self.augment = augment
        self.cache = cache
        self.seed = seed
        if not 0.0 <= caption_dropout < 1.0:
            raise ConfigError(
                "caption dropout out of range", field="data.caption_dropout", expected="0 <= p < 1",
                found=caption_dropout, fix="use e.g. 0.2 (or 0: every training image keeps a caption)",
            )  # fmt: skip
        check_choice("eval caption", eval_caption, ("first", "join", "none"), field="data.eval_caption")
        self.captions = captions
        self.text_transforms = list(text_transforms or [])
        self.caption_dropout = caption_dropout
        self.eval_caption = eval_caption
        self._captions: dict[str, list[tuple[str, ...]]] = {}
        self._mappings = {n: class_mapping(class_set, d.dataset) for n, d in self._domains.items()}
        self.classes = self._classes()
        self.held_out_classes = list(held_out_classes or [])
        for c in self.held_out_classes:
            if c not in self.classes:
                raise unknown_name_error("held-out class", c, self.classes, field="data.held_out_classes")
        if len(self.held_out_classes) >= len(self.classes):
            raise ConfigError(
                "every class is held out", field="data.held_out_classes", expected="at least one seen class",
                found=self.held_out_classes, fix="hold out fewer classes",
            )  # fmt: skip
        self.seen_classes = tuple(c for c in self.classes if c not in self.held_out_classes)
        self.spec = DataSpec(
            classes=self.classes,
            modalities={"rgb": 3},
            domains=self.domains,
            source_domains=tuple(self.sources),
            patch_size=image_size,
            band_names={"rgb": get_sensor("rgb").band_names},
            has_text=captions,
        )
        self._prepared: dict[str, _Domain] = {}
        self._source_digests: set[bytes] = set()
        self._images: ImageCache = {}

    # ----------------------------------------------------------------- static planning (no file read)
    @property
    def num_classes(self) -> int:
        """Number of classes (linked into the model)."""
        return len(self.classes)

    @property
    def test_domains(self) -> tuple[str, ...]:
        """Names of the test loaders, in order."""
        return tuple(self.targets)

    def _classes(self) -> tuple[str, ...]:
        if self.class_set == "native":
            raise ConfigError(
                "scene domains need a shared class set",
                field="data.class_set",
                expected="a class set of class_sets.yaml with scene mappings, e.g. scene5 or scene7",
                found="native",
                fix="use class_set: scene5 (all three datasets) or scene7 (RSSCN7 and AID)",
            )
        names = class_set_names(self.class_set)
        has = {n: {t for t in m.values() if t is not None} for n, m in self._mappings.items()}
        present = set(names).intersection(*(has[s] for s in self.sources))
        classes = tuple(c for c in names if c in present)
        if not classes:
            raise ConfigError(
                f"the sources share no class of the class set {self.class_set!r}",
                field="data.sources",
                expected="sources with common classes",
                found=self.sources,
                fix="choose other sources or another class set",
            )
        for t in self.targets:
            if t in self.sources:
                continue
            missing = sorted(has[t] - present, key=names.index)
            if missing:
                lacking = {c: [s for s in self.sources if c not in has[s]] for c in missing}
                raise ConfigError(
                    f"target {t!r} has classes that not every source has: {missing}",
                    file=CLASS_SETS_FILE,
                    field=f"{self.class_set}.scenes.{self._domains[t].dataset}",
                    expected=f"target classes among the sources' common classes {list(classes)}",
                    found=f"class -> sources without it: {lacking}",
                    fix="use class_set: scene5 (shared by all three datasets), add sources that have these "
                    "classes, or map the target's folders of these classes to null in a class set of your own",
                )
        for s in self.sources:
            extra = sorted(has[s] - present)
            if extra:
                log.warning("source %s: classes not shared by every source are left out: %s", s, extra)
        return classes

    def _domain_seed(self, name: str) -> int:
        """Split seed of a domain: the run seed and the domain's name, never its position in the config."""
        return self.seed * 1_000_003 + zlib.crc32(name.encode())

    # ----------------------------------------------------------------- reading
    def _scan(self, name: str) -> _Domain:
        d = self._domains[name]
        folder = dataset_folder(d.dataset, self.root)
        records, excluded = scan_domain(
            d, folder, self._mappings[name], self.classes, class_set=self.class_set
        )
        if excluded:
            log.info("%s: images of classes outside %s left out: %s", name, list(self.classes), excluded)
        return _Domain(records, excluded)

    def _read(self, name: str, dom: _Domain, *, decode: bool) -> list[bytes]:
        """Hash (and decode into the cache) a domain's files once; drop exact duplicates."""
        digests, images = read_images(dom.records, decode=decode, transform=self.transform)
        keep, dom.report = remove_duplicates(dom.records, digests)
        if dom.report.duplicates or dom.report.conflicting:
            log.info(
                "%s: %d exact duplicate(s) removed, %d conflicting copies removed (e.g. %s)",
                name, dom.report.duplicates, dom.report.conflicting, dom.report.examples[:1],
            )  # fmt: skip
        if images is not None:
            self._images.update({dom.records[i].path: images[i] for i in keep})
        dom.records = [dom.records[i] for i in keep]
        dom.read = True
        return [digests[i] for i in keep]

    def _decode_missing(self, records: list[ImageRecord]) -> None:
        todo = [r for r in records if r.path not in self._images]
        if self.cache and todo:
            _, images = read_images(todo, decode=True, transform=self.transform)
            assert images is not None
            self._images.update({r.path: img for r, img in zip(todo, images, strict=True)})

    def setup(self, stage: str | None = None) -> None:
        """Sources: list, read, deduplicate, split. Targets: list only, unless the stage tests (or is None)."""
        if not self._prepared:
            self._prepare_sources(fitting=stage not in ("test", "predict"))
        if stage in (None, "test", "predict"):
            self._prepare_targets()

    def _prepare_sources(self, *, fitting: bool) -> None:
        # Every file is hashed (duplicates go before the split); with the cache, decoded in the same pass when
        # all of them are used, else only the chosen ones afterwards.
        in_pass = self.cache and fitting and self.source_split == "all"
        for name in self.sources:
            dom = self._scan(name)
            listed = dom.records
            self._source_digests.update(self._read(name, dom, decode=in_pass))
            labels = np.array([r.label for r in dom.records], dtype=np.int64)
            if self.split == "karpathy":  # one copy of a duplicate at most is left, in its own split
                from rsmg.data.scene_captions import karpathy_parts

                dom.train, dom.val, test, dom.across_splits = karpathy_parts(
                    self._domains[name].dataset, listed, dom.records, dom.report.groups, root=self.root
                )
                if name in self.targets:
                    dom.test = test  # a source only: its test images are not used
            else:
                seed = self._domain_seed(name)
                pool = np.arange(len(labels))
                if name in self.targets:
                    pool, dom.test = train_val_split(labels, self.test_fraction, seed=seed + 1)
                chosen, _ = stratified_sample(
                    labels[pool], self.source_split, seed=seed + 2, field="data.source_split"
                )
                pool = pool[chosen]
                tr, va = train_val_split(labels[pool], self.val_fraction, seed=seed)
                dom.train, dom.val = pool[tr], pool[va]
            held = np.isin(labels, [self.classes.index(c) for c in self.held_out_classes])
            if held.any():  # zero-shot classes: never trained on or validated; every image of them is tested
                # removed after the split, so the seen classes' splits are those of a run without held-out classes
                dom.train, dom.val = dom.train[~held[dom.train]], dom.val[~held[dom.val]]
                if name in self.targets:
                    dom.test = np.union1d(dom.test, np.flatnonzero(held))
            if fitting:
                self._decode_missing([dom.records[i] for i in np.concatenate([dom.train, dom.val, dom.test])])
            require_nonempty(
                dom.train,
                what=f"training images of source {name!r}",
                file=str(dataset_folder(self._domains[name].dataset, self.root)),
                fix="check data.source_split, data.val_fraction and the class set",
            )
            self._prepared[name] = dom
        for name in self.targets:
            if name not in self._prepared:
                self._prepared[name] = self._scan(name)  # listed now, so layout errors come before training
        self._log_summary()

    def _prepare_targets(self) -> None:
        todo = [t for t in self.targets if not self._prepared[t].read]
        for name in self.targets:
            if name in self.sources:
                self._decode_missing([self._prepared[name].records[i] for i in self._prepared[name].test])
        for name in todo:
            dom = self._prepared[name]
            digests = self._read(name, dom, decode=self.cache and self.target_split == "all")
            fresh = np.array([d not in self._source_digests for d in digests], dtype=bool)
            dom.in_a_source = int((~fresh).sum())
            if dom.in_a_source:
                log.warning(
                    "target %s: %d image(s) identical to a source image left out", name, dom.in_a_source
                )
            pos = np.flatnonzero(fresh)
            labels = np.array([dom.records[i].label for i in pos], dtype=np.int64)
            chosen, _ = stratified_sample(
                labels, self.target_split, seed=self._domain_seed(name) + 3, field="data.target_split"
            )
            dom.test = pos[chosen]
            require_nonempty(
                dom.test,
                what=f"test images of target {name!r}",
                file=str(dataset_folder(self._domains[name].dataset, self.root)),
                fix="check data.target_split and the class set",
            )
            self._decode_missing([dom.records[i] for i in dom.test])
        if todo:
            self._log_summary()

    def _log_summary(self) -> None:
        log.info(
            "scene domains (class set %s, classes %s): %s", self.class_set, list(self.classes), self.summary()
        )

    # ----------------------------------------------------------------- datasets and loaders
    def _dataset(self, names: list[str], part: str) -> SceneImageDataset:
        records: list[ImageRecord] = []
        domains: list[np.ndarray] = []
        indices: list[np.ndarray] = []
        captions: list[tuple[str, ...]] = []
        for name in names:
            dom = self._prepared.get(name)
            if dom is None or (part == "test" and not dom.read):
                raise DataError(
                    f"domain {name!r} is not set up for {part}",
                    field="data",
                    expected=f"setup('{'test' if part == 'test' else 'fit'}') before the {part} loader",
                    found="not set up",
                    fix="let the Trainer call setup, or call datamodule.setup(stage) first",
                )
            pos = getattr(dom, part)
            d = self.domains.index(name)
            records += [dom.records[i] for i in pos]
            if self.captions:
                caps = self._domain_captions(name, dom)
                captions += [caps[i] for i in pos]
            domains.append(np.full(len(pos), d, dtype=np.int64))
            indices.append((d << 40) | (_PARTS[part] << 36) | pos.astype(np.int64))
        return SceneImageDataset(
            records,
            self.transform,
            domains=np.concatenate(domains),
            indices=np.concatenate(indices),
            cache=self._images,
            captions=captions if self.captions else None,
            eval_caption=self.eval_caption,
        )

    def _domain_captions(self, name: str, dom: _Domain) -> list[tuple[str, ...]]:
        """Captions of a domain's records (read once, after deduplication; leakage control applied)."""
        if name not in self._captions:
            from rsmg.data.scene_captions import load_scene_captions

            caps = load_scene_captions(self._domains[name].dataset, dom.records, root=self.root)
            if self.text_transforms:
                from rsmg.text.leakage import build_text_transform

                folder_classes = sorted({r.folder_class for r in dom.records})
                tf = build_text_transform(self.text_transforms, [*self.classes, *folder_classes])
                assert tf is not None
                # a caption that leakage control empties ("it is a beach .") is no caption: dropped
                caps = [tuple(x for x in (tf(c) for c in t) if x.strip()) for t in caps]
            self._captions[name] = caps
        return self._captions[name]

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment (base class), then pick each training sample's caption (hashed; dropped with p)."""
        batch = super().on_after_batch_transfer(batch, dataloader_idx)
        trainer = self.trainer
        if trainer is not None and trainer.training and isinstance(batch, dict) and "captions" in batch:
            from rsmg.data.scene_captions import choose_train_captions

            batch["text"] = choose_train_captions(
                batch["captions"],
                batch["index"],
                seed=self.seed,
                epoch=trainer.current_epoch,
                dropout=self.caption_dropout,
            )
        return batch

    def train_dataloader(self) -> DataLoader[Any]:
        """Source training images in a seeded per-epoch order that a resumed run continues mid-epoch."""
        return self._loader(self._dataset(self.sources, "train"), train=True)

    def val_dataloader(self) -> DataLoader[Any]:
        """Source validation images (never a target image)."""
        return self._loader(self._dataset(self.sources, "val"), train=False)

    def test_dataloader(self) -> list[DataLoader[Any]]:
        """One loader per target domain, in ``targets`` order (reads the targets if setup has not)."""
        self._prepare_targets()
        return [self._loader(self._dataset([t], "test"), train=False) for t in self.targets]

    def predict_dataloader(self) -> list[DataLoader[Any]]:
        """Same as the test loaders."""
        return self.test_dataloader()

    def train_dataset(self) -> SceneImageDataset:
        """The source training images (all sources), un-augmented: e.g. to build a DTAug view bank."""
        return self._dataset(self.sources, "train")

    def test_dataset(self, name: str) -> SceneImageDataset:
        """The test images of one target."""
        self._prepare_targets()
        return self._dataset([name], "test")

    # ----------------------------------------------------------------- reports and checkpoint state
    def summary(self) -> dict[str, dict[str, int]]:
        """Images per domain and split (after setup; a target's test count is 0 until it is read)."""
        return {
            n: {"train": len(d.train), "val": len(d.val), "test": len(d.test)}
            for n, d in self._prepared.items()
        }

    def dedup_report(self) -> dict[str, dict[str, int]]:
        """Duplicate removal per domain read so far.

        Returns:
            Domain → images listed, duplicates and conflicting copies removed, images kept, (targets) images
            left out because a source holds the same file, and (``split: karpathy``) groups of identical images
            the caption file put in different splits.
        """
        return {
            n: {
                "images": d.report.images,
                "duplicates": d.report.duplicates,
                "conflicting": d.report.conflicting,
                "kept": d.report.kept,
                "in_a_source": d.in_a_source,
                "across_splits": d.across_splits,
            }
            for n, d in self._prepared.items()
            if d.read
        }

    def state_dict(self) -> dict[str, Any]:
        """Spec, preprocessing and the global RNG states (:meth:`rng_state`), saved in checkpoints."""
        return {"spec": self.spec.to_dict(), "transform": self.transform.to_dict(), "rng": self.rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Refuse a checkpoint trained with other preprocessing; when fitting, keep its RNG states."""
        saved = state_dict.get("transform")
        now = self.transform.to_dict()
        if saved is not None:
            for key, value in now.items():
                if saved.get(key) != value:
                    raise DataError(
                        f"checkpoint was trained with another {key}",
                        field=f"data.{key}",
                        expected=f"checkpoint: {saved.get(key)}",
                        found=f"data config: {value}",
                        fix=f"set data.init_args.{key} to the checkpoint's value",
                    )
        self.restore_rng(state_dict)


def _unique(names: list[str], key: str) -> list[str]:
    names = list(names)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(
            "domain listed twice", field=key, expected="each domain once", found=dup, fix="remove the repeat"
        )
    return names


def _check_disjoint(domains: list[SceneDomain]) -> None:
    """Two different domains must not share images (a whole dataset and one of its blocks do)."""
    for i, a in enumerate(domains):
        for b in domains[i + 1 :]:
            if a.dataset == b.dataset and (a.block is None or b.block is None):
                raise ConfigError(
                    f"domains {a.name!r} and {b.name!r} share images",
                    field="data.sources / data.targets",
                    expected="disjoint domains (a dataset, or its blocks, not both)",
                    found=[a.name, b.name],
                    fix=f"use either {a.dataset!r} or its blocks; to test a domain on held-out images of itself, "
                    "list the same name in sources and targets",
                )
