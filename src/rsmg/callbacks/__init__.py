"""Logger-agnostic callbacks: per-domain result tables, figures, embeddings, predictions, TTA, zero-shot, timing."""

from rsmg.callbacks.attention_maps import AttentionMapFigures
from rsmg.callbacks.embeddings import EmbeddingExport
from rsmg.callbacks.figures import FigureCallback
from rsmg.callbacks.gzsl import CalibratedStacking
from rsmg.callbacks.prediction_writer import PredictionWriter
from rsmg.callbacks.results import PerDomainResults
from rsmg.callbacks.timing import PhaseTimer

__all__ = [
    "AttentionMapFigures",
    "CalibratedStacking",
    "EmbeddingExport",
    "FigureCallback",
    "PerDomainResults",
    "PhaseTimer",
    "PredictionWriter",
]
