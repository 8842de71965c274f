"""SFIE: spatial-frequency-aware image encoder (FVMGN, Zhang et al. AAAI-26, component 4).

The paper describes SFIE as "local-global feature reconstruction and representation" with a spatial and a
frequency pathway, producing features at several scales that MSFFA aligns with text. The layer-level design is
not public; rsmg's reading, every choice an argument (``docs/decisions.md#sfie``):

* **Stems** — one per modality, two conv + norm + GELU layers to ``width`` channels, so any channel count works;
  the first layer is ``1×1`` (``stem="pointwise"``), ``3×3`` (``"spatial"``) or chosen by channel count
  (``"auto"``; ``docs/decisions.md#sfie-stems``). A batch modality without a stem, or a stem without its
  modality, is a :class:`~rsmg.errors.DataError` naming the key.
* **Spatial pathway, per scale** — a residual ``3×3`` conv block (local; stride 2 from the second scale on) and
  a light transformer block over the ``h·w`` tokens (global), with a depthwise-conv positional encoding so any
  patch size works; optionally with pooled keys/values (``attn_sr_ratios``, PVT's spatial reduction).
* **Frequency pathway, per scale** — wavelet sub-bands, FFT log-amplitude, or log-amplitude + phase of the
  scale's map, then ``1×1`` and ``3×3`` convs; pooled, it is the scale's *frequency feature*; resized back and
  added to the spatial map, it is the "reconstruction" the next scale sees. ``"none"`` drops the pathway.
* **Scales** — 1 to 3; widths ``width·2^s``; spatial sizes e.g. 11 → 6 → 3 for 11×11 patches.
* **Fused embedding** — per modality the last map is average-pooled over the patch, the modality vectors are
  concatenated and projected (Linear + LayerNorm) to ``out_dim``: late fusion keeps the per-modality features
  that MSFFA aligns with *proprietary* texts modality specific.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

import torch
import torch.nn.functional as F
from torch import nn

from rsmg.data.spec import image_key
from rsmg.errors import ConfigError, DataError, check_choice

FrequencyKind = Literal["wavelet", "fft", "fft_phase", "none"]
StemKind = Literal["auto", "pointwise", "spatial"]
STEM_KINDS: tuple[str, ...] = get_args(StemKind)
FREQUENCY_KINDS: tuple[str, ...] = ("wavelet", "fft", "fft_phase")
_PHASE_EPS = 1e-6
NormKind = Literal["batch", "group"]


def _norm(kind: NormKind, ch: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    return nn.GroupNorm(min(8, ch), ch)


class LocalBlock(nn.Module):
    """Residual block of two ``3×3`` convs (the *local* part of SFIE's spatial pathway).

    Args:
        cin: input channels.
        cout: output channels.
        stride: 1, or 2 to halve the spatial size (next scale).
        norm: normalisation layer kind.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1, norm: NormKind = "batch") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.n1 = _norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.n2 = _norm(norm, cout)
        self.short: nn.Module = (
            nn.Identity()
            if cin == cout and stride == 1
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), _norm(norm, cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        y = F.gelu(self.n1(self.conv1(x)))
        return F.gelu(self.n2(self.conv2(y)) + self.short(x))


class GlobalBlock(nn.Module):
    """Light transformer block over spatial tokens (the *global* part of SFIE's spatial pathway).

    Args:
        ch: channels (token width).
        heads: attention heads (``ch`` must be divisible by it).
        mlp_ratio: hidden size of the MLP relative to ``ch``.
        sr_ratio: spatial reduction of keys/values (average pooling with this kernel and stride, partial
            windows at the border averaged over their valid pixels); 1 = full attention. The parameters are the
            same for every ratio, so a checkpoint loads into either.
    """

    def __init__(self, ch: int, heads: int = 4, mlp_ratio: float = 2.0, sr_ratio: int = 1) -> None:
        super().__init__()
        if ch % heads:
            raise ConfigError(
                "encoder width is not divisible by the number of attention heads",
                field="attn_heads",
                expected=f"a divisor of {ch}",
                found=heads,
                fix="choose width as a multiple of attn_heads",
            )
        if sr_ratio < 1:
            raise ConfigError(
                "spatial-reduction ratio must be at least 1",
                field="attn_sr_ratios",
                expected="integers ≥ 1",
                found=sr_ratio,
                fix="use 1 (full attention) or 2",
            )
        self.sr_ratio = sr_ratio
        self.pos = nn.Conv2d(ch, ch, 3, padding=1, groups=ch)
        self.ln1 = nn.LayerNorm(ch)
        # fused qkv + scaled_dot_product_attention: PyTorch's fused CPU/GPU attention kernels; on CPU this is
        # ~2x faster than nn.MultiheadAttention's batched small-matrix bmm for 11x11-token patches
        self.heads = heads
        self.qkv = nn.Linear(ch, 3 * ch)
        self.proj = nn.Linear(ch, ch)
        self.ln2 = nn.LayerNorm(ch)
        hidden = int(ch * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(ch, hidden), nn.GELU(), nn.Linear(hidden, ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to a ``B×C×H×W`` map."""
        b, c, h, w = x.shape
        x = x + self.pos(x)
        t = x.flatten(2).transpose(1, 2)  # B×HW×C
        u = self.ln1(t)
        d = c // self.heads
        if self.sr_ratio == 1:
            q, k, v = self.qkv(u).view(b, h * w, 3, self.heads, d).permute(2, 0, 3, 1, 4)
        else:  # queries from every token, keys/values from the pooled map (same weights, split)
            pooled = F.avg_pool2d(
                u.transpose(1, 2).reshape(b, c, h, w),
                self.sr_ratio,
                ceil_mode=True,
                count_include_pad=False,
            )
            kv_tokens = pooled.flatten(2).transpose(1, 2)
            q = (
                F.linear(u, self.qkv.weight[:c], self.qkv.bias[:c])
                .view(b, h * w, self.heads, d)
                .transpose(1, 2)
            )
            k, v = (
                F.linear(kv_tokens, self.qkv.weight[c:], self.qkv.bias[c:])
                .view(b, kv_tokens.shape[1], 2, self.heads, d)
                .permute(2, 0, 3, 1, 4)
            )
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v)  # B×heads×HW×d
        t = t + self.proj(a.transpose(1, 2).reshape(b, h * w, c))
        t = t + self.mlp(self.ln2(t))
        return t.transpose(1, 2).reshape(b, c, h, w)


class FrequencyBlock(nn.Module):
    """SFIE's frequency pathway at one scale: wavelet sub-bands or FFT log-amplitude → convs.

    Args:
        ch: channels of the scale's feature map.
        kind: ``"wavelet"``, ``"fft"`` (log-amplitude) or ``"fft_phase"`` (log-amplitude + unit phasor).
        wavelet: wavelet name for ``kind="wavelet"``.
        norm: normalisation layer kind.
    """

    def __init__(
        self,
        ch: int,
        kind: Literal["wavelet", "fft", "fft_phase"],
        wavelet: str = "haar",
        norm: NormKind = "batch",
    ) -> None:
        super().__init__()
        from rsmg.models.wavelet import MWDis

        self.kind = kind
        self.dwt = MWDis(wavelet=wavelet, levels=1, p=0.0)  # used only for its transform
        cin = {"wavelet": 4 * ch, "fft": ch, "fft_phase": 3 * ch}[kind]
        self.mix = nn.Sequential(
            nn.Conv2d(cin, ch, 1, bias=False), _norm(norm, ch), nn.GELU(),
            nn.Conv2d(ch, ch, 3, padding=1, bias=False), _norm(norm, ch), nn.GELU(),
        )  # fmt: skip
        self.back = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.back.weight)  # starts as the pure spatial encoder, frequency learns to contribute
        nn.init.zeros_(self.back.bias)  # type: ignore[arg-type]

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Frequency representation of a ``B×C×H×W`` map.

        ``B×4C×h×w`` sub-bands (wavelet), ``B×C×H×(W//2+1)`` log-amplitude (fft) or ``B×3C×H×(W//2+1)``
        log-amplitude, cos and sin of the phase (fft_phase).
        """
        if self.kind == "wavelet":
            ll, highs = self.dwt.decompose(x, levels=1)
            return torch.cat([ll, *highs[0]], dim=1)
        spec = torch.fft.rfft2(x.float(), norm="ortho")
        amp = spec.abs()
        log_amp = torch.log1p(amp)
        if self.kind == "fft":
            return log_amp.to(x.dtype)
        phasor = spec / (amp + _PHASE_EPS)  # unit phasor; 0 where the amplitude vanishes
        return torch.cat([log_amp, phasor.real, phasor.imag], dim=1).to(x.dtype)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(z, x_fused)``: the frequency map and the spatial map with frequency evidence added."""
        z = self.mix(self.transform(x))
        up = F.interpolate(z, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return z, x + self.back(up)


@dataclass
class SFIEOutput:
    """What :class:`SFIE` returns.

    Attributes:
        spatial: modality → per-scale pooled spatial features (``B×dims[s]``), finest scale first.
        frequency: modality → per-scale pooled frequency features (empty lists when ``frequency="none"``).
        maps: modality → per-scale fused feature maps (``B×dims[s]×h_s×w_s``).
        modality: modality → pooled last-scale feature (``B×dims[-1]``).
        fused: ``B×out_dim`` embedding of all modalities.
    """

    spatial: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    frequency: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    maps: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    modality: dict[str, torch.Tensor] = field(default_factory=dict)
    fused: torch.Tensor | None = None


def resolve_stem(stem: StemKind, in_ch: int, width: int) -> Literal["pointwise", "spatial"]:
    """The stem kind a modality of ``in_ch`` channels gets (``"auto"``: pointwise only to reduce many bands)."""
    if stem == "auto":
        return "pointwise" if in_ch > width else "spatial"
    return stem


HEAD_WIDTH = 16
"""Channels per attention head when ``attn_heads`` is left unset (the finest scale of a width-32 model: 2 heads)."""


def resolve_heads(attn_heads: int | list[int] | tuple[int, ...] | None, dims: list[int]) -> tuple[int, ...]:
    """Attention heads per scale from ``attn_heads``: one number for all scales, one per scale, or ``None``.

    ``None`` (the default) gives one head per :data:`HEAD_WIDTH` channels at each scale (at least one), so the
    head width stays 16 while the channels double: ``[2, 4]`` for a width-32, 2-scale encoder.

    Why per scale: with a fixed count the finest scale's heads are narrow (width 32, 4 heads: 8 channels each),
    and the fused CPU attention is slow on narrow heads; Swin and PVT keep the head width fixed instead
    (measurements: ``docs/decisions.md#attention-heads``).

    Raises:
        ConfigError: a list of the wrong length, a count below 1, or one that does not divide its scale's width.
    """
    by_width = tuple(max(d // HEAD_WIDTH, 1) for d in dims)
    if attn_heads is None:
        heads = by_width
    elif isinstance(attn_heads, int):
        heads = (attn_heads,) * len(dims)
    else:
        heads = tuple(attn_heads)
    if len(heads) != len(dims):
        raise ConfigError(
            "one attention-head count per scale is needed",
            field="attn_heads",
            expected=f"one integer, or {len(dims)} integers (scales {dims} channels)",
            found=list(heads),
            fix=f"e.g. {list(by_width)} (head width {HEAD_WIDTH}) or one number for all",
        )
    for d, h in zip(dims, heads, strict=True):
        if h < 1 or d % h:
            raise ConfigError(
                f"{h} attention heads for a scale of {d} channels: the count must be at least 1 and divide it",
                field="attn_heads",
                expected=f"a divisor of {d}",
                found=h,
                fix="choose width as a multiple of attn_heads, or give one count per scale",
            )
    return heads


class ModalityBranch(nn.Module):
    """Stem + spatial and frequency pathways of one modality."""

    def __init__(
        self,
        in_ch: int,
        dims: list[int],
        *,
        frequency: FrequencyKind,
        wavelet: str,
        attn_heads: tuple[int, ...],
        norm: NormKind,
        global_blocks: bool = True,
        attn_sr_ratios: tuple[int, ...] | None = None,
        stem: StemKind = "pointwise",
    ) -> None:
        super().__init__()
        w0 = dims[0]
        sr = attn_sr_ratios or (1,) * len(dims)
        self.stem_kind = resolve_stem(stem, in_ch, w0)
        k = 1 if self.stem_kind == "pointwise" else 3
        self.stem = nn.Sequential(
            nn.Conv2d(in_ch, w0, k, padding=k // 2, bias=False), _norm(norm, w0), nn.GELU(),
            nn.Conv2d(w0, w0, 3, padding=1, bias=False), _norm(norm, w0), nn.GELU(),
        )  # fmt: skip
        self.local = nn.ModuleList(
            LocalBlock(dims[max(s - 1, 0)], d, stride=1 if s == 0 else 2, norm=norm)
            for s, d in enumerate(dims)
        )
        self.glob = nn.ModuleList(
            GlobalBlock(d, heads, sr_ratio=r) if global_blocks else nn.Identity()
            for d, heads, r in zip(dims, attn_heads, sr, strict=True)
        )  # fmt: skip
        self.freq = nn.ModuleList(
            FrequencyBlock(d, frequency, wavelet, norm) for d in dims
        ) if frequency != "none" else None  # fmt: skip

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        """A checkpoint whose stem kind differs gets an error that names the setting, not a shape mismatch."""
        key = prefix + "stem.0.weight"
        if key in state_dict:
            saved = state_dict[key].shape[-1]
            own = self.stem[0].weight.shape[-1]  # type: ignore[index]
            if saved != own:
                kinds = {1: "pointwise", 3: "spatial"}
                raise ConfigError(
                    f"the checkpoint's {key} is a {saved}×{saved} ({kinds.get(saved, '?')}) stem, this model's is "
                    f"{own}×{own} ({self.stem_kind})",
                    field="stem",
                    expected=kinds.get(saved, str(saved)),
                    found=self.stem_kind,
                    fix=f"build the model with stem={kinds.get(saved, '?')!r}, as the checkpoint's run was",
                )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Return per-scale (pooled spatial, pooled frequency, fused maps)."""
        return self.trunk(self.stem(x))

    def trunk(self, h: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Everything after the stem, from a ``B×dims[0]×H×W`` stem feature map."""
        sp, fr, maps = [], [], []
        for s in range(len(self.local)):
            h = self.glob[s](self.local[s](h))
            sp.append(h.mean(dim=(-2, -1)))
            if self.freq is not None:
                z, h = self.freq[s](h)
                fr.append(z.mean(dim=(-2, -1)))
            maps.append(h)
        return sp, fr, maps


class SFIE(nn.Module):
    """Spatial-frequency-aware image encoder (see the module docstring).

    Args:
        modalities: modality → input channels (``DataSpec.modalities``).
        width: channels of the first scale; scale ``s`` has ``width·2^s``.
        scales: number of scales, 1–3.
        frequency: ``"wavelet"``, ``"fft"``, ``"fft_phase"`` or ``"none"``.
        wavelet: wavelet of the frequency pathway.
        attn_heads: heads of the global blocks: ``None`` (default) = one head per 16 channels at each scale
            (head width constant while the channels double, as in Swin and PVT: ``[2, 4]`` at width 32), one
            number for every scale, or one per scale; see :func:`resolve_heads`.
        out_dim: size of the fused embedding (default: last scale's width).
        norm: ``"batch"`` (default, as in most HSI/LiDAR CNNs) or ``"group"`` (batch-size independent).
        global_blocks: keep the self-attention blocks of the spatial pathway (False: local convs only, the
            ablation of the *global* half of "local-global" representation).
        fuse_norm: LayerNorm after the fusion projection.
        attn_sr_ratios: per scale, the spatial reduction of the global blocks' keys/values (see
            :class:`GlobalBlock`); default full attention everywhere.
        stem: first stem layer, ``"pointwise"`` (default, ``1×1``), ``"spatial"`` (``3×3``) or ``"auto"``
            (``1×1`` only for modalities with more channels than ``width``); see the module docstring, "Stems".
    """

    def __init__(
        self,
        modalities: dict[str, int],
        *,
        width: int = 64,
        scales: int = 2,
        frequency: FrequencyKind = "wavelet",
        wavelet: str = "haar",
        attn_heads: int | list[int] | tuple[int, ...] | None = None,
        out_dim: int | None = None,
        norm: NormKind = "batch",
        global_blocks: bool = True,
        fuse_norm: bool = True,
        attn_sr_ratios: list[int] | tuple[int, ...] | None = None,
        stem: StemKind = "pointwise",
    ) -> None:
        super().__init__()
        check_choice("SFIE stem", stem, STEM_KINDS, field="stem")
        if not modalities:
            raise ConfigError("SFIE needs at least one modality", field="spec.modalities", found="{}")
        if not 1 <= scales <= 3:
            raise ConfigError(
                "scales out of range", field="scales", expected="1, 2 or 3", found=scales, fix="use 2"
            )
        check_choice("frequency pathway", frequency, (*FREQUENCY_KINDS, "none"), field="frequency")
        if attn_sr_ratios is not None and len(attn_sr_ratios) != scales:
            raise ConfigError(
                "one spatial-reduction ratio per scale is needed",
                field="attn_sr_ratios",
                expected=f"{scales} integers",
                found=list(attn_sr_ratios),
                fix="e.g. [2, 1] for two scales, or leave it unset for full attention",
            )
        self.modalities = dict(modalities)
        self.frequency = frequency
        self.dims = [width * 2**s for s in range(scales)]
        self.attn_heads = resolve_heads(attn_heads, self.dims)
        self.out_dim = out_dim or self.dims[-1]
        self.branches = nn.ModuleDict(
            {
                m: ModalityBranch(
                    c,
                    self.dims,
                    frequency=frequency,
                    wavelet=wavelet,
                    attn_heads=self.attn_heads,
                    norm=norm,
                    global_blocks=global_blocks,
                    attn_sr_ratios=tuple(attn_sr_ratios) if attn_sr_ratios is not None else None,
                    stem=stem,
                )
                for m, c in self.modalities.items()
            }
        )
        self.fuse = nn.Sequential(
            nn.Linear(len(self.modalities) * self.dims[-1], self.out_dim),
            nn.LayerNorm(self.out_dim) if fuse_norm else nn.Identity(),
        )

    def check(self, images: dict[str, torch.Tensor]) -> None:
        """Check that the batch has exactly this encoder's modalities with the right channel counts.

        Raises:
            DataError: a missing or unknown modality, or a channel count that differs from the spec.
        """
        extra = sorted(set(images) - set(self.modalities))
        missing = sorted(set(self.modalities) - set(images))
        if extra:
            raise DataError(
                f"the batch has a modality the encoder has no stem for: {extra}",
                field=", ".join(image_key(m) for m in extra),
                expected=f"modalities {sorted(self.modalities)}",
                found=sorted(images),
                fix="build the model from the datamodule's spec (it lists every modality the data yields)",
            )
        if missing:
            raise DataError(
                f"the batch lacks modality {missing}",
                field=", ".join(image_key(m) for m in missing),
                expected=f"modalities {sorted(self.modalities)}",
                found=sorted(images),
                fix="feed every modality the model was built with (check the datamodule's modalities)",
            )
        for m, x in images.items():
            if x.ndim != 4 or x.shape[1] != self.modalities[m]:
                raise DataError(
                    f"wrong shape for modality {m!r}",
                    field=image_key(m),
                    expected=f"B×{self.modalities[m]}×H×W",
                    found=tuple(x.shape),
                    fix="check band selection / resampling against the spec the model was built with",
                )

    def forward(self, images: dict[str, torch.Tensor]) -> SFIEOutput:
        """Encode a dict ``modality → B×C×H×W``."""
        return self.forward_stems(self.stems(images))

    def _branch(self, modality: str) -> ModalityBranch:
        return cast(ModalityBranch, self.branches[modality])

    def stems(self, images: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-modality stem feature maps (``B×width×H×W``): where feature-level MWDis resamples."""
        self.check(images)
        return {m: self._branch(m).stem(images[m]) for m in self.modalities}

    def forward_stems(self, feats: dict[str, torch.Tensor]) -> SFIEOutput:
        """Encode from the stems' feature maps (see :meth:`stems`)."""
        out = SFIEOutput()
        for m in self.modalities:  # fixed order: the fused embedding must not depend on dict order
            sp, fr, maps = self._branch(m).trunk(feats[m])
            out.spatial[m], out.frequency[m], out.maps[m] = sp, fr, maps
            out.modality[m] = maps[-1].mean(dim=(-2, -1))
        out.fused = self.fuse(torch.cat([out.modality[m] for m in self.modalities], dim=1))
        return out
