"""``PhaseTimer``: where the wall time of a fit or test goes, written as ``timing.json`` in the run directory.

A user waiting for a protocol wants to know whether the data pipeline, the model step, MWDis, the text tower or
the diffusion prior (DTAug views, TTA) is the bottleneck. The callback splits each stage (train / validate /
test / predict) into: time waiting for the next batch (loader + host→device copy), time inside the batch
(``on_*_batch_start`` → ``on_*_batch_end``: forward, loss, backward, optimizer), and the time spent inside
modules of interest (forward hooks on :class:`~rsmg.models.wavelet.MWDis`, text towers and the diffusion prior;
the prior runs inside other callbacks' hooks, so its time can fall outside the batch). It also records samples,
samples/s and the peak CUDA memory of each stage.

On CUDA the hooks synchronise the device at each boundary, so the shares are real GPU time rather than launch
time; that costs a little throughput, which is why the callback is opt-in (``--trainer.callbacks+
rsmg.callbacks.timing.PhaseTimer``) and never part of an experiment's defaults.
"""

# ruff: noqa: D102  (Lightning hook overrides; what each one marks is said in the class docstring)

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from rsmg.callbacks.results import run_dir
from rsmg.io import atomic_write_text

STAGES = ("train", "validate", "test", "predict")


def _module_kind(module: nn.Module) -> str | None:
    """The timed kind of a module, or None (checked by class so no optional package is imported)."""
    from rsmg.models.wavelet import MWDis

    if isinstance(module, MWDis):
        return "mwdis"
    names = {cls.__name__ for cls in type(module).__mro__}
    if "TextTower" in names:
        return "text"
    if "DiffusionPrior" in names:
        return "diffusion_prior"
    return None


class PhaseTimer(pl.Callback):
    """Split each stage's wall time into data wait, batch, MWDis, text tower and diffusion prior.

    Args:
        sync_cuda: synchronise the CUDA device at every boundary (true GPU time; default True).
        filename: name of the JSON file written in the run directory.
    """

    def __init__(self, sync_cuda: bool = True, filename: str = "timing.json") -> None:
        self.sync_cuda = sync_cuda
        self.filename = filename
        self.stats: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._handles: list[Any] = []
        self._stage: str | None = None
        self._device: torch.device | None = None
        self._t_stage = self._t_last = self._t_batch = 0.0
        self._open: dict[int, float] = {}
        self._pause: str | None = None

    # -- clock --------------------------------------------------------------------------------------------
    def _now(self) -> float:
        if self.sync_cuda and self._device is not None and self._device.type == "cuda":
            torch.cuda.synchronize(self._device)
        return time.perf_counter()

    # -- module hooks -----------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Hook the timed modules of the model and of the other callbacks (a TTA prior, DTAug views)."""
        self._device = pl_module.device
        roots: list[nn.Module] = [pl_module]
        for cb in trainer.callbacks:  # type: ignore[attr-defined]
            for value in vars(cb).values():
                prior = getattr(value, "prior", None)
                for obj in (value, prior):
                    if isinstance(obj, nn.Module):
                        roots.append(obj)
        seen: set[int] = set()
        for root in roots:
            for module in root.modules():
                kind = _module_kind(module)
                if kind is None or id(module) in seen:
                    continue
                seen.add(id(module))
                self._handles.append(module.register_forward_pre_hook(self._pre))
                self._handles.append(module.register_forward_hook(self._make_post(kind)))

    def _pre(self, module: nn.Module, args: Any) -> None:
        self._open[id(module)] = self._now()

    def _make_post(self, kind: str) -> Any:
        def post(module: nn.Module, args: Any, output: Any) -> None:
            start = self._open.pop(id(module), None)
            if start is not None and self._stage is not None:
                self.stats[self._stage][f"{kind}_s"] += self._now() - start

        return post

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Remove the hooks (a model reused after the run must not keep timing itself)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    # -- stage and batch boundaries ---------------------------------------------------------------------
    def _start(self, stage: str) -> None:
        self._stage = stage
        if self._device is not None and self._device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self._device)
        self._t_stage = self._t_last = self._now()

    def _end(self) -> None:
        if self._stage is None:
            return
        s = self.stats[self._stage]
        s["wall_s"] += self._now() - self._t_stage
        if self._device is not None and self._device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self._device) / 2**20
            s["peak_cuda_mib"] = max(s["peak_cuda_mib"], peak)
        self._stage = None

    def _batch_start(self) -> None:
        now = self._now()
        if self._stage is not None:
            self.stats[self._stage]["data_wait_s"] += now - self._t_last
        self._t_batch = now

    def _batch_end(self, batch: Any) -> None:
        now = self._now()
        if self._stage is None:
            return
        s = self.stats[self._stage]
        s["batch_s"] += now - self._t_batch
        s["batches"] += 1
        s["samples"] += _batch_size(batch)
        self._t_last = now

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start("train")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end()

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._pause = self._stage  # validation runs inside a training epoch
        if self._stage is not None:
            self._end()
        self._start("validate")

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end()
        if self._pause is not None:
            self._start(self._pause)
            self._pause = None

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start("test")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end()

    def on_predict_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start("predict")

    def on_predict_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end()

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._batch_start()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._batch_end(batch)

    def on_validation_batch_start(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._batch_start()

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._batch_end(batch)

    def on_test_batch_start(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._batch_start()

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._batch_end(batch)

    def on_predict_batch_start(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._batch_start()

    def on_predict_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._batch_end(batch)

    # -- output -----------------------------------------------------------------------------------------
    def summary(self) -> dict[str, dict[str, float]]:
        """Per stage: the raw sums plus samples/s and the shares of the stage's wall time."""
        out: dict[str, dict[str, float]] = {}
        for stage, s in self.stats.items():
            row = dict(s)
            wall = s.get("wall_s", 0.0)
            if wall > 0:
                row["samples_per_s"] = s.get("samples", 0.0) / wall
                for key in ("data_wait_s", "batch_s", "mwdis_s", "text_s", "diffusion_prior_s"):
                    row[key.replace("_s", "_share")] = s.get(key, 0.0) / wall
            out[stage] = row
        return out

    def _write(self, trainer: pl.Trainer) -> None:
        if trainer.is_global_zero:
            path = run_dir(trainer) / self.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            device = str(self._device) if self._device is not None else "?"
            if self._device is not None and self._device.type == "cuda":
                device += f" ({torch.cuda.get_device_name(self._device)})"
            payload = {"device": device, "sync_cuda": self.sync_cuda, "stages": self.summary()}
            atomic_write_text(path, json.dumps(payload, indent=1, sort_keys=True) + "\n")

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer)

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer)


def _batch_size(batch: Any) -> int:
    """Samples in a batch dict: the length of its label (or first tensor)."""
    if isinstance(batch, dict):
        for key in ("label", "index"):
            if isinstance(batch.get(key), torch.Tensor):
                return int(batch[key].shape[0])
        for value in batch.values():
            if isinstance(value, torch.Tensor):
                return int(value.shape[0])
    return 0
