"""Token features of per-sample captions from a frozen text tower, cached by caption text.

A frozen tower maps a caption to the same features every time, and a captioned scene set has few distinct
captions (UC Merced: ≤ 5 per image), so each caption is encoded once and its ``L×D`` hidden states are kept. On
2 CPU cores this removes MiniLM's forward (about ten times Lite0's at 128 px) from every step after the first
epoch. An empty caption (``""``) means *no caption*: its row has no token and its mask no True entry.

Each new caption is encoded on its own (a batch of one, no padding), so its features are a function of its
text alone. Encoded in a batch, they change in the last bits with the batch's size and padded length (about
1e-6 for MiniLM), and which captions share a batch depends on what the cache already holds: the features a
step reads would depend on the run's history, and a resumed run, another DDP rank or another evaluation
batching would not reproduce them. One at a time costs about 2× the encoder time (MiniLM, 1 thread: 23 vs
12 ms per caption), paid once per distinct caption (UC Merced: 1,843, about 40 s per run).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rsmg.errors import ConfigError

__all__ = ["CaptionFeatureCache"]


class CaptionFeatureCache(nn.Module):
    """Per-caption hidden states of a frozen text tower, padded into a batch.

    Args:
        tower: a :class:`~rsmg.text.towers.TextTower` (or anything with ``tokenize``, ``forward`` →
            ``TextFeatures``, ``width`` and ``frozen``); it must be frozen, since cached features of a training
            tower would go stale.
        max_entries: cache size limit; beyond it, captions are encoded every time (no eviction order to get
            wrong, and no unbounded growth on a caption stream).
        empty_is_none: an empty caption has no token (True) or is encoded by the tower like any text, as its
            special tokens (False: what a model without a no-caption path needs).
    """

    def __init__(self, tower: nn.Module, *, max_entries: int = 200_000, empty_is_none: bool = True) -> None:
        super().__init__()
        if not getattr(tower, "frozen", False):
            raise ConfigError(
                "caption features are cached only for a frozen text tower",
                field="text tower",
                expected="frozen=True",
                found="a trainable tower",
                fix="freeze the tower (create_text_tower(..., frozen=True))",
            )
        self.tower = tower
        self.width = int(tower.width)  # type: ignore[arg-type]
        self.max_entries = max_entries
        self.empty_is_none = empty_is_none
        self._cache: dict[str, torch.Tensor] = {}

    def _apply(self, fn: Any, recurse: bool = True) -> CaptionFeatureCache:
        # .to(device) / .half(): cached features were made on the old device and dtype; drop them
        self._cache.clear()
        return super()._apply(fn, recurse)

    def _encode(self, text: str) -> torch.Tensor:
        """``L×D`` features of one caption, encoded alone (see the module docstring)."""
        feats = self.tower(self.tower.tokenize([text]))  # type: ignore[operator]
        return feats.hidden[0][feats.mask[0]].detach()

    def forward(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states ``B×L×D`` and mask ``B×L`` (True = token) of ``texts``; ``L ≥ 1``.

        With ``empty_is_none``, rows of empty captions are all padding (zeros, mask False).
        """
        real = [bool(t) or not self.empty_is_none for t in texts]
        todo = sorted({t for t, r in zip(texts, real, strict=True) if r and t not in self._cache})
        fresh: dict[str, torch.Tensor] = {}
        if todo:
            fresh = {t: self._encode(t) for t in todo}
            room = self.max_entries - len(self._cache)
            for t in todo[: max(room, 0)]:
                self._cache[t] = fresh[t]
        rows = [
            (self._cache[t] if t in self._cache else fresh[t]) if r else None
            for t, r in zip(texts, real, strict=True)
        ]
        length = max([1, *(r.shape[0] for r in rows if r is not None)])
        device = next((r.device for r in rows if r is not None), self._device())
        dtype = next((r.dtype for r in rows if r is not None), torch.float32)
        hidden = torch.zeros(len(texts), length, self.width, device=device, dtype=dtype)
        mask = torch.zeros(len(texts), length, dtype=torch.bool, device=device)
        for i, r in enumerate(rows):
            if r is not None:
                hidden[i, : r.shape[0]] = r
                mask[i, : r.shape[0]] = True
        return hidden, mask

    def _device(self) -> torch.device:
        p = next(self.tower.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def __len__(self) -> int:
        return len(self._cache)
