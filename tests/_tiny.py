"""Tiny, offline settings of the models that tests train end to end (one place, so every test means the same)."""

from __future__ import annotations

import dataclasses
from typing import Any

from rsmg.models.fvmgn_options import (
    AlignmentOptions,
    FrequencyOptions,
    MWDisOptions,
    SFIEOptions,
    TextOptions,
)

# The unified model (fvmgn_captions) with a random backbone and a one-layer random text tower: seconds per step.
# As a YAML would write it (nested sections as dicts); `with_options` turns it into keyword arguments.
TINY_CAPTION_NET: dict[str, Any] = {
    "pretrained": False,
    "text": {
        "tower": "clip-bpe",
        "pretrained": False,
        "tower_kwargs": {"width": 32, "layers": 1, "heads": 2},
    },
    "alignment": {"embed_dim": 32},
    "fused_dim": 64,
    "caption_width": 32,
    "caption_heads": 2,
}
# ... built directly on UC Merced's 21 classes (the YAML pieces set these themselves)
TINY_CAPTION_NET_UCM21: dict[str, Any] = {
    **TINY_CAPTION_NET,
    "text": {**TINY_CAPTION_NET["text"], "class_set": "ucm21", "use": "shared"},
    "mwdis": {"same_domain_fallback": True},
}

SECTIONS: dict[str, type] = {
    "mwdis": MWDisOptions,
    "frequency": FrequencyOptions,
    "sfie": SFIEOptions,
    "text": TextOptions,
    "alignment": AlignmentOptions,
}


def with_options(base: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """Model keyword arguments: ``base`` updated by ``overrides``, option sections as their dataclasses.

    A section given as a dict (in ``base`` or ``overrides``, ``mwdis={"p": 1.0}``) changes only those fields of
    the section so far (``base``'s, else the dataclass defaults: give scene models their ``text.class_set``).
    """
    out: dict[str, Any] = {}
    for key, value in (*base.items(), *overrides.items()):
        if key in SECTIONS and isinstance(value, dict):
            value = dataclasses.replace(out.get(key) or SECTIONS[key](), **value)
        out[key] = value
    return out
