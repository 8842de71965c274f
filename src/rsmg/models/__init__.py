"""Plain ``nn.Module`` models (no Lightning, no I/O) and their registry."""

from rsmg.models.base import ModelOutput, RsmgModel

__all__ = ["ModelOutput", "RsmgModel"]
