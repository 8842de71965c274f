"""The concatenation baseline: one small CNN per modality, features concatenated, a linear head.

This is the reference every fusion model is compared with (FVMGN's "concat CNN" baseline): it uses the same
patches, the same normalisation and the same protocol, and adds nothing for generalisation. With ``mwdis_p > 0``
it also serves as the ablation "FVMGN's MWDis on a plain CNN", which separates what the augmentation does from
what SFIE, the frequency pathway and the class texts do.
"""

from __future__ import annotations

import torch
from torch import nn

from rsmg.data.spec import DataSpec
from rsmg.models.base import ModelOutput, RsmgModel
from rsmg.models.registry import register_model
from rsmg.models.wavelet import MWDis, check_wavelet


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
        mwdis_p: probability that a training sample is resampled by MWDis (:class:`~rsmg.models.wavelet.MWDis`:
            its wavelet LL channel statistics swapped with a donor's from another source domain, detail bands
            rescaled); 0 (default) is the plain baseline. Unlike FVMGN, which encodes the original and the
            resampled view and ties them with an invariance term, the CNN sees only the resampled batch (a pure
            input augmentation, MixStyle's habit, at the cost of one view), so the comparison isolates the
            augmentation itself. Identity in eval mode.
        mwdis_same_domain_fallback: let MWDis take donors from the same domain when the batch has no other
            source domain (needed with a single source scene, as in FVMGN's configs).
        mwdis_wavelet: MWDis's wavelet (ptwt/pywt name).
        mwdis_levels: MWDis's decomposition levels.
    """

    def __init__(
        self,
        spec: DataSpec,
        width: int = 32,
        depth: int = 2,
        dropout: float = 0.1,
        mwdis_p: float = 0.0,
        mwdis_same_domain_fallback: bool = False,
        mwdis_wavelet: str = "haar",
        mwdis_levels: int = 1,
    ) -> None:
        super().__init__(spec)
        self.encoders = nn.ModuleDict(
            {m: conv_encoder(c, width, depth) for m, c in sorted(spec.modalities.items())}
        )
        feat = 2 * width if depth > 1 else width
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feat * len(self.encoders), spec.num_classes))
        self.mwdis: MWDis | None = None
        if mwdis_p > 0:
            check_wavelet(mwdis_wavelet, mwdis_levels, spec.patch_size, field="mwdis_levels")
            self.mwdis = MWDis.for_spec(
                spec,
                wavelet=mwdis_wavelet,
                levels=mwdis_levels,
                p=mwdis_p,
                same_domain_fallback=mwdis_same_domain_fallback,
            )

    def forward(self, batch: dict[str, object]) -> ModelOutput:
        """Encode each modality (MWDis-resampled in training when enabled), concatenate, classify."""
        images = self.images(batch)
        if self.training and self.mwdis is not None:
            domain = batch.get("domain")
            images = self.mwdis(images, domain if isinstance(domain, torch.Tensor) else None)
        feats = {m: enc(images[m]) for m, enc in self.encoders.items()}
        fused = torch.cat([feats[m] for m in self.encoders], dim=1)
        return ModelOutput(logits=self.head(fused), embeddings={"fused": fused, **feats})
