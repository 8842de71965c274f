"""FVMGN: frequency-aware vision-language multimodality generalisation network (Zhang et al., AAAI-26).

The model of arXiv 2511.10774 for RSMG (train on labelled multimodal source scenes, test on unseen target
scenes), minus DTAug, which is a data-side augmentation (``rsmg.diffusion``). Data flow in training:

1. **MWDis** (:mod:`rsmg.models.wavelet`) — each modality's wavelet LL statistics are swapped with those of a
   sample from another source domain and its detail bands rescaled (identity in eval); on the input patches, or
   on the stems' feature maps with ``mwdis_at="stem"``.
2. **SFIE** (:mod:`rsmg.models.sfie`) — per-modality stems, spatial (local conv + global attention) and
   frequency (wavelet / FFT) pathways over 1–3 scales, late-fused embedding.
3. **Class texts** (:mod:`rsmg.text.class_texts`) — shared + proprietary class texts, encoded once by a frozen
   text tower (default: pretrained all-MiniLM-L6-v2 via open_clip), stored as buffers.
4. **MSFFA** (:mod:`rsmg.models.alignment`) — projections of every scale's spatial and frequency features into
   the text space, symmetric InfoNCE against the class texts, and the text-prototype classifier.

Outputs (:class:`~rsmg.models.base.ModelOutput`): ``logits`` (B×K); in training ``aux_losses`` with
``"align"`` (MSFFA, when texts are used and labels are in the batch), ``"invariance"`` (when MWDis is on) and,
with ``mwdis_logits="original"``, ``"ce_resampled"`` (the resampled view's cross-entropy), all unweighted
(recommended weights: CE 1.0, align 0.5, invariance 0.1; ``ce_resampled`` 0 unless set); ``embeddings`` ``"fused"`` and
one per modality. A term that does not apply to a configuration is absent, not zero, so a log never shows a
loss that was not computed.

Readings of what the paper leaves open (each is an argument):

* **Two views in training** — with MWDis on, the original and the resampled batch go through SFIE together
  (one 2B batch). ``logits`` are those of the *resampled* view (the classifier is trained on simulated domain
  shifts, as in MixStyle); ``align`` is averaged over both views; ``invariance`` is the mean cosine distance
  between the two views' fused embeddings in the joint space (papers.md: "consistency loss between features of
  original and resampled inputs"). Cost: SFIE runs on 2B samples per step; eval is one view.
* **Frozen text features are cached** — with ``freeze_text=True`` the class-text embeddings are computed once
  at construction and saved as (persistent) buffers, and the tower itself is not kept: checkpoints stay small
  and a checkpoint restores exactly the text features it was trained with (also for a random ``clip-bpe``
  tower). With ``freeze_text=False`` the tower is a submodule and the texts are re-encoded every step.
* **Ablations** — ``use_mwdis=False`` (no resampling, no invariance term), ``use_frequency=False`` (no
  frequency pathway, spatial-only alignment), ``texts="shared"|"proprietary"`` (one text type),
  ``multiscale_alignment=False`` (last scale only), ``texts="none"`` (image-only: linear head, no tower, no
  alignment).
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
    """FVMGN (see the module docstring).

    Args:
        spec: the data (classes, modalities and channels, domains, patch size).
        class_set: class-text set for the spec's classes (``"shared"`` for the cross-scene set, or a scene).
        text_tower: ``"minilm"`` (pretrained, default) or ``"clip-bpe"``.
        text_pretrained: load the tower's pretrained weights (MiniLM).
        freeze_text: freeze the tower and cache the class-text features (the paper trains projections).
        text_tower_kwargs: extra arguments of :func:`rsmg.text.towers.create_text_tower` (e.g. ``checkpoint``,
            ``width``/``layers``/``heads`` of a ``clip-bpe`` tower).
        width: SFIE width at the first scale.
        scales: number of SFIE scales (1–3). "Multiscale" is the paper's; on 11×11 LiDAR patches the second
            scale (6×6) measurably costs transfer: 3 seeds (``benchmarks/results/fvmgn_accuracy_trunk.md``),
            Trento -> MUUFL OA 45.3 (1 scale) vs 40.1 (2), height only 71.6 vs 64.9, while MUUFL -> Trento stays
            near chance with either. The configs keep 2 scales: picking the count on target-scene accuracy would
            be tuning on the test domain, and the paper's HSI+LiDAR settings could not be checked here.
        embed_dim: size of the joint image-text space.
        use_mwdis: MWDis resampling in training (+ invariance loss).
        use_frequency: SFIE frequency pathway and frequency alignment.
        frequency: kind of frequency pathway, ``"wavelet"``, ``"fft"`` (log-amplitude) or ``"fft_phase"``
            (log-amplitude + phase, see :class:`~rsmg.models.sfie.FrequencyBlock`). Measured, 3 seeds (as for
            ``mwdis_at``), OA wavelet vs fft: Trento -> MUUFL 37.4 vs 39.9, height only 67.5 vs 67.3; MUUFL ->
            Trento 49.1 vs 42.7, height only 20.8 vs 21.0. With the 4-head defaults before 2026-11-30 FFT was
            ahead on all four (40.1 vs 46.4, 64.9 vs 67.0, 35.0 vs 49.7, 19.8 vs 21.5); with today's it is not,
            so the gap was within the noise of these proxies. Either way these are target-domain test results,
            and source validation cannot separate the two (both ≈ 99 %), so the default stays with the paper's
            wavelet framing until the HSI+LiDAR settings can be run.
            ``fft_phase`` (same protocol, ``benchmarks/results/fvmgn_accuracy_fft_phase.md``): 37.8 / 69.9 /
            47.1 / 19.0 on the four — no consistent gain over amplitude alone. A rerun of the ``fft`` row on
            this checkout reproduced the published table (height only 67.01 vs 67.02, same std).
        texts: ``"both"``, ``"shared"``, ``"proprietary"`` or ``"none"`` (image-only ablation).
        multiscale_alignment: align every scale (False: the last only).
        wavelet: wavelet of MWDis and of the SFIE wavelet pathway.
        wavelet_levels: MWDis decomposition levels.
        mwdis_p: probability that a source sample is resampled.
        mwdis_ll_mix: weight of the donor's LL statistics (1 = replace).
        mwdis_high_jitter: half-width of the detail-band rescaling.
        mwdis_high_swap: take the donor's detail-band coefficients (MWDis ``high_swap``). Measured, 3 seeds (as
            for ``mwdis_at``), OA off vs on: Trento -> MUUFL 37.4 vs 40.7, height only 67.5 vs 64.1; MUUFL ->
            Trento 49.1 vs 46.5, height only 20.8 vs 24.7: within the seed spread, so off by default.
        mwdis_donors: ``"shared"`` (one donor per sample for every modality) or ``"per_modality"`` (MWDis
            ``donors``; the same with a single modality, so not measurable on the LiDAR-only protocols here).
        mwdis_same_domain_fallback: allow same-domain donors when no other source domain is in the batch.
            Required with a single source domain: without it no sample would ever get a donor, and SFIE would
            run a second, identical view for nothing, so that configuration is refused at construction.
        mwdis_donor_class: ``"any"`` (default, the paper's wording) or ``"same"``: donors of the receiver's
            class only (MWDis ``donor_class``). Why offered: on pixel patches the LL statistics carry class
            signal (absolute height, a spectrum), so a donor of another class lends that class's signal to a
            sample that keeps its label; ``"same"`` simulates the domain shift without that label noise.
        mwdis_logits: which training view the classification loss reads. ``"resampled"`` (default, MixStyle's
            habit and the paper's reading: features must classify correctly whatever the low-frequency
            statistics) or ``"original"`` (the resampled view then only enters through the invariance and
            alignment terms and the auxiliary ``ce_resampled``, weighted in ``loss_weights``). Measured, 1 seed
            each: cross-scene Trento -> MUUFL LiDAR (15 epochs, 25 % target sample) OA 41.3 % with
            ``"resampled"`` vs 25.3 % with ``"original"``; in-scene Salinas-A HSI (20 px/class) OA 0.58
            (20 epochs) with ``"resampled"`` vs 0.76 (10 epochs) with ``"original"``, because resampling LL
            channel statistics at the input swaps the spectrum (the in-scene class signal) between samples.
            In-scene configs therefore set ``"original"``.
        mwdis_at: where MWDis resamples. ``"input"`` (default): the input patches of every modality, the
            reading of papers.md ("wavelet decomposition of each modality"); the encoder then runs on both views.
            ``"stem"``: the feature maps of each modality's stem (two convs, see ``stem``; same size as the patch), the
            reading of "features are reconstructed with the inverse transform" and MixStyle's habit of mixing
            statistics of early *features*, whose channels are learned and comparable across sensors where raw
            bands (uncalibrated intensity, absolute height) may not be; the stems then run once and only the
            trunk runs on both views. Measured, 3 seeds, 15 epochs, 25 % target sample
            (``benchmarks/results/fvmgn_accuracy.md``, today's defaults), OA input vs stem: Trento -> MUUFL
            37.4 vs 26.4, height only 67.5 vs 69.7; MUUFL -> Trento 49.1 vs 30.9, height only 20.8 vs 21.6. No
            reading wins everywhere, so the default stays with papers.md.
        temperature_init: initial temperature of MSFFA's logit scale.
        align_loss: MSFFA's loss, ``"infonce"`` or ``"kl"`` (KL to frozen text-similarity targets; see
            :mod:`rsmg.models.alignment`). Measured, 3 seeds (as for ``mwdis_at``), OA infonce vs kl:
            Trento -> MUUFL 37.4 vs 31.8, height only 67.5 vs 69.5; MUUFL -> Trento 49.1 vs 50.5, height only
            20.8 vs 22.0: no consistent winner, so the default stays with papers.md.
        kl_target_temperature: temperature of those targets.
        attn_heads: heads of SFIE's global blocks: ``None`` (default) = one head per 16 channels at each scale
            (``[2, 4]`` at width 32), one number for every scale, or one per scale
            (:func:`rsmg.models.sfie.resolve_heads`). Why: with a fixed count the finest scale's heads are
            narrow (width 32, 4 heads: 8 channels each), and PyTorch's fused CPU attention is bound by its
            exponentials and small blocks there. Measured on one CPU thread, batch 512, real Trento LiDAR: 4
            heads everywhere (the default until 2026-11-30) 196-219 samples/s, MFU 37-43 % in two runs;
            ``[2, 4]`` 247-274 samples/s, MFU 45-57 % (``benchmarks/results/fvmgn_speed_batch512*.md``). Accuracy
            (3 seeds, OA on Trento -> MUUFL, its height-only variant, MUUFL -> Trento, its height-only
            variant): ``[2, 4]`` 37.4 / 67.5 / 49.1 / 20.8 vs 38.8 / 66.6 / 52.2 / 22.1 with 4 heads
            (``fvmgn_accuracy_heads_per_scale.md``), within the seed spread (up to ±13.6). Earlier: 1 head lost
            1-5 OA points on all four (``fvmgn_accuracy.md``); 2 heads everywhere was also within the spread
            (``fvmgn_accuracy_heads2.md``). The head count changes no parameter shape, so checkpoints load
            across counts: a run's saved ``config.yaml`` names its own count (``4`` for runs made before the
            change), so test / predict from that config to reproduce it.
        norm: SFIE normalisation (``"batch"`` or ``"group"``).
        global_blocks: SFIE's self-attention blocks (False: the spatial pathway is local convs only).
        attn_sr_ratios: per SFIE scale, average-pooling of the attention keys/values (PVT-style spatial
            reduction, no extra parameters); None = full attention. With narrow heads the CPU attention is
            bound by the softmax's exponentials (one per query-key pair), so ``[2, 1]`` cuts the finest
            scale's attention ~3.4× (121 → 36 keys on 11×11 patches); measured in ``benchmarks/fvmgn_speed.py``.
        fuse_norm: LayerNorm on SFIE's fused embedding.
        stem: first layer of SFIE's per-modality stems: ``"pointwise"`` (default: a ``1×1`` band projection,
            then ``3×3``), ``"spatial"`` (``3×3`` first) or ``"auto"`` (``1×1`` only where a modality has more
            channels than ``width``, e.g. HSI; ``3×3`` for LiDAR, SAR, RGB). Found by the trunk study of
            ``benchmarks/fvmgn_accuracy.py``: on 1–2-raster LiDAR a pointwise first layer + norm + GELU turns
            each pixel's absolute height / intensity into thresholds, and absolute values shift between scenes
            (MUUFL's trees are taller than Trento's orchards and vineyards: SFIE's plain trunk recognised 7 % of
            them with the pointwise stem, 84 % with the spatial one, seed 42). With MWDis, which resamples
            exactly those low-frequency statistics, the pointwise stem is no longer the bottleneck: full FVMGN
            does not gain from ``"auto"`` (3 seeds, ``benchmarks/results/fvmgn_accuracy_stem.md``), so the
            default stays pointwise. That study read *target-scene* accuracy, so neither setting was chosen on it
            for the configs.
        channels_last: keep SFIE's convolution weights and the image batches in ``channels_last`` (NHWC) memory
            format. A speed switch only, the maths is unchanged (outputs equal the default layout to float
            rounding). cuDNN's tensor-core kernels (bf16/fp16) prefer NHWC, as timm's ``--channels-last``
            habit reflects, and on CPU oneDNN's 1×1 convolutions on 11×11 maps are several times slower in NCHW.
            On by default since an interleaved A/B on this workplace's CPU (1 thread, real Trento LiDAR
            patches, 4 rounds, variant order rotated): 2,061 vs 2,276 ms per step at batch 512, 309 vs 368 ms
            at batch 64 (an earlier non-interleaved pair of runs had them within noise). Results files written
            before 2026-11-29 (commit 989910b) were measured with ``channels_last=False``; pass it to reproduce
            them bit for bit (the layout changes float rounding, so trajectories differ slightly).
            ``benchmarks/results/fvmgn_accuracy.md`` (re-run 2026-11-30) uses the default.
        compile_encoder: compile SFIE with ``torch.compile`` (``nn.Module.compile``: in place, so parameter
            names and checkpoints are the same as without it, and a checkpoint of either loads into the
            other). Inductor fuses the normalisation / GELU / residual element-wise work around the
            convolutions and attention, which eager mode runs as separate kernels; that matters most where
            kernel launches dominate (small 11×11 maps on a GPU). First measured on an H200 (float32, batch 64,
            ``benchmarks/results/fvmgn_compile_h200_batch64_before_fixes.md``): compiled 35.8 vs eager 29.9 ms
            per step (+19.8 %), because the wavelet pathway's level check built a ``pywt.Wavelet`` in every
            forward, which Dynamo cannot trace: SFIE ran as 12 graphs with eager glue between them. The check is
            pure Python now and SFIE traces as one graph (``tests/models/test_fvmgn.py``); after that fix, on
            the same GPU in bf16 autocast, compiled is 3.3 % faster at batch 64 (31.5 vs 32.6 ms) and 4.4 % at
            batch 2048 (42.9 vs 44.9 ms; ``fvmgn_compile_h200_batch{64,2048}.md``). On CPU the gain is
            small: one thread, real Trento LiDAR, eager and compiled interleaved in one
            process (``benchmarks/fvmgn_compile.py``), 257.5 vs 255.6 ms per step at batch 64 (-0.8 %) and
            2,126 vs 2,080 ms at batch 512 (-2.2 %), eval logits equal to 1e-6. Off by default because
            compiling costs seconds to ~2 minutes per graph (train and eval mode; less with inductor's on-disk
            cache warm) before the first step. Only the encoder's own call is compiled: with
            ``mwdis_at="stem"`` the stems and trunk are called separately and stay eager; MWDis (data-dependent
            donor choice) and the alignment stay eager too.
    """

    text_shared: torch.Tensor
    text_proprietary: torch.Tensor

    def __init__(
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
