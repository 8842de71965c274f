"""FVMGN: frequency-aware vision-language multimodality generalisation network (Zhang et al., AAAI-26).

The model of arXiv 2511.10774 for RSMG (train on labelled multimodal source scenes, test on unseen target
scenes), minus DTAug, which is a data-side augmentation (``rsmg.diffusion``). Data flow in training:
**MWDis** (:mod:`rsmg.models.wavelet`) resamples each modality's wavelet statistics; **SFIE**
(:mod:`rsmg.models.sfie`) encodes with spatial and frequency pathways over 1–3 scales; the **class texts**
(:mod:`rsmg.text.class_texts`) are encoded once by a frozen text tower; **MSFFA** (:mod:`rsmg.models.alignment`)
aligns every scale's features with the texts and classifies against text prototypes.

Outputs (:class:`~rsmg.models.base.ModelOutput`): ``logits`` (B×K); in training, unweighted ``aux_losses``:
``"align"`` (MSFFA, when texts are used and labels are in the batch), ``"invariance"`` (when MWDis is on) and,
with ``mwdis_logits="original"``, ``"ce_resampled"``; ``embeddings`` ``"fused"`` and one per modality. A term
that does not apply is absent, not zero. How rsmg reads what the paper leaves open (two views in training,
cached text features, the ablation switches) and why each default is what it is: ``docs/decisions.md#fvmgn``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from rsmg.data.spec import DataSpec
from rsmg.errors import ConfigError, check_choice
from rsmg.models.alignment import MSFFA
from rsmg.models.base import ModelOutput, RsmgModel
from rsmg.models.registry import register_model
from rsmg.models.sfie import FREQUENCY_KINDS, SFIE, NormKind, StemKind
from rsmg.models.wavelet import DonorClass, MWDis, check_wavelet, max_wavelet_level
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
    """FVMGN (see the module docstring). MWDis and alignment options: :meth:`__init__`.

    ``decisions.md#...``: the section of ``docs/decisions.md`` with the measurements behind a default.

    Args:
        spec: the data (classes, modalities and channels, domains, patch size).
        class_set: class-text set for the spec's classes (``"shared"`` for the cross-scene set, or a scene).
        text_tower: ``"minilm"`` (pretrained, default) or ``"clip-bpe"``.
        text_pretrained: load the tower's pretrained weights (MiniLM).
        freeze_text: freeze the tower and cache the class-text features (the paper trains projections).
        text_tower_kwargs: extra arguments of :func:`rsmg.text.towers.create_text_tower` (e.g. ``checkpoint``,
            ``width``/``layers``/``heads`` of a ``clip-bpe`` tower).
        width: SFIE width at the first scale.
        scales: number of SFIE scales (1–3); 2, the paper's "multiscale" (decisions.md#fvmgn-scales).
        embed_dim: size of the joint image-text space.
        use_mwdis: MWDis resampling in training (+ invariance loss).
        use_frequency: SFIE frequency pathway and frequency alignment.
        frequency: kind of frequency pathway: ``"wavelet"`` (the paper's framing), ``"fft"`` (log-amplitude) or
            ``"fft_phase"`` (log-amplitude + phase, :class:`~rsmg.models.sfie.FrequencyBlock`);
            decisions.md#fvmgn-frequency.
        texts: ``"both"``, ``"shared"``, ``"proprietary"`` or ``"none"`` (image-only ablation).
        multiscale_alignment: align every scale (False: the last only).
        wavelet: wavelet of MWDis and of the SFIE wavelet pathway.
        attn_heads: heads of SFIE's global blocks: ``None`` (default) = one head per 16 channels at each scale
            (``[2, 4]`` at width 32), one number for every scale, or one per scale; decisions.md#attention-heads.
        norm: SFIE normalisation (``"batch"`` or ``"group"``).
        global_blocks: SFIE's self-attention blocks (False: the spatial pathway is local convs only).
        attn_sr_ratios: per SFIE scale, average-pooling of the attention keys/values (PVT-style, no
            parameters); None = full attention (decisions.md#attn-sr).
        fuse_norm: LayerNorm on SFIE's fused embedding.
        stem: first layer of SFIE's stems: ``"pointwise"`` (default, ``1×1`` then ``3×3``), ``"spatial"``
            (``3×3`` first) or ``"auto"`` (``1×1`` only for modalities with more channels than ``width``;
            decisions.md#sfie-stems).
        channels_last: SFIE weights and image batches in NHWC memory format; a speed switch, the maths is
            unchanged. Results files before 2026-11-29 used ``False`` (decisions.md#channels-last).
        compile_encoder: compile SFIE with ``torch.compile`` in place (same parameter names and checkpoints);
            off by default: compiling costs seconds to minutes before the first step; decisions.md#compile-encoder.
    """

    text_shared: torch.Tensor
    text_proprietary: torch.Tensor

    def __init__(  # noqa: D417 - the other arguments are on the class; jsonargparse's help merges both
        self,
        spec: DataSpec,
        *,
        class_set: str = "shared",
        text_tower: Literal["minilm", "clip-bpe"] = "minilm",
        text_pretrained: bool = True,
        freeze_text: bool = True,
        text_tower_kwargs: dict[str, Any] | None = None,
        width: int = 64,
        scales: int = 2,
        embed_dim: int = 256,
        use_mwdis: bool = True,
        use_frequency: bool = True,
        frequency: Literal["wavelet", "fft", "fft_phase"] = "wavelet",
        texts: Literal["both", "shared", "proprietary", "none"] = "both",
        multiscale_alignment: bool = True,
        wavelet: str = "haar",
        wavelet_levels: int = 1,
        mwdis_p: float = 0.5,
        mwdis_ll_mix: float = 1.0,
        mwdis_high_jitter: float = 0.5,
        mwdis_high_swap: bool = False,
        mwdis_donors: Literal["shared", "per_modality"] = "shared",
        mwdis_same_domain_fallback: bool = False,
        mwdis_donor_class: DonorClass = "any",
        mwdis_logits: Literal["original", "resampled"] = "resampled",
        mwdis_at: Literal["input", "stem"] = "input",
        temperature_init: float = 0.07,
        align_loss: Literal["infonce", "kl"] = "infonce",
        kl_target_temperature: float = 0.05,
        attn_heads: int | list[int] | None = None,
        norm: NormKind = "batch",
        global_blocks: bool = True,
        attn_sr_ratios: list[int] | None = None,
        fuse_norm: bool = True,
        channels_last: bool = True,
        compile_encoder: bool = False,
        stem: StemKind = "pointwise",
    ) -> None:
        """Build the model. Arguments not listed here are documented on the class.

        Args:
            wavelet_levels: MWDis decomposition levels.
            mwdis_p: probability that a source sample is resampled.
            mwdis_ll_mix: weight of the donor's LL statistics (1 = replace).
            mwdis_high_jitter: half-width of the detail-band rescaling.
            mwdis_high_swap: take the donor's detail-band coefficients (MWDis ``high_swap``); off, within the
                seed spread (decisions.md#mwdis-high-swap).
            mwdis_donors: ``"shared"`` (one donor per sample for every modality) or ``"per_modality"``.
            mwdis_same_domain_fallback: allow same-domain donors when no other source domain is in the batch.
                Required with a single source domain: without it no sample would ever get a donor, so that
                configuration is refused at construction.
            mwdis_donor_class: ``"any"`` (default, the paper's wording) or ``"same"``: donors of the receiver's
                class only, so a donor lends no other class's signal (decisions.md#mwdis-donors).
            mwdis_logits: which training view the classification loss reads: ``"resampled"`` (default, the
                paper's reading) or ``"original"`` (the resampled view then enters through the invariance and
                alignment terms and ``ce_resampled``; in-scene configs, decisions.md#mwdis-logits).
            mwdis_at: where MWDis resamples: ``"input"`` (default, the patches of every modality, the paper's
                reading) or ``"stem"`` (each modality's stem features; decisions.md#mwdis-at).
            temperature_init: initial temperature of MSFFA's logit scale.
            align_loss: MSFFA's loss, ``"infonce"`` or ``"kl"`` (KL to frozen text-similarity targets;
                decisions.md#align-loss).
            kl_target_temperature: temperature of those targets.
        """
        super().__init__(spec)
        check_choice("texts option", texts, ("both", "shared", "proprietary", "none"), field="texts")
        check_choice("frequency pathway", frequency, FREQUENCY_KINDS, field="frequency")
        check_choice("MWDis position", mwdis_at, ("input", "stem"), field="mwdis_at")
        sizes = scale_sizes(spec.patch_size, scales)
        if use_mwdis:
            check_wavelet(wavelet, wavelet_levels, spec.patch_size, field="wavelet_levels")
            if mwdis_p == 0:
                raise ConfigError(
                    "MWDis is on but never resamples (mwdis_p = 0): SFIE would encode an identical second view",
                    field="mwdis_p", expected="> 0 with use_mwdis", found=mwdis_p,
                    fix="set use_mwdis: false to switch MWDis off, or mwdis_p: 0.5",
                )  # fmt: skip
        if use_frequency and frequency == "wavelet":
            check_wavelet(wavelet, 1, None, field="wavelet")
            if max_wavelet_level(sizes[-1], wavelet) < 1:
                raise ConfigError(
                    f"patches of {spec.patch_size} px are too small for the {wavelet!r} wavelet pathway at "
                    f"{scales} scales",
                    field="scales",
                    expected=f"a last-scale map that allows one level of {wavelet!r}",
                    found=f"map sides {sizes}",
                    fix="use fewer scales, larger patches, wavelet='haar', frequency='fft' or use_frequency=False",
                )
        self.texts = texts
        self.mwdis_at = mwdis_at
        self.use_mwdis = use_mwdis
        self.use_frequency = use_frequency
        modalities = dict(spec.modalities)
        self.mwdis_logits = mwdis_logits
        self.mwdis = (
            MWDis.for_spec(
                spec,
                wavelet=wavelet,
                levels=wavelet_levels,
                p=mwdis_p,
                ll_mix=mwdis_ll_mix,
                high_jitter=mwdis_high_jitter,
                high_swap=mwdis_high_swap,
                donors=mwdis_donors,
                same_domain_fallback=mwdis_same_domain_fallback,
                donor_class=mwdis_donor_class,
            )
            if use_mwdis
            else None
        )
        self.encoder = SFIE(
            modalities,
            width=width,
            scales=scales,
            frequency=frequency if use_frequency else "none",
            wavelet=wavelet,
            attn_heads=attn_heads,
            norm=norm,
            global_blocks=global_blocks,
            attn_sr_ratios=attn_sr_ratios,
            fuse_norm=fuse_norm,
            stem=stem,
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
        if texts == "none":
            self.head = nn.Linear(self.encoder.out_dim, spec.num_classes)
            return

        from rsmg.text.towers import create_text_tower

        tower = create_text_tower(
            text_tower, pretrained=text_pretrained, frozen=freeze_text, **(text_tower_kwargs or {})
        )
        ct = load_class_texts(class_set, list(spec.classes), list(modalities))
        self._class_texts = ct
        self.align = MSFFA(
            list(modalities),
            self.encoder.dims,
            self.encoder.out_dim,
            tower.width,
            embed_dim=embed_dim,
            use_frequency=use_frequency,
            multiscale=multiscale_alignment,
            texts=texts,
            temperature_init=temperature_init,
            loss=align_loss,
            kl_target_temperature=kl_target_temperature,
        )
        if freeze_text:
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
