"""Lightning task that trains DTAug's source-domain diffusion prior.

FVMGN (arXiv 2511.10774) trains its classifier for *unseen* target domains: target data may be used only
once, at test time. DTAug's diffusion model learns "multimodal land-cover distributions" that augmentations
are drawn from, so it must be fitted on source data only, or target information would leak into training
through the views. This task therefore checks the ``domain`` of every training and validation batch and
refuses any sample that is not from a source domain (``spec.domains[:len(spec.source_domains)]``);
validation is meant for held-out *source* data (model selection on source only, ``docs/papers.md``).

Objective: the DDPM "simple" loss, MSE between the noise and the UNet's prediction at uniform random timesteps
(Ho et al., 2020), on the stacked normalised modalities (:class:`rsmg.diffusion.prior.DiffusionPrior`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from rsmg.data.spec import DataSpec
from rsmg.diffusion.augment import view_seed
from rsmg.diffusion.prior import CHECKPOINT_KEY, DiffusionPrior
from rsmg.errors import ConfigError, DataError


class DiffusionPriorTask(pl.LightningModule):
    """Train a :class:`DiffusionPrior` on source-domain patches.

    Args:
        spec: the data the prior models (a dict as stored in checkpoints is accepted, so that
            ``load_from_checkpoint`` works without pickled objects).
        unet: ``UNet2DModel`` keyword arguments (see :data:`rsmg.diffusion.prior_config.DEFAULT_UNET`).
        num_train_timesteps: DDPM timesteps ``T``.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        scheduler: other noise-schedule settings (``beta_schedule``, ``beta_start``, ``beta_end``).
        val_seed: seed of the fixed per-sample timesteps and noise used for ``val/loss``, so that validation
            losses of different epochs are comparable.
        patch_size: model the data at this lower resolution (area-downsampled; ``None``: the data's own), so
            that DTAug on large images fits a CPU (``docs/decisions.md#dtaug-prior-resolution``).

    Raises:
        ConfigError: bad optimiser values, a spec whose source domains are not the first domains, or a bad
            UNet / scheduler config.
    """

    def __init__(
        self,
        spec: DataSpec | Mapping[str, Any] | None = None,
        unet: dict[str, Any] | None = None,
        num_train_timesteps: int = 1000,
        lr: float = 2e-4,
        weight_decay: float = 0.0,
        scheduler: dict[str, Any] | None = None,
        val_seed: int = 0,
        patch_size: int | None = None,
    ) -> None:
        super().__init__()
        if (
            spec is None
        ):  # the CLI links data.spec here at instantiation; None is only the parse-time placeholder
            raise ConfigError(
                "DiffusionPriorTask needs a data spec",
                field="model.init_args.spec",
                expected="a DataSpec (linked from data.spec by `rsmg`)",
                found=None,
                fix="run through the rsmg CLI with a data section, or pass spec=datamodule.spec",
            )
        if isinstance(spec, Mapping):
            spec = DataSpec.from_dict(dict(spec))
        n_src = len(spec.source_domains)
        if tuple(spec.domains[:n_src]) != tuple(spec.source_domains):
            raise ConfigError(
                "spec.source_domains must be the first entries of spec.domains",
                field="spec.source_domains",
                expected=f"the first {n_src} of {list(spec.domains)}",
                found=list(spec.source_domains),
            )
        for name, value in (("lr", lr), ("weight_decay", weight_decay)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or value < 0
                or (name == "lr" and value == 0)
            ):
                raise ConfigError(
                    f"{name} must be a {'positive' if name == 'lr' else 'non-negative'} number",
                    field=name,
                    expected="> 0" if name == "lr" else ">= 0",
                    found=repr(value),
                )
        self.spec = spec
        self.prior = DiffusionPrior.from_spec(
            spec,
            unet=unet,
            scheduler=scheduler,
            num_train_timesteps=num_train_timesteps,
            patch_size=patch_size,
        )
        self.save_hyperparameters(ignore=["spec"])
        self.hparams["spec"] = spec.to_dict()  # plain data: checkpoints load with weights_only=True

    # ------------------------------------------------------------------ checks
    def check_source_only(self, batch: Mapping[str, Any], stage: str) -> None:
        """Raise unless every sample of ``batch`` comes from a source domain.

        Raises:
            DataError: the batch has no ``domain`` field, or contains target-domain samples (named).
        """
        if "domain" not in batch:
            raise DataError(
                f"{stage} batch has no 'domain' field, so source-only training cannot be checked",
                field="domain",
                expected="int64 domain indices (sample contract, rsmg.data.spec)",
                found=sorted(k for k in batch if isinstance(k, str)),
            )
        domains = torch.as_tensor(batch["domain"]).reshape(-1)
        n_src = len(self.spec.source_domains)
        bad = ((domains < 0) | (domains >= n_src)).nonzero().reshape(-1)
        if bad.numel():
            ids = sorted({int(d) for d in domains[bad].tolist()})
            names = [self.spec.domains[i] if 0 <= i < len(self.spec.domains) else f"<{i}>" for i in ids]
            raise DataError(
                f"{stage} batch contains samples of non-source domains {names}; the DTAug prior must never "
                "see target data",
                field="domain",
                expected=f"source domains {list(self.spec.source_domains)} (indices 0..{n_src - 1})",
                found=f"{bad.numel()} samples with domain indices {ids}",
                fix="feed the prior the source training (and source validation) splits only",
            )

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """DDPM noise-prediction loss on one batch of source patches."""
        self.check_source_only(batch, "training")
        x0 = self.prior.to_prior(self.prior.stack(batch))
        loss = self.prior.loss(x0)
        self.log("train/loss", loss, prog_bar=True, batch_size=x0.shape[0])
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """The same loss with timesteps and noise fixed per sample (seeded by ``index``)."""
        self.check_source_only(batch, "validation")
        x0 = self.prior.to_prior(self.prior.stack(batch))
        b = x0.shape[0]
        indices = torch.as_tensor(batch["index"]).reshape(-1).tolist() if "index" in batch else range(b)
        ts, noise = [], []
        for i in indices:
            g = torch.Generator().manual_seed(view_seed(self.hparams["val_seed"], int(i), -1))
            ts.append(torch.randint(0, self.prior.num_train_timesteps, (1,), generator=g))
            noise.append(torch.randn(tuple(x0.shape[1:]), generator=g))
        t = torch.cat(ts).to(x0.device)
        eps = torch.stack(noise).to(device=x0.device, dtype=x0.dtype)
        loss = self.prior.loss(x0, timesteps=t, noise=eps)
        self.log("val/loss", loss, prog_bar=True, batch_size=b, sync_dist=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW over the UNet."""
        return torch.optim.AdamW(
            self.prior.parameters(), lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"]
        )

    # ------------------------------------------------------------------ persistence
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the data spec and prior config, so a checkpoint says which data its prior models."""
        checkpoint[CHECKPOINT_KEY] = {"spec": self.spec.to_dict(), "prior_config": self.prior.config}

    def export_prior(self, path: str | Path) -> Path:
        """Write the trained prior alone (config + weights, atomically) for :class:`DiffusionAugmenter`.

        A path ending in ``.pt`` gets rsmg's single torch file (:meth:`DiffusionPrior.save`); any other path
        a diffusers-style directory (:meth:`DiffusionPrior.save_pretrained`: safetensors weights, no pickle).
        Both load with :func:`rsmg.diffusion.loading.load_prior`.
        """
        path = Path(path)
        if path.suffix == ".pt":
            return self.prior.save(path)
        return self.prior.save_pretrained(path)
