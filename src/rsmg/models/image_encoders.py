"""Image encoders that return token features, for fusion with text tokens.

The dual cross-attention model of Cai et al. (arXiv 2412.02531, ``docs/papers.md`` §2) attends from caption
tokens to *image tokens* (the ViT-B/16 last hidden states, 197×768), so every encoder here returns ``B×N×D``
tokens rather than one pooled vector: ViTs return their last hidden states (prefix/CLS token first, after the
final norm), CNNs return their last feature map flattened to ``h·w`` tokens. The pooled view is the fusion's
or the classifier's job.

Encoders are built by name from a small registry (``create_image_encoder``), the timm way. Weights come either
from nothing (random init, the default: nothing touches the network) or from a *local* checkpoint file, so a
run is reproducible offline. A checkpoint made for RGB still loads when ``in_chans`` differs: its stem is
adapted with timm's ``adapt_input_conv`` (channels repeated and rescaled), which is how the same code serves
MSI/SAR inputs.

Normalisation is *not* done here (the datamodule owns statistics), but each encoder exposes the mean/std its
weights were trained with as :attr:`ImageTokenEncoder.default_mean` / ``default_std``. The reference code fed
its ImageNet-21k ViT with CLIP statistics; reading them from the encoder is how rsmg avoids that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn

from rsmg.errors import ConfigError, require_file, unknown_name_error

__all__ = [
    "IMAGE_ENCODERS",
    "ImageEncoderConfig",
    "ImageTokenEncoder",
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
    """

    timm_name: str
    kind: str
    kwargs: tuple[tuple[str, object], ...] = ()
    description: str = ""


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
        "resnet18", "cnn", description="ResNet-18, 512-wide tokens (7×7 at 224 px)"
    ),
    "resnet50": ImageEncoderConfig(
        "resnet50", "cnn", description="ResNet-50, 2048-wide tokens (7×7 at 224 px)"
    ),
    "resnet_test": ImageEncoderConfig("test_resnet", "cnn", description="timm's test ResNet for unit tests"),
}
# Aliases accepted by create_image_encoder: the timm names themselves.
_ALIASES: dict[str, str] = {cfg.timm_name: name for name, cfg in IMAGE_ENCODERS.items()}


def list_image_encoders() -> dict[str, str]:
    """Return registry name → one-line description (for CLI help and error messages)."""
    return {name: cfg.description for name, cfg in IMAGE_ENCODERS.items()}


class ImageTokenEncoder(nn.Module):
    """Wrap a timm backbone so that ``forward`` returns ``B×N×D`` token features.

    Args:
        backbone: a timm model built with ``num_classes=0``.
        kind: ``"vit"`` or ``"cnn"`` (see :class:`ImageEncoderConfig`).
        name: registry name, kept for checkpoints and error messages.

    Attributes:
        width: token width ``D``.
        num_prefix_tokens: how many leading tokens are not patches (1 for a CLS-token ViT, 0 for a CNN); a
            classifier that wants the CLS token reads ``tokens[:, 0]``.
        default_mean, default_std: normalisation statistics the architecture's weights expect (from timm's
            ``pretrained_cfg``); the datamodule should use them when it uses pretrained weights.
    """

    def __init__(self, backbone: nn.Module, kind: str, name: str) -> None:
        super().__init__()
        self.backbone = backbone
        self.kind = kind
        self.name = name
        self.width: int = int(backbone.num_features)  # type: ignore[arg-type]
        self.num_prefix_tokens: int = int(getattr(backbone, "num_prefix_tokens", 0)) if kind == "vit" else 0
        cfg = getattr(backbone, "pretrained_cfg", {}) or {}
        self.default_mean: tuple[float, ...] = tuple(cfg.get("mean", (0.485, 0.456, 0.406)))
        self.default_std: tuple[float, ...] = tuple(cfg.get("std", (0.229, 0.224, 0.225)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``B×C×H×W`` images into ``B×N×D`` tokens.

        Args:
            x: float images, already normalised by the datamodule.

        Returns:
            ViT: last hidden states after the final norm (prefix tokens first); CNN: the last feature map,
            flattened row-major to ``h·w`` tokens.
        """
        feats = self.backbone.forward_features(x)  # type: ignore[operator]
        if self.kind == "cnn":
            return feats.flatten(2).transpose(1, 2)
        return feats


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
    # Adapt the stem convolution(s) to the channel count of this encoder: a 4-D weight that differs from the
    # model's only in its input-channel dimension is a stem made for another number of bands.
    target = backbone.state_dict()
    for key, w in list(sd.items()):
        t = target.get(key)
        if t is None or w.ndim != 4 or t.shape == w.shape:
            continue
        if t.shape[0] == w.shape[0] and t.shape[2:] == w.shape[2:]:
            sd[key] = timm.models.adapt_input_conv(t.shape[1], w.float(), base_chans=w.shape[1]).to(w.dtype)
    head_prefixes = ("head.", "fc.", "classifier.", "head_dist.", "pre_logits.")
    sd = {k: v for k, v in sd.items() if not k.startswith(head_prefixes)}
    try:
        result = backbone.load_state_dict(sd, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ConfigError(
            "image checkpoint tensors do not fit the encoder",
            file=path,
            field="image_pretrained_path",
            expected=f"timm weights of {encoder.name!r}",
            found=str(err).splitlines()[-1].strip(),
            fix="use a checkpoint of the same architecture (or pick the matching image_encoder name)",
        ) from err
    missing = [k for k in result.missing_keys if not k.startswith(head_prefixes)]
    if missing or result.unexpected_keys:
        raise ConfigError(
            "image checkpoint does not match the encoder architecture",
            file=path,
            field="image_pretrained_path",
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
    img_size: int | None = None,
    **timm_kwargs: object,
) -> ImageTokenEncoder:
    """Build a registered image encoder that returns ``B×N×D`` tokens.

    Args:
        name: a registry name (see :func:`list_image_encoders`) or the timm name it wraps.
        in_chans: input channels; any count works (timm builds the stem for it, checkpoints are adapted).
        pretrained_path: local weights file; ``None`` means random initialisation (never a download).
        img_size: input size for ViTs (the position grid is built, and checkpoints resampled, for it);
            ``None`` keeps the architecture default (224). ViTs also accept other sizes at run time
            (``dynamic_img_size``), at the cost of interpolating position embeddings each call.
        **timm_kwargs: passed to ``timm.create_model`` (e.g. ``drop_path_rate``).

    Returns:
        The encoder; its ``width`` attribute is the token width.

    Raises:
        ConfigError: unknown name, bad channel count, or an unusable checkpoint.
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
    kwargs: dict[str, object] = dict(cfg.kwargs)
    kwargs.update(timm_kwargs)
    if cfg.kind == "vit":
        kwargs.setdefault("dynamic_img_size", True)
        if img_size is not None:
            kwargs["img_size"] = img_size
    factory: Callable[..., nn.Module] = timm.create_model
    backbone = factory(cfg.timm_name, pretrained=False, num_classes=0, in_chans=in_chans, **kwargs)
    encoder = ImageTokenEncoder(backbone, cfg.kind, key)
    if pretrained_path is not None:
        load_image_checkpoint(encoder, pretrained_path)
    return encoder
