"""A timm / open_clip-style registry: ``list_models()``, ``create_model(name, spec, **kwargs)``.

YAML configs name models by ``class_path`` (LightningCLI); the registry serves notebooks and tests, and lets
the batch-invariance test iterate over every model the package has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from rsmg.data.spec import DataSpec
from rsmg.errors import unknown_name_error

_MODELS: dict[str, Callable[..., nn.Module]] = {}
T = TypeVar("T")


def register_model(name: str) -> Callable[[T], T]:
    """Class decorator adding a model to the registry under ``name``."""

    def deco(cls: T) -> T:
        _MODELS[name] = cls  # type: ignore[assignment]
        return cls

    return deco


def _populate() -> None:
    # importing the modules registers their models; optional heavy ones register lazily on first use
    import importlib

    for mod in (
        "rsmg.models.baseline",
        "rsmg.models.fvmgn",
        "rsmg.models.caption_models",
        "rsmg.models.scene_models",
        "rsmg.models.fvmgn_scenes",
        "rsmg.models.fvmgn_captions",
    ):
        try:
            importlib.import_module(mod)
        except (
            ModuleNotFoundError
        ) as e:  # a module of the package not written yet is fine, a dependency is not
            if not (e.name or "").startswith("rsmg."):
                raise


def list_models() -> list[str]:
    """Names of every registered model."""
    _populate()
    return sorted(_MODELS)


def create_model(name: str, spec: DataSpec, **kwargs: Any) -> nn.Module:
    """Build a registered model for a data spec.

    Raises:
        ConfigError: unknown model name (the message lists the registered ones).
    """
    _populate()
    if name not in _MODELS:
        raise unknown_name_error("model", name, list(_MODELS), field="model")
    return _MODELS[name](spec, **kwargs)
