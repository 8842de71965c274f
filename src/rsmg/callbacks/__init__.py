"""Logger-agnostic callbacks: per-domain result tables, figures, embeddings, predictions, diffusion TTA, zero-shot."""

from rsmg.callbacks.attention_maps import AttentionMapFigures
from rsmg.callbacks.embeddings import EmbeddingExport
from rsmg.callbacks.figures import FigureCallback
from rsmg.callbacks.prediction_writer import PredictionWriter
from rsmg.callbacks.results import PerDomainResults

__all__ = ["AttentionMapFigures", "EmbeddingExport", "FigureCallback", "PerDomainResults", "PredictionWriter"]
