"""MSFFA: multiscale spatial-frequency feature alignment (FVMGN, Zhang et al. AAAI-26, component 5).

FVMGN aligns text features and vision features of several scales, in the spatial and in the frequency domain,
in one semantic space. The loss and head are not public; rsmg's reading (``docs/decisions.md#msffa``):

* **Projections** — one linear projection per pooled SFIE feature (modality, scale, spatial/frequency) into
  the joint space of size ``embed_dim``; one shared projection for the class texts (one text encoder).
* **Targets** — per modality, the *shared* class texts and that modality's *proprietary* texts
  (``texts="both"``: mean of the two losses; ``"shared"`` / ``"proprietary"``: the ablations).
* **Loss** — symmetric class InfoNCE, CLIP-style (text → image counts every image of the class as a positive),
  averaged over all terms; ``loss="kl"``: KL to the softmax of the frozen tower's text-text similarities.
* **Temperature** — one learnable ``logit_scale`` shared by the loss and the classifier; as in CLIP the
  *parameter* is clamped (:meth:`MSFFA.clamp_logit_scale_`), not its exponential, so it keeps a gradient.
* **Classifier** — ``logit_scale · cos(fused image embedding, class prototype)``; a prototype is the
  normalised sum of the projected shared text and the mean projected proprietary text (or one of them).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from rsmg.errors import ConfigError, check_choice
from rsmg.models.sfie import SFIEOutput
from rsmg.text.class_texts import ClassTextEmbeddings

TextsKind = Literal["both", "shared", "proprietary"]


def symmetric_class_infonce(
    image: torch.Tensor, text: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE between images and class-text embeddings.

    Args:
        image: ``B×E`` L2-normalised image embeddings.
        text: ``K×E`` L2-normalised class-text embeddings.
        labels: ``B`` class indices.
        scale: the (positive) logit scale.

    Returns:
        Scalar ``(image→text + text→image) / 2``. Image→text: cross-entropy over classes. Text→image: for each
        class present in the batch, the mean over its images of the log-softmax across the batch's images.
    """
    sim = (scale * image @ text.t()).float()  # B×K; float32 also under CPU autocast (bf16 counts stop at 256)
    i2t = F.cross_entropy(sim, labels)
    present = torch.unique(labels)
    t_sim = sim.t()[present]  # U×B: each present class against every image of the batch
    pos = (labels[None, :] == present[:, None]).float()  # U×B
    logp = t_sim.log_softmax(dim=1)
    t2i = -((logp * pos).sum(1) / pos.sum(1)).mean()
    return 0.5 * (i2t + t2i)


