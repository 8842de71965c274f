"""Images per second of the scene training pipeline, against one EfficientNet-Lite0 training step.

The pipeline is what a training step waits for: the train loader of
:class:`~rsmg.data.scene_domains.SceneDomainDataModule` (cached uint8 or decoded per access → resize → float →
normalise, batched) plus the per-sample flips / rotations the datamodule applies after the batch transfer.
Measured on the leave-one-dataset-out sources UC Merced + AID (scene5), 224 px, batch 32, with and without
the decoded-image cache, on 0, 1 and 2 workers. The step is a forward + backward + AdamW update of timm's
``tf_efficientnet_lite0`` (random weights: the cost does not depend on them) at the same batch.
Target (issue 20): the pipeline ≥ 5× faster than the step.

Usage: ``RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/scene_data_throughput.py``
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from _common import command, machine, peak_rss_mib, write_result
from rsmg.cli.signature import cli
from rsmg.data.augment import augment_batch
from rsmg.data.scene_domains import SceneDomainDataModule


def pipeline_rate(dm: SceneDomainDataModule, workers: int, seconds: float) -> float:
    """Training images per second through the loader and the augmentation, after one warm-up batch."""
    dm.num_workers = workers
    loader = dm.train_dataloader()
    it = iter(loader)
    next(it)  # workers started, first batch out
    n, t0, epoch = 0, time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        try:
            batch = next(it)
        except StopIteration:
            epoch += 1
            it = iter(loader)
            continue
        augment_batch(batch, seed=dm.seed, epoch=epoch)
        n += batch["label"].shape[0]
    rate = n / (time.perf_counter() - t0)
    del it, loader
    return rate


def step_seconds(batch_size: int, size: int, steps: int) -> float:
    """Median seconds of one Lite0 forward + backward + AdamW step (after one warm-up step)."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", num_classes=5).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch_size, 3, size, size)
    y = torch.randint(0, 5, (batch_size,))
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return sorted(times[1:])[len(times[1:]) // 2]


@dataclass(kw_only=True)
class Options:
    """Options of ``scene_data_throughput.py``.

    Attributes:
        seconds: seconds each loader configuration is timed
        size: image side in pixels
        batch: images per batch
        steps: timed Lite0 training steps (median)
    """

    seconds: float = 6.0
    size: int = 224
    batch: int = 32
    steps: int = 3


def main(args: Options) -> None:
    rows = []
    setup_s = {}
    for cache in (True, False):
        dm = SceneDomainDataModule(
            ["ucm", "aid"], ["rsscn7"], image_size=args.size, batch_size=args.batch, cache=cache
        )
        t0 = time.perf_counter()
        dm.setup("fit")
        setup_s[cache] = time.perf_counter() - t0
        n_train = sum(v["train"] for v in dm.summary().values())
        for workers in (0, 1, 2):
            rate = pipeline_rate(dm, workers, args.seconds)
            rows.append((cache, workers, rate))
            print(f"cache={cache} workers={workers}: {rate:,.0f} images/s")
    step = step_seconds(args.batch, args.size, args.steps)
    step_rate = args.batch / step
    print(f"Lite0 step: {step:.2f} s per batch of {args.batch} ({step_rate:.0f} images/s)")
    best1 = max(r for c, w, r in rows if w == 1)
    best2 = max(r for c, w, r in rows if w == 2)
    verdict = "met" if best1 >= 5 * step_rate else "NOT met"
    lines = [
        "# Scene data pipeline throughput (real data: UC Merced + AID at 150 px, scene5)",
        "",
        f"Command: `{command()}`  ",
        f"Machine: {machine()}  ",
        f"Training pool: {n_train:,} images (UC Merced + AID, 5 shared classes), resized to {args.size} px "
        f"bicubic, batch {args.batch}, flips / 90° rotations included.  ",
        f"Setup (list, hash, dedup, split; with the cache also decode): {setup_s[True]:.1f} s with cache, "
        f"{setup_s[False]:.1f} s without.  ",
        f"Peak RSS of the process: {peak_rss_mib():.0f} MiB.",
        "",
        "| decoded-image cache | workers | images/s | × a Lite0 step |",
        "|---|---:|---:|---:|",
        *[f"| {'on' if c else 'off'} | {w} | {r:,.0f} | {r / step_rate:.1f}× |" for c, w, r in rows],
        "",
        f"Lite0 forward + backward + AdamW at batch {args.batch}, {args.size} px: {step:.2f} s "
        f"({step_rate:.0f} images/s, median of {args.steps}).",
        "",
        "## Key numbers",
        "",
        f"- 1 worker: {best1:,.0f} images/s = {best1 / step_rate:.1f}× a Lite0 training step (target ≥ 5×: {verdict})",
        f"- 2 workers: {best2:,.0f} images/s = {best2 / step_rate:.1f}× the step",
        f"- Lite0 step at batch {args.batch}, {args.size} px: {step:.2f} s",
        "",
    ]
    write_result("scene_data/throughput.md", "\n".join(lines))


if __name__ == "__main__":
    main(cli(Options, description=__doc__))
