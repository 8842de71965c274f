"""FVMGN: frequency-aware vision-language multimodality generalisation network (Zhang et al., AAAI-26).

The model of arXiv 2511.10774 for RSMG (train on labelled multimodal source scenes, test on unseen target
scenes), minus DTAug, which is a data-side augmentation (``rsmg.diffusion``). Data flow in training:
**MWDis** (:mod:`rsmg.models.wavelet`) resamples each modality's wavelet statistics; **SFIE**
(:mod:`rsmg.models.sfie`) encodes with spatial and frequency pathways over 1–3 scales; the **class texts**
(:mod:`rsmg.text.class_texts`) are encoded once by a frozen text tower; **MSFFA** (:mod:`rsmg.models.alignment`)
aligns every scale's features with the texts and classifies against text prototypes.

Outputs (:class:`~rsmg.models.base.ModelOutput`): ``logits`` (B×K); in training, unweighted ``aux_losses``:
``"align"`` (MSFFA, when texts are used and labels are in the batch), ``"invariance"`` (when MWDis is on) and,
with ``mwdis.logits: original``, ``"ce_resampled"``; ``embeddings`` ``"fused"`` and one per modality. A term
that does not apply is absent, not zero. How rsmg reads what the paper leaves open (two views in training,
cached text features, the ablation switches) and why each default is what it is: ``docs/decisions.md#fvmgn``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from rsmg.data.spec import DataSpec
from rsmg.errors import ConfigError
from rsmg.models.alignment import MSFFA
from rsmg.models.base import ModelOutput, RsmgModel
from rsmg.models.fvmgn_options import (
    FVMGN_RENAMED,
    AlignmentOptions,
    FrequencyOptions,
    MWDisOptions,
    SFIEOptions,
    TextOptions,
    build_mwdis,
)
from rsmg.models.registry import register_model
from rsmg.models.sfie import SFIE
from rsmg.models.wavelet import check_wavelet, max_wavelet_level
from rsmg.text.class_texts import ClassTextEmbeddings, ClassTexts, encode_class_texts, load_class_texts


def scale_sizes(patch_size: int, scales: int) -> list[int]:
    """Spatial side of SFIE's maps at each scale (stride-2, padding-1 convs: ``ceil(n/2)``)."""
    sizes = [int(patch_size)]
    for _ in range(scales - 1):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def two_view_terms(
    z_all: torch.Tensor,
    logits_all: torch.Tensor,
    labels: object,
    mwdis_logits: Literal["original", "resampled"],
) -> tuple[dict[str, torch.Tensor], slice]:
    """The training terms between the original (first half) and the MWDis-resampled view (second half).

    Args:
        z_all: ``2B×E`` embeddings of both views (the joint space, or the fused features without texts).
        logits_all: ``2B×K`` logits of both views.
        labels: the batch's labels (``B``), or anything else when the batch has none.
        mwdis_logits: which view's logits the task's cross-entropy reads.

    Returns:
        ``({"invariance": mean cosine distance between the views[, "ce_resampled": ...]}, slice of the
        returned view)``; ``ce_resampled`` only with ``mwdis_logits="original"`` and labels (with
        ``"resampled"`` it would be the task's own CE).
    """
    b = z_all.shape[0] // 2
    z0, z1 = z_all[:b], z_all[b:]
    # in float32: CPU autocast would run it in bf16, whose 2^-8 steps are the size of the term itself
    aux = {"invariance": (1 - F.cosine_similarity(z0.float(), z1.float(), dim=-1)).mean()}
    if isinstance(labels, torch.Tensor) and mwdis_logits == "original":
        aux["ce_resampled"] = F.cross_entropy(logits_all[b:].float(), labels.long().reshape(-1))
    return aux, slice(b, 2 * b) if mwdis_logits == "resampled" else slice(0, b)


