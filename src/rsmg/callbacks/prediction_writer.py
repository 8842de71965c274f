"""Write what ``rsmg predict`` predicts: one ``predictions_<domain>.npz`` (and ``.csv``) per target domain.

Why: ``trainer.predict`` only hands its outputs back to the Python caller, so on the command line they were
computed and dropped. :class:`PredictionWriter` keeps what
:meth:`rsmg.tasks.ClassificationTask.predict_step` returns for every batch (``probs``, ``label``, ``domain``,
``index``) and writes, per predict dataloader (one per target domain), into the run directory
(``trainer.log_dir``, the logger's ``version_N``, as :func:`rsmg.callbacks.results.run_dir`):

* ``predictions_<domain>.npz``: ``index`` (sample index, as in ``embeddings.npz``), ``row`` / ``col`` (pixel
  position in the scene, ``-1`` when the dataset has none), ``label`` (class index, ``-1`` if unknown),
  ``pred`` (``argmax`` of ``probs``), ``probs`` (``N×K`` float32), ``classes`` (the ``K`` class names) and
  ``domain`` (its name);
* ``predictions_<domain>.csv``: ``index,row,col,label,pred,label_name,pred_name,confidence`` for a quick
  look in a spreadsheet or pandas (``confidence`` = the largest probability).

Rows are sorted by sample index, one per sample of the domain's split. Both files are written atomically
(temporary file + rename), so an interrupted run never leaves a half-written file.

For a pixel-level scene (a :class:`~rsmg.data.scene.SceneDataset`: it knows its pixels' rows and columns and
the scene's shape) it also writes the classification map ``prediction_<domain>.tif``: a uint8 GeoTIFF on the
scene's grid, with the CRS and geotransform of the rasters it was read from, a colour table and the class
names (:mod:`rsmg.callbacks.map_writer`; ``maps=False``: off; ``confidence_maps=True`` adds
``prediction_<domain>_confidence.tif``), and its PNG quick look ``prediction_<domain>.png`` (``quicklook=False``).

Memory: in a single process a scene's predictions stream: each batch's rows go to scratch files at their
samples' slots and into the uint8 map (:class:`~rsmg.callbacks.prediction_table.DiskTable`,
:class:`~rsmg.callbacks.map_writer.SceneMap`); the files are written from them in chunks, never holding every
pixel's probabilities. It is a batch-interval writer on purpose: Lightning keeps every prediction for a writer
with an epoch interval, whatever ``return_predictions`` says (files: :meth:`PredictionWriter.on_predict_epoch_end`).

Under DDP every rank keeps the predictions of its own shard in memory (on the CPU). At the end of the predict
epoch the shards are sent to rank zero only (``torch.distributed.gather_object``); rank zero merges them,
drops repeated sample indices (a sampler that pads shards to equal length predicts a few samples twice) and
writes the files. The files therefore do not depend on the number of processes. rsmg's own evaluation sampler
does not pad, so with :class:`~rsmg.data.datamodule.CrossDomainDataModule` nothing is dropped. Datasets that are
not scenes (image patches, captions) are kept in memory too: they have no pixel slots to stream into.

The rsmg CLI adds this callback to ``rsmg predict`` unless the configuration already has a prediction writer
(any :class:`~lightning.pytorch.callbacks.BasePredictionWriter`).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from rsmg.callbacks.map_writer import SceneMap, write_scene_maps
from rsmg.callbacks.prediction_table import DiskTable, MemoryTable, Table, write_csv, write_npz
from rsmg.callbacks.results import run_dir
from rsmg.data.scene import SceneDataset
from rsmg.data.strip_dataset import StripSceneDataset
from rsmg.errors import ConfigError

__all__ = ["PredictionWriter", "merge_shards"]

Columns = dict[str, np.ndarray]


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu").numpy()
    return np.asarray(x)


def merge_shards(shards: Sequence[Mapping[int, Columns]]) -> dict[int, Columns]:
    """Merge per-rank predictions into one table per dataloader, sorted by sample index.

    Args:
        shards: one ``{dataloader_idx: columns}`` per rank; ``columns`` holds equally long arrays, among them
            ``index``.

    Returns:
        ``{dataloader_idx: columns}`` with every sample index once (the first occurrence is kept: a padded
        shard repeats samples it has already predicted identically), in increasing ``index`` order.
    """
    merged: dict[int, Columns] = {}
    for idx in sorted({i for shard in shards for i in shard}):
        parts = [shard[idx] for shard in shards if idx in shard and len(shard[idx]["index"])]
        if not parts:
            continue
        cols = {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}
        _, first = np.unique(cols["index"], return_index=True)  # sorted unique indices, first occurrence
        merged[idx] = {k: v[first] for k, v in cols.items()}
    return merged


def _gather_to_rank_zero(trainer: pl.Trainer, obj: Any) -> list[Any] | None:
    """``[obj of rank 0, obj of rank 1, …]`` on rank zero, ``None`` on the other ranks (``[obj]`` alone)."""
    dist = torch.distributed
    if trainer.world_size <= 1 or not dist.is_available() or not dist.is_initialized():
        return [obj]
    out: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)  # only rank zero ever holds every shard
    return out


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "domain"


def _image_shape(ds: Any) -> tuple[int, int] | None:
    """``(H, W)`` of a dataset that is an image (a vector dataset is a 1×N "scene": no map to draw), else None."""
    shape = getattr(ds, "shape", None)
    if isinstance(shape, tuple) and len(shape) == 2 and shape[0] > 1:
        return int(shape[0]), int(shape[1])
    return None


class _MemorySink:
    """The columns of one dataloader's batches, kept in memory (DDP shards, datasets without pixel slots)."""

    def __init__(self) -> None:
        self.parts: list[Columns] = []

    def add(self, columns: Columns) -> None:
        self.parts.append(columns)

    def local(self) -> Columns:
        return {k: np.concatenate([p[k] for p in self.parts], axis=0) for k in self.parts[0]}

    def close(self) -> None:
        self.parts = []


