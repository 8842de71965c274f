"""Readers, band registry, datasets, splits and datamodules for multimodal remote-sensing scenes."""

from rsmg.data.spec import DataSpec, image_key

__all__ = ["DataSpec", "image_key"]
