"""MixStyle (Zhou, Yang, Qiao, Xiang, "Domain generalization with MixStyle", ICLR 2021), between backbone stages.

The established style-mixing DG baseline: in training, with probability ``p`` per batch, every sample's
feature-map channel statistics (mean and standard deviation over the spatial positions, detached) are replaced
by a convex mix of its own and a partner's, ``λ ~ Beta(α, α)`` per sample (α = 0.1, so λ is mostly near 0 or
1), after the early stages of the backbone, where the statistics carry "style" (texture, colour, contrast)
rather than content. ``mix="crossdomain"`` draws each partner from another source domain of the batch, the
rule MWDis uses for its donors (:func:`rsmg.models.wavelet.pick_other_domain`; any other sample when the batch
holds one domain). The paper's crossdomain mode assumed batches made of two single-domain halves; rsmg's
batches are random mixtures with domain labels, so the labels decide. ``mix="random"`` is the paper's random
shuffle. Identity in eval mode.

:func:`attach_mixstyle` inserts it after named stages of an
:class:`~rsmg.models.image_encoders.ImageTokenEncoder` with forward hooks (one module, applied at each
position, each time drawing its own ``p`` decision), so the timm backbone's own forward is kept.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Literal

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from rsmg.errors import ConfigError, check_choice
from rsmg.models.image_encoders import ImageTokenEncoder
from rsmg.models.wavelet import pick_other_domain

MixKind = Literal["crossdomain", "random"]


class MixStyle(nn.Module):
    """Mix channel statistics of feature maps between samples (see the module docstring).

    Args:
        p: probability that a training batch is mixed (paper: 0.5).
        alpha: parameter of the Beta(α, α) mixing weight (paper: 0.1).
        mix: ``"crossdomain"`` (partners from other source domains) or ``"random"`` (a random shuffle).
        num_source_domains: domains ``0..n-1`` of the batch's ``domain`` are sources (``DataSpec`` order).
        eps: added to the variance.
    """

    def __init__(
        self,
        p: float = 0.5,
        alpha: float = 0.1,
        mix: MixKind = "crossdomain",
        num_source_domains: int = 1,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if not 0 <= p <= 1 or not alpha > 0:
            raise ConfigError(
                "MixStyle probability or Beta parameter out of range",
                field="mixstyle_p / mixstyle_alpha",
                expected="0 <= p <= 1 and alpha > 0",
                found=f"p={p}, alpha={alpha}",
                fix="use the paper's p = 0.5, alpha = 0.1",
            )
        check_choice("MixStyle mixing", mix, ("crossdomain", "random"), field="mixstyle_mix")
        self.p = float(p)
        self.alpha = float(alpha)
        self.mix = mix
        self.num_source_domains = max(1, int(num_source_domains))
        self.eps = float(eps)
        self._domain: torch.Tensor | None = None

    @contextlib.contextmanager
    def batch_domains(self, domain: object) -> Iterator[None]:
        """Within the block, hooked applications use these domain labels (``None``: no labels)."""
        self._domain = domain if isinstance(domain, torch.Tensor) else None
        try:
            yield
        finally:
            self._domain = None

    def partners(self, b: int, domain: torch.Tensor | None) -> torch.Tensor:
        """Index of each sample's partner (``B`` long, CPU); itself where none exists."""
        if self.mix == "random" or domain is None:
            return torch.randperm(b)
        d = domain.detach().to("cpu", torch.long).reshape(-1)
        u = torch.rand(b, dtype=torch.float64)
        partner = pick_other_domain(
            d, torch.ones(b, dtype=torch.bool), u,
            num_source_domains=self.num_source_domains, same_domain_fallback=True,
        )  # fmt: skip
        return torch.where(partner >= 0, partner, torch.arange(b))

    def forward(self, x: torch.Tensor, domain: torch.Tensor | None = None) -> torch.Tensor:
        """Mix the statistics of a ``B×C×H×W`` map (training, with probability ``p``); else return ``x``."""
        if not self.training or x.shape[0] < 2 or float(torch.rand(())) >= self.p:
            return x
        b = x.shape[0]
        mu = x.mean(dim=(2, 3), keepdim=True).detach()
        sig = (x.var(dim=(2, 3), keepdim=True) + self.eps).sqrt().detach()
        lam = torch.distributions.Beta(self.alpha, self.alpha).sample((b, 1, 1, 1)).to(x.device, x.dtype)
        perm = self.partners(b, domain if domain is not None else self._domain).to(x.device)
        mu_mix = lam * mu + (1 - lam) * mu[perm]
        sig_mix = lam * sig + (1 - lam) * sig[perm]
        return (x - mu) / sig * sig_mix + mu_mix

    def extra_repr(self) -> str:
        """Settings shown by ``print(module)``."""
        return (
            f"p={self.p}, alpha={self.alpha}, mix={self.mix!r}, num_source_domains={self.num_source_domains}"
        )


def stage_modules(encoder: ImageTokenEncoder, reductions: Sequence[int]) -> list[str]:
    """Names of the backbone modules that end each stride (timm ``feature_info``: the last stage at it).

    Raises:
        ConfigError: a stride the backbone does not have.
    """
    info = list(encoder.backbone.feature_info)  # type: ignore[arg-type]
    by_reduction = {int(e["reduction"]): str(e["module"]) for e in info}  # the last one wins
    missing = [r for r in reductions if r not in by_reduction]
    if missing:
        raise ConfigError(
            f"the {encoder.name!r} encoder has no stage at stride {missing}",
            field="mixstyle_after",
            expected=f"strides among {sorted(by_reduction)}",
            found=list(reductions),
            fix="use e.g. [4, 8, 16]: after the stages ending at strides 4, 8 and 16 (ResNet's res1-3)",
        )
    return [by_reduction[r] for r in reductions]


def attach_mixstyle(
    encoder: ImageTokenEncoder, mixstyle: MixStyle, reductions: Sequence[int]
) -> list[RemovableHandle]:
    """Apply ``mixstyle`` to the output of the stages ending at ``reductions`` (forward hooks).

    Returns:
        The hook handles (``handle.remove()`` detaches).
    """
    handles = []
    for name in stage_modules(encoder, reductions):
        module = encoder.backbone.get_submodule(name)

        def hook(_m: nn.Module, _inp: object, out: torch.Tensor) -> torch.Tensor:
            return mixstyle(out)

        handles.append(module.register_forward_hook(hook))
    return handles
