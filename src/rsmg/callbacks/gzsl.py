"""Raw and calibrated generalised zero-shot scores of a held-out-classes test (``gzsl.json``).

With ``data.held_out_classes`` the trained model predicts among all classes, and seen-class scores dominate.
At test start this callback runs the tested checkpoint on the datamodule's **source validation** loader (seen
classes only), chooses γ from those logits by :func:`rsmg.gzsl.calibration_gamma` — before any test batch, and
without any label — then scores every test domain raw and with γ subtracted from the seen-class logits.
``gzsl.json`` in the run directory holds γ, the rule, and per domain the raw and calibrated seen / unseen / H
and confusion matrices. Add it with ``--trainer.callbacks+=rsmg.callbacks.CalibratedStacking``.
"""

from __future__ import annotations

import json
from typing import Any

import lightning.pytorch as pl
import torch

from rsmg.callbacks.results import run_dir
from rsmg.data.spec import module_spec
from rsmg.errors import ConfigError
from rsmg.io import atomic_write_text

__all__ = ["CalibratedStacking"]


class CalibratedStacking(pl.Callback):
    """Calibrated stacking of a held-out-classes test, γ chosen on source validation logits.

    Args:
        unseen_rate: share of source validation images (all of seen classes) that the calibrated rule may send to
            an unseen class; γ is the largest shift that keeps to it (0.05: the 95 %-kept operating point).
    """

    def __init__(self, unseen_rate: float = 0.05) -> None:
        self.unseen_rate = unseen_rate
        self.gamma: float | None = None
        self.results: dict[str, Any] = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Refuse a multi-process test (each rank would score only its own shard)."""
        if stage == "test" and trainer.world_size > 1:
            raise ConfigError(
                "calibrated stacking scores one process's test samples", field="trainer.devices",
                expected="1 device for the test", found=trainer.world_size,
                fix="run `rsmg test` with --trainer.devices 1",
            )  # fmt: skip

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """γ from the tested model's logits on the source validation images (no label read)."""
        from rsmg.gzsl import calibrated_predictions, calibration_gamma

        dm = trainer.datamodule  # type: ignore[attr-defined]
        self.classes = list(module_spec(pl_module).classes)
        seen_names = set(getattr(dm, "seen_classes", self.classes))
        self.seen = torch.tensor([c in seen_names for c in self.classes])
        logits = []
        with torch.no_grad():
            for batch in dm.val_dataloader():
                batch = trainer.strategy.batch_to_device(batch, pl_module.device)
                logits.append(pl_module(batch).logits.float().cpu())
        val = torch.cat(logits)
        self.gamma = calibration_gamma(val, self.seen, self.unseen_rate)
        moved = calibrated_predictions(val, self.seen, self.gamma)
        self.val_info = {"n": len(val), "sent_to_unseen": float((~self.seen[moved]).float().mean())}
        self._logits: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        self._domains: list[torch.Tensor] = []

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keep the batch's logits, labels and domains (γ is already fixed)."""
        self._logits.append(outputs["logits"].detach().float().cpu())
        self._labels.append(batch["label"].cpu())
        self._domains.append(batch["domain"].cpu())

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Raw and calibrated seen / unseen / H per test domain, printed and written to ``gzsl.json``."""
        from rsmg.gzsl import calibrated_predictions, gzsl_accuracy

        assert self.gamma is not None
        logits, labels, domains = torch.cat(self._logits), torch.cat(self._labels), torch.cat(self._domains)
        names = module_spec(pl_module).domains
        k = len(self.classes)
        per_domain = {}
        for d in domains.unique().tolist():
            sel = domains == d
            out: dict[str, Any] = {}
            raw = logits[sel].argmax(dim=1)
            cal = calibrated_predictions(logits[sel], self.seen, self.gamma)
            for key, pred in (("raw", raw), ("calibrated", cal)):
                cm = torch.bincount(labels[sel] * k + pred, minlength=k * k).reshape(k, k)
                out[key] = {**gzsl_accuracy(pred, labels[sel], self.seen), "confusion": cm.tolist()}
            per_domain[names[d]] = out
        self.results = {
            "rule": "calibrated stacking, gamma from source validation logits only",
            "unseen_rate": self.unseen_rate,
            "gamma": self.gamma,
            "validation": self.val_info,
            "classes": self.classes,
            "seen_classes": [c for c, s in zip(self.classes, self.seen.tolist(), strict=True) if s],
            "test": per_domain,
        }
        if trainer.is_global_zero:
            atomic_write_text(run_dir(trainer) / "gzsl.json", json.dumps(self.results, indent=2))
            for name, r in per_domain.items():
                row = {key: {m: round(r[key][m], 2) for m in ("seen", "unseen", "H")} for key in r}
                print(f"gzsl {name} (gamma {self.gamma:.3f}, class-name-aware):", json.dumps(row))
