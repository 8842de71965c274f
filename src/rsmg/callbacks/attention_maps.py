"""Caption→image attention maps of the dual cross-attention model, drawn on test images (Cai et al., Fig. 4).

Where a caption's words look in the image is the qualitative evidence the paper gives for its fusion. This
callback picks ``num_samples`` test samples spread over the classes (round-robin over classes, lowest dataset
indices first within a class, so every run and every method shows the same scenes), re-runs the network on
their batches with attention maps switched on, and writes ``<run_dir>/figures/attention_maps.png`` (also sent
to the active logger). Test batches are re-run only until every class has its share
(``ceil(num_samples / classes)``), so the cost is a few extra forward passes (all test batches when a class is
absent from the test set; caption test sets are small).

The map of a sample is the text→image attention averaged over heads (in the fusion), over the caption's real
tokens (padding excluded) and over the fusion levels (``level="mean"``) or taken from one level; prefix tokens
(ViT CLS) are dropped and the rest reshaped to the patch grid.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from rsmg import plotting
from rsmg.callbacks.figures import log_figure
from rsmg.callbacks.results import run_dir
from rsmg.data.spec import image_key, module_spec
from rsmg.errors import ConfigError

__all__ = ["AttentionMapFigures", "patch_grid"]


def patch_grid(n_tokens: int, height: int, width: int) -> tuple[int, int]:
    """The ``gh×gw`` patch grid with ``gh·gw == n_tokens`` and the aspect ratio of an ``height×width`` image.

    Raises:
        ValueError: no such grid (the tokens are not a patch grid of this image).
    """
    gh = max(1, round(math.sqrt(n_tokens * height / width)))
    gw = n_tokens // gh
    if gh * gw != n_tokens:
        raise ValueError(f"{n_tokens} image tokens are not a patch grid of a {height}×{width} image")
    return gh, gw


class AttentionMapFigures(pl.Callback):
    """Draw caption→image attention over the first test images of a cross-attention caption model.

    Args:
        num_samples: how many test samples to draw.
        level: ``"mean"`` over fusion levels, or a level index (``0`` first, ``-1`` last).
        columns: samples per figure row.
        dirname: sub-directory of the run directory.
        dpi: PNG resolution.
        log_to_logger: also send the figure to the active logger(s).
    """

    def __init__(
        self,
        num_samples: int = 8,
        level: str | int = "mean",
        columns: int = 4,
        dirname: str = "figures",
        dpi: int = 130,
        log_to_logger: bool = True,
    ) -> None:
        if num_samples < 1:
            raise ConfigError(
                "num_samples must be positive",
                field="AttentionMapFigures.num_samples",
                expected=">= 1",
                found=num_samples,
                fix="e.g. num_samples: 8",
            )
        if not (level == "mean" or isinstance(level, int)):
            raise ConfigError(
                "unknown attention level",
                field="AttentionMapFigures.level",
                expected="'mean' or a level index",
                found=repr(level),
                fix="use level: mean",
            )
        self.num_samples = num_samples
        self.level = level
        self.columns = columns
        self.dirname = dirname
        self.dpi = dpi
        self.log_to_logger = log_to_logger
        self.skipped_reason: str | None = None
        self.written: list[Any] = []
        self._samples: list[dict[str, Any]] = []
        self._quota = 1

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start a fresh collection; note (once, printed) when the model has no attention to draw."""
        self._samples = []
        self._quota = math.ceil(self.num_samples / max(1, len(module_spec(pl_module).classes)))
        net = getattr(pl_module, "net", None)
        fusion = getattr(net, "fusion", None) or getattr(
            net, "caption_fusion", None
        )  # CaptionFVMGN: the latter
        if net is None or not hasattr(net, "return_attention") or fusion is None:
            self.skipped_reason = (
                f"{type(net).__name__} has no caption→image attention (fusion="
                f"{getattr(net, 'fusion_mode', '?')!r}); attention maps need fusion='cross_attention'"
            )
            if trainer.is_global_zero:
                print(f"attention maps skipped: {self.skipped_reason}")
        else:
            self.skipped_reason = None

    @torch.no_grad()
    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Re-run the network with attention maps on while fewer than ``num_samples`` are collected."""
        if self.skipped_reason is not None or dataloader_idx or self._enough(pl_module):
            return
        net: Any = getattr(pl_module, "net")  # noqa: B009 (a CaptionClassifier, checked at epoch start)
        before = net.return_attention
        net.return_attention = True
        try:
            out = net(batch)
        finally:
            net.return_attention = before
        pooled = out.attention["text_to_image_pooled"].float().cpu()  # B×levels×N
        amap = pooled.mean(dim=1) if self.level == "mean" else pooled[:, int(self.level)]
        encoder = getattr(net, "image_encoder", None) or getattr(net, "backbone", None)
        prefix = int(getattr(encoder, "num_prefix_tokens", 0))
        images = batch[image_key(net.modality)].float().cpu().numpy()
        preds = out.logits.argmax(-1).cpu().numpy()
        for i in range(len(preds)):
            h, w = images[i].shape[-2:]
            tokens = amap[i, prefix:].numpy()
            gh, gw = patch_grid(tokens.size, h, w)
            self._samples.append(
                {
                    "index": int(batch["index"][i]),
                    "image": plotting.display_image(images[i]),
                    "map": tokens.reshape(gh, gw),
                    "caption": str(batch["text"][i]),
                    "label": int(batch["label"][i]),
                    "pred": int(preds[i]),
                }
            )

    def _enough(self, pl_module: pl.LightningModule) -> bool:
        counts = np.bincount(
            [s["label"] for s in self._samples], minlength=len(module_spec(pl_module).classes)
        )
        return bool((counts >= self._quota).all())

    def _choose(self) -> list[dict[str, Any]]:
        by_class: dict[int, list[dict[str, Any]]] = {}
        for s in sorted(self._samples, key=lambda s: s["index"]):
            by_class.setdefault(s["label"], []).append(s)
        queues = [by_class[c] for c in sorted(by_class)]
        chosen: list[dict[str, Any]] = []
        while len(chosen) < self.num_samples and any(queues):
            for q in queues:
                if q and len(chosen) < self.num_samples:
                    chosen.append(q.pop(0))
        return chosen

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Draw the collected samples (lowest indices first) and write the PNG."""
        if self.skipped_reason is not None or not self._samples or not trainer.is_global_zero:
            return
        classes = module_spec(pl_module).classes
        chosen = self._choose()
        titles = [
            f"true {classes[s['label']]} / pred {classes[s['pred']]}"
            + ("" if s["label"] == s["pred"] else " ✗")
            for s in chosen
        ]
        level = "mean over levels" if self.level == "mean" else f"level {self.level}"
        fig = plotting.plot_attention_maps(
            [s["image"] for s in chosen],
            [s["map"] for s in chosen],
            [s["caption"] for s in chosen],
            titles,
            suptitle=f"Caption→image attention ({level}, mean over heads and caption tokens)",
            columns=self.columns,
        )
        path = plotting.save_figure(fig, run_dir(trainer) / self.dirname / "attention_maps.png", dpi=self.dpi)
        self.written.append(path)
        if self.log_to_logger:
            log_figure(trainer, f"{self.dirname}/attention_maps", fig, path)
        print(f"attention maps written to {path}")
