"""FVMGN training step with a ``torch.compile``'d SFIE encoder vs eager, interleaved in one process.

``FVMGN(compile_encoder=True)`` compiles SFIE in place. Whether that pays depends on the device: on a GPU the small
11×11 maps make eager mode launch-bound, on a CPU the convolutions and attention dominate. This script measures
it where it runs: two models with the same weights on the same real Trento LiDAR batches (the experiment's
data pipeline), steps timed alternately (variant order reversed every round, so load changes hit both alike),
median step time per variant. It also checks that compiled and eager give the same eval logits.

Usage::

    RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/fvmgn_compile.py --batch 64 --rounds 6

Writes ``benchmarks/results/fvmgn_speed/compile_cpu_batch<B>.md`` on a CPU, ``gpu/fvmgn_compile_cuda_batch<B>.md``
on a GPU (``--name`` to change).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Literal

import torch

from _common import command, machine, write_result
from _flops import load1, pick_threads, sync
from fvmgn_speed import Options as SpeedOptions
from fvmgn_speed import build, make_step, real_batches
from rsmg.cli.signature import cli
from rsmg.models.sfie import resolve_heads


@dataclass(kw_only=True)
class Options:
    """Options of ``fvmgn_compile.py``.

    Attributes:
        batch: source samples per step (experiment: 64)
        rounds: interleaved rounds; each times every batch once
        batches: distinct real batches per round
        threads: CPU threads (0: auto)
        device: auto, cpu, cuda, cuda:1, ...
        amp: autocast (auto: bf16 on CUDA, none on CPU)
        name: result file benchmarks/results/<name>.md (none: by device and batch)
    """

    batch: int = 64
    rounds: int = 6
    batches: int = 3
    threads: int = 1
    device: str = "auto"
    amp: Literal["auto", "none", "bf16"] = "auto"
    name: str | None = None


def main(args: Options) -> None:
    threads = pick_threads(args.threads)
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if args.device == "auto" else args.device)
    amp = {"none": None, "bf16": torch.bfloat16}.get(
        args.amp, torch.bfloat16 if device.type == "cuda" else None
    )
    batches, spec, n_pixels = real_batches(args.batch, args.batches, device)
    # the speed benchmark's model (width 32, 2 scales, FVMGN's default heads: 2 / 4 per scale, channels_last,
    # MWDis, cached MiniLM texts)
    cfg = SpeedOptions(
        width=32, embed_dim=128, attn_heads=None, channels_last=True, attn_sr=None, compile=True
    )
    models = {"eager": build(spec, cfg, device, eager=True), "compiled": build(spec, cfg, device)}
    models["compiled"].load_state_dict(models["eager"].state_dict())
    with torch.no_grad():
        diff = (
            models["eager"].eval()(batches[0]).logits - models["compiled"].eval()(batches[0]).logits
        ).abs()
    steps = {}
    for name, m in models.items():
        m.train()
        steps[name] = make_step(m, torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=1e-4), amp, device)
    sync(device)
    t0 = time.perf_counter()
    steps["compiled"](batches[0])  # compiles the training graph
    sync(device)
    compile_s = time.perf_counter() - t0
    steps["eager"](batches[0])
    times: dict[str, list[float]] = {k: [] for k in models}
    load0 = load1()
    for r in range(args.rounds):
        for name in list(models) if r % 2 == 0 else list(models)[::-1]:
            for b in batches:
                sync(device)
                t = time.perf_counter()
                steps[name](b)
                sync(device)
                times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    step_dtype = "float32" if amp is None else str(amp).replace("torch.", "") + " autocast"
    lines = [
        "# FVMGN training step: torch.compile'd SFIE vs eager (interleaved A/B)",
        "",
        f"Command: `{command()}`  ",
        f"Machine: {machine()}  ",
        f"Device: {device}; threads: {threads}; training steps in {step_dtype}; "
        f"1-min load average {load0:.2f} before the timed rounds, "
        f"{load1():.2f} after.  ",
        f"Data: real Trento LiDAR training patches ({n_pixels} pixels, 2×11×11), {args.batches} batches of "
        f"{args.batch}; model as in `fvmgn_speed.py` (width 32, 2 scales, "
        f"{' / '.join(map(str, resolve_heads(cfg.attn_heads, [cfg.width, 2 * cfg.width])))} attention heads per scale, "
        "channels_last, MWDis p = 0.5, "
        "cached MiniLM class texts), same initial weights; AdamW.  ",
        f"{args.rounds} rounds × {args.batches} steps per variant, variant order reversed every round; medians.",
        "",
        "| variant | median step (ms) | samples/s | step time vs eager |",
        "|---|---:|---:|---:|",
    ]
    for name in models:
        lines.append(
            f"| {name} | {med[name] * 1e3:,.1f} | {args.batch / med[name]:,.0f} | "
            f"{100 * (med[name] / med['eager'] - 1):+.1f} % |"
        )
    lines += [
        "",
        f"First compiled training step (includes compiling): {compile_s:.1f} s (less when inductor's on-disk "
        "cache is warm).  ",
        f"Eval logits, compiled vs eager, same weights: max |diff| {diff.max().item():.1e}.",
    ]
    out_name = args.name or (
        f"fvmgn_speed/compile_cpu_batch{args.batch}"
        if device.type == "cpu"
        else f"gpu/fvmgn_compile_{device.type}_batch{args.batch}"
    )
    write_result(f"{out_name}.md", "\n".join(lines))


if __name__ == "__main__":
    main(cli(Options, description=__doc__))
