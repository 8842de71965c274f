"""The unified model: FVMGN on scenes + per-sample captions through image⇄text dual cross-attention.

What DESIGN.md promises as one LightningModule: :class:`~rsmg.models.fvmgn_scenes.SceneFVMGN` (pretrained
image backbone, MWDis on the images, the frequency pathway on the backbone's multiscale maps, MSFFA alignment
of every scale and of the fused embedding to the class texts, the text-prototype classifier) with the
caption branch of Cai et al. (arXiv 2412.02531): each sample's caption, encoded by the same pretrained MiniLM
tower as the class texts, meets the backbone's last feature map (its tokens) in the padding-masked,
batch-first :class:`~rsmg.models.cross_attention.DualCrossAttentionFusion`, whose pooled image and caption
streams join the fused embedding.

A sample without a caption (``""``) keeps one key for the attention to use: a learned *no-caption* token is put
in front of every caption, so such a sample attends to that token alone. Its output then depends on its image
only, and no softmax runs over an empty set, which would give NaN (docs/decisions.md, "captions: the
no-caption token").

The tower is frozen and caption features are cached by text (:class:`~rsmg.text.caption_features.
CaptionFeatureCache`); the MWDis view reads the same caption as its original.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rsmg.data.spec import DataSpec
from rsmg.errors import DataError
from rsmg.models.base import ModelOutput
from rsmg.models.cross_attention import DualCrossAttentionFusion
from rsmg.models.fvmgn_scenes import SceneFVMGN
from rsmg.models.image_encoders import MultiscaleFeatures
from rsmg.models.registry import register_model
from rsmg.text.caption_features import CaptionFeatureCache

__all__ = ["CaptionFVMGN"]


@register_model("fvmgn_captions")
class CaptionFVMGN(SceneFVMGN):
    """SceneFVMGN plus the caption cross-attention branch (see the module docstring).

    Args:
        spec: the data spec; ``spec.has_text`` must be set (a datamodule with ``captions: true``).
        caption_width: width of the fusion's caption stream and attention (Cai et al.: 512).
        caption_heads: attention heads of the fusion.
        caption_levels: fusion levels (weights shared across levels, as the reference).
        caption_dropout: dropout inside the fusion (attention probabilities: half of it).
        return_attention: put the caption→image attention maps in ``ModelOutput.attention`` (for figures).
        **kwargs: :class:`~rsmg.models.fvmgn_scenes.SceneFVMGN`'s options (backbone, MWDis, frequency
            pathway, class texts, text tower, ...).

    Raises:
        DataError: at forward, a batch without a ``text`` list of one string per image.
    """

    def __init__(
        self,
        spec: DataSpec,
        *,
        caption_width: int = 256,
        caption_heads: int = 4,
        caption_levels: int = 2,
        caption_dropout: float = 0.1,
        return_attention: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(spec, **kwargs)
        tower = self.__dict__.pop("_text_tower_once", None)  # None with text.use: none (no class-text tower)
        self.captions = CaptionFeatureCache(tower if tower is not None else super().build_text_tower())
        img_dim = self.backbone.width
        self.null_token = nn.Parameter(torch.zeros(1, 1, self.captions.width))
        nn.init.normal_(self.null_token, std=0.02)
        self.caption_fusion = DualCrossAttentionFusion(
            img_dim,
            self.captions.width,
            width=caption_width,
            heads=caption_heads,
            levels=caption_levels,
            share_levels=True,
            attn_dropout=caption_dropout / 2,
            dropout=caption_dropout,
        )
        self.return_attention = return_attention
        # the fused embedding now also reads the fusion's pooled image and caption streams
        old = self.fuse[0]
        assert isinstance(old, nn.Linear)
        self.fuse = nn.Sequential(
            nn.Linear(old.in_features + self.caption_fusion.out_dim, old.out_features),
            nn.LayerNorm(old.out_features),
        )
        self._side: dict[str, torch.Tensor] = {}

    def build_text_tower(self) -> nn.Module:
        """SceneFVMGN's class-text tower, kept for the captions too: MiniLM is loaded once."""
        tower = super().build_text_tower()
        self.__dict__["_text_tower_once"] = tower  # not a submodule yet: the caption cache registers it
        return tower

    # -- the caption branch ----------------------------------------------------------------------------
    def batch_context(
        self, batch: dict[str, object], rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Caption tokens ``len(rows)×(1+L)×D`` (samples ``rows``), the no-caption token first, and their mask."""
        texts = batch.get("text")
        if isinstance(texts, tuple):
            texts = list(texts)
        x = batch.get(f"image_{self.modality}")
        n = x.shape[0] if isinstance(x, torch.Tensor) else None
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts) or len(texts) != n:
            raise DataError(
                "the batch has no caption list of one string per image",
                field="batch['text']",
                expected=f"list of {n} strings ('' = no caption)",
                found=type(texts).__name__ if not isinstance(texts, list) else f"{len(texts)} items",
                fix="set data.init_args.captions: true (SceneDomainDataModule), or use fvmgn_scenes",
            )
        hidden, mask = self.captions([t.strip() for t in texts])
        b = hidden.shape[0]
        hidden = torch.cat([self.null_token.to(hidden.dtype).expand(b, 1, -1), hidden], dim=1)
        mask = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=mask.device), mask], dim=1)
        if rows.numel() != b or not torch.equal(rows, torch.arange(b, device=rows.device)):
            hidden, mask = hidden[rows], mask[rows]
        # the query rows an attention map averages: the caption's words, or the no-caption token if none
        words = mask.clone()
        words[:, 0] = ~mask[:, 1:].any(dim=1)
        self._side["words"] = words
        return hidden, mask

    def extra_features(self, ms: MultiscaleFeatures, context: Any) -> list[torch.Tensor]:
        """The fusion's pooled image stream and pooled caption stream."""
        hidden, mask = context
        out = self.caption_fusion(ms.tokens, hidden, mask, need_weights=self.return_attention)
        if out.attention is not None:
            self._side["attention"] = out.attention
            m = self._side["words"][:, None, :, None].to(out.attention.dtype)
            self._side["attention_pooled"] = (out.attention * m).sum(2) / m.sum(2).clamp_min(1.0)
        self._side["caption_pooled"] = out.text
        return [out.image, out.text]

    def forward(self, batch: dict[str, object]) -> ModelOutput:
        """SceneFVMGN's forward with captions; adds ``embeddings["caption"]`` and the attention maps."""
        self._side = {}
        out = super().forward(batch)
        b = out.logits.shape[0]
        side, self._side = self._side, {}
        pooled = self.full_views(side["caption_pooled"], b)
        two = pooled.shape[0] == 2 * b  # the view the logits come from (SceneFVMGN's rule)
        first = slice(b, 2 * b) if two and self.mwdis_logits == "resampled" else slice(0, b)
        out.embeddings["caption"] = pooled[first]
        if "attention" in side:  # B×levels×(1+L)×N (row 0: the no-caption token) and B×levels×N
            out.attention["text_to_image"] = self.full_views(side["attention"], b)[first]
            out.attention["text_to_image_pooled"] = self.full_views(side["attention_pooled"], b)[first]
        return out
