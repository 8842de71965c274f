"""Tiny, offline settings of the models that tests train end to end (one place, so every test means the same)."""

from __future__ import annotations

from typing import Any

# The unified model (fvmgn_captions) with a random backbone and a one-layer random text tower: seconds per step.
TINY_CAPTION_NET: dict[str, Any] = {
    "pretrained": False,
    "text_tower": "clip-bpe",
    "text_pretrained": False,
    "text_tower_kwargs": {"width": 32, "layers": 1, "heads": 2},
    "embed_dim": 32,
    "fused_dim": 64,
    "caption_width": 32,
    "caption_heads": 2,
}
# ... built directly on UC Merced's 21 classes (the YAML pieces set these themselves)
TINY_CAPTION_NET_UCM21: dict[str, Any] = {
    **TINY_CAPTION_NET,
    "class_set": "ucm21",
    "texts": "shared",
    "mwdis_same_domain_fallback": True,
}
