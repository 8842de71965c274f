"""Split a frozen scene backbone at its frozen prefix: what ``mwdis.at: frozen_prefix`` runs.

With ``freeze: stages:N`` the stem and the first N stages are a fixed function of the image, so a second view
made from their output (MWDis on the prefix's maps) can share that pass with the first view; only the trainable
stages then run on both (docs/decisions.md#mwdis-at). EfficientNet(-Lite) backbones only: their forward is
rebuilt here from timm's modules, in the order ``forward_intermediates`` runs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from rsmg.errors import ConfigError
from rsmg.models.image_encoders import FREEZE_PATTERN, ImageTokenEncoder, MultiscaleFeatures

__all__ = [
    "PrefixSplit",
    "check_prefix_reductions",
    "forward_multiscale_from_prefix",
    "forward_prefix",
    "frozen_prefix_depth",
    "prefix_split",
]


class PrefixSplit(NamedTuple):
    """Where an encoder's forward splits, checked once (:func:`prefix_split`) so a training step does not redo it."""

    depth: int  # N of freeze="stages:N": the stages the prefix runs after the stem
    take: tuple[int, ...]  # stage-end counts whose outputs are the multiscale maps


def frozen_prefix_depth(enc: ImageTokenEncoder) -> int:
    """N of ``freeze="stages:N"``: the stages that :func:`forward_prefix` runs after the stem.

    Raises:
        ConfigError: the encoder is not frozen as ``stages:N``, or it is not an EfficientNet (the only
            family whose forward is split here).
    """
    match = FREEZE_PATTERN.fullmatch(enc.frozen)
    if match is None or match.group(1) is None:
        raise ConfigError(
            f"the {enc.name!r} encoder has no frozen prefix to split at (freeze: {enc.frozen!r})",
            field="freeze",
            expected="'stages:N' (the stem and the first N stages frozen)",
            found=repr(enc.frozen),
            fix="set freeze: 'stages:3' (the scene configs' setting), or mwdis.at: input",
        )
    parts = ("conv_stem", "bn1", "blocks", "stage_ends", "conv_head", "bn2", "forward_head")
    n = int(match.group(1))
    # freeze() froze the modules named enc.stem + enc.stages[:n]: they must be the ones run here
    named = enc.stem == ("conv_stem", "bn1") and enc.stages[:n] == tuple(f"blocks.{i}" for i in range(n))
    if not (named and all(hasattr(enc.backbone, a) for a in parts)):
        raise ConfigError(
            f"the forward of the {enc.name!r} encoder is not split at its frozen prefix",
            field="encoder",
            expected="an EfficientNet(-Lite) encoder",
            found=repr(enc.name),
            fix="use encoder: efficientnet_lite0 (or lite1 / lite2), or mwdis.at: input",
        )
    return n


def forward_prefix(enc: ImageTokenEncoder, x: torch.Tensor, depth: int | None = None) -> torch.Tensor:
    """The frozen prefix's output (stem + the first N stages of ``stages:N``): what MWDis may resample.

    Everything in it is frozen (weights and BatchNorm statistics), so it is a fixed function of the image,
    and a second view made from its output shares this forward with the first. ``depth``: a
    :attr:`PrefixSplit.depth` already checked (none: check here).
    """
    bb = enc.backbone
    n = frozen_prefix_depth(enc) if depth is None else depth
    x = bb.bn1(bb.conv_stem(x))  # type: ignore[operator]
    for blk in bb.blocks[:n]:  # type: ignore[index]
        x = blk(x)
    return x


def check_prefix_reductions(enc: ImageTokenEncoder, reductions: Sequence[int]) -> None:
    """Refuse maps taken inside the frozen prefix: only its output has a second view.

    Raises:
        ConfigError: a stride whose map comes before the prefix's last stage.
    """
    n = frozen_prefix_depth(enc)
    ends = list(enc.backbone.stage_ends)  # type: ignore[arg-type]
    inside = [r for r, i in zip(reductions, enc._feature_indices(reductions), strict=True) if ends[i] < n]
    if inside:
        raise ConfigError(
            f"maps at strides {inside} lie inside the frozen prefix (stem + {n} stages), which MWDis's second "
            "view skips",
            field="reductions",
            expected="strides whose stage is the prefix's last one or later",
            found=list(reductions),
            fix="drop those strides, freeze fewer stages, or set mwdis.at: input",
        )


def prefix_split(enc: ImageTokenEncoder, reductions: Sequence[int]) -> PrefixSplit:
    """Check the split (:func:`frozen_prefix_depth`, :func:`check_prefix_reductions`) and where its maps lie."""
    check_prefix_reductions(enc, reductions)
    ends = list(enc.backbone.stage_ends)  # type: ignore[arg-type]
    return PrefixSplit(frozen_prefix_depth(enc), tuple(ends[i] for i in enc._feature_indices(reductions)))


def forward_multiscale_from_prefix(
    enc: ImageTokenEncoder,
    x: torch.Tensor,
    reductions: Sequence[int] = (8, 16, 32),
    split: PrefixSplit | None = None,
) -> MultiscaleFeatures:
    """``enc.forward_multiscale`` from :func:`forward_prefix`'s output: the same numbers for the same image.

    ``split``: :func:`prefix_split` of ``enc`` and ``reductions``, already checked (none: check here).
    """
    bb = enc.backbone
    n, take = split or prefix_split(enc, reductions)
    maps = [x] if n in take else []
    for idx, blk in enumerate(bb.blocks[n:], start=n + 1):  # type: ignore[index]
        x = blk(x)
        if idx in take:
            maps.append(x)
    final = bb.bn2(bb.conv_head(x))  # type: ignore[operator]
    pooled = bb.forward_head(final, pre_logits=True)  # type: ignore[operator]
    return MultiscaleFeatures(pooled, tuple(maps), enc._tokens(final), tuple(reductions))