@register_model("fvmgn")
class FVMGN(RsmgModel):
    """FVMGN (see the module docstring). Options are grouped by part (:mod:`rsmg.models.fvmgn_options`).

    ``decisions.md#...``: the section of ``docs/decisions.md`` with the measurements behind a default.

    Args:
        spec: the data (classes, modalities and channels, domains, patch size).
        sfie: the encoder (width, scales, attention, stems), :class:`~rsmg.models.fvmgn_options.SFIEOptions`.
        frequency: SFIE's frequency pathway and frequency alignment,
            :class:`~rsmg.models.fvmgn_options.FrequencyOptions`.
        mwdis: MWDis resampling in training (+ invariance loss), :class:`~rsmg.models.fvmgn_options.MWDisOptions`.
        text: which class texts and the tower that encodes them, :class:`~rsmg.models.fvmgn_options.TextOptions`.
        alignment: MSFFA (joint space, loss, temperature), :class:`~rsmg.models.fvmgn_options.AlignmentOptions`.
        wavelet: wavelet of MWDis and of the SFIE wavelet pathway.
        channels_last: SFIE weights and image batches in NHWC memory format; a speed switch, the maths is
            unchanged. Results files before 2026-11-29 used ``False`` (decisions.md#channels-last).
        compile_encoder: compile SFIE with ``torch.compile`` in place (same parameter names and checkpoints);
            off by default: compiling costs seconds to minutes before the first step; decisions.md#compile-encoder.
    """

    #: the flat arguments before 2026-12 → their nested keys, for the CLI's error on an old config
    renamed_options: ClassVar[Mapping[str, str]] = FVMGN_RENAMED

    text_shared: torch.Tensor
    text_proprietary: torch.Tensor

    def __init__(
        self,
        spec: DataSpec,
        *,
        sfie: SFIEOptions = SFIEOptions(),
        frequency: FrequencyOptions = FrequencyOptions(),
        mwdis: MWDisOptions = MWDisOptions(),
        text: TextOptions = TextOptions(),
        alignment: AlignmentOptions = AlignmentOptions(),
        wavelet: str = "haar",
        channels_last: bool = True,
        compile_encoder: bool = False,
    ) -> None:
        super().__init__(spec)
        self.mwdis = build_mwdis(mwdis, spec, wavelet)
        sizes = scale_sizes(spec.patch_size, sfie.scales)
        if frequency.enabled and frequency.kind == "wavelet":
            check_wavelet(wavelet, 1, None, field="wavelet")
            if max_wavelet_level(sizes[-1], wavelet) < 1:
                raise ConfigError(
                    f"patches of {spec.patch_size} px are too small for the {wavelet!r} wavelet pathway at "
                    f"{sfie.scales} scales",
                    field="sfie.scales",
                    expected=f"a last-scale map that allows one level of {wavelet!r}",
                    found=f"map sides {sizes}",
                    fix="use fewer sfie.scales, larger patches, wavelet: haar, frequency.kind: fft or "
                    "frequency.enabled: false",
                )
        self.texts = text.use
        if mwdis.at == "frozen_prefix":
            raise ConfigError(
                "mwdis.at: frozen_prefix needs a scene backbone with frozen stages; FVMGN's encoder has none",
                field="mwdis.at", expected="'input' or 'stem'", found="'frozen_prefix'",
                fix="use mwdis.at: stem (MWDis on the stems' features) or input",
            )  # fmt: skip
        self.mwdis_at = mwdis.at
        self.use_mwdis = mwdis.enabled
        self.use_frequency = frequency.enabled
        modalities = dict(spec.modalities)
        self.mwdis_logits = mwdis.logits
        self.encoder = SFIE(
            modalities,
            width=sfie.width,
            scales=sfie.scales,
            frequency=frequency.kind if frequency.enabled else "none",
            wavelet=wavelet,
            attn_heads=sfie.attn_heads,
            norm=sfie.norm,
            global_blocks=sfie.global_blocks,
            attn_sr_ratios=sfie.attn_sr_ratios,
            fuse_norm=sfie.fuse_norm,
            stem=sfie.stem,
        )
        self.channels_last = channels_last
        if channels_last:
            # only 4-D parameters (conv weights) change layout; .to(device) and load_state_dict keep it
            self.encoder.to(memory_format=torch.channels_last)
        if compile_encoder:
            self.encoder.compile()
        self.text_tower: nn.Module | None = None
        self.align: MSFFA | None = None
        self.head: nn.Linear | None = None
        self._text_tokens: dict[str, torch.Tensor] | None = None
        self._class_texts: ClassTexts | None = None
        if text.use == "none":
            self.head = nn.Linear(self.encoder.out_dim, spec.num_classes)
            return

        from rsmg.text.towers import create_text_tower

        tower = create_text_tower(
            text.tower, pretrained=text.pretrained, frozen=text.freeze, **(text.tower_kwargs or {})
        )
        ct = load_class_texts(text.class_set, list(spec.classes), list(modalities))
        self._class_texts = ct
        self.align = MSFFA(
            list(modalities),
            self.encoder.dims,
            self.encoder.out_dim,
            tower.width,
            embed_dim=alignment.embed_dim,
            use_frequency=frequency.enabled,
            multiscale=alignment.multiscale,
            texts=text.use,
            temperature_init=alignment.temperature_init,
            loss=alignment.loss,
            kl_target_temperature=alignment.kl_target_temperature,
        )
        if text.freeze:
            emb = encode_class_texts(tower, ct)
            self.register_buffer("text_shared", emb.shared.detach().clone())
            self.register_buffer(
                "text_proprietary", torch.stack([emb.proprietary[m] for m in modalities]).clone()
            )
        else:
            self.text_tower = tower

    # -- text ----------------------------------------------------------------------------------------
    def class_text_embeddings(self) -> ClassTextEmbeddings:
        """Class-text features (cached buffers when frozen; re-encoded, with gradients, when trainable)."""
        mods = list(self.spec.modalities)
        if self.text_tower is None:
            return ClassTextEmbeddings(
                shared=self.text_shared, proprietary={m: self.text_proprietary[i] for i, m in enumerate(mods)}
            )
        assert self._class_texts is not None
        return encode_class_texts(self.text_tower, self._class_texts)

    # -- forward -------------------------------------------------------------------------------------
    def _layout(self, images: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Images in the encoder's memory format (a no-op unless ``channels_last``)."""
        if not self.channels_last:
            return images
        return {m: v.contiguous(memory_format=torch.channels_last) for m, v in images.items()}

    def forward(self, batch: dict[str, object]) -> ModelOutput:
        """Classify a batch (see the module docstring for the training-time terms)."""
        images = self.images(batch)
        self.encoder.check(images)
        b = next(iter(images.values())).shape[0]
        labels = batch.get("label")
        domain = batch.get("domain")
        two_views = self.training and self.mwdis is not None
        if self.training and self.align is not None:
            self.align.clamp_logit_scale_()  # before any use in this step's graph
        if two_views:
            assert self.mwdis is not None
            dom = domain if isinstance(domain, torch.Tensor) else None
            lab = labels if isinstance(labels, torch.Tensor) else None
            if self.mwdis_at == "stem":
                feats = self.encoder.stems(self._layout(images))
                res = self.mwdis(feats, dom, labels=lab)
                enc = self.encoder.forward_stems(
                    self._layout({m: torch.cat([feats[m], res[m]]) for m in feats})
                )
            else:
                res = self.mwdis(images, dom, labels=lab)
                enc = self.encoder(self._layout({m: torch.cat([images[m], res[m]]) for m in images}))
        else:
            enc = self.encoder(self._layout(images))
        assert enc.fused is not None

        aux: dict[str, torch.Tensor] = {}
        if self.align is None:
            assert self.head is not None
            z_all = enc.fused
            logits_all = self.head(enc.fused)
        else:
            emb = self.class_text_embeddings()
            z_all = self.align.embed_fused(enc.fused)
            logits_all = self.align.logits(enc.fused, emb)
            if self.training and isinstance(labels, torch.Tensor):
                y = labels.long().reshape(-1)
                aux["align"] = self.align.loss(enc, torch.cat([y, y]) if two_views else y, emb)

        if two_views:
            view_aux, sl = two_view_terms(z_all, logits_all, labels, self.mwdis_logits)
            aux.update(view_aux)
        else:
            sl = slice(0, b)
        embeddings = {"fused": enc.fused[sl]}
        for m, v in enc.modality.items():
            embeddings[m] = v[sl]
        return ModelOutput(
            logits=logits_all[sl], aux_losses=aux if self.training else {}, embeddings=embeddings
        )
