"""Training-time DTAug: replace a share of the source inputs with diffusion reconstructions.

FVMGN's DTAug "enriches the inputs with reconstructed views" during training. Per training sample, with
probability ``p`` (decided by a hash of seed, epoch and sample index — no global RNG, so resumed and
multi-rank runs draw the same choices), the input is replaced by one noise-and-denoise view from the source
prior; views differ across epochs.

Two sources of views (``bank_dir``):

* **on the fly** (``bank_dir=None``): the selected samples of each batch are noised and denoised inside the
  training step — ``steps`` UNet passes per selected sample, every epoch; the view is made from the (already
  flipped / rotated) training input, and the generator seed changes with the epoch, so every epoch sees new
  views;
* **bank** (``bank_dir`` set): ``bank_views`` views per source training patch are computed once, before the
  first epoch, into an on-disk :class:`rsmg.diffusion.ViewBank` (atomic, resumable) in the sub-folder
  ``bank_dir/<fingerprint of the training split>``, and a selected sample reads view
  ``hash(seed, index, epoch) mod bank_views`` from it. The bank holds views of the un-augmented patches, so
  the datamodule's per-sample dihedral transform of this epoch is applied to the view (the same transform
  the original input received). An epoch then costs no UNet pass; the price is a finite set of views.
  Under DDP only rank 0 builds the bank; the other ranks wait and open it.

  Reuse: a bank belongs to one training split (sample indices are positions in the split), so runs that share
  the split — another classifier, another ``seed_everything``, a resumed run — reuse it, while a run with
  another ``data.seed`` (another split) builds its own sub-folder beside it instead of failing; a bank of
  another prior or other settings in the same sub-folder is refused with a clear error.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch

from rsmg.diffusion.augment import view_seed
from rsmg.errors import ConfigError


class TrainingViews:
    """Mix diffusion views into training batches.

    Args:
        prior_path: exported prior (.pt file or save_pretrained directory) or prior-task checkpoint.
        p: probability that a sample is replaced by a view in a given epoch.
        strength: noise strength in (0, 1].
        steps: DDIM steps.
        seed: seed of the choices and the views.
        bank_dir: folder of the precomputed view banks, one sub-folder per training split (built before the
            first epoch if absent); ``None`` generates views on the fly.
        bank_views: views per sample stored in the bank.
        bank_batch_size: samples per UNet call (and per resumable chunk) while building the bank.
    """

    def __init__(
        self,
        prior_path: str,
        p: float = 0.5,
        strength: float = 0.3,
        steps: int = 5,
        seed: int = 0,
        bank_dir: str | None = None,
        bank_views: int = 4,
        bank_batch_size: int = 256,
    ) -> None:
        if not 0 <= p <= 1:
            raise ConfigError(
                "view probability out of range",
                field="train_views.p",
                expected="0 <= p <= 1",
                found=p,
                fix="use e.g. 0.5",
            )
        if not 0 < strength <= 1 or steps < 1:
            raise ConfigError(
                "bad DTAug settings",
                field="train_views.strength/steps",
                expected="0 < strength <= 1 and steps >= 1",
                found=(strength, steps),
                fix="e.g. 0.3 and 5",
            )
        if bank_dir is not None and (bank_views < 1 or bank_batch_size < 1):
            raise ConfigError(
                "bad view-bank settings",
                field="train_views.bank_views/bank_batch_size",
                expected=">= 1 each",
                found=(bank_views, bank_batch_size),
                fix="e.g. bank_views: 4, bank_batch_size: 256",
            )
        self.prior_path, self.p, self.strength, self.steps, self.seed = prior_path, p, strength, steps, seed
        self.bank_dir, self.bank_views, self.bank_batch_size = bank_dir, bank_views, bank_batch_size
        self._prior: Any = None
        self._bank: Any = None
        self._rows: dict[int, int] = {}
        self._augment_seed: int | None = None
        self.bank_path: Path | None = None

    def prepare(self, trainer: Any, spec: Any, device: torch.device) -> None:
        """Build (rank 0) or open the view bank over the source training split; no-op without ``bank_dir``.

        Called by the task when fitting starts. The bank is keyed on the prior's checksum, the augmenter
        settings and the training split's content, so a second run (another classifier seed, a resumed run)
        reuses it; different settings in the same folder raise a clear error.
        """
        if self.bank_dir is None or self.p == 0:
            return
        from rsmg.diffusion import DiffusionAugmenter, ViewBank
        from rsmg.diffusion.bank import dataset_fingerprint

        datamodule = trainer.datamodule
        train_dataset = getattr(datamodule, "train_dataset", None)
        if not callable(train_dataset):
            raise ConfigError(
                "a DTAug view bank needs a datamodule with a train_dataset() method",
                field="train_views.bank_dir",
                found=type(datamodule).__name__,
                fix="use rsmg.data.CrossDomainDataModule, or bank_dir: null for on-the-fly views",
            )
        dataset = train_dataset()
        prior = self._load(device, spec)
        fingerprint = dataset_fingerprint(dataset, list(prior.modalities))
        self.bank_path = Path(self.bank_dir) / fingerprint.split(":", 1)[-1][:16]
        aug = DiffusionAugmenter(
            prior, strength=self.strength, steps=self.steps, views=self.bank_views, seed=self.seed
        )
        build = functools.partial(
            ViewBank.build, dataset, aug, self.bank_path, self.bank_batch_size, fingerprint=fingerprint
        )
        if trainer.is_global_zero:
            self._bank = build()
        trainer.strategy.barrier("rsmg-view-bank")
        if self._bank is None:
            self._bank = build()
        self._rows = {int(dataset[i]["index"]): i for i in range(len(dataset))}
        self._augment_seed = int(datamodule.seed) if getattr(datamodule, "augment", False) else None

    def _load(self, device: torch.device, spec: Any) -> Any:
        if self._prior is None:
            from rsmg.diffusion.loading import load_prior

            self._prior = load_prior(self.prior_path, map_location=device).to(device)
            self._prior.check_compatible(spec)
        return self._prior

    def selected(self, index: torch.Tensor, epoch: int) -> torch.Tensor:
        """Boolean mask of the samples replaced in this epoch."""
        u = torch.tensor(
            [view_seed(self.seed, int(i), 10_000 + epoch) % 1_000_003 / 1_000_003 for i in index.tolist()]
        )
        return (u < self.p).to(index.device)

    @torch.no_grad()
    def __call__(self, batch: dict[str, Any], *, epoch: int, spec: Any) -> dict[str, Any]:
        """Return the batch with the selected samples' images replaced by one view each."""
        if self.p == 0:
            return batch
        sel = self.selected(batch["index"], epoch)
        if not sel.any():
            return batch
        if self._bank is not None:
            return self._from_bank(batch, sel, epoch, spec)
        from rsmg.diffusion import DiffusionAugmenter

        device = batch["index"].device
        prior = self._load(device, spec)
        aug = DiffusionAugmenter(
            prior, strength=self.strength, steps=self.steps, views=1, seed=self.seed * 7919 + epoch
        )
        sub = {k: v[sel] for k, v in batch.items() if isinstance(v, torch.Tensor) and k.startswith("image_")}
        view = aug(sub, batch["index"][sel])[0]
        out = dict(batch)
        for k, v in view.items():
            x = out[k].clone()
            x[sel] = v.to(x.dtype)
            out[k] = x
        return out

    def _from_bank(self, batch: dict[str, Any], sel: torch.Tensor, epoch: int, spec: Any) -> dict[str, Any]:
        import numpy as np

        from rsmg.data.augment import augment_batch

        index = batch["index"][sel]
        try:
            rows = [self._rows[int(i)] for i in index.tolist()]
        except KeyError as exc:
            raise ConfigError(
                "a training sample is not in the DTAug view bank",
                field="train_views.bank_dir",
                found=f"sample index {exc.args[0]}",
                fix="the bank was built from another training split: delete the folder or use another bank_dir",
            ) from None
        which = [view_seed(self.seed, int(i), 20_000 + epoch) % self.bank_views for i in index.tolist()]
        stacked = torch.from_numpy(
            np.stack([self._bank.array[r, v] for r, v in zip(rows, which, strict=True)])
        )
        prior = self._load(batch["index"].device, spec)
        views: dict[str, Any] = prior.unstack(stacked.to(batch["index"].device, torch.float32))
        if self._augment_seed is not None:  # the dihedral transform the original inputs got this epoch
            views = augment_batch({**views, "index": index}, seed=self._augment_seed, epoch=epoch)
        out = dict(batch)
        for k in list(out):
            if k.startswith("image_") and k in views:
                x = out[k].clone()
                x[sel] = views[k].to(x.dtype)
                out[k] = x
        return out
