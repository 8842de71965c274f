"""FVMGN's options, one typed, frozen dataclass per part they configure.

:class:`~rsmg.models.fvmgn.FVMGN` and the scene variants (:class:`~rsmg.models.fvmgn_scenes.SceneFVMGN`,
:class:`~rsmg.models.fvmgn_captions.CaptionFVMGN`) take these as nested arguments, so an option has one name
and one meaning in every model and every YAML (``mwdis: {p: 0.5}``, not ``mwdis_p``). jsonargparse reads
dataclasses natively: each becomes a section of ``rsmg fit --print_config``, each field a dotted option
(``--model.init_args.net.init_args.mwdis.p 0.3``). Options that more than one part reads stay top-level on the
model (``wavelet``: MWDis and the wavelet frequency pathway; ``channels_last``). Each part's on/off switch lives
in its section (``mwdis.enabled``, ``frequency.enabled``, ``text.use``): docs/decisions.md#fvmgn-options.

Until 2026-12 the options were flat keyword arguments; :data:`FVMGN_RENAMED` / :data:`SCENE_RENAMED` map each
old name to its new key, and the CLI names the new key when a config still uses an old one
(:mod:`rsmg.cli.suggest`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from rsmg.errors import ConfigError, check_choice
from rsmg.models.sfie import FREQUENCY_KINDS, NormKind, StemKind
from rsmg.models.wavelet import DONOR_CLASSES, DonorClass, MWDis, check_wavelet

if TYPE_CHECKING:
    from rsmg.data.spec import DataSpec

__all__ = [
    "FVMGN_RENAMED",
    "SCENE_RENAMED",
    "AlignmentOptions",
    "FrequencyOptions",
    "MWDisOptions",
    "SFIEOptions",
    "TextOptions",
    "build_mwdis",
    "refuse_unsupported",
]


def _in_range(key: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise ConfigError(
            f"{key} out of range", field=key, expected=f"[{lo}, {hi}]", found=value,
            fix=f"use a value in [{lo}, {hi}]",
        )  # fmt: skip


@dataclass(frozen=True)
class MWDisOptions:
    """MWDis (multi-domain wavelet statistics resampling) in training: a second, resampled view of each batch.

    Args:
        enabled: resample in training (+ the second view and the invariance term); ``false`` is the no-MWDis
            ablation, whose other fields are then unused.
        levels: wavelet decomposition levels.
        p: probability that a source sample is resampled.
        ll_mix: weight of the donor's LL statistics (1 = replace).
        high_jitter: half-width of the detail-band rescaling.
        high_swap: take the donor's detail-band coefficients; off, within the seed spread
            (decisions.md#mwdis-high-swap).
        donors: ``"shared"`` (one donor per sample for every modality) or ``"per_modality"``.
        same_domain_fallback: allow same-domain donors when no other source domain is in the batch. Required
            with a single source domain: without it no sample would ever get a donor, so that configuration is
            refused at construction.
        donor_class: ``"any"`` (default, the paper's wording) or ``"same"``: donors of the receiver's class only,
            so a donor lends no other class's signal (decisions.md#mwdis-donors).
        logits: which training view the classification loss reads: ``"resampled"`` (default, the paper's
            reading) or ``"original"`` (the resampled view then enters through the invariance and alignment
            terms and ``ce_resampled``). The LiDAR and in-scene configs set ``"original"``, chosen on source
            validation only (benchmarks/source_choices.py, decisions.md#mwdis-logits).
        at: where MWDis resamples: ``"input"`` (default, the images of every modality, the paper's reading),
            ``"stem"`` (each modality's stem features, pixel-patch FVMGN only) or ``"frozen_prefix"`` (the output
            of a scene backbone's frozen stem + stages, scene models with ``freeze: stages:N`` only: the second
            view then shares the frozen forward; decisions.md#mwdis-at).
    """

    enabled: bool = True
    levels: int = 1
    p: float = 0.5
    ll_mix: float = 1.0
    high_jitter: float = 0.5
    high_swap: bool = False
    donors: Literal["shared", "per_modality"] = "shared"
    same_domain_fallback: bool = False
    donor_class: DonorClass = "any"
    logits: Literal["original", "resampled"] = "resampled"
    at: Literal["input", "stem", "frozen_prefix"] = "input"

    def __post_init__(self) -> None:
        _in_range("mwdis.p", self.p, 0, 1)
        _in_range("mwdis.ll_mix", self.ll_mix, 0, 1)
        _in_range("mwdis.high_jitter", self.high_jitter, 0, 1)
        check_choice("MWDis donor mode", self.donors, ("shared", "per_modality"), field="mwdis.donors")
        check_choice("MWDis donor class", self.donor_class, DONOR_CLASSES, field="mwdis.donor_class")
        check_choice("MWDis logits", self.logits, ("original", "resampled"), field="mwdis.logits")
        check_choice("MWDis position", self.at, ("input", "stem", "frozen_prefix"), field="mwdis.at")


@dataclass(frozen=True)
class FrequencyOptions:
    """The frequency pathway (SFIE's, or the blocks on a scene backbone's maps) and frequency alignment.

    Args:
        enabled: the pathway and the alignment of its features; ``false`` is the no-frequency ablation.
        kind: ``"wavelet"`` (the paper's framing), ``"fft"`` (log-amplitude) or ``"fft_phase"`` (log-amplitude +
            phase), :class:`~rsmg.models.sfie.FrequencyBlock`; decisions.md#fvmgn-frequency.
    """

    enabled: bool = True
    kind: Literal["wavelet", "fft", "fft_phase"] = "wavelet"

    def __post_init__(self) -> None:
        check_choice("frequency pathway", self.kind, FREQUENCY_KINDS, field="frequency.kind")


@dataclass(frozen=True)
class SFIEOptions:
    """SFIE, the pixel-patch FVMGN's encoder (spatial and frequency pathways over 1–3 scales).

    Args:
        width: width at the first scale.
        scales: number of scales (1–3); 2, the paper's "multiscale" (decisions.md#fvmgn-scales).
        attn_heads: heads of the global blocks: ``None`` (default) = one head per 16 channels at each scale
            (``[2, 4]`` at width 32), one number for every scale, or one per scale; decisions.md#attention-heads.
        norm: normalisation (``"batch"`` or ``"group"``).
        global_blocks: self-attention blocks (false: the spatial pathway is local convs only).
        attn_sr_ratios: per scale, average-pooling of the attention keys/values (PVT-style, no parameters);
            None = full attention (decisions.md#attn-sr).
        fuse_norm: LayerNorm on the fused embedding.
        stem: first layer of the stems: ``"pointwise"`` (default, ``1×1`` then ``3×3``), ``"spatial"`` (``3×3``
            first) or ``"auto"`` (``1×1`` only for modalities with more channels than ``width``;
            decisions.md#sfie-stems).
    """

    width: int = 64
    scales: int = 2
    attn_heads: int | tuple[int, ...] | None = None
    norm: NormKind = "batch"
    global_blocks: bool = True
    attn_sr_ratios: tuple[int, ...] | None = None
    fuse_norm: bool = True
    stem: StemKind = "pointwise"


@dataclass(frozen=True)
class TextOptions:
    """The class texts and the text tower that encodes them.

    Args:
        use: which class texts: ``"both"`` (shared + the model's second kind: FVMGN's per-modality
            *proprietary* texts, the scene models' per-domain texts), ``"shared"``, ``"proprietary"`` (FVMGN only)
            or ``"none"`` (image-only ablation: a linear head, no tower, no alignment).
        class_set: class-text set for the spec's classes (``"shared"`` for the cross-scene set, a scene, or a
            YAML path).
        tower: ``"minilm"`` (pretrained all-MiniLM-L6-v2, default) or ``"clip-bpe"``.
        pretrained: load the tower's pretrained weights.
        freeze: freeze the tower and cache the class-text features (the paper trains projections; the scene
            models support only a frozen tower).
        tower_kwargs: extra arguments of :func:`rsmg.text.towers.create_text_tower` (e.g. ``checkpoint``,
            ``width``/``layers``/``heads`` of a ``clip-bpe`` tower).
    """

    use: Literal["both", "shared", "proprietary", "none"] = "both"
    class_set: str = "shared"
    tower: Literal["minilm", "clip-bpe"] = "minilm"
    pretrained: bool = True
    freeze: bool = True
    tower_kwargs: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        check_choice("texts option", self.use, ("both", "shared", "proprietary", "none"), field="text.use")


@dataclass(frozen=True)
class AlignmentOptions:
    """MSFFA: the joint image-text space, the alignment loss and the text-prototype classifier's temperature.

    Args:
        embed_dim: size of the joint image-text space.
        multiscale: align every scale (false: the last only).
        temperature_init: initial temperature of the logit scale.
        loss: ``"infonce"`` or ``"kl"`` (KL to frozen text-similarity targets; decisions.md#align-loss).
        kl_target_temperature: temperature of those targets.
    """

    embed_dim: int = 256
    multiscale: bool = True
    temperature_init: float = 0.07
    loss: Literal["infonce", "kl"] = "infonce"
    kl_target_temperature: float = 0.05

    def __post_init__(self) -> None:
        check_choice("alignment loss", self.loss, ("infonce", "kl"), field="alignment.loss")


def build_mwdis(options: MWDisOptions, spec: DataSpec, wavelet: str) -> MWDis | None:
    """The MWDis module of ``options`` for ``spec`` (None when ``enabled`` is off).

    Raises:
        ConfigError: a wavelet / level count the patches cannot take, ``p = 0`` (a second view identical to the
            first, at the cost of a second encoder pass), or one source domain without
            ``same_domain_fallback``.
    """
    if not options.enabled:
        return None
    check_wavelet(wavelet, options.levels, spec.patch_size, field="mwdis.levels")
    if options.p == 0:
        raise ConfigError(
            "MWDis is on but never resamples (mwdis.p = 0): the model would encode an identical second view",
            field="mwdis.p", expected="> 0 with mwdis.enabled", found=options.p,
            fix="set mwdis.enabled: false to switch MWDis off, or mwdis.p: 0.5",
        )  # fmt: skip
    return MWDis.for_spec(
        spec,
        field="mwdis.same_domain_fallback",
        wavelet=wavelet,
        levels=options.levels,
        p=options.p,
        ll_mix=options.ll_mix,
        high_jitter=options.high_jitter,
        high_swap=options.high_swap,
        donors=options.donors,
        same_domain_fallback=options.same_domain_fallback,
        donor_class=options.donor_class,
    )


def refuse_unsupported(section: str, options: object, supported: dict[str, Any], *, model: str) -> None:
    """Refuse a field of a shared options section that ``model`` does not implement, unless it has its one value.

    The scene models share FVMGN's sections so that a name means the same everywhere; the few fields they cannot
    honour are refused here, by name, rather than ignored.

    Args:
        section: the section's key (``"mwdis"``).
        options: the section's dataclass.
        supported: field → the only value ``model`` implements.
        model: the model's name, for the message.

    Raises:
        ConfigError: a field differs from its supported value.
    """
    for name, only in supported.items():
        value = getattr(options, name)
        if value != only:
            raise ConfigError(
                f"{model} does not implement {section}.{name} = {value!r}",
                field=f"{section}.{name}", expected=repr(only), found=repr(value),
                fix=f"remove {section}.{name} (or set it to {only!r}), or use a model that implements it "
                "(rsmg.models.fvmgn.FVMGN)",
            )  # fmt: skip


def _section(key: str, cls: type, prefix: str = "", renames: dict[str, str] | None = None) -> dict[str, str]:
    """Old flat name → ``key.field`` for every field of ``cls``: ``prefix + field``, unless ``renames`` names it."""
    old_of = {field: old for old, field in (renames or {}).items()}
    return {old_of.get(f.name, prefix + f.name): f"{key}.{f.name}" for f in fields(cls)}


#: FVMGN's flat keyword arguments before 2026-12 → their nested keys (``wavelet``, ``channels_last`` and
#: ``compile_encoder`` kept their names).
FVMGN_RENAMED: MappingProxyType[str, str] = MappingProxyType(
    {
        **_section("mwdis", MWDisOptions, "mwdis_", {"use_mwdis": "enabled", "wavelet_levels": "levels"}),
        **_section("frequency", FrequencyOptions, renames={"use_frequency": "enabled", "frequency": "kind"}),
        **_section("sfie", SFIEOptions),
        **_section(
            "text",
            TextOptions,
            renames={
                "texts": "use",
                "text_tower": "tower",
                "text_pretrained": "pretrained",
                "freeze_text": "freeze",
                "text_tower_kwargs": "tower_kwargs",
            },
        ),
        **_section(
            "alignment",
            AlignmentOptions,
            renames={"multiscale_alignment": "multiscale", "align_loss": "loss"},
        ),
    }
)

_SCENE_OLD = (
    "use_mwdis", "wavelet_levels", "mwdis_p", "mwdis_ll_mix", "mwdis_high_jitter", "mwdis_same_domain_fallback",
    "mwdis_donor_class", "mwdis_logits", "use_frequency", "frequency", "texts", "class_set", "text_tower",
    "text_pretrained", "text_tower_kwargs", "embed_dim", "temperature_init",
)  # fmt: skip

#: SceneFVMGN's (and CaptionFVMGN's) flat keyword arguments before 2026-12 → their nested keys.
SCENE_RENAMED: MappingProxyType[str, str] = MappingProxyType({k: FVMGN_RENAMED[k] for k in _SCENE_OLD})
