"""``ClassificationTask``: one LightningModule for every multimodal classifier in rsmg.

The network is injected (``model.init_args.net: {class_path: rsmg.models.FVMGN, init_args: {...}}``) as a
callable that receives the :class:`DataSpec` linked from the datamodule, so one task trains the concat
baseline, FVMGN and its ablations, and the caption models under the same protocol, losses and metrics.

Loss = cross-entropy + Σ_k weight_k · aux_k, where the model returns the unweighted auxiliary terms (e.g.
FVMGN's ``align`` and ``invariance``) and ``loss_weights`` in the config weights them (papers.md defaults:
alignment 0.5, invariance 0.1; docs/decisions.md#loss-weights). Test metrics are kept per target domain
(one confusion matrix each) and logged as ``test/<domain>/<metric>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from rsmg.data.spec import DataSpec
from rsmg.diffusion.train_views import TrainingViews
from rsmg.errors import ConfigError, DataError
from rsmg.metrics import DomainMetrics
from rsmg.models.base import ModelOutput

NetFactory = Callable[[DataSpec], nn.Module]


def _default_net(spec: DataSpec) -> nn.Module:
    from rsmg.models.baseline import ConcatCNN

    return ConcatCNN(spec)


class ClassificationTask(pl.LightningModule):
    """Supervised multimodal classification with per-domain evaluation.

    Args:
        spec: the data spec; linked from ``data.spec`` by the CLI (required; ``None`` only as the parse-time
            placeholder of the link).
        net: callable building the network from the spec (``class_path`` in YAML); default the concat CNN.
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay.
        decay_norms_and_biases: whether weight decay also applies to every trainable parameter with at most
            one dimension (biases, norm scales and shifts, FVMGN's logit scale). ``False`` exempts them (timm's
            ``filter_bias_and_bn``, open_clip); the default ``True`` is what every results file was measured
            with, and at the configs' decay ``False`` moves OA by ≤ 0.07 (docs/decisions.md#weight-decay).
        scheduler: ``"cosine"`` over ``trainer.max_epochs`` or ``"none"``.
        warmup_epochs: linear warm-up epochs before the cosine decay.
        loss_weights: weight of each auxiliary loss the model returns (missing names weigh 0 and are logged).
        label_smoothing: cross-entropy label smoothing.
        train_views: optional training-time DTAug (diffusion views mixed into source batches).
    """

    def __init__(
        self,
        spec: DataSpec | None = None,
        net: NetFactory | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        decay_norms_and_biases: bool = True,
        scheduler: Literal["cosine", "none"] = "cosine",
        warmup_epochs: int = 0,
        loss_weights: dict[str, float] | None = None,
        label_smoothing: float = 0.0,
        train_views: TrainingViews | None = None,
    ) -> None:
        super().__init__()
        if spec is None:
            raise ConfigError(
                "ClassificationTask needs a data spec",
                field="model.init_args.spec",
                expected="a DataSpec (linked from data.spec by `rsmg`)",
                found=None,
                fix="run through the rsmg CLI with a data section, or pass spec=datamodule.spec",
            )
        self.save_hyperparameters(ignore=["net", "spec", "train_views"])
        self.train_views = train_views
        self.spec = spec
        self.net = (net or _default_net)(spec)
        self.loss_weights = dict(loss_weights or {})
        self.test_metrics = DomainMetrics(spec.domains, spec.num_classes)
        self.test_results: dict[str, dict[str, object]] = {}
        # Micro accuracy = correct / total over the epoch (OA); its states are summed over DDP ranks on compute.
        self.val_oa = MulticlassAccuracy(num_classes=spec.num_classes, average="micro")

    # ------------------------------------------------------------------ forward
    def forward(self, batch: dict[str, Any]) -> ModelOutput:
        """Run the network on a batch dict."""
        out = self.net(batch)
        assert isinstance(out, ModelOutput), f"{type(self.net).__name__}.forward must return a ModelOutput"
        return out

    @torch.no_grad()
    def predict_probs(self, batch: dict[str, Any]) -> torch.Tensor:
        """Class probabilities for a batch (used by test-time augmentation callbacks)."""
        return self(batch).logits.float().softmax(dim=-1)

    # ------------------------------------------------------------------ steps
    def _loss(self, out: ModelOutput, target: torch.Tensor, stage: str) -> torch.Tensor:
        ce = F.cross_entropy(out.logits.float(), target, label_smoothing=self.hparams["label_smoothing"])
        total = ce
        bs = target.shape[0]
        self.log(f"{stage}/ce", ce, batch_size=bs, sync_dist=stage != "train")
        for name, value in out.aux_losses.items():
            w = float(self.loss_weights.get(name, 0.0))
            self.log(f"{stage}/{name}", value, batch_size=bs, sync_dist=stage != "train")
            if w:
                total = total + w * value
        self.log(f"{stage}/loss", total, batch_size=bs, prog_bar=True, sync_dist=stage != "train")
        return total

    def on_fit_start(self) -> None:
        """Build or open the DTAug view bank before the first epoch (when ``train_views`` uses one)."""
        if self.train_views is not None:
            self.train_views.prepare(self.trainer, self.spec, self.device)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Cross-entropy plus weighted auxiliary losses on source samples (optionally with DTAug views)."""
        if self.train_views is not None:
            batch = self.train_views(batch, epoch=self.current_epoch, spec=self.spec)
        out = self(batch)
        loss = self._loss(out, batch["label"], "train")
        acc = (out.logits.argmax(1) == batch["label"]).float().mean()
        self.log("train/oa", acc, batch_size=batch["label"].shape[0], prog_bar=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        """Reset the source-validation accuracy (also after the sanity check)."""
        self.val_oa.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Loss and OA on held-out *source* samples: model selection never sees a target domain."""
        out = self(batch)
        self._loss(out, batch["label"], "val")
        self.val_oa.update(out.logits.detach(), batch["label"])

    def on_validation_epoch_end(self) -> None:
        """Log source-validation OA over all ranks' samples (torchmetrics syncs its counts on compute)."""
        self.log("val/oa", self.val_oa.compute(), prog_bar=True, rank_zero_only=False)
        self.val_oa.reset()

    def on_test_epoch_start(self) -> None:
        """Fresh per-domain confusion matrices."""
        self.test_metrics.reset()

    def test_step(
        self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, torch.Tensor]:
        """Accumulate the confusion matrix of the batch's domain; return logits for callbacks (TTA, figures)."""
        with torch.no_grad():
            out = self(batch)
        self.update_test_metrics(batch, out.logits.float().softmax(dim=-1))
        return {"logits": out.logits, "embeddings": out.embeddings}

    def update_test_metrics(self, batch: dict[str, Any], probs: torch.Tensor) -> None:
        """Add a batch's predictions to its domain's metrics (one domain per batch, as the loaders are built)."""
        domains = batch["domain"].unique()
        for d in domains.tolist():
            sel = batch["domain"] == d
            self.test_metrics.update(int(d), probs[sel], batch["label"][sel])

    def on_test_epoch_end(self) -> None:
        """Compute and log ``test/<domain>/{oa,aa,kappa}`` for every target domain."""
        self.test_results = self.test_metrics.compute()
        for dom, res in self.test_results.items():
            for key in ("oa", "aa", "kappa"):
                self.log(f"test/{dom}/{key}", float(res[key]), add_dataloader_idx=False, rank_zero_only=True)  # type: ignore[arg-type]

    def predict_step(
        self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, torch.Tensor]:
        """Probabilities with labels, domains and sample indices (for maps and exports)."""
        probs = self.predict_probs(batch)
        return {"probs": probs, "label": batch["label"], "domain": batch["domain"], "index": batch["index"]}

    # ------------------------------------------------------------------ optimisation
    def parameter_groups(self) -> list[dict[str, Any]]:
        """AdamW parameter groups: one decayed group, plus one undecayed group of ≤ 1-D parameters if asked.

        Frozen parameters (a frozen text tower) are left out. With ``decay_norms_and_biases`` (the default)
        there is a single group, so the optimizer and its checkpointed state are laid out as before the option.
        """
        wd = float(self.hparams["weight_decay"])
        trainable = [p for p in self.parameters() if p.requires_grad]
        if self.hparams["decay_norms_and_biases"]:
            return [{"params": trainable, "weight_decay": wd}]
        decayed = [p for p in trainable if p.ndim > 1]
        exempt = [p for p in trainable if p.ndim <= 1]
        return [{"params": decayed, "weight_decay": wd}, {"params": exempt, "weight_decay": 0.0}]

    def configure_optimizers(self) -> Any:
        """AdamW, optionally with linear warm-up and cosine decay per epoch."""
        opt = torch.optim.AdamW(self.parameter_groups(), lr=self.hparams["lr"])
        if self.hparams["scheduler"] == "none" or self.trainer is None or not self.trainer.max_epochs:
            return opt
        total = max(1, int(self.trainer.max_epochs))
        warm = int(self.hparams["warmup_epochs"])

        def factor(epoch: int) -> float:
            if epoch < warm:
                return (epoch + 1) / (warm + 1)
            import math

            return 0.5 * (1 + math.cos(math.pi * (epoch - warm) / max(1, total - warm)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the data spec so a checkpoint can be checked against the data it is tested on."""
        checkpoint["rsmg_spec"] = self.spec.to_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint trained on other classes, modalities or bands, naming both sides."""
        saved = checkpoint.get("rsmg_spec")
        if saved is None:
            return
        old = DataSpec.from_dict(saved)
        for field in ("classes", "modalities", "band_names", "patch_size"):
            a, b = getattr(old, field), getattr(self.spec, field)
            # dicts in order too: stems, proprietary texts and fusion are laid out by modality position
            differ = (
                list(a.items()) != list(b.items()) if isinstance(a, dict) and isinstance(b, dict) else a != b
            )
            if differ:
                raise DataError(
                    f"checkpoint does not match the data: {field} differ",
                    field=f"data.{field}",
                    expected=f"checkpoint: {a}",
                    found=f"data config: {b}",
                    fix="test with the data configuration the checkpoint was trained with",
                )
