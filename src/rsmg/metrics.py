"""OA / AA / Kappa / per-class accuracy from one confusion matrix per domain.

All metrics of a domain derive from a single ``MulticlassConfusionMatrix`` (a torchmetrics object, so it is
summed across DDP ranks exactly): OA is micro accuracy, AA the mean recall over classes *present* in that
domain's ground truth (a class absent from a target scene is not counted as 0 % — the remote-sensing habit),
Kappa is Cohen's kappa. Using one object per domain avoids the shared-state trap of several test loaders.
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.classification import MulticlassConfusionMatrix


def metrics_from_confusion(cm: torch.Tensor) -> dict[str, float | list[float]]:
    """OA, AA, Kappa and per-class accuracy (NaN for classes absent from the truth) from a confusion matrix.

    Args:
        cm: ``K×K`` counts, rows = truth, columns = prediction.
    """
    cm = cm.to(torch.float64)
    n = cm.sum()
    support = cm.sum(dim=1)
    correct = cm.diag()
    if n == 0:
        nan = float("nan")
        return {"oa": nan, "aa": nan, "kappa": nan, "per_class": [nan] * cm.shape[0], "n": 0}
    oa = correct.sum() / n
    per_class = torch.where(
        support > 0, correct / support.clamp(min=1), torch.full_like(support, float("nan"))
    )
    aa = per_class[support > 0].mean()
    pe = (support * cm.sum(dim=0)).sum() / (n * n)
    kappa = (oa - pe) / (1 - pe) if pe < 1 else torch.tensor(1.0, dtype=torch.float64)
    return {
        "oa": float(oa),
        "aa": float(aa),
        "kappa": float(kappa),
        "per_class": [float(x) for x in per_class],
        "n": int(n),
    }


class DomainMetrics(nn.Module):
    """One confusion-matrix metric per named domain."""

    def __init__(self, domains: tuple[str, ...] | list[str], num_classes: int) -> None:
        super().__init__()
        self.domains = list(domains)
        self.cms = nn.ModuleList([MulticlassConfusionMatrix(num_classes=num_classes) for _ in self.domains])

    def update(self, domain_idx: int, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add predicted class indices (or scores) of a batch of one domain."""
        if preds.ndim == 2:
            preds = preds.argmax(dim=1)
        self._cm(domain_idx).update(preds, target)

    def compute(self) -> dict[str, dict[str, object]]:
        """Metrics of every domain that received samples (synchronised across ranks)."""
        out: dict[str, dict[str, object]] = {}
        for i, name in enumerate(self.domains):
            m = self._cm(i)
            if m.update_count == 0 and not torch.distributed.is_initialized():
                continue
            cm = m.compute()  # a collective under DDP: every rank computes every domain, in the same order
            if int(cm.sum()) == 0:  # no sample of this domain on any rank (e.g. a source domain at test time)
                continue
            res: dict[str, object] = dict(metrics_from_confusion(cm))
            res["confusion"] = cm.cpu().tolist()
            out[name] = res
        return out

    def reset(self) -> None:
        """Clear every domain."""
        for i in range(len(self.domains)):
            self._cm(i).reset()

    def _cm(self, i: int) -> MulticlassConfusionMatrix:
        m = self.cms[i]
        assert isinstance(m, MulticlassConfusionMatrix)
        return m
