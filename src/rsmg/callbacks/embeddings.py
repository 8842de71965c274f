"""Export the embeddings a model computes on the test domains (and a sample of its source) to the run dir.

Why: whether a model generalises across scenes and sensors shows in its feature space before it shows in
OA — target pixels of one class should land next to source pixels of the same class, per modality and after
fusion. :class:`EmbeddingExport` keeps every named embedding of :class:`~rsmg.models.base.ModelOutput`
(``fused`` and one per modality for the concat baseline and FVMGN) with labels, predictions, domains, sample
indices and pixel positions, and writes them to ``<run_dir>/embeddings.npz`` (read by
``notebooks/01_explore_embeddings``). Source-validation pixels are added (``include_source=True``), because a
t-SNE or a nearest-neighbour search "across domains" needs the source side too, and a test run only sees
targets.

Sampling is deterministic and independent of the batch size, the loader order and the number of DDP ranks:
with ``max_samples`` set, each domain keeps the ``max_samples`` samples with the smallest hash of
``(seed, sample index)`` (a bottom-k sample, i.e. a uniform random subset), pruned as batches arrive so memory
stays bounded.

The helpers here (:func:`batch_outputs`, :func:`gather_objects`, :class:`SampleBuffer`) are shared with
:mod:`rsmg.callbacks.figures`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities import move_data_to_device

from rsmg.callbacks.results import run_dir
from rsmg.errors import ConfigError
from rsmg.io import atomic_save_npz, atomic_write_bytes

log = logging.getLogger(__name__)

__all__ = [
    "EmbeddingExport",
    "SampleBuffer",
    "batch_outputs",
    "collect_source_samples",
    "gather_objects",
    "hash_priority",
    "sample_columns",
]

_CACHE_ATTR = "_rsmg_batch_outputs"


# ---------------------------------------------------------------------------------------------- helpers
def hash_priority(index: np.ndarray, seed: int = 0) -> np.ndarray:
    """Uniform pseudo-random numbers in [0, 1) from ``(seed, index)`` (splitmix64), one per sample.

    A sample's priority depends only on its index, so "keep the k smallest priorities" selects the same subset
    whatever the batching, loader order or rank count.
    """
    with np.errstate(over="ignore"):
        z = np.asarray(index, dtype=np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def batch_outputs(pl_module: pl.LightningModule, batch: Mapping[str, Any], outputs: Any) -> dict[str, Any]:
    """Class probabilities and embeddings of a test batch, computed at most once per batch.

    Uses what ``test_step`` returned when it is a dict with ``logits`` or ``probs`` (and ``embeddings``), as
    :class:`~rsmg.tasks.ClassificationTask` does, so no forward pass is repeated. Otherwise the model is run
    once on the batch and the result is cached on the module for the other callbacks of the same batch (the
    figure and embedding callbacks then share one extra forward pass). Either way these are the plain
    predictions, without test-time augmentation (``DiffusionTTA`` keeps its own).

    Returns:
        ``{"probs": B×K tensor, "embeddings": {name: B×D tensor}}`` (embeddings may be empty).
    """
    if isinstance(outputs, Mapping) and ("probs" in outputs or "logits" in outputs):
        emb = outputs.get("embeddings")
        if emb is not None or not _wants_embeddings(pl_module):
            probs = outputs["probs"] if "probs" in outputs else outputs["logits"].float().softmax(dim=-1)
            return {"probs": probs, "embeddings": dict(emb or {})}
    cached = getattr(pl_module, _CACHE_ATTR, None)
    if cached is not None and cached[0] is batch:
        return cached[1]
    with torch.no_grad():
        out = pl_module(batch)
    logits = out.logits if hasattr(out, "logits") else out
    result = {
        "probs": logits.float().softmax(dim=-1),
        "embeddings": dict(getattr(out, "embeddings", {}) or {}),
    }
    setattr(pl_module, _CACHE_ATTR, (batch, result))
    return result


def _wants_embeddings(pl_module: pl.LightningModule) -> bool:
    trainer = pl_module._trainer
    return trainer is not None and any(
        getattr(cb, "needs_embeddings", False)
        for cb in trainer.callbacks  # type: ignore[attr-defined]
    )


def clear_batch_cache(pl_module: pl.LightningModule) -> None:
    """Drop the cached outputs of the last batch (frees its tensors at the end of testing)."""
    if hasattr(pl_module, _CACHE_ATTR):
        delattr(pl_module, _CACHE_ATTR)


def gather_objects(trainer: pl.Trainer, obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, …]`` on every rank (``[obj]`` without distributed training)."""
    if (
        trainer.world_size <= 1
        or not torch.distributed.is_available()
        or not torch.distributed.is_initialized()
    ):
        return [obj]
    out: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu").numpy()
    return np.asarray(x)


