"""The DTAug prior's UNet and noise schedule: defaults, and a user config merged over them and checked.

The paper publishes neither, so both are configurable (``docs/decisions.md#dtaug-prior``); every key is
checked before a weight is built, and an error names the offending ``unet.<key>`` / ``scheduler.<key>``. The
schedule is DDPM's with epsilon prediction and ``clip_sample`` off: the prior models patches already
normalised by the datamodule, whose values are not confined to ``[-1, 1]``.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from typing import Any

from rsmg.errors import ConfigError

__all__ = ["DEFAULT_SCHEDULER", "DEFAULT_UNET", "resolve_scheduler_config", "resolve_unet_config"]

#: Default UNet: three resolutions (11×11 → padded 12×12 → 6×6 → 3×3), attention only at the coarsest.
DEFAULT_UNET: dict[str, Any] = {
    "block_out_channels": (64, 128, 128),
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "attention_head_dim": 8,
    "dropout": 0.0,
}

#: Default noise schedule (DDPM, Ho et al. 2020). ``clip_sample`` is always False (see module docstring).
DEFAULT_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "beta_start": 1e-4,
    "beta_end": 0.02,
    "prediction_type": "epsilon",
}

# UNet2DModel arguments the prior derives from the data (or forbids), never taken from the config.
_DERIVED_UNET_KEYS = ("in_channels", "out_channels", "sample_size")
_FORBIDDEN_UNET_KEYS = ("class_embed_type", "num_class_embeds", "num_train_timesteps")


def _import_diffusers() -> Any:
    """Import diffusers lazily so that ``import rsmg`` stays light (house rule)."""
    try:
        import diffusers
    except ImportError as exc:  # pragma: no cover - diffusers is a hard dependency of rsmg
        raise ConfigError(
            "the DTAug diffusion prior needs the 'diffusers' package",
            field="diffusers",
            expected="an installed diffusers",
            found="ImportError",
            fix="pip install diffusers",
        ) from exc
    return diffusers


def _positive_int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"{field} must be a positive integer",
            field=field,
            expected="int >= 1",
            found=repr(value),
        )
    return value


def resolve_unet_config(unet: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge a user UNet config with :data:`DEFAULT_UNET` and check it before any weight is built.

    Block types are derived from ``block_out_channels`` when not given (plain blocks, attention at the
    coarsest resolution), so a config that only shrinks ``block_out_channels`` stays valid.

    Args:
        unet: ``UNet2DModel`` keyword arguments; ``in_channels``, ``out_channels`` and ``sample_size`` are
            derived from the data and must not be given.

    Returns:
        A JSON-serialisable dict (tuples as lists) of ``UNet2DModel`` keyword arguments.

    Raises:
        ConfigError: an unknown or derived key, inconsistent block lists, or group norm that does not divide
            the channel widths; the message names the offending ``unet.<key>``.
    """
    diffusers = _import_diffusers()
    user = dict(unet or {})
    valid = set(inspect.signature(diffusers.UNet2DModel.__init__).parameters) - {"self"}
    for key in user:
        if key in _DERIVED_UNET_KEYS:
            raise ConfigError(
                f"unet.{key} is derived from the data and cannot be set",
                field=f"unet.{key}",
                expected="not given (channels = sum of the modalities' channels; size = padded patch size)",
                found=repr(user[key]),
                fix=f"remove unet.{key}",
            )
        if key in _FORBIDDEN_UNET_KEYS:
            raise ConfigError(
                f"unet.{key} is not supported: the DTAug prior is unconditional",
                field=f"unet.{key}",
                expected="not given",
                found=repr(user[key]),
                fix=f"remove unet.{key} (num_train_timesteps belongs to the scheduler config)",
            )
        if key not in valid:
            raise ConfigError(
                f"unknown UNet2DModel argument {key!r}",
                field=f"unet.{key}",
                expected=f"one of {sorted(valid - set(_DERIVED_UNET_KEYS) - set(_FORBIDDEN_UNET_KEYS))}",
                found=repr(key),
            )
    cfg = {**DEFAULT_UNET, **user}
    boc = cfg["block_out_channels"]
    if (
        isinstance(boc, (str, bytes))
        or not isinstance(boc, Sequence)
        or not boc
        or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in boc)
    ):
        raise ConfigError(
            "unet.block_out_channels must be a non-empty list of positive integers",
            field="unet.block_out_channels",
            expected="e.g. [64, 128, 128]",
            found=repr(boc),
        )
    n = len(boc)
    cfg["block_out_channels"] = [int(c) for c in boc]
    if cfg.get("down_block_types") is None:
        cfg["down_block_types"] = ["DownBlock2D"] * (n - 1) + ["AttnDownBlock2D"]
    if cfg.get("up_block_types") is None:
        cfg["up_block_types"] = ["AttnUpBlock2D"] + ["UpBlock2D"] * (n - 1)
    for key in ("down_block_types", "up_block_types"):
        types = list(cfg[key])
        if len(types) != n:
            raise ConfigError(
                f"unet.{key} must have one entry per block_out_channels entry",
                field=f"unet.{key}",
                expected=f"{n} block types",
                found=f"{len(types)}: {types}",
            )
        cfg[key] = [str(t) for t in types]
    _positive_int(cfg["layers_per_block"], "unet.layers_per_block")
    groups = _positive_int(cfg["norm_num_groups"], "unet.norm_num_groups")
    bad = [c for c in cfg["block_out_channels"] if c % groups]
    if bad:
        raise ConfigError(
            "unet.norm_num_groups must divide every entry of unet.block_out_channels",
            field="unet.norm_num_groups",
            expected=f"a divisor of {cfg['block_out_channels']}",
            found=f"{groups} (does not divide {bad})",
            fix="lower norm_num_groups or use multiples of it as channel widths",
        )
    return json.loads(json.dumps(cfg))  # tuples → lists, a deep copy, proof that it is JSON-serialisable


