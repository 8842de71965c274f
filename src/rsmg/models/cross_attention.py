"""Dual (bidirectional) cross-attention between image tokens and caption tokens.

Implements the fusion block of Cai et al., arXiv 2412.02531, as read from the authors' code
(``docs/papers.md`` §2): per level, the caption stream runs self-attention, then queries the image tokens,
then an MLP; the image stream then queries the updated caption tokens and is projected back to its own width.
Both streams are mean-pooled at the end. Two defects of the reference are fixed here, and tests guard both:

* every attention is *batch-first* (the reference ran ``nn.MultiheadAttention(batch_first=False)`` on
  ``B×L×D`` tensors, so each caption attended across the batch and a sample's prediction depended on its
  batch-mates);
* caption padding is *masked* wherever text tokens are keys (self-attention, image-queries-text) and in the
  pooling (the reference attended to and averaged ≈29 padding positions of 77).

Readings where the reference description is ambiguous (configurable or written down):

* every sub-layer (self-attention, both cross-attentions, MLP) is wrapped in residual + post-LayerNorm, as in
  the original Transformer decoder; the reference names residual + LayerNorm after the text→image
  cross-attention and after the back-projection only;
* the image stream's "back-projection 512→768" is the output projection of the image-queries-text attention
  itself (two stacked linear maps with nothing between them are one linear map, so this saves a matmul and no
  capacity);
* captions of a different width than ``width`` (e.g. MiniLM, 384) are projected to ``width`` by one linear
  layer;
* the image stream is mean-pooled over all tokens, CLS included, as the reference does.

Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention` (fused kernels on GPU).
Attention *maps* are only materialised when asked for (``need_weights=True``), for figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rsmg.errors import ConfigError

__all__ = [
    "DualCrossAttentionFusion",
    "DualCrossAttentionLevel",
    "FusionOutput",
    "MultiHeadAttention",
    "masked_mean",
]


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``B×L×D`` tokens over the positions where ``mask`` (``B×L`` bool, True = token) is set.

    Args:
        x: token features.
        mask: which positions are real tokens; ``None`` means all are.

    Returns:
        ``B×D`` means. A row without any token gives zeros rather than NaN.
    """
    if mask is None:
        return x.mean(dim=1)
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)


