"""Logger-agnostic callbacks: per-domain result tables, figures, embedding export, diffusion TTA, zero-shot."""

from rsmg.callbacks.attention_maps import AttentionMapFigures
from rsmg.callbacks.embeddings import EmbeddingExport
from rsmg.callbacks.figures import FigureCallback
from rsmg.callbacks.results import PerDomainResults

__all__ = ["AttentionMapFigures", "EmbeddingExport", "FigureCallback", "PerDomainResults"]
