"""``ResumableDataModule``: the loaders, resumption and augmentation hooks every rsmg datamodule shares.

Pixel-level scenes (:class:`~rsmg.data.datamodule.CrossDomainDataModule`) and image-folder scenes
(:class:`~rsmg.data.scene_domains.SceneDomainDataModule`) differ in what a sample is, not in how batches are
served. One base class keeps the guarantees of :mod:`rsmg.data.sampling` in one place: the training order is a
function of (seed, epoch, rank) and a killed run resumes on the same sample; evaluation shards are disjoint and
unpadded under DDP; geometric augmentation (the 8 symmetries of the square, :mod:`rsmg.data.augment`) is a hash
of (seed, epoch, index), so it does not depend on workers, batch composition or the number of ranks.

A subclass sets ``seed``, ``batch_size``, ``eval_batch_size``, ``num_workers`` and ``augment`` and builds its
datasets; it puts :meth:`rng_state` into its ``state_dict`` and passes the saved state to :meth:`restore_rng`.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DataLoader

from rsmg.data.augment import augment_batch
from rsmg.data.sampling import (
    EvalShardSampler,
    ResumableDataLoader,
    ResumableSampler,
    capture_rng_states,
    restore_rng_states,
)
from rsmg.data.scene import collate_samples
from rsmg.errors import ConfigError

__all__ = ["ResumableDataModule", "check_loader_options"]


def check_loader_options(batch_size: int, eval_batch_size: int | None, num_workers: int) -> None:
    """Raise a :class:`ConfigError` for a non-positive batch size or a negative worker count."""
    for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(
                f"{key} must be a positive integer",
                field=f"data.{key}",
                expected=">= 1",
                found=value,
                fix=f"set data.init_args.{key} to e.g. 64",
            )
    if num_workers < 0:
        raise ConfigError(
            "num_workers cannot be negative",
            field="data.num_workers",
            expected=">= 0",
            found=num_workers,
            fix="use 0 (load in the main process) or the number of CPU cores",
        )


class ResumableDataModule(pl.LightningDataModule):
    """Seeded, resumable loaders plus on-device dihedral augmentation (see the module docstring).

    Subclasses set the attributes below in ``__init__``.

    Attributes:
        seed: seed of the sample order and of the augmentation hash.
        batch_size: training batch size.
        eval_batch_size: batch size of val/test/predict loaders.
        num_workers: DataLoader workers.
        augment: random flips / 90° rotations of every ``image_*`` tensor during training.
    """

    seed: int
    batch_size: int
    eval_batch_size: int
    num_workers: int
    augment: bool
    _train_sampler: ResumableSampler | None = None
    # Global RNG states of a checkpoint being resumed, restored by the first training batch after it.
    _rng_on_resume: dict[str, Any] | None = None

    @property
    def protocol(self) -> str:
        """``inductive`` or ``transductive``, written into ``metrics.json`` and every results table.

        Every data module here fits its statistics on training data only, hence ``inductive``; one with an
        option that reads a statistic of a test domain (``CrossDomainDataModule``) overrides this.
        """
        return "inductive"

    @property
    def protocol_reason(self) -> str:
        """Why :attr:`protocol` is what it is."""
        return "statistics fitted on training data only"

    def _world(self) -> tuple[int, int]:
        """(world size, global rank) of the attached trainer; (1, 0) without one."""
        trainer = self.trainer
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def _loader(
        self, ds: torch.utils.data.Dataset[Any], *, train: bool, by_worker: bool = False
    ) -> DataLoader[Any]:
        # Samplers are rsmg's own (rsmg.data.sampling): training order = f(seed, epoch), resumable mid-epoch;
        # evaluation shards are disjoint and unpadded under DDP. Both subclass DistributedSampler, so
        # Lightning keeps them. The generator seeds the loader's base seed (iter() draws no global RNG).
        # by_worker: each worker serves one contiguous run of batches (datasets read in strips).
        world, rank = self._world()
        g = torch.Generator().manual_seed(self.seed)
        common: dict[str, Any] = {
            "generator": g,
            "num_workers": self.num_workers,
            "drop_last": False,
            "collate_fn": collate_samples,
            "persistent_workers": self.num_workers > 0,
        }
        if train:
            sampler = ResumableSampler(ds, seed=self.seed, shuffle=True, num_replicas=world, rank=rank)  # type: ignore[arg-type]
            self._train_sampler = sampler
            return ResumableDataLoader(ds, batch_size=self.batch_size, sampler=sampler, **common)
        workers = self.num_workers if by_worker else 0
        shard = EvalShardSampler(
            ds,  # type: ignore[arg-type]
            num_replicas=world,
            rank=rank,
            batch_size=self.eval_batch_size,
            workers=workers,
        )
        return DataLoader(ds, batch_size=self.eval_batch_size, sampler=shard, **common)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Count the training batch for resumption, then joint flips/rotations (training only)."""
        trainer = self.trainer
        if trainer is None or not trainer.training:
            return batch
        if self._rng_on_resume is not None:  # first training batch after a resume: continue the saved stream
            restore_rng_states(self._rng_on_resume)
            self._rng_on_resume = None
        sampler = self._train_sampler
        if sampler is not None and isinstance(batch, dict) and "index" in batch:
            last = sampler.batches_consumed + 1 >= trainer.num_training_batches
            sampler.advance(len(batch["index"]), end_of_epoch=last)
        if self.augment:
            batch = augment_batch(batch, seed=self.seed, epoch=trainer.current_epoch)
        return batch

    @staticmethod
    def rng_state() -> dict[str, Any]:
        """The global RNG states, for the subclass's ``state_dict`` (key ``"rng"``).

        They are here (and not only in the training loader's state) because Lightning gives a training loader
        its state back only when resuming *mid-epoch*; from a checkpoint written at the end of a complete
        epoch (the usual ``last.ckpt``) it skips it, while the datamodule's state always comes back. Nothing
        draws from the global RNG between a checkpoint and the next training batch (the loaders' iterators
        seed from their own generator), so these are the states an uninterrupted run has when it starts that
        batch.
        """
        return capture_rng_states()

    def restore_rng(self, state_dict: dict[str, Any]) -> None:
        """When fitting, keep a checkpoint's RNG states for the first training batch.

        The RNG is not restored here: the sanity check and the moves to the device come in between, and CUDA
        may not be initialised yet. :meth:`on_after_batch_transfer` restores it right before the first training
        step, the point of the stream the states were saved at. Checkpoints written before the states were
        saved here have none (their mid-epoch resumes get them from the training loader's state).
        """
        trainer = self.trainer
        fitting = trainer is not None and trainer.state.fn == TrainerFn.FITTING
        self._rng_on_resume = state_dict.get("rng") if fitting else None