class SampleBuffer:
    """Per-domain columns (``index``, ``label``, …) with an optional deterministic bottom-k limit.

    Args:
        max_per_domain: keep at most this many samples per domain (``None``: keep all).
        seed: seed of :func:`hash_priority`.
    """

    def __init__(self, max_per_domain: int | None = None, seed: int = 0) -> None:
        if max_per_domain is not None and max_per_domain < 1:
            raise ConfigError(
                "max_samples must be positive or None",
                field="max_samples",
                expected=">= 1 or null",
                found=max_per_domain,
                fix="use null to keep every sample",
            )
        self.max = max_per_domain
        self.seed = seed
        self._parts: dict[int, list[dict[str, np.ndarray]]] = {}
        self._sizes: dict[int, int] = {}

    def add(self, columns: Mapping[str, Any]) -> None:
        """Add a batch: ``columns`` must contain ``domain`` and ``index`` plus any per-sample arrays."""
        cols = {k: _numpy(v) for k, v in columns.items()}
        domains = cols["domain"].reshape(-1)
        for d in np.unique(domains).tolist():
            sel = domains == d
            part = {k: v[sel] for k, v in cols.items()}
            self._parts.setdefault(int(d), []).append(part)
            self._sizes[int(d)] = self._sizes.get(int(d), 0) + int(sel.sum())
            if self.max is not None and self._sizes[int(d)] > 2 * self.max:
                self._prune(int(d))

    def _prune(self, d: int) -> None:
        merged = _concat(self._parts[d])
        merged = _unique_by_index(merged)
        if self.max is not None and len(merged["index"]) > self.max:
            keep = np.sort(np.argsort(hash_priority(merged["index"], self.seed), kind="stable")[: self.max])
            merged = {k: v[keep] for k, v in merged.items()}
        self._parts[d] = [merged]
        self._sizes[d] = len(merged["index"])

    def state(self) -> dict[int, dict[str, np.ndarray]]:
        """The pruned columns per domain (picklable, for :func:`gather_objects`)."""
        for d in list(self._parts):
            self._prune(d)
        return {d: parts[0] for d, parts in self._parts.items() if parts}

    @staticmethod
    def merge(
        states: list[dict[int, dict[str, np.ndarray]]], max_per_domain: int | None, seed: int
    ) -> dict[int, dict[str, np.ndarray]]:
        """Merge the states of several ranks (duplicates from padded distributed samplers removed)."""
        buf = SampleBuffer(max_per_domain, seed)
        for st in states:
            for d, cols in st.items():
                buf._parts.setdefault(d, []).append(cols)
        return buf.state()

    def reset(self) -> None:
        """Forget everything."""
        self._parts.clear()
        self._sizes.clear()


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    keys = parts[0].keys()
    return {k: np.concatenate([p[k] for p in parts], axis=0) for k in keys}


