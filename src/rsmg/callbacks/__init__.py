"""Logger-agnostic callbacks: per-domain result tables (and, in their modules, TTA, embeddings, figures)."""

from rsmg.callbacks.results import PerDomainResults

__all__ = ["PerDomainResults"]
