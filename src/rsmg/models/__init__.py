"""Plain ``nn.Module`` models (no Lightning, no I/O) and their registry.

``create_model`` / ``list_models`` come from :mod:`rsmg.models.registry`, imported on first use: the registry
imports every model, which ``import rsmg.models`` should not pay for.
"""

from typing import Any

from rsmg.models.base import ModelOutput, RsmgModel

__all__ = ["ModelOutput", "RsmgModel", "create_model", "list_models"]


def __getattr__(name: str) -> Any:
    if name in ("create_model", "list_models"):
        from rsmg.models import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'rsmg.models' has no attribute {name!r}")
