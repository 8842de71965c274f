"""Patches per second and peak memory of SceneDataset + DataLoader on a real scene (MUUFL LiDAR, 11×11).

Compares the batched gather path (``SceneDataset.__getitems__`` → one advanced-indexing op per modality per
batch, pre-collated) with the per-sample path it replaces (``__getitem__`` + default collation), for several
batch sizes and worker counts. Target (issue 3): ≥ 20,000 patches/s for 11×11 patches on 2 cores.

Usage: ``RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/data_throughput.py``
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from _common import machine, peak_rss_mib, write_result
from rsmg.cli.signature import cli
from rsmg.data.datamodule import CrossDomainDataModule
from rsmg.data.scene import SceneDataset, collate_samples


class PerSample(Dataset):
    """The baseline: the same dataset without the batched fetch."""

    def __init__(self, ds: SceneDataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict[str, object]:
        return self.ds[i]


def measure(
    ds: Dataset[dict[str, object]],
    batch_size: int,
    workers: int,
    collate: Callable[[list[Any]], Any] | None,
    seconds: float,
) -> float:
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(0),
        persistent_workers=False,
    )
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for b in loader:
            n += b["label"].shape[0]
            if time.perf_counter() - t0 >= seconds:
                break
    return n / (time.perf_counter() - t0)


@dataclass(kw_only=True)
class Options:
    """Options of ``data_throughput.py``.

    Attributes:
        seconds: seconds each loader configuration is timed
        patch: patch side in pixels
    """

    seconds: float = 4.0
    patch: int = 11


def main(args: Options) -> None:
    dm = CrossDomainDataModule(
        sources=["trento"], targets=["muufl"], modalities=["lidar"], patch_size=args.patch
    )
    dm.setup("fit")
    ds = dm.test_dataset("muufl")
    rows = []
    for workers in (0, 2):
        for bs in (64, 256, 1024):
            fast = measure(ds, bs, workers, collate_samples, args.seconds)
            slow = measure(PerSample(ds), bs, workers, default_collate, args.seconds)
            rows.append((workers, bs, fast, slow))
            print(f"workers={workers} batch={bs}: batched {fast:,.0f}/s, per-sample {slow:,.0f}/s")
    best = max(r[2] for r in rows)
    lines = [
        "# Data pipeline throughput (real data: MUUFL LiDAR raster, 2 bands)",
        "",
        "Command: `RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/data_throughput.py`  ",
        f"Machine: {machine()}  ",
        f"Dataset: {len(ds):,} labelled MUUFL pixels, {args.patch}×{args.patch} patches, 2 LiDAR bands, normalised.  ",
        f"Peak RSS of the process: {peak_rss_mib():.0f} MiB "
        "(one padded float32 copy of each raster, no per-sample copies).",
        "",
        "| workers | batch | batched gather (patches/s) | per-sample + default_collate (patches/s) | speed-up |",
        "|---:|---:|---:|---:|---:|",
        *[f"| {w} | {b} | {f:,.0f} | {s:,.0f} | {f / s:.1f}× |" for w, b, f, s in rows],
        "",
        f"Best: {best:,.0f} patches/s (target ≥ 20,000 on 2 cores: {'met' if best >= 20000 else 'NOT met'}).",
        "",
    ]
    write_result("pixel_data/throughput.md", "\n".join(lines))
    assert np.isfinite(best)


if __name__ == "__main__":
    main(cli(Options, description=__doc__))
