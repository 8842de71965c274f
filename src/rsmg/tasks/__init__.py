"""LightningModules: supervised multimodal classification (and, in their own modules, diffusion-prior training)."""

from rsmg.tasks.classification import ClassificationTask

__all__ = ["ClassificationTask"]
