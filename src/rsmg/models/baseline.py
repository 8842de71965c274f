"""The concatenation baseline: one small CNN per modality, features concatenated, a linear head.

This is the reference every fusion model is compared with (FVMGN's "concat CNN" baseline): it uses the same
patches, the same normalisation and the same protocol, and adds nothing for generalisation.
"""

from __future__ import annotations

import torch
from torch import nn

from rsmg.data.spec import DataSpec
from rsmg.models.base import ModelOutput, RsmgModel
from rsmg.models.registry import register_model


def conv_encoder(in_channels: int, width: int, depth: int = 2) -> nn.Sequential:
    """Conv-BN-ReLU blocks followed by global average pooling (any input size, ≥1×1)."""
    layers: list[nn.Module] = []
    c = in_channels
    for i in range(depth):
        out = width * (2 if i == depth - 1 and depth > 1 else 1)
        layers += [nn.Conv2d(c, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
        c = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


@register_model("concat_cnn")
class ConcatCNN(RsmgModel):
    """Per-modality CNN encoders + concatenation + linear head.

    Args:
        spec: data spec (modalities with channel counts, classes).
        width: channels of the first conv of each encoder (the last has twice as many).
        depth: conv blocks per encoder.
        dropout: dropout before the head.
    """

    def __init__(self, spec: DataSpec, width: int = 32, depth: int = 2, dropout: float = 0.1) -> None:
        super().__init__(spec)
        self.encoders = nn.ModuleDict(
            {m: conv_encoder(c, width, depth) for m, c in sorted(spec.modalities.items())}
        )
        feat = 2 * width if depth > 1 else width
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feat * len(self.encoders), spec.num_classes))

    def forward(self, batch: dict[str, object]) -> ModelOutput:
        """Encode each modality, concatenate, classify."""
        images = self.images(batch)
        feats = {m: enc(images[m]) for m, enc in self.encoders.items()}
        fused = torch.cat([feats[m] for m in self.encoders], dim=1)
        return ModelOutput(logits=self.head(fused), embeddings={"fused": fused, **feats})