def resolve_scheduler_config(
    scheduler: Mapping[str, Any] | None, num_train_timesteps: int | None = None
) -> dict[str, Any]:
    """Merge a noise-schedule config with :data:`DEFAULT_SCHEDULER` and check it.

    Args:
        scheduler: ``DDPMScheduler`` keyword arguments among ``num_train_timesteps``, ``beta_schedule``,
            ``beta_start``, ``beta_end``, ``prediction_type``.
        num_train_timesteps: shortcut that overrides ``scheduler["num_train_timesteps"]``.

    Returns:
        The resolved config, with ``clip_sample=False`` (normalised data are not in ``[-1, 1]``).

    Raises:
        ConfigError: unknown key, non-positive ``num_train_timesteps``, or a prediction type other than
            ``"epsilon"`` (the only one DTAug's loss and sampler implement here).
    """
    user = dict(scheduler or {})
    for key in user:
        if key not in DEFAULT_SCHEDULER and key != "clip_sample":
            raise ConfigError(
                f"unknown scheduler argument {key!r}",
                field=f"scheduler.{key}",
                expected=f"one of {sorted(DEFAULT_SCHEDULER)}",
                found=repr(key),
            )
    if user.get("clip_sample"):
        raise ConfigError(
            "scheduler.clip_sample must be False: normalised patches are not confined to [-1, 1]",
            field="scheduler.clip_sample",
            expected="False",
            found=repr(user["clip_sample"]),
        )
    user.pop("clip_sample", None)
    cfg = {**DEFAULT_SCHEDULER, **user}
    if num_train_timesteps is not None:
        cfg["num_train_timesteps"] = num_train_timesteps
    _positive_int(cfg["num_train_timesteps"], "num_train_timesteps")
    if cfg["prediction_type"] != "epsilon":
        raise ConfigError(
            "only epsilon prediction is implemented for the DTAug prior",
            field="scheduler.prediction_type",
            expected="'epsilon'",
            found=repr(cfg["prediction_type"]),
        )
    cfg["clip_sample"] = False
    return cfg
