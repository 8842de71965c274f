"""Zero-shot recognition of classes held out of training (Cai et al., arXiv 2412.02531, "unseen classes").

Classes listed in ``CaptionedSceneDataModule(held_out_classes=[...])`` never reach training or validation. At
test time each sample's caption embedding (the text tower's pooled feature, ``embeddings["text"]``) is compared
by cosine similarity with class embeddings built open_clip-style from class names × prompt templates shipped as
data (``rsmg/text/resources/prompt_templates.yaml``). Reported: accuracy on seen-class and unseen-class test
samples when predicting among *all* classes (generalised zero-shot), their harmonic mean H, and accuracy on
unseen samples when predicting among the unseen classes only (conventional zero-shot).
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


class ZeroShotEval(pl.Callback):
    """Evaluate zero-shot classification of held-out classes from caption embeddings.

    Args:
        templates: prompt template set name (``simple``, ``remote_sensing``, ``caption_style``).
        embedding: which embedding of the model output is compared with the class prompts (``"text"``).
    """

    def __init__(self, templates: str = "remote_sensing", embedding: str = "text") -> None:
        self.templates = templates
        self.embedding = embedding
        self.classifier: torch.Tensor | None = None
        self.results: dict[str, object] = {}

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Build the class-prompt embeddings with the model's own text tower."""
        from rsmg.text.zero_shot import build_zero_shot_classifier

        tower = getattr(getattr(pl_module, "net", None), "text_tower", None)
        if tower is None:
            raise ConfigError(
                "zero-shot evaluation needs a model with a text tower",
                field="model.init_args.net",
                expected="CaptionClassifier with fusion text/concat/vote/cross_attention",
                found=type(getattr(pl_module, "net", pl_module)).__name__,
                fix="use a text-using method",
            )
        dm = trainer.datamodule  # type: ignore[attr-defined]
        self.classes = list(module_spec(pl_module).classes)
        self.seen = set(getattr(dm, "seen_classes", self.classes))
        with torch.no_grad():
            self.classifier = build_zero_shot_classifier(tower, self.classes, self.templates).to(
                pl_module.device
            )
        self._preds: list[torch.Tensor] = []
        self._unseen_preds: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Zero-shot predictions of the batch (all classes, and unseen classes only)."""
        assert self.classifier is not None
        emb = outputs["embeddings"][self.embedding].float()
        sims = torch.nn.functional.normalize(emb, dim=-1) @ self.classifier.T
        self._preds.append(sims.argmax(-1).cpu())
        unseen_idx = torch.tensor(
            [i for i, c in enumerate(self.classes) if c not in self.seen], dtype=torch.long
        )
        if len(unseen_idx):
            self._unseen_preds.append(unseen_idx[sims[:, unseen_idx.to(sims.device)].argmax(-1).cpu()])
        self._labels.append(batch["label"].cpu())

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Seen / unseen / harmonic-mean accuracy, printed and written to ``zero_shot.json``."""
        from rsmg.text.zero_shot import zero_shot_accuracy

        preds, labels = torch.cat(self._preds), torch.cat(self._labels)
        is_seen = torch.tensor([self.classes[i] in self.seen for i in labels.tolist()])
        seen_acc = (
            float((preds[is_seen] == labels[is_seen]).float().mean()) if is_seen.any() else float("nan")
        )
        unseen_acc = (
            float((preds[~is_seen] == labels[~is_seen]).float().mean()) if (~is_seen).any() else float("nan")
        )
        res: dict[str, object] = {
            "seen_acc": seen_acc,
            "unseen_acc": unseen_acc,
            "H": zero_shot_accuracy(seen_acc, unseen_acc),
            "n_seen": int(is_seen.sum()),
            "n_unseen": int((~is_seen).sum()),
            "templates": self.templates,
        }
        if self._unseen_preds:
            up = torch.cat(self._unseen_preds)
            res["unseen_acc_among_unseen"] = float((up[~is_seen] == labels[~is_seen]).float().mean())
        self.results = res
        if trainer.is_global_zero:
            atomic_write_text(run_dir(trainer) / "zero_shot.json", json.dumps(res, indent=2))
            print("zero-shot (caption embedding vs class prompts):", json.dumps(res))
