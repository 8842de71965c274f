"""The contract between models and tasks.

A model is a plain ``nn.Module`` built from a :class:`~rsmg.data.spec.DataSpec` plus its own hyperparameters
(``Model(spec, **kwargs)``), so the CLI can inject it with ``class_path`` and link the spec from the data.
``forward`` takes the batch dict (``image_<modality>`` tensors, optional ``text`` list, and during training
``label`` / ``domain``) and returns a :class:`ModelOutput`. Training-only terms (alignment, invariance) are
returned in ``aux_losses`` already *unweighted*; the task applies the weights from the config, so one
place decides the total loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from rsmg.data.spec import IMAGE_PREFIX, DataSpec


@dataclass
class ModelOutput:
    """What every rsmg model returns.

    Attributes:
        logits: ``B×num_classes`` class scores.
        aux_losses: unweighted auxiliary losses (training only), e.g. ``{"align": ..., "invariance": ...}``.
        embeddings: named ``B×D`` embeddings for export and figures (e.g. ``"fused"``, ``"lidar"``).
        attention: optional attention maps for figures.
    """

    logits: torch.Tensor
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    embeddings: dict[str, torch.Tensor] = field(default_factory=dict)
    attention: dict[str, torch.Tensor] = field(default_factory=dict)


class RsmgModel(nn.Module):
    """Base class: stores the spec and gives helpers to read a batch.

    Args:
        spec: what the data looks like (classes, modalities and channel counts, domains).
    """

    def __init__(self, spec: DataSpec) -> None:
        super().__init__()
        self.spec = spec

    @staticmethod
    def images(batch: dict[str, object]) -> dict[str, torch.Tensor]:
        """The ``image_<modality>`` tensors of a batch, keyed by modality name, in sorted order."""
        return {
            k[len(IMAGE_PREFIX) :]: v  # type: ignore[misc]
            for k, v in sorted(batch.items())
            if k.startswith(IMAGE_PREFIX)
        }

    def forward(self, batch: dict[str, object]) -> ModelOutput:  # pragma: no cover - abstract
        """Classify a batch; see the module docstring for the contract."""
        raise NotImplementedError
