"""``DiffusionTTA``: test-time augmentation with the DTAug diffusion prior, reported beside plain inference.

FVMGN (arXiv 2511.10774, DTAug) maps every unseen-domain test input through the source diffusion prior before
classifying it. For each test sample this callback classifies the original plus ``K`` reconstructed views
(:class:`rsmg.diffusion.DiffusionAugmenter`, noise-and-denoise at ``strength`` with ``steps`` DDIM steps) and
aggregates them (mean of probabilities by default; mean of logits or majority vote configurable). Plain metrics
(from the task) and TTA metrics (kept here, one confusion matrix per domain) are written side by side in the
results table, so the gain or loss of TTA is visible in every run.

Views are seeded by (seed, sample index, view index): results do not depend on the batch size, the sample's
batch, or the number of DDP ranks. With ``views=0`` the TTA metrics equal the plain ones exactly.
"""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
import torch

from rsmg.callbacks.results import PerDomainResults
from rsmg.data.spec import module_spec
from rsmg.errors import ConfigError
from rsmg.metrics import DomainMetrics

Aggregate = Literal["mean_prob", "mean_logit", "vote"]


def aggregate_views(logits: torch.Tensor, how: Aggregate) -> torch.Tensor:
    """Combine ``V×B×K`` logits (original first) into ``B×K`` probabilities.

    ``vote`` returns one-hot majority votes, ties broken by the mean probability.
    """
    probs = logits.float().softmax(dim=-1)
    if how == "mean_prob":
        return probs.mean(0)
    if how == "mean_logit":
        return logits.float().mean(0).softmax(dim=-1)
    votes = torch.nn.functional.one_hot(probs.argmax(-1), probs.shape[-1]).float().sum(0)
    score = votes + 1e-3 * probs.mean(0)  # tie-break without changing a clear majority
    return torch.nn.functional.one_hot(score.argmax(-1), probs.shape[-1]).float()


class DiffusionTTA(pl.Callback):
    """Classify original + ``views`` diffusion reconstructions of each test sample and aggregate.

    Args:
        prior_path: exported prior (.pt file or directory) or checkpoint of the prior task
            (see :func:`rsmg.diffusion.loading.load_prior`).
        strength: noise strength in (0, 1] (fraction of the diffusion chain).
        steps: DDIM denoising steps (≥ 1).
        views: number of reconstructed views ``K`` (≥ 0; 0 reproduces plain inference).
        seed: seed of the views.
        aggregate: ``"mean_prob"`` (default), ``"mean_logit"`` or ``"vote"``.
    """

    def __init__(
        self,
        prior_path: str,
        strength: float = 0.4,
        steps: int = 5,
        views: int = 4,
        seed: int = 0,
        aggregate: Aggregate = "mean_prob",
    ) -> None:
        if not 0 < strength <= 1:
            raise ConfigError(
                "TTA strength out of range",
                field="DiffusionTTA.strength",
                expected="0 < strength <= 1",
                found=strength,
                fix="use e.g. 0.4",
            )
        if steps < 1:
            raise ConfigError(
                "TTA needs at least one denoising step",
                field="DiffusionTTA.steps",
                expected=">= 1",
                found=steps,
                fix="use e.g. 5",
            )
        if views < 0:
            raise ConfigError(
                "number of TTA views must be >= 0",
                field="DiffusionTTA.views",
                expected=">= 0",
                found=views,
                fix="use 0 (off) or e.g. 4",
            )
        if aggregate not in ("mean_prob", "mean_logit", "vote"):
            raise ConfigError(
                "unknown aggregation",
                field="DiffusionTTA.aggregate",
                expected="mean_prob, mean_logit or vote",
                found=aggregate,
                fix="pick one of those",
            )
        self.prior_path = prior_path
        self.strength, self.steps, self.views, self.seed, self.aggregate = (
            strength,
            steps,
            views,
            seed,
            aggregate,
        )
        self.augmenter: Any = None
        self.metrics: DomainMetrics | None = None

    @property
    def block_name(self) -> str:
        """The name of the TTA results beside ``test`` in ``metrics.json``: it carries the settings."""
        return f"test with DTAug TTA (K={self.views}, strength={self.strength}, steps={self.steps}, {self.aggregate})"

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Load the prior (on the module's device) and check it models the classifier's data."""
        if stage not in ("test", "predict") or self.augmenter is not None:
            return
        from rsmg.diffusion import DiffusionAugmenter
        from rsmg.diffusion.loading import load_prior

        prior = load_prior(self.prior_path, map_location=pl_module.device)
        spec = module_spec(pl_module)
        prior.check_compatible(spec)
        self.augmenter = DiffusionAugmenter(
            prior.to(pl_module.device),
            strength=self.strength,
            steps=self.steps,
            views=self.views,
            seed=self.seed,
        )
        self.metrics = DomainMetrics(spec.domains, spec.num_classes).to(pl_module.device)

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Fresh TTA metrics."""
        assert self.metrics is not None
        self.metrics.reset()

    @torch.no_grad()
    def tta_probs(
        self, pl_module: pl.LightningModule, batch: dict[str, Any], logits: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Aggregated probabilities of the original and its views for one batch."""
        if logits is None:
            logits = pl_module(batch).logits
        all_logits = [logits]
        for view in self.augmenter(batch, batch["index"]):
            all_logits.append(pl_module({**batch, **view}).logits)
        return aggregate_views(torch.stack(all_logits), self.aggregate)

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Add the batch's TTA predictions to its domain's metrics."""
        assert self.metrics is not None
        logits = outputs.get("logits") if isinstance(outputs, dict) else None
        probs = self.tta_probs(pl_module, batch, logits)
        for d in batch["domain"].unique().tolist():
            sel = batch["domain"] == d
            self.metrics.update(int(d), probs[sel], batch["label"][sel])

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Log ``test_tta/<domain>/<metric>`` and hand the table to the results callback."""
        assert self.metrics is not None
        results = self.metrics.compute()
        for dom, res in results.items():
            for key in ("oa", "aa", "kappa"):
                pl_module.log(
                    f"test_tta/{dom}/{key}",
                    float(res[key]),  # type: ignore[arg-type]
                    add_dataloader_idx=False,
                    rank_zero_only=True,
                )
        self.results = results
        for cb in trainer.callbacks:  # type: ignore[attr-defined]
            if isinstance(cb, PerDomainResults):
                cb.extra[self.block_name] = results
