"""Generalised zero-shot scoring with calibrated stacking (Chao et al., ECCV 2016), γ chosen on source data only.

A model trained on the seen classes scores them higher than the held-out (unseen) ones, so predicting among all
classes almost never names an unseen class. Calibrated stacking subtracts a constant γ from every seen-class
score before the argmax. γ is set here by a rule that reads **only source validation logits** (every validation
image is of a seen class) and no label at all: γ is the largest shift that sends at most a share ``unseen_rate``
of the validation images to an unseen class — the operating point OOD detection fixes at 95 % of in-distribution
images kept (docs/decisions.md#gzsl-calibration). Test labels are used only to score the predictions.

Seen / unseen accuracy are pooled over the test images of each group (correct / images), as in
``benchmarks/ucm_captions.py``; H is their harmonic mean.
"""

from __future__ import annotations

import math

import torch

from rsmg.errors import ConfigError

__all__ = ["calibrated_predictions", "calibration_gamma", "gzsl_accuracy", "stacking_margins"]


def _check(logits: torch.Tensor, seen: torch.Tensor) -> None:
    if logits.ndim != 2 or seen.shape != (logits.shape[1],) or seen.dtype != torch.bool:
        raise ValueError(f"logits N×K and a K-long bool seen mask expected, got {logits.shape}, {seen.shape}")
    if not seen.any() or seen.all():
        raise ConfigError(
            "calibrated stacking needs seen and unseen classes",
            field="data.held_out_classes",
            expected="some classes held out, not all",
            found=f"{int(seen.sum())} seen of {seen.numel()}",
            fix="hold out at least one class (data.init_args.held_out_classes) and keep one seen",
        )


def stacking_margins(logits: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Best seen-class score minus best unseen-class score, per sample: > γ keeps a seen class after calibration."""
    _check(logits, seen)
    x = logits.float()
    return x[:, seen].max(dim=1).values - x[:, ~seen].max(dim=1).values


def calibration_gamma(val_logits: torch.Tensor, seen: torch.Tensor, unseen_rate: float) -> float:
    """γ from source validation logits alone: at most ``unseen_rate`` of them get an unseen class.

    With margins m sorted ascending and k = ⌊rate · n⌋, γ = m_(k) (0-based): exactly the images with m < γ switch
    to an unseen class, and there are at most k of them. ``unseen_rate = 0`` gives the smallest margin (no
    validation image switches). No label is an argument: γ cannot depend on one.
    """
    if not 0.0 <= unseen_rate < 1.0:
        raise ConfigError(
            "unseen rate out of range", field="unseen_rate", expected="0 <= rate < 1", found=unseen_rate,
            fix="use e.g. 0.05: 5 % of seen-class validation images may be sent to an unseen class",
        )  # fmt: skip
    m = stacking_margins(val_logits, seen)
    if m.numel() == 0:
        raise ConfigError(
            "no validation image to choose γ on", field="data", expected="source validation images",
            found="an empty validation set", fix="check data.val_fraction (or the Karpathy split's val images)",
        )  # fmt: skip
    k = math.floor(unseen_rate * m.numel())
    return float(m.sort().values[k])


def calibrated_predictions(logits: torch.Tensor, seen: torch.Tensor, gamma: float) -> torch.Tensor:
    """Argmax after subtracting γ from the seen-class scores (a tie keeps the seen class)."""
    m = stacking_margins(logits, seen)
    ids = torch.arange(seen.numel(), device=logits.device)
    x = logits.float()
    best_seen = ids[seen][x[:, seen].argmax(dim=1)]
    best_unseen = ids[~seen][x[:, ~seen].argmax(dim=1)]
    return torch.where(m < gamma, best_unseen, best_seen)


def gzsl_accuracy(pred: torch.Tensor, labels: torch.Tensor, seen: torch.Tensor) -> dict[str, float]:
    """Seen and unseen accuracy (%) over the test images of each group, and their harmonic mean H."""
    right = pred == labels
    is_seen = seen.to(labels.device)[labels]
    s = float(right[is_seen].float().mean() * 100) if is_seen.any() else float("nan")
    u = float(right[~is_seen].float().mean() * 100) if (~is_seen).any() else float("nan")
    h = 2 * s * u / (s + u) if s + u > 0 else 0.0
    return {"seen": s, "unseen": u, "H": h, "n_seen": int(is_seen.sum()), "n_unseen": int((~is_seen).sum())}