class _StreamSink:
    """One scene dataset's predictions streamed to a :class:`DiskTable` and a :class:`SceneMap` batch by batch."""

    def __init__(
        self, ds: SceneDataset | StripSceneDataset, folder: Path, k: int, *, maps: bool, confidence: bool
    ) -> None:
        self.ds = ds
        self.table = DiskTable(folder, len(ds), k, index_offset=int(ds.index_offset))
        shape = _image_shape(ds)
        self.map = SceneMap(shape, confidence=confidence) if maps and shape is not None else None
        self.domains: set[int] = set()

    def add(self, columns: Columns) -> None:
        rows, cols = self.ds.pixel_rows_cols(self.table.slots(columns["index"]))
        pred = columns["probs"].argmax(axis=1).astype(np.int64)
        self.table.put({**columns, "row": rows, "col": cols, "pred": pred})
        if self.map is not None:
            self.map.add(rows, cols, pred, columns["probs"])
        self.domains.update(np.unique(columns["domain"]).tolist())

    def close(self) -> None:
        self.table.close()


class PredictionWriter(BasePredictionWriter):
    """Write per-domain predictions of ``trainer.predict`` to ``<run_dir>/<prefix>_<domain>.npz`` / ``.csv``.

    Args:
        prefix: start of the file names.
        write_csv: also write the small CSV next to the ``.npz``.
        output_dir: directory to write to (default: the run directory, ``trainer.log_dir``).
        maps: also write ``prediction_<domain>.tif`` for every pixel-level scene (:mod:`rsmg.callbacks.map_writer`).
        confidence_maps: also write ``prediction_<domain>_confidence.tif`` (the largest probability; float32, NaN where
            nothing was predicted) beside each classification map.
        quicklook: also write ``prediction_<domain>.png``, a small paletted PNG of each classification map in its
            colours (not predicted: transparent; at most :data:`~rsmg.callbacks.map_writer.QUICKLOOK_MAX_SIDE`
            px a side).
        map_prefix: start of the map files' names (``prediction``); two writers sharing a folder set their own,
            as they set ``prefix``, so that neither replaces the other's maps.
    """

    def __init__(
        self,
        prefix: str = "predictions",
        write_csv: bool = True,
        output_dir: str | None = None,
        maps: bool = True,
        confidence_maps: bool = False,
        quicklook: bool = True,
        map_prefix: str = "prediction",
    ) -> None:
        super().__init__(write_interval="batch")  # an epoch interval makes Lightning keep every prediction
        self.prefix = prefix
        self.write_csv = write_csv
        self.output_dir = output_dir
        self.maps = maps
        self.confidence_maps = confidence_maps
        self.quicklook = quicklook
        if not map_prefix or any(sep in map_prefix for sep in ("/", "\\")):
            raise ConfigError(
                "the map files' name prefix must be a plain file-name part",
                field="PredictionWriter.map_prefix",
                expected="a non-empty name without '/' or '\\'",
                found=repr(map_prefix),
                fix="use e.g. 'prediction' or 'tta_prediction' (output_dir chooses the folder)",
            )
        self.map_prefix = map_prefix
        self._sinks: dict[int, _MemorySink | _StreamSink] = {}
        self.written: dict[str, list[Path]] = {}

    def on_predict_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start empty, so a second ``trainer.predict`` does not mix with the first."""
        self._close()
        self.written = {}

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Remove the scratch files of an interrupted predict."""
        self._close()

    def _close(self) -> None:
        for sink in self._sinks.values():
            sink.close()
        self._sinks = {}

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Add this batch's rows to its dataloader's table (streamed to disk for a scene in one process)."""
        columns = self._columns(prediction, batch, batch_indices, dataloader_idx)
        sink = self._sinks.get(dataloader_idx)
        if sink is None:
            sink = self._sinks[dataloader_idx] = self._sink(
                trainer, dataloader_idx, columns["probs"].shape[1]
            )
        sink.add(columns)
        _forget_batch_indices(trainer, dataloader_idx, batch_idx)

    def _sink(self, trainer: pl.Trainer, idx: int, k: int) -> _MemorySink | _StreamSink:
        ds = _predict_dataset(trainer, idx)
        if trainer.world_size > 1 or not isinstance(ds, SceneDataset | StripSceneDataset):
            return _MemorySink()
        out_dir = Path(self.output_dir) if self.output_dir else run_dir(trainer)
        out_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f".{self.prefix}_{idx}_", suffix=".tmp", dir=out_dir))
        return _StreamSink(ds, folder, k, maps=self.maps, confidence=self.confidence_maps)

    def _columns(
        self, prediction: Any, batch: Any, batch_indices: Sequence[int] | None, dataloader_idx: int
    ) -> Columns:
        if not isinstance(prediction, Mapping) or not ({"probs", "logits"} & set(prediction)):
            raise ConfigError(
                "predict_step output cannot be written as class predictions",
                field="model",
                expected="predict_step returning a dict with 'probs' (or 'logits'), as ClassificationTask does",
                found=type(prediction).__name__,
                fix="use rsmg.tasks.ClassificationTask, or add your own BasePredictionWriter to "
                "trainer.callbacks (rsmg then adds none)",
            )
        if "probs" in prediction:
            probs = _numpy(prediction["probs"]).astype(np.float32, copy=False)
        else:
            probs = _numpy(prediction["logits"].float().softmax(dim=-1))
        n = len(probs)
        source = batch if isinstance(batch, Mapping) else {}

        def column(key: str, default: np.ndarray) -> np.ndarray:
            value = prediction.get(key, source.get(key))
            return default if value is None else _numpy(value).reshape(-1).astype(np.int64)

        fallback = np.asarray(batch_indices if batch_indices is not None else np.full(n, -1), dtype=np.int64)
        return {
            "index": column("index", fallback),
            "label": column("label", np.full(n, -1, dtype=np.int64)),
            "domain": column("domain", np.full(n, -1, dtype=np.int64)),
            "probs": probs.reshape(n, -1),
        }

    def on_predict_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Gather in-memory shards on rank zero and write one ``.npz`` (+ ``.csv``, map) per dataloader."""
        try:
            self._write_all(trainer, pl_module)
        finally:
            self._close()

    def _write_all(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        out_dir = Path(self.output_dir) if self.output_dir else run_dir(trainer)  # run_dir: a collective
        local = {i: s.local() for i, s in self._sinks.items() if isinstance(s, _MemorySink) and s.parts}
        shards = _gather_to_rank_zero(trainer, local)
        if shards is None or not trainer.is_global_zero:
            return
        tables: dict[int, tuple[Table, set[int], SceneMap | None]] = {}
        for idx, cols in merge_shards(shards).items():
            tables[idx] = self._memory_table(trainer, idx, cols)
        for idx, sink in self._sinks.items():
            if isinstance(sink, _StreamSink) and sink.table.n:
                tables[idx] = (sink.table, sink.domains, sink.map)
        classes = [str(c) for c in getattr(getattr(pl_module, "spec", None), "classes", ())]
        names = self._domain_names(trainer, pl_module, {i: t[1] for i, t in tables.items()})
        for idx in sorted(tables):
            table, _, scene_map = tables[idx]
            name = names[idx]
            labels = classes if len(classes) == table.k else [str(i) for i in range(table.k)]
            stem = out_dir / f"{self.prefix}_{_safe_name(name)}"
            extra = {"classes": np.array(labels, dtype=str), "domain": np.array(name, dtype=str)}
            paths = [write_npz(stem.with_suffix(".npz"), table, extra)]
            if self.write_csv:
                paths.append(write_csv(stem.with_suffix(".csv"), table, labels))
            self.written[name] = paths
            print(f"predictions of {table.n} {name} samples written to {', '.join(map(str, paths))}")
            if scene_map is not None:
                self._write_maps(trainer, idx, name, scene_map, labels, out_dir / _safe_name(name))
        if not tables:
            print("no predictions to write (the predict dataloaders were empty)")

    def _memory_table(
        self, trainer: pl.Trainer, idx: int, cols: Columns
    ) -> tuple[MemoryTable, set[int], SceneMap | None]:
        """The merged in-memory columns of one dataloader as a table, with its domain ids and (scene) map."""
        rows, cols_ = self._pixel_positions(trainer, idx, cols["index"])
        pred = cols["probs"].argmax(axis=1).astype(np.int64)
        table = MemoryTable({**cols, "row": rows, "col": cols_, "pred": pred})
        shape = _image_shape(_predict_dataset(trainer, idx))
        scene_map = None
        if self.maps and shape is not None and not (rows < 0).all():
            scene_map = SceneMap(shape, confidence=self.confidence_maps)
            scene_map.add(rows, cols_, pred, cols["probs"])
        return table, set(np.unique(cols["domain"]).tolist()), scene_map

    @staticmethod
    def _domain_names(
        trainer: pl.Trainer, pl_module: pl.LightningModule, domain_ids: Mapping[int, set[int]]
    ) -> dict[int, str]:
        """Dataloader index → domain name (from the samples' domain, else the datamodule's loader order)."""
        domains = list(getattr(getattr(pl_module, "spec", None), "domains", ()))
        dm = getattr(trainer, "datamodule", None)
        loader_names = list(getattr(dm, "predict_domains", None) or getattr(dm, "test_domains", None) or ())
        names: dict[int, str] = {}
        for idx in sorted(domain_ids):
            ids = sorted(domain_ids[idx])
            if len(ids) == 1 and 0 <= int(ids[0]) < len(domains):
                name = str(domains[int(ids[0])])
            elif idx < len(loader_names):
                name = str(loader_names[idx])
            else:
                name = f"dataloader_{idx}"
            names[idx] = name if name not in names.values() else f"{name}_{idx}"
        return names

    def _write_maps(
        self, trainer: pl.Trainer, idx: int, name: str, scene_map: SceneMap, classes: list[str], stem: Path
    ) -> None:
        """The GeoTIFF classification (and confidence) map of a pixel-level scene."""
        ds = _predict_dataset(trainer, idx)
        georef = getattr(ds, "georef", None)
        paths = write_scene_maps(
            stem, scene_map, classes, georef, domain=name, quicklook=self.quicklook, prefix=self.map_prefix
        )
        self.written[name].extend(paths)
        if georef is None:
            files = getattr(ds, "files", {}) or {}
            where = ", ".join(Path(f).name for f in files.values()) or "its files"
            print(
                f"classification map of {name} written to {paths[0]} without CRS / geotransform (pixel "
                f"coordinates): the scene has no georeference (read from {where}: no GeoTIFF geotransform)"
            )
        else:
            print(f"classification map of {name} written to {paths[0]} ({georef.get('crs') or 'no CRS'})")
        for path in paths[1:]:
            what = "quick look" if path.suffix == ".png" else "confidence map"
            print(f"{what} of {name} written to {path}")

    @staticmethod
    def _pixel_positions(trainer: pl.Trainer, idx: int, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of each sample, read from the predict dataset itself (``-1`` where it has none)."""
        rows = np.full(len(index), -1, dtype=np.int64)
        cols = rows.copy()
        try:
            ds: Any = _predict_dataset(trainer, idx)
            r, c = (
                ds.pixel_rows_cols()
            )  # a SceneDataset knows its pixels; other datasets raise AttributeError
            local = np.asarray(index, dtype=np.int64) - int(getattr(ds, "index_offset", 0))
        except (AttributeError, IndexError, KeyError, TypeError):  # not a pixel-level dataset
            return rows, cols
        ok = (local >= 0) & (local < len(r))
        rows[ok], cols[ok] = r[local[ok]], c[local[ok]]
        return rows, cols


def _forget_batch_indices(trainer: pl.Trainer, idx: int, batch_idx: int) -> None:
    """Empty Lightning's record of batch ``batch_idx``'s sample indices, now that this writer has them.

    Why: Lightning's ``_IndexBatchSamplerWrapper`` keeps every batch's indices for the whole predict epoch, a list of
    Python ints (about 36 bytes a sample, 160 MiB for a 4.6 Mpx scene): the one per-pixel cost of a streamed
    scene left. Lightning reads entry ``batch_idx`` before the writer runs and keeps its own reference to it where
    it needs the list later (an epoch-interval writer), so replacing the entry frees it and changes nothing else.
    """
    try:
        loaders = trainer.predict_dataloaders
        loader: Any = loaders[idx] if isinstance(loaders, Sequence) else loaders
        seen = loader.batch_sampler.seen_batch_indices
    except (
        AttributeError
    ):  # a loader without that private record (another sampler, a Lightning release): nothing held
        return
    if isinstance(seen, list) and 0 <= batch_idx < len(seen):
        seen[batch_idx] = []


def _predict_dataset(trainer: pl.Trainer, idx: int) -> Any:
    """The dataset of predict dataloader ``idx`` (``None`` when the trainer has no such loader)."""
    try:
        loaders = trainer.predict_dataloaders
        loader: Any = loaders[idx] if isinstance(loaders, Sequence) else loaders
        return loader.dataset
    except (AttributeError, IndexError, KeyError, TypeError):
        return None
