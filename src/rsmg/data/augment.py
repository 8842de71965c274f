"""Joint geometric augmentation of all modalities of a sample, on the device.

A flip or rotation must be the same for every modality of a sample (they are co-registered), and must not
depend on which samples share the batch, on the batch position, or on the number of DDP ranks. So each
sample's transform (one of the 8 symmetries of the square) is a hash of (seed, epoch, sample index) — no
global RNG is consumed, which also makes a resumed run draw the same transforms as an uninterrupted one.
"""

from __future__ import annotations

import torch

from rsmg.data.spec import IMAGE_PREFIX


def dihedral_codes(index: torch.Tensor, *, seed: int, epoch: int) -> torch.Tensor:
    """Transform id in ``0..7`` per sample (a deterministic integer hash of seed, epoch and index)."""
    x = index.to(torch.int64) * 0x9E3779B1 + epoch * 0x85EBCA77 + seed * 0xC2B2AE3D
    x = x ^ (x >> 15)
    x = (x * 0x2C1B3C6D) & 0x7FFFFFFF
    x = x ^ (x >> 12)
    return (x % 8).to(torch.int64)


def apply_dihedral(x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Apply transform ``codes[i]`` to ``x[i]`` (``B×C×H×W``, H = W): bit 0 = horizontal flip, bits 1-2 = k·90°."""
    out = x.clone()
    for code in codes.unique().tolist():
        sel = codes == code
        y = x[sel]
        if code & 1:
            y = torch.flip(y, dims=(-1,))
        k = code >> 1
        if k:
            y = torch.rot90(y, k, dims=(-2, -1))
        out[sel] = y
    return out


def augment_batch(batch: dict[str, object], *, seed: int, epoch: int) -> dict[str, object]:
    """Apply the same per-sample dihedral transform to every ``image_*`` tensor of a batch."""
    index = batch["index"]
    assert isinstance(index, torch.Tensor)
    codes = dihedral_codes(index, seed=seed, epoch=epoch).to(index.device)
    for k, v in list(batch.items()):
        if (
            k.startswith(IMAGE_PREFIX)
            and isinstance(v, torch.Tensor)
            and v.ndim == 4
            and v.shape[-1] == v.shape[-2]
        ):
            batch[k] = apply_dihedral(v, codes)
    return batch
