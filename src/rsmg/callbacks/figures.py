"""Figures of a test run, written to ``<run_dir>/figures/`` and shown in whichever logger is active.

After ``rsmg test`` (or ``rsmg fit --test_after_fit true``) a reader wants to *see* where a model fails on an
unseen scene: which classes it confuses (confusion matrix per target domain), how each class fares per domain
(per-class bars), where in the scene errors sit (classification map next to the ground truth), and whether
source and target features mix (t-SNE). :class:`FigureCallback` draws these with :mod:`rsmg.plotting` and

* always writes PNGs (atomically) to ``<run_dir>/figures/``, so with the CSV logger, or none, they are there;
* logs each figure to every active logger that can show images, by capability, not by class: a logger with
  ``log_image`` (W&B) gets the PNG, one whose ``experiment`` has ``add_figure`` (TensorBoard) the figure, one
  whose ``experiment`` has ``log_figure`` (MLflow) the figure as an artifact. A failing logger only warns:
  the figures on disk and the metrics never depend on a dashboard (torchgeo issue #2138 shows why).

Confusion matrices and per-class bars come from the task's per-domain results (``pl_module.test_results``), so
they match ``metrics.json`` exactly. Maps need one prediction per test pixel; they are collected in
``on_test_batch_end`` from what ``test_step`` returns (``{"logits": …, "embeddings": …}``) or, for a task that
returns nothing, from one extra forward pass shared with :class:`~rsmg.callbacks.embeddings.EmbeddingExport`.
Maps show the plain predictions (the ones of the ``test`` block), not those of test-time augmentation.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
from matplotlib.figure import Figure

from rsmg import plotting
from rsmg.callbacks.embeddings import (
    SampleBuffer,
    batch_outputs,
    clear_batch_cache,
    collect_source_samples,
    gather_objects,
    pixel_positions,
    sample_columns,
)
from rsmg.callbacks.results import run_dir
from rsmg.errors import unknown_name_error

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_FIGURES", "FIGURE_KINDS", "FigureCallback", "log_figure", "truth_map"]

FIGURE_KINDS = ("confusion", "per_class", "map", "tsne")
DEFAULT_FIGURES = ("confusion", "per_class", "map")  # t-SNE is opt-in: it costs seconds to minutes on a CPU


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def truth_map(datamodule: Any, domain: str) -> np.ndarray | None:
    """``H×W`` ground truth of a pixel-level domain in class indices, for maps; ``None`` if not a scene.

    Values: class index, :data:`~rsmg.plotting.UNLABELLED` (no label) or :data:`~rsmg.plotting.NOT_EVALUATED`
    (labelled with a class outside the class set, or masked as invalid). Uses ``datamodule.label_map(domain)``
    when the datamodule provides it, else the prepared scene and class map of
    :class:`~rsmg.data.datamodule.CrossDomainDataModule`.
    """
    if hasattr(datamodule, "label_map"):
        return np.asarray(datamodule.label_map(domain))
    prepared = getattr(datamodule, "_prepared", {}).get(domain)
    if prepared is None or not hasattr(getattr(prepared, "scene", None), "labels"):
        return None  # not a scene, or one read in strips (no labels: never tested)
    labels = np.asarray(prepared.scene.labels, dtype=np.int64)
    lut = np.asarray(prepared.class_map, dtype=np.int64)
    mapped = lut[np.clip(labels, 0, len(lut) - 1)]
    out = np.where(labels <= 0, plotting.UNLABELLED, np.where(mapped >= 0, mapped, plotting.NOT_EVALUATED))
    valid = getattr(prepared.scene, "valid", None)
    if valid is not None:
        out = np.where(~valid & (labels > 0), plotting.NOT_EVALUATED, out)
    return out


def log_figure(trainer: pl.Trainer, key: str, fig: Figure, path: Path) -> list[str]:
    """Show ``fig`` (already saved at ``path``) in every logger of ``trainer`` that can display images.

    Returns:
        Names of the loggers that received it.
    """
    done: list[str] = []
    for logger in trainer.loggers:
        name = type(logger).__name__
        try:
            if callable(getattr(logger, "log_image", None)):  # W&B (Lightning's WandbLogger), Neptune
                logger.log_image(key=key, images=[str(path)])  # type: ignore[attr-defined]
                done.append(name)
                continue
            experiment = getattr(logger, "experiment", None)
            if callable(getattr(experiment, "add_figure", None)):  # TensorBoard SummaryWriter
                experiment.add_figure(key, fig, global_step=trainer.global_step, close=False)  # type: ignore[union-attr]
                done.append(name)
            elif callable(getattr(experiment, "log_figure", None)) and getattr(
                logger, "run_id", None
            ):  # MLflow
                experiment.log_figure(logger.run_id, fig, f"{key}.png")  # type: ignore[union-attr, attr-defined]
                done.append(name)
        except Exception as e:  # a dashboard problem must never lose the test results
            warnings.warn(f"could not log figure {key!r} to {name}: {e}", stacklevel=2)
    return done


class FigureCallback(pl.Callback):
    """Draw test figures into ``<run_dir>/figures/`` and the active logger(s).

    Files: ``confusion_<domain>.png``, ``per_class_accuracy.png``, ``map_<domain>.png`` (pixel-level scenes
    only) and ``tsne_<embedding>.png``.

    Args:
        every: which figures to draw, any of ``confusion``, ``per_class``, ``map``, ``tsne``.
        max_map_pixels: scenes with more pixels are drawn with a stride (maps stay readable and small).
        tsne_points: at most this many points in the t-SNE (seeded subsample; t-SNE is quadratic-ish).
        tsne_embedding: the :attr:`ModelOutput.embeddings` entry to embed, or a list of entries (one t-SNE
            each, e.g. ``[image, text, fused]`` for caption models); names the model does not return are
            skipped with a warning; if it returns none of them, its first embedding (sorted by name) is used.
        tsne_include_source: add source-validation samples to the t-SNE so domains can be compared.
        dirname: sub-directory of the run directory.
        dpi: PNG resolution.
        log_to_logger: also send the figures to the active logger(s).
        seed: seed of every subsample and of t-SNE.
    """

    def __init__(
        self,
        every: Sequence[str] = DEFAULT_FIGURES,
        max_map_pixels: int = 4_000_000,
        tsne_points: int = 3000,
        tsne_embedding: str | Sequence[str] = "fused",
        tsne_include_source: bool = True,
        dirname: str = "figures",
        dpi: int = 130,
        log_to_logger: bool = True,
        seed: int = 0,
    ) -> None:
        self.every = list(every)
        for kind in self.every:
            if kind not in FIGURE_KINDS:
                raise unknown_name_error("figure kind", kind, FIGURE_KINDS, field="FigureCallback.every")
        self.max_map_pixels = max_map_pixels
        self.tsne_points = tsne_points
        self.tsne_embeddings = [tsne_embedding] if isinstance(tsne_embedding, str) else list(tsne_embedding)
        self.tsne_include_source = tsne_include_source
        self.dirname = dirname
        self.dpi = dpi
        self.log_to_logger = log_to_logger
        self.seed = seed
        self.needs_embeddings = "tsne" in self.every
        self._preds = SampleBuffer(None, seed)
        self._emb = SampleBuffer(tsne_points, seed)
        self._tsne_names: list[str] | None = None
        self.written: list[Path] = []

    # ------------------------------------------------------------------ collection
    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start fresh buffers for this test run."""
        self._preds.reset()
        self._emb.reset()
        self._tsne_names = None

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keep the predicted class of every test pixel (maps) and a bounded embedding sample (t-SNE)."""
        if "map" not in self.every and "tsne" not in self.every:
            return
        res = batch_outputs(pl_module, batch, outputs)
        if self.needs_embeddings and self._tsne_names is None:
            self._tsne_names = self._tsne_keys(res["embeddings"])
        cols = sample_columns(res, batch, self._tsne_names or [])
        if "map" in self.every:
            self._preds.add({k: cols[k] for k in ("index", "domain", "pred")})
        if self.needs_embeddings:
            self._emb.add(cols)

    def _tsne_keys(self, embeddings: dict[str, Any]) -> list[str]:
        if not embeddings:
            return list(self.tsne_embeddings)  # reported as missing when drawing
        found = [n for n in self.tsne_embeddings if n in embeddings]
        for n in self.tsne_embeddings:
            if n not in embeddings:
                log.warning("FigureCallback: the model returns no %r embedding; no t-SNE of it", n)
        return found or [sorted(embeddings)[0]]

    # ------------------------------------------------------------------ drawing
    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Gather predictions from every rank, then draw, save and log the figures on rank zero."""
        clear_batch_cache(pl_module)
        out_dir = run_dir(trainer) / self.dirname  # a collective under DDP: every rank asks
        source: dict[int, dict[str, np.ndarray]] = {}
        if self.needs_embeddings and self.tsne_include_source:  # each rank embeds its shard of the source
            names = self._tsne_names or None
            source = collect_source_samples(trainer, pl_module, self.tsne_points, self.seed, names)
        states = gather_objects(trainer, (self._preds.state(), self._emb.state(), source))
        if not trainer.is_global_zero:
            return
        preds = SampleBuffer.merge([p for p, _, _ in states], None, self.seed)
        emb = SampleBuffer.merge([e for _, e, _ in states], self.tsne_points, self.seed)
        for d, cols in SampleBuffer.merge([s for _, _, s in states], self.tsne_points, self.seed).items():
            emb[d] = {k: np.concatenate([emb[d][k], v]) for k, v in cols.items()} if d in emb else cols
        spec = getattr(pl_module, "spec", None)
        classes = list(getattr(spec, "classes", []))
        domains = list(getattr(spec, "domains", []))
        results: dict[str, dict[str, Any]] = {  # under DDP, domains no rank tested come back with n = 0
            d: r for d, r in (getattr(pl_module, "test_results", {}) or {}).items() if r.get("n", 1) != 0
        }
        self.written = []
        if "confusion" in self.every:
            for dom, res in results.items():
                if "confusion" in res:
                    fig = plotting.plot_confusion_matrix(res["confusion"], classes, dom)
                    self._emit(trainer, fig, out_dir, f"confusion_{dom}")
        if "per_class" in self.every and results:
            per_class = {d: r["per_class"] for d, r in results.items() if "per_class" in r}
            if per_class:
                fig = plotting.plot_per_class_accuracy(per_class, classes, overall=results)
                self._emit(trainer, fig, out_dir, "per_class_accuracy")
        if "map" in self.every:
            for d, cols in sorted(preds.items()):
                if d < len(domains):
                    self._draw_map(trainer, domains[d], cols, classes, out_dir)
        if "tsne" in self.every:
            for name in self._tsne_names or []:
                self._draw_tsne(trainer, pl_module, emb, classes, domains, out_dir, name)
        if self.written:
            print(f"{len(self.written)} figures written to {out_dir}")

    def _draw_map(
        self, trainer: pl.Trainer, domain: str, cols: dict[str, np.ndarray], classes: list[str], out_dir: Path
    ) -> None:
        truth = truth_map(getattr(trainer, "datamodule", None), domain)
        if truth is None or truth.ndim != 2 or min(truth.shape) < 2:
            log.info("no classification map for %s: not a pixel-level scene", domain)
            return
        rows, cc = pixel_positions(trainer, domain, cols["index"])
        ok = rows >= 0
        if not ok.any():
            return
        pred = plotting.label_map_from_predictions(truth.shape, rows[ok], cc[ok], cols["pred"][ok])
        fig = plotting.plot_classification_map(pred, truth, classes, domain, max_pixels=self.max_map_pixels)
        self._emit(trainer, fig, out_dir, f"map_{domain}")

    def _draw_tsne(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        emb: dict[int, dict[str, np.ndarray]],
        classes: list[str],
        domains: list[str],
        out_dir: Path,
        name: str,
    ) -> None:
        key = f"emb_{name}"
        parts = [c for c in emb.values() if key in c]
        if not parts:
            log.warning("FigureCallback: the model returns no %r embedding; no t-SNE drawn", name)
            return
        x = np.concatenate([c[key] for c in parts])
        if len(x) < 4:
            return
        labels = np.concatenate([c["label"] for c in parts])
        doms = np.concatenate([c["domain"] for c in parts])
        sources = list(getattr(getattr(pl_module, "spec", None), "source_domains", []))
        fig = plotting.plot_tsne(
            x,
            labels,
            doms,
            classes,
            domains,
            max_points=self.tsne_points,
            seed=self.seed,
            source_domains=sources,
            title=f"t-SNE of the {name} embeddings (source: val pixels, targets: test pixels)",
        )
        self._emit(trainer, fig, out_dir, f"tsne_{name}")

    def _emit(self, trainer: pl.Trainer, fig: Figure, out_dir: Path, name: str) -> None:
        path = plotting.save_figure(fig, out_dir / f"{_safe(name)}.png", dpi=self.dpi)
        self.written.append(path)
        if self.log_to_logger:
            log_figure(trainer, f"{self.dirname}/{name}", fig, path)
