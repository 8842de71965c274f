"""MWDis: multimodal wavelet disentanglement and resampling (FVMGN, Zhang et al. AAAI-26, component 2).

The paper decomposes every vision modality with a wavelet transform and *resamples* the low- and
high-frequency components so that the encoder learns cross-domain invariant features. The exact resampling is
not public; rsmg's reading, every choice an argument (``docs/decisions.md#mwdis``):

* **Transform** — 2-D DWT per modality (``wavelet``, ``levels``, boundary ``mode``; default Haar, one level,
  ``"reflect"``) by ``ptwt``, or by rsmg's own Haar butterfly (``fast_haar``; equal to ptwt to 1e-6). Odd
  patches (11×11) are padded and the reconstruction cropped back, so the round trip is exact.
* **Low frequency (MixStyle-like)** — for each sample selected with probability ``p``, the per-channel mean and
  standard deviation of its LL band are replaced by (``ll_mix=1``) or mixed with those of a *donor* from a
  *different source domain*: domain shift is largely a shift of these statistics.
* **High frequency** — the detail bands are rescaled by ``U(1−high_jitter, 1+high_jitter)`` per sample, level
  and orientation; ``high_swap=True`` first takes the donor's detail coefficients.
* **Donors** — one per sample for all modalities (``donors="shared"``) or one per modality; only source
  samples give or receive; ``donor_class="same"`` restricts donors to the receiver's class;
  ``same_domain_fallback`` lets another sample of the same domain lend when the batch has no other domain.
* **Modes** — identity in eval mode or with ``p == 0``; samples not selected are returned exactly.

:meth:`MWDis.decompose` / :meth:`MWDis.reconstruct` are also used by the SFIE frequency branch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

import torch
from torch import nn

from rsmg.errors import ConfigError, DataError, check_choice

if TYPE_CHECKING:
    from rsmg.data.spec import DataSpec

BoundaryMode = Literal["reflect", "zero", "constant", "periodic", "symmetric"]
DonorClass = Literal["any", "same"]
DONOR_CLASSES: tuple[str, ...] = get_args(DonorClass)
Highs = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def max_wavelet_level(size: int, wavelet: str) -> int:
    """Deepest useful decomposition level for a side of ``size`` pixels (pywt's rule, ``dwt_max_level``)."""
    import pywt

    return _max_level(int(size), pywt.Wavelet(wavelet).dec_len)


def _max_level(size: int, dec_len: int) -> int:
    """``pywt.dwt_max_level`` in integer arithmetic: the largest L with ``(dec_len − 1)·2^L <= size``.

    Pure Python on purpose: called in every :meth:`MWDis.decompose`, where building a ``pywt.Wavelet`` would
    break a ``torch.compile`` graph (Dynamo cannot trace pywt's C type; measured: two graph breaks per SFIE
    forward, and a compiled step 20 % *slower* than eager on an H200).
    """
    if dec_len < 2 or size < dec_len - 1:
        return 0
    return (size // (dec_len - 1)).bit_length() - 1


def check_wavelet(wavelet: str, levels: int, patch_size: int | None, *, field: str) -> None:
    """Check a wavelet name and level count against a patch size, with errors that say how to fix them.

    Args:
        wavelet: a discrete wavelet name known to pywt (``"haar"``, ``"db2"``, ...).
        levels: decomposition levels (>= 1).
        patch_size: side of the patches; ``None`` skips the size check.
        field: config key to name in the error (e.g. ``"wavelet_levels"``, the model argument's name).

    Raises:
        ConfigError: unknown wavelet, ``levels < 1``, or a patch too small for ``levels``.
    """
    import pywt

    if wavelet not in pywt.wavelist(kind="discrete"):
        from rsmg.errors import unknown_name_error

        raise unknown_name_error("wavelet", wavelet, pywt.wavelist(kind="discrete"), field=field)
    if levels < 1:
        raise ConfigError(
            "wavelet levels must be at least 1", field=field, expected=">= 1", found=levels,
            fix="use 1 (the default) or 2",
        )  # fmt: skip
    if patch_size is not None:
        top = max_wavelet_level(patch_size, wavelet)
        if levels > top:
            if max_wavelet_level(patch_size, "haar") < 1:  # no wavelet has a level on a 1-px patch
                raise ConfigError(
                    f"{patch_size}×{patch_size} patches have no spatial extent to decompose with a wavelet",
                    field=field,
                    expected="patches of at least 2×2 pixels for MWDis",
                    found=f"patch_size {patch_size}",
                    fix="switch MWDis off (FVMGN: mwdis.enabled: false; ConcatCNN: mwdis_p: 0), as "
                    "experiments/model/fvmgn_houston2013_vectors.yaml does for single-pixel vectors, or use larger "
                    "patches (data.init_args.patch_size, e.g. 11)",
                )
            shorter = "" if wavelet == "haar" else ", the shortest wavelet (haar)"
            raise ConfigError(
                f"patch of {patch_size}×{patch_size} is too small for {levels} level(s) of {wavelet!r}",
                field=field,
                expected=f"levels <= {top} for {patch_size}-pixel patches with {wavelet!r}",
                found=levels,
                fix=f"use levels <= {top}{shorter} or larger patches (data.init_args.patch_size)"
                if top >= 1
                else "use the shortest wavelet (haar) or larger patches (data.init_args.patch_size)",
            )


def _to_float(x: torch.Tensor) -> torch.Tensor:
    """Ptwt supports float32/float64 only: half and bfloat16 inputs are transformed in float32."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _full_precision(x: torch.Tensor) -> torch.autocast:
    """Disable autocast around ptwt's convolutions (under AMP they would return bfloat16 coefficients)."""
    return torch.autocast(device_type=x.device.type, enabled=False)


# ptwt boundary mode -> torch.nn.functional.pad mode for the one-pixel pad of an odd side (Haar only)
_HAAR_PAD = {
    "reflect": "reflect",
    "zero": "constant",
    "constant": "replicate",
    "symmetric": "replicate",
    "periodic": "circular",
}


def _haar_dwt2(
    x: torch.Tensor, mode: str
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """One level of the 2-D Haar DWT with strided slices and adds (same bands, order and signs as ptwt).

    An odd side is padded by one pixel on the right / bottom, as ptwt does. 4-6x faster than
    ``ptwt.wavedec2`` on 11×11 patches on CPU (benchmarks/fvmgn_speed.py) and memory-bound on GPU.
    """
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = torch.nn.functional.pad(x, (0, w % 2, 0, h % 2), mode=_HAAR_PAD[mode])
    a, b, c, d = x[..., 0::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    s1, s2, d1, d2 = a + b, c + d, a - b, c - d
    return (s1 + s2) * 0.5, ((s1 - s2) * 0.5, (d1 + d2) * 0.5, (d1 - d2) * 0.5)


def _haar_idwt2(ll: torch.Tensor, lh: torch.Tensor, hl: torch.Tensor, hh: torch.Tensor) -> torch.Tensor:
    """Inverse of one :func:`_haar_dwt2` level (adds, then interleave), ``2h×2w``, not cropped."""
    s1, s2, d1, d2 = ll + lh, ll - lh, hl + hh, hl - hh
    shape = (*ll.shape[:-2], ll.shape[-2], 2 * ll.shape[-1])
    row0 = torch.stack([(s1 + d1) * 0.5, (s1 - d1) * 0.5], dim=-1).reshape(shape)
    row1 = torch.stack([(s2 + d2) * 0.5, (s2 - d2) * 0.5], dim=-1).reshape(shape)
    return torch.stack([row0, row1], dim=-2).reshape(*ll.shape[:-2], 2 * ll.shape[-2], 2 * ll.shape[-1])


def pick_other_domain(
    d: torch.Tensor,
    chosen: torch.Tensor,
    u: torch.Tensor,
    *,
    num_source_domains: int,
    same_domain_fallback: bool,
) -> torch.Tensor:
    """Per chosen source sample, a partner drawn uniformly from the source samples of the *other* domains.

    The donor rule of :meth:`MWDis.pick_donors`, also used by MixStyle's cross-domain mixing
    (:mod:`rsmg.models.mixstyle`). Vectorised, O(B log B): the source samples are sorted by domain, and a
    uniform index into "all source samples but my domain's block" (or "but myself", the fallback) is mapped
    past that block.

    Args:
        d: ``B`` long CPU tensor of domain indices; ``d < num_source_domains`` are source samples.
        chosen: ``B`` bool, the samples that want a partner.
        u: ``B`` float64 uniforms in [0, 1), one per sample (they pick the partner).
        num_source_domains: domains ``0..num_source_domains-1`` are sources.
        same_domain_fallback: when no other source domain is in the batch, any other source sample may be the
            partner (else the sample gets none).

    Returns:
        ``B`` long tensor: partner index, ``-1`` for samples without one (not chosen, not a source, or alone).
    """
    b = d.numel()
    donor = torch.full((b,), -1, dtype=torch.long)
    is_src = d < num_source_domains
    receivers = chosen & is_src
    if not receivers.any():
        return donor
    src = torch.nonzero(is_src).reshape(-1)
    order = src[torch.argsort(d[src], stable=True)]  # source samples, grouped by domain
    n_src = order.numel()
    counts = torch.bincount(d[order], minlength=num_source_domains)
    starts = torch.cumsum(counts, 0) - counts  # where each domain's block begins in `order`
    # each sample's domain, clamped only so that it can index `counts` (non-sources are never receivers)
    rd = d.clamp(0, num_source_domains - 1)
    n_other = n_src - counts[rd]  # candidates in other source domains, per sample
    k = (u * n_other).long().clamp(max=(n_other - 1).clamp(min=0))
    pos = torch.where(k < starts[rd], k, k + counts[rd])  # skip the sample's own domain block
    donor = torch.where(receivers & (n_other > 0), order[pos.clamp(max=n_src - 1)], donor)
    if same_domain_fallback and n_src > 1:
        rank = torch.zeros(b, dtype=torch.long)
        rank[order] = torch.arange(n_src)  # position of each source sample in `order`
        kf = (u * (n_src - 1)).long().clamp(max=n_src - 2)
        pos_f = torch.where(kf < rank, kf, kf + 1)  # any other source sample: skip myself
        fallback = receivers & (n_other == 0)
        donor = torch.where(fallback, order[pos_f.clamp(0, n_src - 1)], donor)
    return donor


@dataclass
class MWDisOutput:
    """Result of :meth:`MWDis.resample`.

    Attributes:
        images: modality → resampled ``B×C×H×W`` tensor (same shapes as the input).
        donor: ``B`` long tensor; index of the sample whose LL statistics were used, ``-1`` = unchanged (with
            ``donors="per_modality"``: the first modality's).
        donors: modality → ``B`` donor indices (all equal to ``donor`` with ``donors="shared"``).
    """

    images: dict[str, torch.Tensor]
    donor: torch.Tensor
    donors: dict[str, torch.Tensor] = field(default_factory=dict)


class MWDis(nn.Module):
    """Multimodal wavelet disentanglement with low/high-frequency resampling (see the module docstring).

    Args:
        wavelet: discrete wavelet name (pywt), default ``"haar"``.
        levels: DWT levels, default 1.
        p: probability that a (source) sample is resampled in a training step.
        ll_mix: weight of the donor's LL statistics (1.0 = replace, the recommended reading; <1 = MixStyle
            interpolation).
        high_jitter: half-width of the uniform rescaling of detail bands (0 = keep them).
        high_swap: take the donor's detail-band coefficients instead of the sample's own (before jitter).
        donors: ``"shared"`` (one donor per sample for all modalities) or ``"per_modality"``.
        num_source_domains: domains ``0..num_source_domains-1`` are sources (``DataSpec`` ordering).
        same_domain_fallback: if no donor from another source domain is in the batch, take any other source
            sample instead of leaving the sample unchanged.
        donor_class: ``"any"`` (donors of any class) or ``"same"`` (only samples with the receiver's label:
            the donor rules above then apply within each class of the batch; needs the labels).
        mode: boundary extension of the DWT (ptwt).
        patch_size: if given, ``levels`` is checked against it at construction.
        eps: added to the standard deviation.
        fast_haar: use the built-in Haar path (strided slices and adds; equal to ptwt to float rounding and
            several times faster on small patches, `benchmarks/fvmgn_speed.py`) instead of ptwt for ``"haar"``.
    """

    def __init__(
        self,
        *,
        wavelet: str = "haar",
        levels: int = 1,
        p: float = 0.5,
        ll_mix: float = 1.0,
        high_jitter: float = 0.5,
        high_swap: bool = False,
        donors: Literal["shared", "per_modality"] = "shared",
        num_source_domains: int = 1,
        same_domain_fallback: bool = False,
        donor_class: DonorClass = "any",
        mode: BoundaryMode = "reflect",
        patch_size: int | None = None,
        eps: float = 1e-6,
        fast_haar: bool = True,
    ) -> None:
        super().__init__()
        self.fast_haar = fast_haar
        check_wavelet(wavelet, levels, patch_size, field="wavelet_levels")
        import pywt

        self._dec_len = int(pywt.Wavelet(wavelet).dec_len)  # once here, not per decompose (see _max_level)
        for name, v, lo, hi in (
            ("mwdis_p", p, 0, 1),
            ("ll_mix", ll_mix, 0, 1),
            ("high_jitter", high_jitter, 0, 1),
        ):
            if not lo <= v <= hi:
                raise ConfigError(
                    f"{name} out of range", field=name, expected=f"[{lo}, {hi}]", found=v,
                    fix=f"use a value in [{lo}, {hi}]",
                )  # fmt: skip
        if num_source_domains < 1:
            raise ConfigError(
                "at least one source domain is needed", field="num_source_domains", expected=">= 1",
                found=num_source_domains, fix="check spec.source_domains",
            )  # fmt: skip
        self.wavelet = wavelet
        self.levels = int(levels)
        self.p = float(p)
        self.ll_mix = float(ll_mix)
        self.high_jitter = float(high_jitter)
        self.high_swap = bool(high_swap)
        check_choice("MWDis donor mode", donors, ("shared", "per_modality"), field="donors")
        self.donors = donors
        self.num_source_domains = int(num_source_domains)
        self.same_domain_fallback = bool(same_domain_fallback)
        check_choice("MWDis donor class", donor_class, DONOR_CLASSES, field="mwdis_donor_class")
        self.donor_class = donor_class
        self.mode = mode
        self.eps = float(eps)

    # -- transform ------------------------------------------------------------------------------------
    def decompose(self, x: torch.Tensor, *, levels: int | None = None) -> tuple[torch.Tensor, Highs]:
        """2-D DWT of a ``B×C×H×W`` tensor.

        Args:
            x: the image (any float dtype, any device).
            levels: override of :attr:`levels`.

        Returns:
            ``(ll, highs)``: the approximation band ``B×C×h×w`` at the coarsest level, and the detail bands
            ``(LH, HL, HH)`` per level, coarsest first (ptwt / pywt order).

        Raises:
            DataError: the patch is too small for the number of levels.
        """
        import ptwt

        lv = self.levels if levels is None else int(levels)
        h, w = x.shape[-2:]
        top = _max_level(int(min(h, w)), self._dec_len)
        if lv > top:
            raise DataError(
                f"image of {h}×{w} pixels is too small for {lv} level(s) of the {self.wavelet!r} wavelet",
                field="image_<modality> (H, W)",
                expected=f"levels <= {top} for this size",
                found=lv,
                fix="lower the MWDis levels (mwdis.levels) or use larger patches",
            )
        dt = x.dtype
        if self.fast_haar and self.wavelet == "haar" and self.mode in _HAAR_PAD:  # equal to ptwt to rounding
            approx = _to_float(x)
            bands: Highs = []
            for _ in range(lv):
                approx, band = _haar_dwt2(approx, self.mode)
                bands.insert(0, band)  # coarsest first, as ptwt
            return approx.to(dt), [(d[0].to(dt), d[1].to(dt), d[2].to(dt)) for d in bands]
        with _full_precision(x):
            coeffs = ptwt.wavedec2(_to_float(x), self.wavelet, level=lv, mode=self.mode)
        ll = coeffs[0].to(dt)
        highs: Highs = [(d[0].to(dt), d[1].to(dt), d[2].to(dt)) for d in coeffs[1:]]
        return ll, highs

    def reconstruct(self, ll: torch.Tensor, highs: Highs, size: tuple[int, int]) -> torch.Tensor:
        """Inverse of :meth:`decompose`, cropped to ``size`` (the transform pads odd sizes)."""
        import ptwt
        from ptwt.constants import WaveletDetailTuple2d

        dt = ll.dtype
        if self.fast_haar and self.wavelet == "haar":  # padding is removed by cropping, whatever the mode
            y = _to_float(ll)
            for lh, hl, hh in highs:
                y = y[..., : lh.shape[-2], : lh.shape[-1]]  # drop the row/column an odd side was padded with
                y = _haar_idwt2(y, _to_float(lh), _to_float(hl), _to_float(hh))
            return y[..., : size[0], : size[1]].to(dt)
        with _full_precision(ll):
            details = [WaveletDetailTuple2d(_to_float(d[0]), _to_float(d[1]), _to_float(d[2])) for d in highs]
            out: torch.Tensor = ptwt.waverec2((_to_float(ll), *details), self.wavelet)
        return out[..., : size[0], : size[1]].to(dt)

    # -- resampling -----------------------------------------------------------------------------------
    def pick_donors(
        self,
        domain: torch.Tensor,
        *,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Choose, per sample, whether it is resampled and from which donor.

        Each selected source sample gets a donor drawn uniformly from the source samples of the *other*
        source domains in the batch (with ``same_domain_fallback``, from every other source sample when the
        batch holds no other domain). Vectorised, O(B log B) time and O(B) memory: the source samples are
        sorted by domain, and a uniform index into "all source samples but my domain's block" (or "but
        myself") is drawn per sample and mapped past that block (why: ``docs/decisions.md#mwdis``).

        With ``donor_class="same"`` the same rules apply within each class of the batch (a loop over the
        classes present, each step vectorised); the random draws are the same as with ``"any"``.

        Args:
            domain: ``B`` long tensor of domain indices (``DataSpec.domains`` order).
            labels: ``B`` class indices; required with ``donor_class="same"``, ignored otherwise.
            generator: optional CPU generator (tests, reproducibility); default the global RNG.

        Returns:
            ``B`` long tensor (on CPU): donor index, or ``-1`` for samples left unchanged.

        Raises:
            ValueError: ``donor_class="same"`` without labels.
        """
        d = domain.detach().to("cpu", torch.long).reshape(-1)
        b = d.numel()
        donor = torch.full((b,), -1, dtype=torch.long)
        if b < 2 or self.p == 0.0:
            return donor
        chosen = torch.rand(b, generator=generator) < self.p
        u = torch.rand(b, generator=generator, dtype=torch.float64)  # one uniform per sample picks its donor
        if self.donor_class == "any":
            return self._pick(d, chosen, u)
        if labels is None:
            raise ValueError("MWDis(donor_class='same') needs the batch's labels: pass labels=batch['label']")
        y = labels.detach().to("cpu", torch.long).reshape(-1)
        for c in torch.unique(y):
            idx = torch.nonzero(y == c).reshape(-1)
            sub = self._pick(d[idx], chosen[idx], u[idx])
            donor[idx] = torch.where(sub >= 0, idx[sub.clamp(min=0)], sub)
        return donor

    def _pick(self, d: torch.Tensor, chosen: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Donors among the samples given (domains ``d``, selection ``chosen``, uniforms ``u``); see above."""
        return pick_other_domain(
            d, chosen, u, num_source_domains=self.num_source_domains,
            same_domain_fallback=self.same_domain_fallback,
        )  # fmt: skip

    def resample(
        self,
        images: dict[str, torch.Tensor],
        domain: torch.Tensor | None,
        *,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> MWDisOutput:
        """Resample LL statistics and detail-band amplitudes (training); identity in eval mode.

        Args:
            images: modality → ``B×C×H×W`` tensor.
            domain: ``B`` domain indices; ``None`` means every sample is from source domain 0 (then only
                ``same_domain_fallback`` can resample).
            labels: ``B`` class indices (used with ``donor_class="same"``).
            generator: optional CPU generator for the random choices.

        Returns:
            :class:`MWDisOutput` with the images and the donor of each sample.
        """
        first = next(iter(images.values()))
        b = first.shape[0]
        if domain is None:
            domain = torch.zeros(b, dtype=torch.long)
        if not self.training or self.p == 0.0:
            none = torch.full((b,), -1, dtype=torch.long)
            return MWDisOutput(images=dict(images), donor=none, donors=dict.fromkeys(images, none))
        donor = self.pick_donors(domain, labels=labels, generator=generator)
        donors = {
            name: donor
            if i == 0 or self.donors == "shared"
            else self.pick_donors(domain, labels=labels, generator=generator)
            for i, name in enumerate(images)
        }
        out: dict[str, torch.Tensor] = {}
        for name, x in images.items():
            sel = donors[name] >= 0
            if not sel.any():
                out[name] = x
                continue
            donor_m = donors[name]
            dev = x.device
            src = torch.where(sel, donor_m, torch.arange(b)).to(dev)
            ll, highs = self.decompose(x)
            mu = ll.mean(dim=(-2, -1), keepdim=True)
            sd = (ll.var(dim=(-2, -1), keepdim=True, unbiased=False) + self.eps).sqrt()
            lam = self.ll_mix
            mu_t = lam * mu[src] + (1 - lam) * mu
            sd_t = lam * sd[src] + (1 - lam) * sd
            ll_new = (ll - mu) / sd * sd_t + mu_t
            new_highs: Highs = []
            for band in highs:
                if self.high_swap:  # src is the sample itself where no donor was drawn
                    band = (band[0][src], band[1][src], band[2][src])
                jit = 1 + self.high_jitter * (2 * torch.rand(b, 3, generator=generator) - 1)
                jit = torch.where(sel[:, None], jit, torch.ones_like(jit)).to(dev, x.dtype)
                scaled = tuple(t * jit[:, k, None, None, None] for k, t in enumerate(band))
                new_highs.append((scaled[0], scaled[1], scaled[2]))
            rec = self.reconstruct(ll_new, new_highs, (x.shape[-2], x.shape[-1]))
            keep = sel.to(dev)[:, None, None, None]
            out[name] = torch.where(keep, rec, x)  # unselected samples: exactly the input
        return MWDisOutput(images=out, donor=donor, donors=donors)

    def forward(
        self,
        images: dict[str, torch.Tensor],
        domain: torch.Tensor | None = None,
        *,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Resampled images (see :meth:`resample`); identity in eval mode."""
        return self.resample(images, domain, labels=labels, generator=generator).images

    @classmethod
    def for_spec(cls, spec: DataSpec, *, field: str = "mwdis_same_domain_fallback", **kwargs: Any) -> MWDis:
        """MWDis for a dataset: source-domain count and patch size (for the level check) from its spec.

        Args:
            spec: the data spec the model is built from.
            field: the model's key for ``same_domain_fallback``, named in the error.
            **kwargs: every other constructor argument.

        Raises:
            ConfigError: one source domain without ``same_domain_fallback``: no sample would ever find a donor,
                so the model would pay for a resampling that never happens.
        """
        if len(spec.source_domains) <= 1 and not kwargs.get("same_domain_fallback", False):
            raise ConfigError(
                "MWDis with one source domain finds no donor from another domain, so it would never resample",
                field=field, expected="true with a single source domain",
                found=f"false, source domains {list(spec.source_domains)}",
                fix=f"set {field}: true (donors from the same scene), add a source domain, or switch MWDis off "
                "(FVMGN, SceneFVMGN: mwdis.enabled: false; ConcatCNN: mwdis_p: 0)",
            )  # fmt: skip
        return cls(num_source_domains=max(1, len(spec.source_domains)), patch_size=spec.patch_size, **kwargs)

    def extra_repr(self) -> str:
        """Settings shown by ``print(module)``."""
        return (
            f"wavelet={self.wavelet!r}, levels={self.levels}, p={self.p}, ll_mix={self.ll_mix}, "
            f"high_jitter={self.high_jitter}, high_swap={self.high_swap}, donors={self.donors!r}, "
            f"num_source_domains={self.num_source_domains}, "
            f"same_domain_fallback={self.same_domain_fallback}, donor_class={self.donor_class!r}, "
            f"mode={self.mode!r}"
        )