def _unique_by_index(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    _, first = np.unique(cols["index"], return_index=True)
    if len(first) == len(cols["index"]):
        order = np.argsort(cols["index"], kind="stable")
    else:
        order = np.sort(first)
        order = order[np.argsort(cols["index"][order], kind="stable")]
    return {k: v[order] for k, v in cols.items()}


def source_batches(trainer: pl.Trainer) -> list[Any]:
    """The source-validation loader(s) of the datamodule, or ``[]`` when there is none."""
    dm = getattr(trainer, "datamodule", None)
    if dm is None or not hasattr(dm, "val_dataloader"):
        return []
    try:
        loaders = dm.val_dataloader()
    except Exception as e:  # a datamodule without validation data: nothing to add
        log.info("no source validation data for the embedding export: %s", e)
        return []
    return list(loaders) if isinstance(loaders, list | tuple) else [loaders]


def pixel_positions(
    trainer: pl.Trainer, domain_name: str, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of test samples of a pixel-level scene (``-1`` where unknown)."""
    rows = np.full(len(index), -1, dtype=np.int64)
    cols = rows.copy()
    dm = getattr(trainer, "datamodule", None)
    if dm is None or not hasattr(dm, "test_dataset"):
        return rows, cols
    try:
        ds = dm.test_dataset(domain_name)
        r, c = ds.pixel_rows_cols()
        local = np.asarray(index, dtype=np.int64) - int(getattr(ds, "index_offset", 0))
    except Exception:  # not a pixel-level dataset (scene classification), or not a test domain
        return rows, cols
    ok = (local >= 0) & (local < len(r))
    rows[ok], cols[ok] = r[local[ok]], c[local[ok]]
    return rows, cols


def sample_columns(
    res: Mapping[str, Any], batch: Mapping[str, Any], names: list[str] | None, split: str = "test"
) -> dict[str, Any]:
    """Per-sample columns of one batch: ``index``, ``label``, ``domain``, ``pred``, ``split``, ``emb_<name>``.

    Args:
        res: :func:`batch_outputs` of the batch.
        batch: the batch (``label``, ``domain``, optional ``index``).
        names: embedding names to keep (``None``: all that the model returned).
        split: tag stored in the ``split`` column.
    """
    n = int(batch["label"].shape[0])
    index = batch.get("index")
    cols: dict[str, Any] = {
        "index": index if index is not None else torch.arange(n),
        "label": batch["label"],
        "domain": batch["domain"],
        "pred": res["probs"].argmax(dim=-1),
        "split": np.array([split] * n),
    }
    for name, value in sorted(res["embeddings"].items()):
        if isinstance(value, torch.Tensor) and (names is None or name in names):
            cols[f"emb_{name}"] = value.detach().float().reshape(n, -1)
    return cols


def collect_source_samples(
    trainer: pl.Trainer,
    pl_module: pl.LightningModule,
    max_per_domain: int | None,
    seed: int,
    names: list[str] | None = None,
) -> dict[int, dict[str, np.ndarray]]:
    """Run the model on the source-validation loader(s) and keep up to ``max_per_domain`` samples per domain.

    These pixels were never trained on (they select the checkpoint), so they are the fair source side of a
    source-vs-target comparison in feature space. Under DDP each rank sees its shard of the loader (gather
    the results with :func:`gather_objects`). The module is put in eval mode and restored.
    """
    loaders = source_batches(trainer)
    if not loaders:
        return {}
    buf = SampleBuffer(max_per_domain, seed)
    was_training = pl_module.training
    pl_module.eval()
    try:
        with torch.no_grad():
            for loader in loaders:
                for batch in loader:
                    batch = move_data_to_device(batch, pl_module.device)
                    buf.add(
                        sample_columns(
                            batch_outputs(pl_module, batch, None), batch, names, split="source_val"
                        )
                    )
        return buf.state()
    finally:
        clear_batch_cache(pl_module)
        pl_module.train(was_training)


# ---------------------------------------------------------------------------------------------- callback
class EmbeddingExport(pl.Callback):
    """Write the model's named embeddings on every test domain to ``<run_dir>/<path>`` after testing.

    The ``.npz`` holds ``emb_<name>`` (``N×D`` float32, one per :attr:`ModelOutput.embeddings` entry, e.g.
    ``emb_fused``, ``emb_lidar``), ``label``, ``pred``, ``domain`` (index into ``domains``), ``index`` (sample
    index), ``split`` (``"test"`` or ``"source_val"``), ``row`` / ``col`` (pixel position in the scene, ``-1``
    when not a pixel-level test sample), and the names ``classes``, ``domains``, ``source_domains``,
    ``embedding_names``. With pandas and pyarrow installed (and ``parquet`` not False) the same table is also
    written as ``.parquet`` with one list column per embedding.

    Args:
        path: file name inside the run directory (or an absolute path).
        max_samples: at most this many samples per domain (deterministic uniform subset); ``None`` keeps all.
        include_source: also embed the source-validation pixels (never used for training), at most
            ``max_samples`` (or ``source_samples``) of them.
        source_samples: cap of source samples per source domain (default: ``max_samples``, else 5000).
        parquet: ``None`` writes parquet when pandas + pyarrow are importable, ``True`` requires them,
            ``False`` never.
        seed: seed of the subsampling.
    """

    needs_embeddings = True

    def __init__(
        self,
        path: str = "embeddings.npz",
        max_samples: int | None = None,
        include_source: bool = True,
        source_samples: int | None = None,
        parquet: bool | None = None,
        seed: int = 0,
    ) -> None:
        self.path = path
        self.max_samples = max_samples
        self.include_source = include_source
        self.source_samples = source_samples or max_samples or 5000
        self.parquet = parquet
        self.seed = seed
        self._buffer = SampleBuffer(max_samples, seed)
        self._names: list[str] | None = None
        self.written: list[Path] = []
        if parquet:
            _require_parquet()

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start a fresh collection (a second ``trainer.test`` must not mix with the first)."""
        self._buffer.reset()
        self._names = None

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keep this batch's embeddings, labels, predictions, domains and indices."""
        res = batch_outputs(pl_module, batch, outputs)
        self._add(res, batch)

    def _add(self, res: Mapping[str, Any], batch: Mapping[str, Any]) -> None:
        if self._names is None:
            self._names = sorted(k for k, v in res["embeddings"].items() if isinstance(v, torch.Tensor))
        self._buffer.add(sample_columns(res, batch, self._names))

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Gather the samples of every rank, add source samples, write the file (rank zero)."""
        clear_batch_cache(pl_module)
        out_dir = run_dir(trainer)  # a collective under DDP (trainer.log_dir broadcasts): every rank asks
        # every rank embeds its shard of the source-validation loader (the datamodule shards it under DDP)
        source: dict[int, dict[str, np.ndarray]] = {}
        if self.include_source:
            source = collect_source_samples(trainer, pl_module, self.source_samples, self.seed, self._names)
        states = gather_objects(trainer, (self._buffer.state(), source))
        if not trainer.is_global_zero:
            return
        merged = SampleBuffer.merge([s for s, _ in states], self.max_samples, self.seed)
        extra = SampleBuffer.merge([s for _, s in states], self.source_samples, self.seed)
        for d, cols in extra.items():  # a domain may be source and target (in-scene experiments)
            merged[d] = _concat([merged[d], cols]) if d in merged else cols
        if not merged:
            log.warning("EmbeddingExport: no test sample was seen; nothing written")
            return
        self.written = self.write(trainer, pl_module, merged, out_dir)

    def write(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        per_domain: dict[int, dict[str, np.ndarray]],
        out_dir: Path | None = None,
    ) -> list[Path]:
        """Write ``per_domain`` columns as ``.npz`` (and ``.parquet``) atomically; return the paths."""
        cols = _concat([per_domain[d] for d in sorted(per_domain)])
        spec = getattr(pl_module, "spec", None)
        domains = list(getattr(spec, "domains", [])) or [str(d) for d in range(int(cols["domain"].max()) + 1)]
        rows = np.full(len(cols["index"]), -1, dtype=np.int64)
        colsx = rows.copy()
        for d in np.unique(cols["domain"]).tolist():
            sel = (cols["domain"] == d) & (cols["split"] == "test")
            if sel.any() and d < len(domains):
                rows[sel], colsx[sel] = pixel_positions(trainer, domains[d], cols["index"][sel])
        emb_names = sorted(k[len("emb_") :] for k in cols if k.startswith("emb_"))
        arrays: dict[str, np.ndarray] = {
            **{f"emb_{n}": cols[f"emb_{n}"].astype(np.float32) for n in emb_names},
            "label": cols["label"].astype(np.int64),
            "pred": cols["pred"].astype(np.int64),
            "domain": cols["domain"].astype(np.int64),
            "index": cols["index"].astype(np.int64),
            "split": cols["split"].astype(str),
            "row": rows,
            "col": colsx,
            "classes": np.array(list(getattr(spec, "classes", [])), dtype=str),
            "domains": np.array(domains, dtype=str),
            "source_domains": np.array(list(getattr(spec, "source_domains", [])), dtype=str),
            "embedding_names": np.array(emb_names, dtype=str),
        }
        target = Path(self.path)
        if not target.is_absolute():
            target = (out_dir if out_dir is not None else run_dir(trainer)) / target
        written = [atomic_save_npz(target, arrays)]
        if self.parquet is not False and _parquet_available():
            written.append(_write_parquet(target.with_suffix(".parquet"), arrays, emb_names))
        n_by = {
            domains[d] if d < len(domains) else str(d): int((arrays["domain"] == d).sum())
            for d in np.unique(arrays["domain"]).tolist()
        }
        print(
            f"embeddings ({', '.join(emb_names) or 'none'}) of {n_by} samples per domain written to "
            f"{', '.join(map(str, written))}"
        )
        return written


def _parquet_available() -> bool:
    try:
        import pandas  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def _require_parquet() -> None:
    if not _parquet_available():
        raise ConfigError(
            "parquet export needs pandas and pyarrow",
            field="EmbeddingExport.parquet",
            expected="importable",
            found="missing",
            fix="pip install pandas pyarrow, or set parquet: null to skip it",
        )


def _write_parquet(path: Path, arrays: Mapping[str, np.ndarray], emb_names: list[str]) -> Path:
    import pandas as pd

    n = len(arrays["index"])
    classes, domains = list(arrays["classes"]), list(arrays["domains"])
    frame = pd.DataFrame(
        {
            "index": arrays["index"],
            "split": arrays["split"],
            "row": arrays["row"],
            "col": arrays["col"],
            "domain": [domains[d] if d < len(domains) else str(d) for d in arrays["domain"]],
            "label": [classes[k] if 0 <= k < len(classes) else str(k) for k in arrays["label"]],
            "pred": [classes[k] if 0 <= k < len(classes) else str(k) for k in arrays["pred"]],
        }
    )
    for name in emb_names:
        frame[name] = list(arrays[f"emb_{name}"].reshape(n, -1))
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return atomic_write_bytes(path, buf.getvalue())
