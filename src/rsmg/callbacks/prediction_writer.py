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

For a pixel-level scene (a predict dataset that knows its pixels' rows and columns and the scene's shape, as
:class:`~rsmg.data.scene.SceneDataset`) it also writes the classification map ``<domain>_classes.tif``: a
uint8 GeoTIFF on the scene's grid, with the CRS and geotransform of the rasters it was read from, a colour
table and the class names (:mod:`rsmg.callbacks.map_writer`; ``maps=False`` turns it off).

Under DDP every rank keeps the predictions of its own shard (on the CPU). At the end of the predict epoch the
shards are sent to rank zero only (``torch.distributed.gather_object``); rank zero merges them, drops repeated
sample indices (a sampler that pads shards to equal length predicts a few samples twice) and writes the
files. The files therefore do not depend on the number of processes. rsmg's own evaluation sampler does not
pad, so with :class:`~rsmg.data.datamodule.CrossDomainDataModule` nothing is dropped.

The rsmg CLI adds this callback to ``rsmg predict`` unless the configuration already has a prediction writer
(any :class:`~lightning.pytorch.callbacks.BasePredictionWriter`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from rsmg.callbacks.results import run_dir
from rsmg.errors import ConfigError
from rsmg.io import atomic_save_npz, atomic_write_text

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


class PredictionWriter(BasePredictionWriter):
    """Write per-domain predictions of ``trainer.predict`` to ``<run_dir>/<prefix>_<domain>.npz`` / ``.csv``.

    Args:
        prefix: start of the file names.
        write_csv: also write the small CSV next to the ``.npz``.
        output_dir: directory to write to (default: the run directory, ``trainer.log_dir``).
        maps: also write ``<domain>_classes.tif`` for every pixel-level scene (:mod:`rsmg.callbacks.map_writer`).
    """

    def __init__(
        self,
        prefix: str = "predictions",
        write_csv: bool = True,
        output_dir: str | None = None,
        maps: bool = True,
    ) -> None:
        super().__init__(write_interval="batch_and_epoch")  # collect per batch, write once per epoch
        self.prefix = prefix
        self.write_csv = write_csv
        self.output_dir = output_dir
        self.maps = maps
        self._parts: dict[int, list[Columns]] = {}
        self.written: dict[str, list[Path]] = {}

    def on_predict_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start empty, so a second ``trainer.predict`` does not mix with the first."""
        self._parts = {}
        self.written = {}

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
        """Keep this batch's columns (as CPU numpy arrays) under its dataloader."""
        self._parts.setdefault(dataloader_idx, []).append(
            self._columns(prediction, batch, batch_indices, dataloader_idx)
        )

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

    def write_on_epoch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        """Gather the shards on rank zero and write one ``.npz`` (+ ``.csv``) per dataloader."""
        out_dir = Path(self.output_dir) if self.output_dir else run_dir(trainer)  # run_dir: a collective
        local = {
            idx: {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}
            for idx, parts in self._parts.items()
            if parts
        }
        self._parts = {}
        shards = _gather_to_rank_zero(trainer, local)
        if shards is None or not trainer.is_global_zero:
            return
        merged = merge_shards(shards)
        classes = [str(c) for c in getattr(getattr(pl_module, "spec", None), "classes", ())]
        names = self._domain_names(trainer, pl_module, merged)
        for idx, cols in merged.items():
            name = names[idx]
            rows, cols_ = self._pixel_positions(trainer, idx, cols["index"])
            k = cols["probs"].shape[1]
            labels = classes if len(classes) == k else [str(i) for i in range(k)]
            pred = cols["probs"].argmax(axis=1).astype(np.int64)
            arrays = {
                "index": cols["index"],
                "row": rows,
                "col": cols_,
                "label": cols["label"],
                "pred": pred,
                "probs": cols["probs"],
                "classes": np.array(labels, dtype=str),
                "domain": np.array(name, dtype=str),
            }
            stem = out_dir / f"{self.prefix}_{_safe_name(name)}"
            paths = [atomic_save_npz(stem.with_suffix(".npz"), arrays)]
            if self.write_csv:
                paths.append(atomic_write_text(stem.with_suffix(".csv"), _csv(arrays, labels)))
            self.written[name] = paths
            print(f"predictions of {len(pred)} {name} samples written to {', '.join(map(str, paths))}")
            if self.maps:
                self._write_map(trainer, idx, name, arrays, out_dir / f"{_safe_name(name)}_classes.tif")
        if not merged:
            print("no predictions to write (the predict dataloaders were empty)")

    @staticmethod
    def _domain_names(
        trainer: pl.Trainer, pl_module: pl.LightningModule, merged: Mapping[int, Columns]
    ) -> dict[int, str]:
        """Dataloader index → domain name (from the samples' domain, else the datamodule's loader order)."""
        domains = list(getattr(getattr(pl_module, "spec", None), "domains", ()))
        dm = getattr(trainer, "datamodule", None)
        loader_names = list(getattr(dm, "predict_domains", None) or getattr(dm, "test_domains", None) or ())
        names: dict[int, str] = {}
        for idx, cols in merged.items():
            ids = np.unique(cols["domain"])
            if len(ids) == 1 and 0 <= int(ids[0]) < len(domains):
                name = str(domains[int(ids[0])])
            elif idx < len(loader_names):
                name = str(loader_names[idx])
            else:
                name = f"dataloader_{idx}"
            names[idx] = name if name not in names.values() else f"{name}_{idx}"
        return names

    def _write_map(
        self, trainer: pl.Trainer, idx: int, name: str, arrays: Mapping[str, np.ndarray], path: Path
    ) -> None:
        """The GeoTIFF classification map of a pixel-level scene (nothing for other datasets or 1-row vectors)."""
        from rsmg.callbacks.map_writer import write_class_map

        ds = _predict_dataset(trainer, idx)
        shape = getattr(ds, "shape", None)
        if not (isinstance(shape, tuple) and len(shape) == 2 and shape[0] > 1) or (arrays["row"] < 0).all():
            return  # not an image (a vector dataset is a 1×N "scene"): no map to draw
        georef = getattr(ds, "georef", None)
        classes = [str(c) for c in arrays["classes"]]
        write_class_map(
            path, arrays["row"], arrays["col"], arrays["pred"], shape, classes, georef, domain=name
        )  # fmt: skip
        self.written[name].append(path)
        if georef is None:
            files = getattr(ds, "files", {}) or {}
            where = ", ".join(Path(f).name for f in files.values()) or "its files"
            print(
                f"classification map of {name} written to {path} without CRS / geotransform (pixel coordinates): "
                f"the scene has no georeference (read from {where}: no GeoTIFF geotransform)"
            )
        else:
            print(f"classification map of {name} written to {path} ({georef.get('crs') or 'no CRS'})")

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


def _predict_dataset(trainer: pl.Trainer, idx: int) -> Any:
    """The dataset of predict dataloader ``idx`` (``None`` when the trainer has no such loader)."""
    try:
        loaders = trainer.predict_dataloaders
        loader: Any = loaders[idx] if isinstance(loaders, Sequence) else loaders
        return loader.dataset
    except (AttributeError, IndexError, KeyError, TypeError):
        return None


def _csv(arrays: Mapping[str, np.ndarray], classes: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["index", "row", "col", "label", "pred", "label_name", "pred_name", "confidence"])
    conf = arrays["probs"].max(axis=1) if len(arrays["probs"]) else np.zeros(0)
    for i, r, c, y, p, q in zip(
        arrays["index"].tolist(),
        arrays["row"].tolist(),
        arrays["col"].tolist(),
        arrays["label"].tolist(),
        arrays["pred"].tolist(),
        conf.tolist(),
        strict=True,
    ):
        w.writerow([i, r, c, y, p, classes[y] if 0 <= y < len(classes) else "", classes[p], f"{q:.7g}"])
    return buf.getvalue()
