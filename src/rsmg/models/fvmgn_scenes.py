"""FVMGN adapted to scene images on a pretrained backbone (issue 20: where FVMGN's parts can show what they do).

The pixel-patch FVMGN (:class:`rsmg.models.fvmgn.FVMGN`) trains its own SFIE from scratch on HSI / LiDAR
patches. On scene datasets (RSSCN7, AID, UC Merced, each a domain) the same parts are composed around the
pretrained backbone the baselines use (:mod:`rsmg.models.scene_models`), so a comparison with ERM, the linear
probe and MixStyle differs in FVMGN's parts only. Data flow in training:

1. **MWDis on the images** (:class:`~rsmg.models.wavelet.MWDis`, Haar, one level): each selected image's LL
   channel statistics are taken from an image of the *other* source dataset (the paper's multi-source
   setting: donors only across domains), its detail bands rescaled. The original and the resampled batch go
   through the backbone together (2B); ``logits`` are the resampled view's (``mwdis.logits``, as in FVMGN).
   ``mwdis.at: frozen_prefix`` resamples the frozen stages' output instead, so only the trainable stages run
   on both views (:mod:`rsmg.models.frozen_prefix`).
2. **Backbone, multiscale** — :meth:`~rsmg.models.image_encoders.ImageTokenEncoder.forward_multiscale`: the
   pooled embedding and the maps at strides ``reductions`` (default 8, 16, 32) from one pass.
3. **Frequency pathway** — SFIE's :class:`~rsmg.models.sfie.FrequencyBlock` on every map (wavelet sub-bands →
   convs; its pooled output is the scale's *frequency feature*; the block adds it back onto the map, SFIE's
   "reconstruction", through a zero-initialised ``1×1`` conv).
4. **Fused embedding** — ``Linear + LayerNorm`` over the backbone's pooled embedding and every scale's pooled
   (frequency-enriched) map: the multiscale late fusion SFIE does across modalities, here across scales.
5. **Class texts + MSFFA** (:mod:`rsmg.text.class_texts`, :class:`~rsmg.models.alignment.MSFFA`) — shared
   class texts and *per-domain* texts (how the class looks in that dataset's imagery: resolution, sensor,
   region), encoded once by the frozen pretrained MiniLM tower and kept as buffers. Every scale's spatial and
   frequency feature and the fused embedding are projected into the joint space and aligned, by symmetric
   class InfoNCE, with the shared texts and with the texts of the sample's *own* source dataset
   (:func:`~rsmg.models.alignment.domain_class_infonce`). Both views are aligned, each with its sample's
   domain text.
6. **Text-prototype classifier** — ``logits = scale · cos(fused, shared class text)``: shared texts only,
   since a target dataset has no per-domain text at test time.

Training terms (``aux_losses``, unweighted; configs weight them CE 1.0, ``align`` 0.5, ``invariance`` 0.1 as
papers.md recommends): ``align`` (with texts and labels), ``invariance`` (with MWDis: cosine distance of the two
views' fused embeddings), ``ce_resampled`` (only with ``mwdis.logits: original``). A term that does not apply
is absent.

Ablations (one switch each): ``mwdis.enabled: false`` (one view, no invariance); ``text.use: none`` (linear head
on the fused embedding, no tower, no alignment); ``text.use: shared`` (no per-domain texts);
``frequency.enabled: false`` (no frequency blocks: the fused embedding pools the plain maps, alignment is spatial
only); ``reductions: [32]`` (single scale: one map, one frequency block, one scale aligned).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from rsmg.data.spec import DataSpec
from rsmg.errors import ConfigError, check_choice
from rsmg.models.alignment import MSFFA, domain_class_infonce, symmetric_class_infonce
from rsmg.models.base import ModelOutput, RsmgModel
from rsmg.models.frozen_prefix import (
    PrefixSplit,
    forward_multiscale_from_prefix,
    forward_prefix,
    prefix_split,
)
from rsmg.models.fvmgn import two_view_terms
from rsmg.models.fvmgn_options import (
    SCENE_RENAMED,
    AlignmentOptions,
    FrequencyOptions,
    MWDisOptions,
    TextOptions,
    build_mwdis,
    refuse_unsupported,
)
from rsmg.models.image_encoders import MultiscaleFeatures
from rsmg.models.registry import register_model
from rsmg.models.scene_models import scene_backbone, scene_image
from rsmg.models.sfie import FrequencyBlock, SFIEOutput
from rsmg.models.wavelet import max_wavelet_level
from rsmg.text.class_texts import ClassTextEmbeddings, encode_class_texts, load_class_texts

__all__ = ["SceneFVMGN", "text_domain_key"]


def text_domain_key(domain: str) -> str:
    """The per-domain text a domain reads: its dataset (``rsscn7_zoom2`` → ``rsscn7``), else its own name."""
    from rsmg.data.scene_folders import parse_domain

    try:
        return parse_domain(domain).dataset
    except ConfigError:
        return domain


@register_model("fvmgn_scenes")
class SceneFVMGN(RsmgModel):
    """FVMGN for scene images on a pretrained backbone (see the module docstring).

    MWDis, frequency, text and alignment options are FVMGN's (:mod:`rsmg.models.fvmgn_options`), so they mean
    the same here; the few this model does not implement are refused by name (``mwdis.at: stem``,
    ``text.use: proprietary``, ``text.freeze: false``, ``alignment.multiscale: false``, ``alignment.loss: kl``).

    Args:
        spec: the data spec (linked from the datamodule); its source domains are the datasets whose texts
            are read.
        encoder: image-encoder registry name (default EfficientNet-Lite0).
        pretrained: load the encoder's offline ImageNet weights.
        freeze: ``"none"``, ``"all"`` or ``"stages:N"`` (as the baselines, for the same budget).
        modality: which ``image_<modality>`` the model reads.
        reductions: strides of the backbone maps the frequency pathway and the alignment use (``[32]``: the
            single-scale ablation).
        mwdis: MWDis on the input images (+ the second view and the invariance term); ``mwdis.at:
            frozen_prefix`` resamples the frozen prefix's output instead (``freeze: stages:N``), so the second
            view skips the frozen stages (decisions.md#mwdis-at).
        frequency: the frequency blocks on the backbone's maps (and frequency alignment).
        text: ``use``: ``"both"`` (shared + per-domain alignment), ``"shared"``, or ``"none"`` (linear head);
            the class-text set (``scene7``; ``scene5`` is its alias, the default) and the frozen tower
            (``"minilm"``, pretrained all-MiniLM-L6-v2, or ``"clip-bpe"`` for tests).
        alignment: the joint space's size and the logit scale's initial temperature.
        fused_dim: width of the fused embedding.
        wavelet: wavelet of MWDis and of the frequency blocks.
        channels_last: NHWC weights and images (speed only, see :func:`~rsmg.models.scene_models.scene_backbone`).
        second_view: which samples' MWDis view is encoded: ``"all"`` or ``"resampled"`` (MWDis leaves the others
            unchanged, so their second view equals the original; skipping it saves about ``1 - mwdis.p`` of the
            second view's cost, and only batch statistics differ).
    """

    #: the flat arguments before 2026-12 → their nested keys, for the CLI's error on an old config
    renamed_options: ClassVar[Mapping[str, str]] = SCENE_RENAMED

    text_shared: torch.Tensor
    text_domain: torch.Tensor

    def __init__(
        self,
        spec: DataSpec,
        *,
        encoder: str = "efficientnet_lite0",
        pretrained: bool = True,
        freeze: str = "none",
        modality: str = "rgb",
        reductions: list[int] | tuple[int, ...] = (8, 16, 32),
        mwdis: MWDisOptions = MWDisOptions(),
        frequency: FrequencyOptions = FrequencyOptions(),
        text: TextOptions = TextOptions(class_set="scene5"),
        alignment: AlignmentOptions = AlignmentOptions(),
        fused_dim: int = 512,
        wavelet: str = "haar",
        channels_last: bool = True,
        second_view: Literal["all", "resampled"] = "all",
    ) -> None:
        super().__init__(spec)
        check_choice("second view", second_view, ("all", "resampled"), field="second_view")
        name = type(self).__name__
        if mwdis.at == "stem":
            refuse_unsupported("mwdis", mwdis, {"at": "input"}, model=name)
        check_choice("texts option", text.use, ("both", "shared", "none"), field="text.use")
        refuse_unsupported("text", text, {"freeze": True}, model=name)
        refuse_unsupported("alignment", alignment, {"multiscale": True, "loss": "infonce"}, model=name)
        self.second_view = second_view
        self._second_rows: torch.Tensor | None = None
        self.modality = modality
        self.reductions = tuple(int(r) for r in reductions)
        self.texts = text.use
        self.mwdis_logits = mwdis.logits
        self.channels_last = channels_last
        self.backbone = scene_backbone(
            spec,
            encoder,
            pretrained=pretrained,
            freeze=freeze,
            modality=modality,
            channels_last=channels_last,
        )
        channels = self.backbone.feature_channels(self.reductions)
        self.mwdis = build_mwdis(mwdis, spec, wavelet)
        self.mwdis_at = mwdis.at
        self._prefix: PrefixSplit | None = None  # the checked split of mwdis.at: frozen_prefix
        if self.mwdis is not None and mwdis.at == "frozen_prefix":
            self._check_prefix(wavelet, mwdis.levels)
        self.freq: nn.ModuleList | None = None
        if frequency.enabled:
            if frequency.kind == "wavelet":
                self._check_map_sizes(wavelet)
            self.freq = nn.ModuleList(FrequencyBlock(c, frequency.kind, wavelet) for c in channels)
            if channels_last:
                self.freq.to(memory_format=torch.channels_last)
        self.fuse = nn.Sequential(
            nn.Linear(self.backbone.width + sum(channels), fused_dim), nn.LayerNorm(fused_dim)
        )
        self.head: nn.Linear | None = None
        self.align: MSFFA | None = None
        self._tower_args = (text.tower, text.pretrained, dict(text.tower_kwargs or {}))
        if text.use == "none":
            self.head = nn.Linear(fused_dim, spec.num_classes)
            return

        tower = self.build_text_tower()
        keys = [text_domain_key(d) for d in spec.source_domains] if text.use == "both" else []
        ct = load_class_texts(text.class_set, list(spec.classes), [], domains=list(dict.fromkeys(keys)))
        emb = encode_class_texts(tower, ct)
        self.register_buffer("text_shared", emb.shared.detach().clone())
        if keys:  # one K×D block per source domain, in spec order (= the batch's domain index)
            self.register_buffer("text_domain", torch.stack([emb.domain[k] for k in keys]).detach().clone())
        self.align = MSFFA(
            [modality],
            list(channels),
            fused_dim,
            int(tower.width),  # type: ignore[arg-type]
            embed_dim=alignment.embed_dim,
            use_frequency=frequency.enabled,
            multiscale=True,  # the scales are chosen by `reductions`
            texts="shared",  # the classifier's prototypes: a target dataset has no per-domain text
            temperature_init=alignment.temperature_init,
        )

    def build_text_tower(self) -> nn.Module:
        """The frozen text tower of ``text.tower`` / ``text.pretrained`` / ``text.tower_kwargs``.

        Only the class texts' embeddings are kept (as buffers), so the tower itself is not a submodule here.
        """
        from rsmg.text.towers import create_text_tower

        name, pretrained, kwargs = self._tower_args
        return create_text_tower(name, pretrained=pretrained, frozen=True, **kwargs)

    def _check_map_sizes(self, wavelet: str) -> None:
        """Every map must allow one wavelet level: measured by one forward of a blank image (cheap, exact)."""
        size = self.spec.patch_size
        was = self.backbone.training
        self.backbone.eval()
        with torch.no_grad():
            blank = torch.zeros(1, self.spec.modalities[self.modality], size, size)
            sides = [min(m.shape[-2:]) for m in self.backbone.feature_maps(blank, self.reductions)]
        self.backbone.train(was)
        if any(max_wavelet_level(s, wavelet) < 1 for s in sides):
            raise ConfigError(
                f"{size}-px images give backbone maps of sides {sides} at strides {list(self.reductions)}: too "
                f"small for one level of the {wavelet!r} frequency pathway",
                field="reductions",
                expected=f"every map side allowing one level of {wavelet!r} (haar: >= 2 px)",
                found=f"image_size {size}, strides {list(self.reductions)}",
                fix="use larger images (data.init_args.image_size >= 64), smaller strides, frequency.kind: fft, "
                "or frequency.enabled: false",
            )

    def _check_prefix(self, wavelet: str, levels: int) -> None:
        """Refuse a ``mwdis.at: frozen_prefix`` the backbone cannot honour.

        It must split there, no map may lie inside the prefix, and the prefix's output must allow ``levels`` of
        the wavelet (one blank forward: cheap, exact).
        """
        self._prefix = prefix_split(self.backbone, self.reductions)
        with torch.no_grad():
            blank = torch.zeros(
                1, self.spec.modalities[self.modality], self.spec.patch_size, self.spec.patch_size
            )
            side = min(forward_prefix(self.backbone, blank, self._prefix.depth).shape[-2:])
        if max_wavelet_level(side, wavelet) < levels:
            raise ConfigError(
                f"the frozen prefix's maps are {side} px: too small for {levels} level(s) of {wavelet!r}",
                field="mwdis.levels",
                expected=f"at most {max_wavelet_level(side, wavelet)}",
                found=levels,
                fix="use mwdis.levels: 1, larger images, fewer frozen stages, or mwdis.at: input",
            )

    # -- encoding ------------------------------------------------------------------------------------
    def batch_context(self, batch: dict[str, object], rows: torch.Tensor) -> Any:
        """What :meth:`extra_features` needs besides the images, for the batch's samples ``rows``.

        The images passed to :meth:`encode` are ``batch[rows]``, MWDis views included. Nothing here; the
        captions in :class:`~rsmg.models.fvmgn_captions.CaptionFVMGN`.
        """
        return None

    def full_views(self, t: torch.Tensor, b: int) -> torch.Tensor:
        """Rows of both views, ``2B×…``, from what was encoded.

        With ``second_view="resampled"`` only the resampled samples' second view was encoded; the others' second
        view *is* their original, bit for bit.
        """
        idx = self._second_rows
        if idx is None or (t.shape[0] == 2 * b and idx.numel() == b):
            return t
        return torch.cat([t[:b], t[:b].index_copy(0, idx, t[b:])])

    def extra_features(self, ms: MultiscaleFeatures, context: Any) -> list[torch.Tensor]:
        """Further ``N×D`` vectors the fused embedding reads (a subclass hook; none here)."""
        return []

    def encode(self, x: torch.Tensor, context: Any = None, *, from_prefix: bool = False) -> SFIEOutput:
        """Backbone maps → per-scale spatial and frequency features → fused embedding (SFIE's output type).

        ``from_prefix``: ``x`` is the frozen prefix's output (``mwdis.at: frozen_prefix``), not images.
        """
        bb, scales = self.backbone, self.reductions
        ms = (
            forward_multiscale_from_prefix(bb, x, scales, self._prefix)
            if from_prefix
            else bb.forward_multiscale(x, scales)
        )
        spatial, frequency, maps = [], [], []
        for s, m in enumerate(ms.maps):
            spatial.append(m.mean(dim=(-2, -1)))
            if self.freq is not None:
                z, m = self.freq[s](m)
                frequency.append(z.mean(dim=(-2, -1)))
            maps.append(m)
        extra = self.extra_features(ms, context)
        fused = self.fuse(torch.cat([ms.pooled, *[m.mean(dim=(-2, -1)) for m in maps], *extra], dim=1))
        mod = self.modality
        return SFIEOutput(
            spatial={mod: spatial},
            frequency={mod: frequency},
            maps={mod: maps},
            modality={mod: ms.pooled},
            fused=fused,
        )

    def alignment_loss(
        self, enc: SFIEOutput, labels: torch.Tensor, domain: torch.Tensor | None
    ) -> torch.Tensor:
        """MSFFA's alignment loss with per-domain texts.

        Mean symmetric InfoNCE of every aligned feature (scales × spatial/frequency, and the fused embedding)
        against the shared texts and, with ``text.use: both``, against its own domain's texts.
        """
        assert self.align is not None and enc.fused is not None
        shared, _ = self.align.text_targets(ClassTextEmbeddings(shared=self.text_shared))
        per_domain = (
            F.normalize(self.align.text_proj(self.text_domain), dim=-1)
            if self.texts == "both" and domain is not None
            else None
        )
        scale = self.align.scale()
        feats = [*self.align.image_embeddings(enc).values(), self.align.embed_fused(enc.fused)]
        terms = []
        for v in feats:
            terms.append(symmetric_class_infonce(v, shared, labels, scale))
            if per_domain is not None:
                assert domain is not None
                t = domain_class_infonce(v, per_domain, domain, labels, scale)
                if t is not None:
                    terms.append(t)
        return torch.stack(terms).mean()

    # -- forward -------------------------------------------------------------------------------------
    def forward(self, batch: dict[str, object]) -> ModelOutput:
        """Classify a batch (training: two views, alignment and invariance terms; see the module docstring)."""
        x = scene_image(batch, self.modality)
        b = x.shape[0]
        labels = batch.get("label")
        domain = batch.get("domain")
        lab = labels.long().reshape(-1) if isinstance(labels, torch.Tensor) else None
        dom = domain.long().reshape(-1) if isinstance(domain, torch.Tensor) else None
        two_views = self.training and self.mwdis is not None
        if self.training and self.align is not None:
            self.align.clamp_logit_scale_()  # before any use in this step's graph
        rows = torch.arange(b, device=x.device)
        self._second_rows = None
        from_prefix = two_views and self.mwdis_at == "frozen_prefix"
        if from_prefix:  # both views share the frozen forward; MWDis resamples its output
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            x = forward_prefix(self.backbone, x, self._prefix.depth if self._prefix else None)
        if two_views:
            assert self.mwdis is not None
            out = self.mwdis.resample({self.modality: x}, dom, labels=lab)
            res = out.images[self.modality]
            second = rows
            if self.second_view == "resampled":
                second = torch.nonzero(out.donor.to(x.device) >= 0).reshape(-1)
                res = res[second]
            self._second_rows = second
            rows = torch.cat([rows, second])
            x = torch.cat([x, res])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        enc = self.encode(x, self.batch_context(batch, rows), from_prefix=from_prefix)
        assert enc.fused is not None
        aux: dict[str, torch.Tensor] = {}
        if self.align is None:
            assert self.head is not None
            z_all, logits_all = enc.fused, self.head(enc.fused)
        else:
            z_all = self.align.embed_fused(enc.fused)
            logits_all = self.align.logits(enc.fused, ClassTextEmbeddings(shared=self.text_shared))
            if self.training and lab is not None:
                aux["align"] = self.alignment_loss(enc, lab[rows], dom[rows] if dom is not None else None)
        sl = slice(0, b)
        fused, pooled = enc.fused, enc.modality[self.modality]
        if two_views:
            z_all, logits_all = self.full_views(z_all, b), self.full_views(logits_all, b)
            fused, pooled = self.full_views(fused, b), self.full_views(pooled, b)
            view_aux, sl = two_view_terms(z_all, logits_all, labels, self.mwdis_logits)
            aux.update(view_aux)
        return ModelOutput(
            logits=logits_all[sl],
            aux_losses=aux if self.training else {},
            embeddings={"fused": fused[sl], "pooled": pooled[sl]},
        )
