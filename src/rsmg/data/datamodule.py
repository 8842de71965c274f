"""``CrossDomainDataModule``: source scenes → train / val, every target scene → its own named test loader.

This is the protocol of remote-sensing multimodality generalisation (FVMGN, papers.md §1): the model is fitted
on source domains only; validation is carved from the sources only (model selection never sees a target);
each target domain is a separate test loader so metrics are reported per domain. Normalisation statistics are
computed on the source training pixels, stored in the checkpoint, and applied unchanged everywhere. By default no
statistic of a target scene is used (inductive); the one option that does (``standardize_stats: per_scene``)
labels the run ``transductive`` (:attr:`CrossDomainDataModule.protocol`, written to ``metrics.json``).

A dataset may be both source and target (in-scene experiments, e.g. Salinas-A): its test pixels are then the
labelled pixels not used for training or validation. That split is per pixel, so with patches a test pixel sits
inside training patches and accuracy is optimistic; ``target_split: blocks:B`` instead holds out whole B×B tiles
for test, drops every pixel within ``test_buffer`` of a test pixel from training and validation, and carves the
training pool (and validation) from what is left (docs/decisions.md#in-scene-test-split).

A target may have no label map at all (a user scene without ground truth, catalog entry without ``labels``):
it has no test loader and no metrics; its predict loader serves every valid pixel, so ``rsmg predict`` writes
the whole scene's classification map. Such a target is read in strips of rows (``strip_rows``;
:mod:`rsmg.data.strip_target`), never whole, so it may be larger than memory; the exceptions, with a warning,
are ``standardize_stats: per_scene`` (statistics of the whole target) and a layout other than ``HWC``. A source
always needs labels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch.utils.data import DataLoader

from rsmg.data.band_prep import plan_band_prep
from rsmg.data.catalog import class_mapping, dataset_info, datasets_files, load_scene, use_catalog
from rsmg.data.domain_plan import check_standardize, plan_bands, plan_classes
from rsmg.data.normalization import Stats, band_statistics, stats_from_state, stats_to_state
from rsmg.data.resumable import ResumableDataModule, check_loader_options
from rsmg.data.scene import PadMode, Scene, SceneDataset
from rsmg.data.scene_splits import block_test_split, excluded_report, split_positions
from rsmg.data.spec import DataSpec
from rsmg.data.spectral import SpectralMode
from rsmg.data.splits import (
    block_train_val_split,
    check_val_fraction,
    parse_val_split,
    require_nonempty,
    train_val_split,
)
from rsmg.data.standardize import DEFAULT_STATS, Protocol, StandardizeStats, protocol, robust_stats
from rsmg.data.strip_dataset import StripSceneDataset
from rsmg.data.strip_target import open_strip_target, read_in_strips
from rsmg.data.windowed_scene import StripIndex, WindowedScene
from rsmg.errors import ConfigError, DataError, check_choice

log = logging.getLogger(__name__)

ClassScope = Literal["sources", "sources_and_targets"]


@dataclass
class _Prepared:
    scene: Scene | WindowedScene
    class_map: np.ndarray  # native id -> target index, -1 excluded
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    predict: np.ndarray  # the test pixels; every valid pixel of a target without labels (in memory)
    strips: StripIndex | None = None  # a windowed target's valid pixels, strip by strip


class CrossDomainDataModule(ResumableDataModule):
    """Multimodal pixel-level scenes for cross-domain training and per-domain testing.

    Args:
        sources: catalog names of the training scenes.
        targets: catalog names of the unseen test scenes (one test loader each, in this order).
        modalities: modalities to load (``hsi``, ``lidar``, ``sar``, ``msi``); each must exist in every scene.
        root: data root (default ``$RSMG_DATA_ROOT`` or ``./data``).
        class_set: ``"shared"`` (common names across scenes, see ``class_sets.yaml``) or ``"native"``.
        class_scope: which shared names become classes: ``"sources"`` (default; every name each source has) or
            ``"sources_and_targets"`` (closed set: names every source and target has, from the catalog's class
            lists, never a target label or pixel; docs/decisions.md#class-scope).
        bands: optional band selection by name per modality, e.g. ``{"lidar": ["dsm"]}``.
        patch_size: odd patch side in pixels (11 by default, papers.md).
        source_split: a split map shipped with the dataset (``"standard"``, ``"per_class_50"``) or a sampling
            rule (``"per_class:N"``, ``"fraction:F"``, ``"all"``) for the source training pool.
        val_fraction: stratified fraction of the source pool held out for validation.
        val_split: ``"random"`` stratified source pixels (default; optimistic for checkpoint selection) or
            ``"blocks:B"`` (whole B×B tiles, spatially disjoint; docs/decisions.md#validation-split).
        val_buffer: with ``"blocks:B"``, training pixels within this many pixels of a validation pixel are
            dropped; default ``patch_size - 1``, so no training patch overlaps a validation patch.
        target_split: ``"all"`` labelled target pixels (default), a shipped split name (its test map), a rule, or
            in-scene ``"blocks:B"``: B×B tiles for test, ``test_fraction`` of each class, pixels within
            ``test_buffer`` (default ``patch_size // 2``) of them dropped (docs/decisions.md#in-scene-test-split).
        spectral_grid: how HSI cubes of different sensors are reconciled (``"interpolate"`` or ``"common"``).
        hsi_bands: number of bands of the common HSI grid (default: the fewest among the sensors).
        nonfinite: ``"reject"`` NaN/inf with an error, or ``"mask"`` the affected pixels out. pad_mode: at borders.
        batch_size / eval_batch_size: training / val-test-predict batch sizes (default 4 × ``batch_size``).
        num_workers: DataLoader workers.
        augment: random flips / rotations (identical across modalities of a sample) during training.
        seed: seed of every split and of the augmentation hash.
        ndsm_bands: LiDAR bands made height above ground (:mod:`~rsmg.data.lidar`) where the catalog says absolute.
        ndsm_window: opening window (px) of the terrain estimate.
        standardize: bands z-scored robustly per modality, e.g. ``{"lidar": ["intensity"]}``.
        standardize_stats: their statistics: ``"source"`` or ``"per_patch"`` (inductive), or ``"per_scene"``
            (transductive on an unseen target, and labelled so); :mod:`rsmg.data.standardize`,
            docs/decisions.md#intensity-standardisation.
        scene_standardize: removed (it meant ``per_scene``); a non-empty value is an error naming the above.
        catalog: a user catalog YAML (your scenes, class mappings) merged over the packaged one (``use_catalog``).
        strip_rows: rows per strip of a target without labels (default ~32 MiB, :mod:`rsmg.data.strip_dataset`).
    """

    def __init__(
        self,
        sources: list[str],
        targets: list[str],
        modalities: list[str] | None = None,
        root: str | None = None,
        class_set: str = "shared",
        class_scope: ClassScope = "sources",
        bands: dict[str, list[str]] | None = None,
        patch_size: int = 11,
        source_split: str = "standard",
        val_fraction: float = 0.2,
        val_split: str = "random",
        val_buffer: int | None = None,
        target_split: str = "all",
        test_fraction: float = 0.25,
        test_buffer: int | None = None,
        spectral_grid: SpectralMode = "interpolate",
        hsi_bands: int | None = None,
        nonfinite: Literal["reject", "mask"] = "reject",
        pad_mode: PadMode = "reflect",
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        augment: bool = True,
        seed: int = 42,
        ndsm_bands: list[str] | None = None,
        ndsm_window: int = 41,
        standardize: dict[str, list[str]] | None = None,
        standardize_stats: StandardizeStats = DEFAULT_STATS,
        scene_standardize: dict[str, list[str]] | None = None,
        catalog: str | None = None,
        strip_rows: int | None = None,
    ) -> None:
        super().__init__()
        if catalog is not None:
            use_catalog(catalog)  # before any name below is looked up
        if not sources:
            raise ConfigError(
                "no source domain",
                field="data.sources",
                expected=">= 1 dataset name",
                found=sources,
                fix="list the training scenes, e.g. [trento]",
            )
        self.sources = list(sources)
        self.targets = list(targets)
        self.modalities = sorted(modalities or ["lidar"])
        self.root = root
        self.class_set = class_set
        check_choice("class scope", class_scope, get_args(ClassScope), field="data.class_scope")
        self.class_scope = class_scope
        self.bands = dict(bands or {})
        self.patch_size = patch_size
        self.source_split = source_split
        self.val_fraction = val_fraction
        self.val_split = val_split
        self.val_block = parse_val_split(val_split)
        if val_buffer is not None and val_buffer < 0:
            raise ConfigError(
                "negative validation buffer", field="data.val_buffer", expected=">= 0 pixels or null",
                found=val_buffer, fix="leave it null (patch_size - 1) or use 0 for no buffer",
            )  # fmt: skip
        self.val_buffer = patch_size - 1 if val_buffer is None else val_buffer
        self.target_split = target_split
        self.test_block = (
            parse_val_split(target_split, field="data.target_split")
            if target_split.startswith("blocks")
            else None
        )
        if self.test_block is not None:
            check_val_fraction(test_fraction, field="data.test_fraction")
            outside = [t for t in targets if t not in sources]
            if outside or test_fraction == 0:
                raise ConfigError(
                    "a blocks test split holds out part of a scene that is also trained on (in-scene)",
                    field="data.target_split",
                    expected="every target also a source, and 0 < test_fraction < 1",
                    found=f"targets not among the sources: {outside}, test_fraction {test_fraction}",
                    fix="list the scene under sources and targets, or use target_split: all for an unseen scene",
                )
        if test_buffer is not None and test_buffer < 0:
            raise ConfigError(
                "negative test buffer", field="data.test_buffer", expected=">= 0 pixels or null",
                found=test_buffer, fix="leave it null (patch_size // 2)",
            )  # fmt: skip
        self.test_fraction = test_fraction
        self.test_buffer = patch_size // 2 if test_buffer is None else test_buffer
        self.spectral_grid = spectral_grid
        self.hsi_bands = hsi_bands
        self.nonfinite = nonfinite
        self.pad_mode = pad_mode
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or 4 * batch_size
        self.num_workers = num_workers
        self.augment = augment
        self.seed = seed
        self.ndsm_bands = list(ndsm_bands or [])
        self.ndsm_window = ndsm_window
        if scene_standardize and any(scene_standardize.values()):
            raise ConfigError(
                "data.scene_standardize was replaced: it standardised every scene, the unseen targets "
                "included, with that scene's own statistics (transductive)",
                field="data.scene_standardize",
                expected="data.standardize (+ data.standardize_stats)",
                found=scene_standardize,
                fix=f"write standardize: {scene_standardize} (statistics: {DEFAULT_STATS!r}, inductive); add "
                "standardize_stats: per_scene only to reproduce the old behaviour, labelled transductive",
            )
        self.standardize = {m: list(b) for m, b in (standardize or {}).items() if b}
        check_choice(
            "standardisation statistics", standardize_stats, get_args(StandardizeStats),
            field="data.standardize_stats",
        )  # fmt: skip
        self.standardize_stats = standardize_stats
        if patch_size < 1 or patch_size % 2 == 0:
            raise ConfigError(
                "patch size must be a positive odd number",
                field="data.patch_size",
                expected="1, 3, 5, …",
                found=patch_size,
                fix="use e.g. 11",
            )
        check_loader_options(batch_size, eval_batch_size, num_workers)
        if strip_rows is not None and strip_rows < 1:
            raise ConfigError(
                "strip_rows must be a positive number of rows", field="data.strip_rows",
                expected=">= 1 or null (about 32 MiB per strip)", found=strip_rows, fix="leave it null",
            )  # fmt: skip
        self.strip_rows = strip_rows
        self._infos = {n: dataset_info(n) for n in dict.fromkeys(self.sources + self.targets)}
        for n in self.sources:
            if not self._infos[n].labelled:
                raise DataError(
                    f"source {n!r} has no label map: a source is trained on, so it needs labels",
                    file=datasets_files(),
                    field=f"datasets.{n}.labels",
                    expected="{file: <.tif / .mat / .npy / .npz>} (0 unlabelled, 1..K in the order of classes)",
                    found="nothing",
                    fix=f"add labels: to {n!r} (and its classes:), or list it under data.targets only",
                )
        self.domains = tuple(dict.fromkeys(self.sources + self.targets))
        self.classes = plan_classes(self._infos, self.sources, self.targets, self.class_set, self.class_scope)
        self._band_names, self._hsi_grid = plan_bands(
            self._infos, self.modalities, self.bands, self.hsi_bands
        )
        check_standardize(self.standardize, self._band_names, self.standardize_stats, patch_size)
        self.spec = DataSpec(
            classes=self.classes,
            modalities={m: len(self._band_names[m]) for m in self.modalities},
            domains=self.domains,
            source_domains=tuple(dict.fromkeys(self.sources)),
            patch_size=patch_size,
            band_names=self._band_names,
        )
        self.stats: Stats | None = None
        self._prepared: dict[str, _Prepared] = {}
        self.excluded: dict[str, dict[str, int]] = {}

    # ----------------------------------------------------------------- static planning (no file read)
    @property
    def num_classes(self) -> int:
        """Number of classes (linked into the model)."""
        return len(self.classes)

    @property
    def protocol(self) -> Protocol:
        """``transductive`` when an unseen target's own statistics shape its inputs, else ``inductive``."""
        return protocol(self.standardize, self.standardize_stats, self.sources, self.targets)[0]

    @property
    def protocol_reason(self) -> str:
        """Why :attr:`protocol` is what it is (written beside it in ``metrics.json``)."""
        return protocol(self.standardize, self.standardize_stats, self.sources, self.targets)[1]

    def _standardize_indices(self) -> dict[str, tuple[int, ...]]:
        return {
            m: tuple(self._band_names[m].index(b) for b in bands) for m, bands in self.standardize.items()
        }

    # ----------------------------------------------------------------- loading
    def _reconcile(self, scene: Scene | WindowedScene) -> None:
        """Set up the scene's bands: prepared now in memory, or strip by strip for a windowed scene."""
        prep = plan_band_prep(
            scene.name, scene.sensors, self.modalities, bands=self.bands, band_names=self._band_names,
            hsi_grid=self._hsi_grid, spectral_grid=self.spectral_grid, ndsm_bands=self.ndsm_bands,
            ndsm_window=self.ndsm_window, height=self._infos[scene.name].heights.get("lidar"),
        )  # fmt: skip
        for mod in self.modalities:
            scene.band_names[mod] = self._band_names[mod]
        if isinstance(scene, WindowedScene):
            scene.prep = prep
            return
        prep(scene.modalities)
        if self.standardize_stats == "per_scene":
            from rsmg.data.standardize import scene_standardize

            for mod, idx in self._standardize_indices().items():
                for i in idx:
                    scene.modalities[mod][i] = scene_standardize(scene.modalities[mod][i])

    def _class_map(self, name: str) -> np.ndarray:
        info = self._infos[name]
        if not info.labelled:
            return np.full(1, -1, dtype=np.int64)  # every pixel is 0 (unlabelled)
        mapping = class_mapping(self.class_set, name)
        lut = np.full(len(info.classes) + 1, -1, dtype=np.int64)
        index = {c: i for i, c in enumerate(self.classes)}
        for k, native in enumerate(info.classes, start=1):
            to = mapping.get(native)
            if to is not None and to in index:
                lut[k] = index[to]
        return lut

    def setup(self, stage: str | None = None) -> None:
        """Read the scenes, build the splits and (unless restored from a checkpoint) the statistics."""
        if self._prepared:
            return
        per_scene = self.standardize_stats == "per_scene" and bool(self.standardize)
        for i, name in enumerate(self.domains):
            if name in self.targets and read_in_strips(name, whole_stats=per_scene):
                windowed, strips = open_strip_target(
                    name, self.modalities, root=self.root, nonfinite=self.nonfinite, prepare=self._reconcile,
                    patch_size=self.patch_size, strip_rows=self.strip_rows,
                )  # fmt: skip
                none = np.arange(0)
                self._prepared[name] = _Prepared(
                    windowed, self._class_map(name), none, none, none, none, strips
                )
                continue
            scene = load_scene(name, self.modalities, root=self.root, nonfinite=self.nonfinite)
            self._reconcile(scene)
            lut = self._class_map(name)
            train = val = held_out = np.arange(0)
            allowed = None
            if self.test_block is not None and name in self.targets:
                allowed, held_out = block_test_split(
                    scene, lut, self.test_fraction, self.test_block, buffer=self.test_buffer, seed=self.seed + i
                )  # fmt: skip
            if name in self.sources:
                pool = split_positions(
                    scene, self.source_split, lut, part="train", seed=self.seed + i, within=allowed
                )
                pool_labels = lut[scene.labels.ravel()[pool]]
                if self.val_block is None:
                    tr, va = train_val_split(pool_labels, self.val_fraction, seed=self.seed + i)
                else:
                    tr, va = block_train_val_split(
                        pool, pool_labels, scene.shape[1], self.val_fraction, self.val_block,
                        buffer=self.val_buffer, seed=self.seed + i,
                    )  # fmt: skip
                    log.info(
                        "%s: spatially disjoint validation (%s, buffer %d px): %d train / %d val pixels, "
                        "%d dropped in the buffer", name, self.val_split, self.val_buffer, len(tr), len(va),
                        len(pool) - len(tr) - len(va),
                    )  # fmt: skip
                train, val = pool[tr], pool[va]
                require_nonempty(
                    train,
                    what=f"training pixels of source {name!r}",
                    file=scene.files.get("labels"),
                    fix="check data.source_split and the class set",
                )
            test = np.arange(0)
            predict: np.ndarray | None = None
            if name in self.targets and not scene.labelled:
                predict = scene.valid_positions()
                require_nonempty(
                    predict,
                    what=f"valid pixels of target {name!r}",
                    file=next(iter(scene.files.values()), None),
                    fix="check the rasters' nodata values",
                )
                log.info(
                    "target %s has no labels: no test metrics; `rsmg predict` classifies its %d valid pixels",
                    name, len(predict),
                )  # fmt: skip
            elif name in self.targets:
                if self.test_block is not None:
                    test = held_out
                elif name in self.sources:
                    all_pos = split_positions(scene, "all", lut, part="test", seed=self.seed)
                    test = np.setdiff1d(all_pos, np.concatenate([train, val]))
                else:
                    test = split_positions(scene, self.target_split, lut, part="test", seed=self.seed + i)
                require_nonempty(
                    test,
                    what=f"test pixels of target {name!r}",
                    file=scene.files.get("labels"),
                    fix="check data.target_split and the class set",
                )
                self.excluded[name] = excluded_report(scene, lut)
            self._prepared[name] = _Prepared(
                scene, lut, train, val, test, test if predict is None else predict
            )
        if self.stats is None:
            self.stats = {
                m: band_statistics(
                    [self._source_scene(s).modalities[m] for s in self.sources],
                    [self._prepared[s].train for s in self.sources],
                )
                for m in self.modalities
            }
            if self.standardize_stats == "source":
                self._source_robust_stats(self.stats)
        if self.protocol == "transductive":
            log.warning("transductive run: %s", self.protocol_reason)
        for name, prep in self._prepared.items():
            h, w = prep.scene.shape
            if self.patch_size > 1 and self.patch_size > min(h, w):
                raise DataError(
                    f"patch size larger than scene {name!r}",
                    file=prep.scene.files.get("labels"),
                    field="data.patch_size",
                    expected=f"<= min(H, W) = {min(h, w)} ({h}×{w} px)",
                    found=self.patch_size,
                    fix="use a smaller odd patch_size, e.g. 11",
                )
        for name, counts in self.excluded.items():
            if counts:
                log.warning(
                    "target %s: pixels of classes without a source counterpart excluded: %s", name, counts
                )

    def _source_scene(self, name: str) -> Scene:
        scene = self._prepared[name].scene
        assert isinstance(scene, Scene)  # a source is labelled, hence read whole
        return scene

    def class_counts(self) -> dict[str, dict[str, list[int]]]:
        """Pixels per class (in :attr:`classes` order) of every domain's train / val / test split (after setup).

        Why: a spatial split cannot give every class test pixels (a class confined to one field stays in
        training), so results state the coverage next to the accuracies.
        """
        out: dict[str, dict[str, list[int]]] = {}
        for name, p in self._prepared.items():
            if not isinstance(p.scene, Scene):  # a windowed target has no labels, hence no split
                out[name] = {part: [0] * self.num_classes for part in ("train", "val", "test")}
                continue
            labels = p.class_map[p.scene.labels.ravel()]
            out[name] = {
                part: np.bincount(labels[getattr(p, part)], minlength=self.num_classes).tolist()
                for part in ("train", "val", "test")
            }
        return out

    def _source_robust_stats(self, stats: Stats) -> None:
        """Replace the mean / std of each ``standardize`` band by median and IQR / 1.349 of the source rasters.

        Every pixel of every source scene counts (label-free; invalid pixels excluded), so the statistics of a
        band are the same whichever split is drawn, and they are stored in the checkpoint like the others.
        """
        for mod, idx in self._standardize_indices().items():
            mean, std = stats[mod]
            for i in idx:
                values = []
                for s in self.sources:
                    scene = self._source_scene(s)
                    band = scene.modalities[mod][i]
                    values.append(band[scene.valid] if scene.valid is not None else band.ravel())
                mean[i], std[i] = robust_stats(np.concatenate(values))

    # ----------------------------------------------------------------- datasets and loaders
    def _dataset(self, name: str, part: str) -> SceneDataset | StripSceneDataset:
        p = self._prepared[name]
        positions = getattr(p, part)
        # predict shares the test offset: a labelled target's predicted samples are its test samples
        offset = (self.domains.index(name) << 40) | {"train": 0, "val": 1, "test": 2, "predict": 2}[
            part
        ] << 36
        patch_std = self._standardize_indices() if self.standardize_stats == "per_patch" else None
        if isinstance(p.scene, WindowedScene):
            if p.strips is None or part != "predict":
                raise ConfigError(
                    f"target {name!r} has no labels, so it has no {part} pixels",
                    field="data.targets",
                    expected="a labelled scene for train / val / test",
                    found=f"{name} (catalog entry without labels:)",
                    fix="use `rsmg predict` for a map of it",
                )
            return StripSceneDataset(
                p.scene, p.strips, patch_size=self.patch_size, domain=self.domains.index(name),
                normalize=self.stats, patch_standardize=patch_std, pad_mode=self.pad_mode, index_offset=offset,
            )  # fmt: skip
        return SceneDataset(
            p.scene, positions, patch_size=self.patch_size, class_map=p.class_map, domain=self.domains.index(name),
            normalize=self.stats, patch_standardize=patch_std, pad_mode=self.pad_mode, index_offset=offset,
            unlabelled=part == "predict" and not p.scene.labelled,
        )  # fmt: skip

    def _concat(self, part: str) -> torch.utils.data.Dataset[Any]:
        sets = [self._dataset(s, part) for s in self.sources]
        return sets[0] if len(sets) == 1 else torch.utils.data.ConcatDataset(sets)

    def train_dataloader(self) -> DataLoader[Any]:
        """Source training pixels in a seeded per-epoch order that a resumed run continues mid-epoch."""
        return self._loader(self._concat("train"), train=True)

    def val_dataloader(self) -> DataLoader[Any]:
        """Source validation pixels (never a target)."""
        return self._loader(self._concat("val"), train=False)

    @property
    def test_domains(self) -> tuple[str, ...]:
        """Names of the test loaders, in order: the targets that have labels."""
        return tuple(t for t in self.targets if self._infos[t].labelled)

    @property
    def predict_domains(self) -> tuple[str, ...]:
        """Names of the predict loaders, in order: every target."""
        return tuple(self.targets)

    def test_dataloader(self) -> list[DataLoader[Any]]:
        """One loader per labelled target domain, in ``targets`` order.

        Raises:
            ConfigError: no target has labels (nothing to test; ``rsmg predict`` maps them).
        """
        if not self.test_domains:
            raise ConfigError(
                "no target has labels, so there is nothing to test",
                field="data.targets",
                expected="at least one target with a label map",
                found=f"{self.targets} (catalog entries without labels:)",
                fix="use `rsmg predict` for a map of an unlabelled scene (and drop --test_after_fit)",
            )
        return [self._loader(self._dataset(t, "test"), train=False) for t in self.test_domains]

    def predict_dataloader(self) -> list[DataLoader[Any]]:
        """One loader per target domain: its test pixels, or every valid pixel of a target without labels."""
        loaders = []
        for t in self.targets:
            ds = self._dataset(t, "predict")
            loaders.append(self._loader(ds, train=False, by_worker=isinstance(ds, StripSceneDataset)))
        return loaders

    def train_dataset(self) -> torch.utils.data.Dataset[Any]:
        """The source training pixels (all sources concatenated), un-augmented: e.g. to build a DTAug view bank."""
        return self._concat("train")

    def test_dataset(self, name: str) -> SceneDataset:
        """The test dataset of one target (for maps and figures)."""
        ds = self._dataset(name, "test")
        assert isinstance(ds, SceneDataset)  # a windowed target has no test pixels: _dataset raised
        return ds

    def state_dict(self) -> dict[str, Any]:
        """Normalisation statistics, spec and the global RNG states (:meth:`rng_state`), saved in checkpoints."""
        assert self.stats is not None, "setup() must run before saving"
        return {
            "stats": stats_to_state(self.stats, self._band_names),
            "spec": self.spec.to_dict(),
            "rng": self.rng_state(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore statistics from a checkpoint; when fitting, keep its RNG states for the first training batch.

        The statistics replace freshly computed ones; the RNG states wait for :meth:`restore_rng`'s moment.
        """
        self.stats = stats_from_state(state_dict["stats"], self._band_names)
        self.restore_rng(state_dict)

    def summary(self) -> dict[str, dict[str, int]]:
        """Number of samples per domain and split (after setup)."""
        return {
            n: {"train": len(p.train), "val": len(p.val), "test": len(p.test)}
            for n, p in self._prepared.items()
        }
