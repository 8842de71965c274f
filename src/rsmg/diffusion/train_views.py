"""Training-time DTAug: replace a share of the source inputs with diffusion reconstructions.

FVMGN's DTAug "enriches the inputs with reconstructed views" during training. Per training sample, with
probability ``p`` (decided by a hash of seed, epoch and sample index — no global RNG, so resumed and
multi-rank runs draw the same choices), the input is replaced by one noise-and-denoise view from the source
prior; views differ across epochs. Generating views costs ``steps`` UNet passes for the selected samples; for
long runs precompute a bank (:class:`rsmg.diffusion.ViewBank`) instead.
"""

from __future__ import annotations

from typing import Any

import torch

from rsmg.diffusion.augment import view_seed
from rsmg.errors import ConfigError


class TrainingViews:
    """Mix diffusion views into training batches.

    Args:
        prior_path: exported prior or prior-task checkpoint.
        p: probability that a sample is replaced by a view in a given epoch.
        strength: noise strength in (0, 1].
        steps: DDIM steps.
        seed: seed of the choices and the views.
    """

    def __init__(
        self, prior_path: str, p: float = 0.5, strength: float = 0.3, steps: int = 5, seed: int = 0
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
        self.prior_path, self.p, self.strength, self.steps, self.seed = prior_path, p, strength, steps, seed
        self._prior: Any = None

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