def domain_class_infonce(
    image: torch.Tensor, texts: torch.Tensor, domain: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor | None:
    """Symmetric InfoNCE of every sample against its *own domain's* class texts.

    The per-domain counterpart of :func:`symmetric_class_infonce` (scene datasets: one text per class and
    dataset): the batch is split by domain, each part is aligned with its domain's ``K×E`` texts, and the
    parts' losses are averaged weighted by their sizes. Samples whose domain has no texts (``domain >= D``,
    e.g. a target sample) are left out.

    Args:
        image: ``B×E`` L2-normalised image embeddings.
        texts: ``D×K×E`` L2-normalised class-text embeddings of ``D`` domains.
        domain: ``B`` domain indices (``0..D-1`` have texts).
        labels: ``B`` class indices.
        scale: the (positive) logit scale.

    Returns:
        The scalar loss, or ``None`` when no sample has a domain with texts.
    """
    terms, sizes = [], []
    for d in torch.unique(domain).tolist():
        if not 0 <= d < texts.shape[0]:
            continue
        sel = domain == d
        terms.append(symmetric_class_infonce(image[sel], texts[d], labels[sel], scale))
        sizes.append(sel.sum())
    if not terms:
        return None
    w = torch.stack(sizes).to(terms[0].dtype)
    return (torch.stack(terms) * w).sum() / w.sum()


class MSFFA(nn.Module):
    """Multiscale spatial-frequency feature alignment and the text-prototype classifier.

    Args:
        modalities: vision modalities (SFIE branches).
        feature_dims: SFIE feature width per scale (finest first).
        fused_dim: width of SFIE's fused embedding.
        text_dim: width of the text tower.
        embed_dim: size of the joint image-text space.
        use_frequency: align the frequency features too (False: spatial only).
        multiscale: align every scale (False: only the last, coarsest one).
        texts: which class texts are targets and prototypes.
        temperature_init: initial temperature (CLIP: 0.07).
        max_logit_scale: clamp of the exponentiated logit scale (CLIP: 100).
        loss: ``"infonce"`` (symmetric class InfoNCE) or ``"kl"`` (KL to text-similarity targets).
        kl_target_temperature: temperature of the text-similarity targets of ``loss="kl"``.
    """

    def __init__(
        self,
        modalities: list[str],
        feature_dims: list[int],
        fused_dim: int,
        text_dim: int,
        *,
        embed_dim: int = 256,
        use_frequency: bool = True,
        multiscale: bool = True,
        texts: TextsKind = "both",
        temperature_init: float = 0.07,
        max_logit_scale: float = 100.0,
        loss: Literal["infonce", "kl"] = "infonce",
        kl_target_temperature: float = 0.05,
    ) -> None:
        super().__init__()
        if texts not in ("both", "shared", "proprietary"):
            raise ConfigError(
                "unknown texts option for MSFFA", field="text.use",
                expected="'both', 'shared' or 'proprietary'", found=texts, fix="use 'both'",
            )  # fmt: skip
        if not 0 < temperature_init < 1:
            raise ConfigError(
                "temperature_init out of range", field="alignment.temperature_init", expected="(0, 1)",
                found=temperature_init, fix="use 0.07 (CLIP's value)",
            )  # fmt: skip
        check_choice("alignment loss", loss, ("infonce", "kl"), field="alignment.loss")
        if not kl_target_temperature > 0:
            raise ConfigError(
                "kl_target_temperature must be positive", field="alignment.kl_target_temperature",
                expected="> 0",
                found=kl_target_temperature, fix="use 0.05",
            )  # fmt: skip
        self.loss_kind = loss
        self.kl_target_temperature = float(kl_target_temperature)
        self.modalities = list(modalities)
        self.use_frequency = use_frequency
        self.texts = texts
        self.scales = list(range(len(feature_dims))) if multiscale else [len(feature_dims) - 1]
        kinds = ["spatial", "frequency"] if use_frequency else ["spatial"]
        self.keys = [(m, s, k) for m in self.modalities for s in self.scales for k in kinds]
        self.image_proj = nn.ModuleDict(
            {f"{m}__s{s}__{k}": nn.Linear(feature_dims[s], embed_dim) for m, s, k in self.keys}
        )
        self.fused_proj = nn.Linear(fused_dim, embed_dim)
        self.text_proj = nn.Linear(text_dim, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature_init)))
        self.max_logit_scale = float(max_logit_scale)

    def scale(self) -> torch.Tensor:
        """The exponentiated, clamped logit scale (inverse temperature)."""
        if self.training:
            # the parameter itself is kept in range by clamp_logit_scale_, so the gradient always flows
            return self.logit_scale.exp()
        return self.logit_scale.clamp(0.0, math.log(self.max_logit_scale)).exp()

    @torch.no_grad()
    def clamp_logit_scale_(self) -> None:
        """Clamp the logit-scale parameter into ``[0, ln max_logit_scale]`` in place (CLIP's habit).

        Call it before a training forward (after the previous optimizer step), never inside one: the in-place
        write would invalidate a graph that already used the parameter.
        """
        self.logit_scale.clamp_(0.0, math.log(self.max_logit_scale))

    def text_targets(self, emb: ClassTextEmbeddings) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Project and normalise class-text embeddings: ``(shared K×E, {modality: K×E})``."""
        shared = F.normalize(self.text_proj(emb.shared), dim=-1)
        if self.texts == "shared":  # nothing reads proprietary texts: a model may then have none
            return shared, {}
        prop = {m: F.normalize(self.text_proj(emb.proprietary[m]), dim=-1) for m in self.modalities}
        return shared, prop

    def prototypes(self, shared: torch.Tensor, prop: dict[str, torch.Tensor]) -> torch.Tensor:
        """Class prototypes ``K×E`` for the classifier (see the module docstring)."""
        if self.texts == "shared":
            return shared
        p_mean = torch.stack([prop[m] for m in self.modalities]).mean(0)
        if self.texts == "proprietary":
            return F.normalize(p_mean, dim=-1)
        return F.normalize(shared + p_mean, dim=-1)

    def embed_fused(self, fused: torch.Tensor) -> torch.Tensor:
        """Normalised projection of SFIE's fused embedding into the joint space."""
        return F.normalize(self.fused_proj(fused), dim=-1)

    def logits(self, fused: torch.Tensor, emb: ClassTextEmbeddings) -> torch.Tensor:
        """Class logits ``B×K``: scaled cosine between the fused image embedding and the class prototypes."""
        shared, prop = self.text_targets(emb)
        return self.scale() * self.embed_fused(fused) @ self.prototypes(shared, prop).t()

    def soft_targets(self, text: torch.Tensor) -> torch.Tensor:
        """``K×K`` rows of class-similarity targets from frozen text features (``loss="kl"``), detached."""
        t = F.normalize(text.detach().float(), dim=-1)
        return (t @ t.t() / self.kl_target_temperature).softmax(dim=-1)

    def image_embeddings(self, out: SFIEOutput) -> dict[tuple[str, int, str], torch.Tensor]:
        """Normalised projections of every aligned feature, keyed by (modality, scale, spatial/frequency)."""
        emb = {}
        for m, s, k in self.keys:
            feat = out.spatial[m][s] if k == "spatial" else out.frequency[m][s]
            emb[(m, s, k)] = F.normalize(self.image_proj[f"{m}__s{s}__{k}"](feat), dim=-1)
        return emb

    def loss(self, out: SFIEOutput, labels: torch.Tensor, emb: ClassTextEmbeddings) -> torch.Tensor:
        """Alignment loss: mean over modalities, scales, spatial/frequency and text groups (see ``loss``)."""
        shared, prop = self.text_targets(emb)
        scale = self.scale()
        kl = self.loss_kind == "kl"
        # per modality: (projected class texts, KL targets of the batch's labels or None); the targets depend
        # only on the text group, so they are computed once here, not once per scale and kind
        shared_target = self.soft_targets(emb.shared)[labels] if kl and self.texts != "proprietary" else None
        groups: dict[str, list[tuple[torch.Tensor, torch.Tensor | None]]] = {m: [] for m in self.modalities}
        for m in self.modalities:
            if self.texts in ("both", "shared"):
                groups[m].append((shared, shared_target))
            if self.texts in ("both", "proprietary"):
                groups[m].append((prop[m], self.soft_targets(emb.proprietary[m])[labels] if kl else None))
        terms = []
        for (m, _s, _k), v in self.image_embeddings(out).items():
            for text, target in groups[m]:
                if target is not None:
                    logp = (scale * v @ text.t()).float().log_softmax(dim=-1)
                    terms.append(F.kl_div(logp, target, reduction="batchmean"))
                else:
                    terms.append(symmetric_class_infonce(v, text, labels, scale))
        return torch.stack(terms).mean()
