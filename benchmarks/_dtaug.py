"""What the DTAug benchmarks share: the TTA overlay of a re-test and the prior's logged losses.

``dtaug_accuracy.py`` (LiDAR) and ``scene_dtaug.py`` (scenes) once kept a copy each; the LiDAR one did not quote
the prior's path in the YAML it wrote.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path


def tta_overlay(path: Path, prior: Path, views: int, steps: int, strength: float) -> Path:
    """Write the YAML piece that adds ``DiffusionTTA`` (mean of probabilities, seed 0) to ``rsmg test``."""
    path.write_text(
        "trainer:\n  callbacks+:\n    - class_path: rsmg.callbacks.diffusion_tta.DiffusionTTA\n"
        f"      init_args: {{prior_path: {json.dumps(str(prior))}, strength: {strength}, steps: {steps}, "
        f"views: {views}, seed: 0, aggregate: mean_prob}}\n"
    )
    return path


def prior_losses(run: Path) -> str:
    """The prior's first and last logged training loss and its last source-validation loss (CSV logger)."""
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    train = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    val = [float(r["val/loss"]) for r in rows if r.get("val/loss")]
    if not train:
        return "no loss logged"
    return f"training loss {train[0]:.4f} → {train[-1]:.4f}" + (
        f", source-validation loss {val[-1]:.4f}" if val else ""
    )