class MultiHeadAttention(nn.Module):
    """Batch-first multi-head attention with separate query / key-value widths and a key padding mask.

    ``nn.MultiheadAttention`` would do, but this version (a) cannot be built sequence-first by mistake, (b)
    lets the output width differ from the attention width (the image stream's back-projection), and (c) always
    takes the fused ``scaled_dot_product_attention`` path unless attention maps are requested.

    Args:
        q_dim: width of the query tokens.
        kv_dim: width of the key/value tokens.
        width: attention width (split over ``heads``).
        heads: number of heads; must divide ``width``.
        out_dim: output width (``None``: ``q_dim``).
        attn_dropout: dropout on the attention probabilities (training only).
        self_attention: project q, k, v with one fused matrix (the query and key tokens are the same).
    """

    def __init__(
        self,
        q_dim: int,
        kv_dim: int,
        width: int,
        heads: int,
        out_dim: int | None = None,
        attn_dropout: float = 0.0,
        self_attention: bool = False,
    ) -> None:
        super().__init__()
        if width % heads:
            raise ConfigError(
                "attention width must be divisible by the number of heads",
                field="width/heads",
                expected=f"width % heads == 0 (heads={heads})",
                found=width,
                fix="pick a width that is a multiple of heads",
            )
        if self_attention and q_dim != kv_dim:
            raise ValueError("self-attention needs q_dim == kv_dim")
        self.heads = heads
        self.head_dim = width // heads
        self.attn_dropout = attn_dropout
        self.self_attention = self_attention
        if self_attention:
            self.qkv = nn.Linear(q_dim, 3 * width)
        else:
            self.q = nn.Linear(q_dim, width)
            self.kv = nn.Linear(kv_dim, 2 * width)
        self.out = nn.Linear(width, out_dim if out_dim is not None else q_dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key_value: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from ``query`` (``B×Lq×q_dim``) to ``key_value`` (``B×Lk×kv_dim``).

        Args:
            query: query tokens.
            key_value: key/value tokens; ``None`` for self-attention.
            key_padding_mask: ``B×Lk`` bool, **True = real token** (the opposite of
                ``nn.MultiheadAttention``'s convention, and the same as the text towers' masks); ``None``
                attends everywhere.
            need_weights: also return the head-averaged attention probabilities ``B×Lq×Lk``.

        Returns:
            ``(B×Lq×out_dim output, weights or None)``.
        """
        if self.self_attention:
            q, k, v = self.qkv(query).chunk(3, dim=-1)
        else:
            kv = query if key_value is None else key_value
            q = self.q(query)
            k, v = self.kv(kv).chunk(2, dim=-1)
        q, k, v = self._split(q), self._split(k), self._split(v)
        mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
        p = self.attn_dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = (q @ k.transpose(-2, -1)) * (self.head_dim**-0.5)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            probs = scores.softmax(dim=-1)
            weights = probs.mean(dim=1)
            ctx = F.dropout(probs, p=p) @ v
        else:
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        b, _, n, _ = ctx.shape
        return self.out(ctx.transpose(1, 2).reshape(b, n, -1)), weights


class DualCrossAttentionLevel(nn.Module):
    """One level of the dual cross-attention (both streams updated once).

    Args:
        img_dim: image token width (kept through the level).
        width: text stream width and attention width.
        heads: attention heads.
        mlp_ratio: hidden width of the text MLP as a multiple of ``width`` (reference: 1024 / 512 = 2).
        attn_dropout: dropout on attention probabilities.
        dropout: dropout on each sub-layer's output and inside the MLP.
    """

    def __init__(
        self,
        img_dim: int,
        width: int,
        heads: int,
        mlp_ratio: float = 2.0,
        attn_dropout: float = 0.05,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.text_self = MultiHeadAttention(
            width, width, width, heads, attn_dropout=attn_dropout, self_attention=True
        )
        self.norm_self = nn.LayerNorm(width)
        self.text_to_image = MultiHeadAttention(width, img_dim, width, heads, attn_dropout=attn_dropout)
        self.norm_cross = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, width)
        )
        self.norm_mlp = nn.LayerNorm(width)
        # out_dim=img_dim: the attention's output projection *is* the back-projection to the image width.
        self.image_to_text = MultiHeadAttention(
            img_dim, width, width, heads, out_dim=img_dim, attn_dropout=attn_dropout
        )
        self.norm_image = nn.LayerNorm(img_dim)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor | None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Update both streams.

        Args:
            image: ``B×N×img_dim`` image tokens (never padded).
            text: ``B×L×width`` caption tokens.
            text_mask: ``B×L`` bool, True = real token.
            need_weights: return the text→image attention map ``B×L×N``.

        Returns:
            ``(image, text, text→image attention or None)``.
        """
        sa, _ = self.text_self(text, key_padding_mask=text_mask)
        text = self.norm_self(text + self.drop(sa))
        ca, attn = self.text_to_image(text, image, need_weights=need_weights)
        text = self.norm_cross(text + self.drop(ca))
        text = self.norm_mlp(text + self.drop(self.mlp(text)))
        back, _ = self.image_to_text(image, text, key_padding_mask=text_mask)
        image = self.norm_image(image + self.drop(back))
        return image, text, attn


@dataclass
class FusionOutput:
    """What :class:`DualCrossAttentionFusion` returns.

    Attributes:
        image: ``B×img_dim`` mean of the fused image tokens.
        text: ``B×width`` masked mean of the fused caption tokens.
        attention: ``B×levels×L×N`` head-averaged text→image attention (``None`` unless requested).
    """

    image: torch.Tensor
    text: torch.Tensor
    attention: torch.Tensor | None = None

    @property
    def fused(self) -> torch.Tensor:
        """``B×(img_dim+width)`` concatenation fed to the classifier."""
        return torch.cat([self.image, self.text], dim=-1)


class DualCrossAttentionFusion(nn.Module):
    """Bidirectional cross-attention fusion of image tokens and caption tokens (Cai et al., §2 of the notes).

    Args:
        img_dim: image token width (768 for ViT-B/16).
        txt_dim: caption token width of the text tower (512 for CLIP ViT-B/32's text model, 384 for MiniLM).
        width: text-stream and attention width (reference: 512).
        heads: attention heads (reference: 4).
        levels: number of fusion levels (reference: 2).
        share_levels: apply one set of weights ``levels`` times (reference) instead of ``levels`` separate
            blocks.
        attn_dropout: dropout on attention probabilities (reference: 0.05).
        dropout: dropout everywhere else (reference: 0.1).
        mlp_ratio: text MLP hidden width / ``width`` (reference: 2).
    """

    def __init__(
        self,
        img_dim: int,
        txt_dim: int,
        width: int = 512,
        heads: int = 4,
        levels: int = 2,
        share_levels: bool = True,
        attn_dropout: float = 0.05,
        dropout: float = 0.1,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        if levels < 1:
            raise ConfigError(
                "the fusion needs at least one level",
                field="levels",
                expected=">= 1",
                found=levels,
                fix="use levels=2 (the reference)",
            )
        self.img_dim = img_dim
        self.width = width
        self.levels = levels
        self.share_levels = share_levels
        self.text_in = nn.Identity() if txt_dim == width else nn.Linear(txt_dim, width)

        def level() -> DualCrossAttentionLevel:
            return DualCrossAttentionLevel(img_dim, width, heads, mlp_ratio, attn_dropout, dropout)

        self.blocks = nn.ModuleList([level()] if share_levels else [level() for _ in range(levels)])

    @property
    def out_dim(self) -> int:
        """Width of :attr:`FusionOutput.fused`."""
        return self.img_dim + self.width

    def forward(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> FusionOutput:
        """Fuse image tokens ``B×N×img_dim`` and caption tokens ``B×L×txt_dim``.

        Args:
            image: image tokens.
            text: caption tokens (the text tower's hidden states).
            text_mask: ``B×L`` bool, True = real token; ``None`` if no caption is padded.
            need_weights: also return the text→image attention maps of every level.

        Returns:
            Pooled image and caption streams (and attention maps when asked).
        """
        if image.shape[0] != text.shape[0]:
            raise ValueError(f"image batch {image.shape[0]} != text batch {text.shape[0]}")
        t = self.text_in(text)
        maps: list[torch.Tensor] = []
        for i in range(self.levels):
            block = self.blocks[0 if self.share_levels else i]
            image, t, attn = block(image, t, text_mask, need_weights=need_weights)
            if attn is not None:
                maps.append(attn)
        return FusionOutput(
            image=image.mean(dim=1),
            text=masked_mean(t, text_mask),
            attention=torch.stack(maps, dim=1) if maps else None,
        )
