"""Seeded, epoch-aware, resumable samplers: the order is a function of (seed, epoch, rank), never of history.

Why this module exists:

* **Resume after a kill lands on the same sample.** :class:`ResumableSampler` draws the permutation of epoch
  ``e`` from ``(seed, e)`` alone and records how many samples of the current epoch the model has *trained
  on* (not how many the loader prefetched). :class:`ResumableDataLoader` exposes that as ``state_dict`` /
  ``load_state_dict``, the interface Lightning's fit loop looks for on a training ``DataLoader``: it stores
  the state in every checkpoint (``loops.fit_loop.state_dict.combined_loader``) and gives it back before the
  first batch of a resumed run, so training continues with exactly the batches an uninterrupted run sees.
* **Randomness outside the sample order continues too.** The same state carries the global RNG states
  (torch, CUDA, numpy, ``random``) as they were when the checkpoint was written, so dropout masks after a
  resume are the ones the uninterrupted run draws. (Geometric augmentation is a hash of (seed, epoch, index)
  and needs nothing.) Lightning gives the loader its state back only when resuming *mid-epoch*: from a
  checkpoint written at the end of a complete epoch (the usual ``last.ckpt``) its ``FitLoop`` is "not
  restarting" and skips it. So :class:`~rsmg.data.datamodule.CrossDomainDataModule` saves the same RNG
  states in its own checkpoint state, which Lightning always restores, and puts them back right before the
  first training step after any resume. Both are captured when the checkpoint is written, and nothing draws
  from the global RNG between then and the next training batch of an uninterrupted run (the loaders'
  iterators take their base seed from their own ``generator``), so that is the point of the stream they
  continue.
* **DDP never double-counts an evaluation sample.** Both samplers subclass
  :class:`~torch.utils.data.DistributedSampler`, so Lightning keeps them instead of injecting its own.
  Training shards are padded to equal length (DDP needs the same number of steps on every rank); evaluation
  shards (:class:`EvalShardSampler`) are contiguous, disjoint and *not* padded, so per-domain confusion
  matrices summed over ranks count every test pixel exactly once and equal the single-process ones.

Who tells the sampler what was consumed: :class:`~rsmg.data.datamodule.CrossDomainDataModule` calls
:meth:`ResumableSampler.advance` from ``on_after_batch_transfer`` (once per training batch, right before the
training step), which is immune to the loader's and Lightning's prefetching.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Sized
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from rsmg.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "EvalShardSampler",
    "ResumableDataLoader",
    "ResumableSampler",
    "capture_rng_states",
    "epoch_permutation",
    "restore_rng_states",
    "worker_order",
]

_MASK64 = (1 << 64) - 1


def _mix(seed: int, epoch: int) -> int:
    """A 63-bit seed for ``torch.Generator`` from (seed, epoch) (splitmix64; (1, 0) and (0, 1) differ)."""
    z = (int(seed) * 0x9E3779B97F4A7C15 + int(epoch) + 0x632BE59BD9B4E019) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) & 0x7FFF_FFFF_FFFF_FFFF


def epoch_permutation(n: int, *, seed: int, epoch: int) -> list[int]:
    """The permutation of ``range(n)`` used in ``epoch`` (a pure function of its arguments)."""
    g = torch.Generator()
    g.manual_seed(_mix(seed, epoch))
    return torch.randperm(n, generator=g).tolist()


def _check_replicas(num_replicas: int, rank: int) -> None:
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ConfigError(
            "invalid distributed rank / world size",
            field="trainer.devices × trainer.num_nodes",
            expected="world size >= 1 and 0 <= rank < world size",
            found=f"rank {rank} of {num_replicas}",
            fix="check the SLURM / torchrun environment (SLURM_NTASKS, SLURM_PROCID)",
        )


class ResumableSampler(DistributedSampler):
    """Shuffled, padded rank shard whose order is a function of (seed, epoch) and which resumes mid-epoch.

    Args:
        data_source: the dataset (only its length is used).
        seed: seed of every epoch's permutation.
        shuffle: permute (``True``) or keep dataset order.
        num_replicas: number of ranks (world size); 1 without DDP.
        rank: this process's global rank.
        drop_last: drop the tail so every rank gets the same number of samples without padding.

    The epoch is set by Lightning through :meth:`set_epoch` at the start of every epoch; after
    :meth:`load_state_dict` the next ``iter()`` continues the saved epoch at the saved position.
    """

    def __init__(
        self,
        data_source: Sized,
        *,
        seed: int = 0,
        shuffle: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
    ) -> None:
        _check_replicas(num_replicas, rank)
        super().__init__(
            data_source,  # type: ignore[arg-type]  # only its length is used
            num_replicas=num_replicas,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )
        self.samples_consumed = 0  # samples of the current epoch this rank has trained on
        self.batches_consumed = 0
        self.epoch_complete = False
        self._iter_epoch = 0
        self._resume: tuple[int, int] | None = None  # (samples, batches) to skip on the next iter()

    # ------------------------------------------------------------------ order
    def rank_indices(self, epoch: int) -> list[int]:
        """This rank's indices of ``epoch``, in order (before any resume offset)."""
        n = len(self.dataset)  # type: ignore[arg-type]
        order = epoch_permutation(n, seed=self.seed, epoch=epoch) if self.shuffle else list(range(n))
        if self.drop_last:
            order = order[: self.total_size]
        elif len(order) < self.total_size:  # pad by repeating the head (as DistributedSampler does)
            pad = self.total_size - len(order)
            order += (order * (pad // max(1, len(order)) + 1))[:pad]
        return order[self.rank : self.total_size : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        """Indices of the current epoch, starting after the resume position if one was loaded."""
        start, batches = self._resume or (0, 0)
        self._resume = None
        self._iter_epoch = self.epoch
        self.samples_consumed, self.batches_consumed, self.epoch_complete = start, batches, False
        return iter(self.rank_indices(self.epoch)[start:])

    def __len__(self) -> int:
        """Samples per rank in a full epoch (Lightning counts batches from the restored position itself)."""
        return int(self.num_samples)

    # ------------------------------------------------------------------ progress
    def advance(self, num_samples: int, *, end_of_epoch: bool = False) -> None:
        """Record that the training step is about to use ``num_samples`` more samples of this epoch.

        Args:
            num_samples: size of the batch handed to the training step on this rank.
            end_of_epoch: this was the last batch the loop draws this epoch (e.g. ``limit_train_batches``
                reached), so a checkpoint written now resumes at the start of the next epoch.
        """
        self.samples_consumed += int(num_samples)
        self.batches_consumed += 1
        self.epoch_complete = self.epoch_complete or end_of_epoch or self.samples_consumed >= len(self)

    def state_dict(self) -> dict[str, Any]:
        """Epoch and position of the training stream (what a resumed run needs to continue it exactly)."""
        return {
            "epoch": int(self._iter_epoch),
            "samples_consumed": int(self.samples_consumed),
            "batches_consumed": int(self.batches_consumed),
            "epoch_complete": bool(self.epoch_complete),
            "seed": int(self.seed),
            "shuffle": bool(self.shuffle),
            "dataset_length": len(self.dataset),  # type: ignore[arg-type]
            "num_replicas": int(self.num_replicas),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the saved epoch at the saved position on the next ``iter()`` (or the next epoch if done).

        Raises:
            ConfigError: the checkpoint was written for another training set or seed, so its sample order
                cannot be continued.
        """
        fields = {
            "dataset_length": "data (sources / source_split / val_fraction)",
            "seed": "data.seed",
            "shuffle": "data",
        }
        mine = {"dataset_length": len(self.dataset), "seed": self.seed, "shuffle": self.shuffle}  # type: ignore[arg-type]
        for key, value in mine.items():
            if key in state and state[key] != value:
                raise ConfigError(
                    f"cannot resume the training order: the checkpoint's {key} differs",
                    field=fields[key],
                    expected=f"checkpoint: {state[key]}",
                    found=f"now: {value}",
                    fix="resume with the data configuration of the checkpoint (its config.yaml), "
                    "or start a new run from its weights",
                )
        epoch = int(state["epoch"])
        samples, batches = int(state["samples_consumed"]), int(state["batches_consumed"])
        old_world = int(state.get("num_replicas", self.num_replicas))
        if old_world != self.num_replicas and not state["epoch_complete"]:
            samples = samples * old_world // self.num_replicas
            batches = 0
            log.warning(
                "resuming with %d ranks a checkpoint written with %d: the rest of epoch %d restarts after %d "
                "samples per rank, close to, but not exactly, the uninterrupted order",
                self.num_replicas,
                old_world,
                epoch,
                samples,
            )
        if state["epoch_complete"] or samples >= len(self):
            epoch, samples, batches = epoch + 1, 0, 0
        self.set_epoch(epoch)
        self._iter_epoch = epoch
        self._resume = (samples, batches)
        self.samples_consumed, self.batches_consumed, self.epoch_complete = samples, batches, False


class EvalShardSampler(DistributedSampler):
    """Contiguous, disjoint, *unpadded* shard of an evaluation set (every sample on exactly one rank).

    With one process this is the whole dataset in order. With ``N`` ranks, rank ``r`` gets
    ``[r·n/N, (r+1)·n/N)``, so the ranks' predictions together are the dataset's samples, each once, and summed
    confusion matrices equal the single-process ones (Lightning's default ``DistributedSampler`` pads shards
    with repeated samples, which would count them twice).

    ``workers > 1`` (with ``batch_size``, the loader's) reorders the shard's batches by :func:`worker_order`,
    so that each DataLoader worker serves one contiguous run of batches: for datasets read in strips, where a
    worker that served every ``workers``-th batch would read every strip.
    """

    def __init__(
        self,
        data_source: Sized,
        *,
        num_replicas: int = 1,
        rank: int = 0,
        batch_size: int = 1,
        workers: int = 0,
    ) -> None:
        _check_replicas(num_replicas, rank)
        super().__init__(data_source, num_replicas=num_replicas, rank=rank, shuffle=False)  # type: ignore[arg-type]
        n = len(data_source)
        self.start = rank * n // num_replicas
        self.stop = (rank + 1) * n // num_replicas
        self.num_samples = self.stop - self.start
        self.total_size = n
        self.batch_size = batch_size
        self.workers = workers

    def __iter__(self) -> Iterator[int]:
        """This rank's indices, in dataset order (by worker runs with ``workers > 1``)."""
        if self.workers > 1:
            return worker_order(self.start, self.stop, self.batch_size, self.workers)
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        """Samples on this rank."""
        return self.stop - self.start


def worker_order(start: int, stop: int, batch_size: int, workers: int) -> Iterator[int]:
    """Samples ``start … stop-1`` ordered so that a DataLoader's workers each get one contiguous run of batches.

    A DataLoader hands batch ``j`` to worker ``j % workers``. The full batches are cut into ``workers``
    contiguous runs (the first runs one batch longer when they do not divide) and emitted round by round, one
    batch of each run, so worker ``k`` serves run ``k``. The short last batch, if any, comes last (every
    other batch stays full) and is the one batch a worker serves off its run. Every sample appears once.
    """
    n_full = (stop - start) // batch_size
    base, extra = divmod(n_full, workers)
    lengths = [base + (k < extra) for k in range(workers)]
    firsts = [sum(lengths[:k]) for k in range(workers)]
    for r in range(max(lengths, default=0)):  # a generator: no list of every sample (a whole scene's pixels)
        for k in range(workers):
            if r < lengths[k]:
                b = start + (firsts[k] + r) * batch_size
                yield from range(b, b + batch_size)
    yield from range(start + n_full * batch_size, stop)


# ---------------------------------------------------------------------------------------------- RNG states
def capture_rng_states() -> dict[str, Any]:
    """Global RNG states of torch (CPU and every initialised CUDA device), numpy and ``random``.

    Stored as tensors and plain Python values only, so checkpoints stay loadable with ``weights_only=True``.
    """
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, pgauss = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [
            str(kind),
            torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            int(pos),
            int(has_gauss),
            float(gauss),
        ],
        "python": [int(version), torch.tensor(internal, dtype=torch.int64), pgauss],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_states` (missing entries are left alone)."""
    if "torch" in states:
        torch.set_rng_state(states["torch"])
    if "numpy" in states:
        kind, keys, pos, has_gauss, gauss = states["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.int64).astype(np.uint32), pos, has_gauss, gauss))
    if "python" in states:
        version, internal, pgauss = states["python"]
        random.setstate((version, tuple(int(x) for x in internal), pgauss))
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` whose ``state_dict`` / ``load_state_dict`` make Lightning resume it mid-epoch.

    Same constructor as ``DataLoader`` (so Lightning can re-instantiate it). The state is the sampler's
    (when it has one of its own, e.g. :class:`ResumableSampler`) plus the global RNG states at the moment the
    checkpoint was written; set ``restore_rng = False`` on an instance to keep the RNG of the resumed process.
    Lightning calls :meth:`load_state_dict` only for a mid-epoch resume (see the module docstring: the
    datamodule restores the RNG after an epoch-end checkpoint as well).
    """

    restore_rng = True

    def state_dict(self) -> dict[str, Any]:
        """Sampler position and global RNG states."""
        state: dict[str, Any] = {"rng": capture_rng_states()}
        if hasattr(self.sampler, "state_dict"):
            state["sampler"] = self.sampler.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (Lightning calls it right before the first resumed batch)."""
        if "sampler" in state and hasattr(self.sampler, "load_state_dict"):
            self.sampler.load_state_dict(state["sampler"])
        if self.restore_rng and "rng" in state:
            restore_rng_states(state["rng"])
