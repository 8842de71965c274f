"""FVMGN's training step on a GPU: what bounds it, and what removing overheads buys.

Real Trento LiDAR training patches (the main job's data), kept on the device for the whole run (no host→device
copy per step), FVMGN as in ``fvmgn_speed.py`` (width 32, 2 scales, MWDis, cached MiniLM texts), bf16 autocast.
Variants, same initial weights, same batches, interleaved rounds (order reversed every round), medians:

* ``eager``: the package's training step (AdamW with the default foreach implementation);
* ``eager + fused AdamW``: one fused optimizer kernel instead of a few per parameter group;
* ``compiled``: ``torch.compile(model)`` (default mode: Inductor fuses pointwise/normalisation chains), fused AdamW;
* ``compiled, CUDA graphs``: ``mode="reduce-overhead"`` (graph replay where the graph allows; MWDis's donor
  choice runs on the host and breaks the graph there).

Also measured in the same run:

* **GPU busy share** of an eager step (torch.profiler: summed kernel time / wall). Low means launch- or
  host-bound, high means the kernels themselves are the limit; the 15 kernels with the most GPU time are listed.
* **Traffic lower bound**: bytes of the tensors autograd saves for backward (written in forward, read in
  backward) plus parameters, gradients and AdamW state (read + written once each). Any implementation of this
  step moves at least that much, so bytes / step time is a lower bound of the achieved DRAM bandwidth,
  reported against the device-to-device copy bandwidth measured here (the roofline).

Usage: ``RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/gpu_step.py --batch 8192 --name gpu/step_h200``
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import torch

from _common import RESULTS, command, machine, write_result
from _flops import matmul_peak_flops, sync
from fvmgn_speed import Options as SpeedOptions
from fvmgn_speed import build, loss_of, real_batches
from rsmg.cli.signature import Arg, cli

Batch = dict[str, Any]


def copy_bandwidth(device: torch.device, n_bytes: int = 2 << 30) -> float:
    """Device-to-device copy bandwidth (bytes read + written per second), best of 10 after 3 warm-ups."""
    x = torch.empty(n_bytes // 4, dtype=torch.float32, device=device)
    y = torch.empty_like(x)
    best = float("inf")
    for i in range(13):
        sync(device)
        t = time.perf_counter()
        y.copy_(x)
        sync(device)
        if i >= 3:
            best = min(best, time.perf_counter() - t)
    del x, y
    return 2 * n_bytes / best


def make_step(model: torch.nn.Module, fwd: Callable[[Batch], torch.Tensor], opt: torch.optim.Optimizer,
              device: torch.device) -> Callable[[Batch], None]:  # fmt: skip
    """One training step with bf16 autocast."""

    def step(batch: Batch) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = fwd(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def saved_bytes(model: torch.nn.Module, batch: Batch, device: torch.device) -> tuple[int, int]:
    """(bytes saved for backward by one forward, bytes of params + grads + AdamW state traffic)."""
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.device.type == device.type:
            key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            seen[key] = t.untyped_storage().nbytes()
        return t

    with (
        torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
        torch.autocast(device.type, dtype=torch.bfloat16),
    ):
        loss = loss_of(model, batch)
    loss.backward()
    model.zero_grad(set_to_none=True)
    params = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    # read param + grad + 2 moments, write param + 2 moments (+ grad written in backward)
    return sum(seen.values()), 8 * params


def profile_eager(
    step: Callable[[Batch], None], batches: list[Batch], device: torch.device
) -> tuple[float, str]:
    """GPU busy share of eager steps and the top kernels."""
    from torch.profiler import ProfilerActivity, profile

    sync(device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t = time.perf_counter()
        for b in batches:
            step(b)
        sync(device)
        wall = time.perf_counter() - t
    events = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
    busy = sum(e.self_device_time_total for e in events) / 1e6
    events.sort(key=lambda e: e.self_device_time_total, reverse=True)
    rows = ["| kernel | calls | GPU ms per step | share of GPU time |", "|---|---:|---:|---:|"]
    for e in events[:15]:
        name = e.key.replace("|", "/")[:110]
        ms = e.self_device_time_total / 1e3 / len(batches)
        rows.append(
            f"| `{name}` | {e.count // len(batches)} | {ms:.2f} | {100 * e.self_device_time_total / 1e6 / busy:.1f} % |"
        )
    return busy / wall, "\n".join(rows)


@dataclass(kw_only=True)
class Options:
    """Options of ``gpu_step.py``.

    Attributes:
        batch: samples per training step
        rounds: interleaved rounds (variant order reversed every round)
        batches: distinct real batches timed per round
        variants: the variants to time
        name: result file benchmarks/results/<name>.md
    """

    batch: int = 8192
    rounds: int = 4
    batches: int = 3
    variants: Annotated[list[str], Arg(nargs="*")] = field(
        default_factory=lambda: ["eager", "eager + fused AdamW", "compiled", "compiled, CUDA graphs"]
    )
    name: str = "gpu/step"


def main(args: Options) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    batches, spec, n_pixels = real_batches(args.batch, args.batches, device)
    cfg = SpeedOptions(
        width=32, embed_dim=128, attn_heads=None, channels_last=True, attn_sr=None, compile=False
    )
    fused = device.type == "cuda"
    steps: dict[str, Callable[[Batch], None]] = {}
    first: dict[str, float] = {}
    ref = build(spec, cfg, device)
    state = {k: v.clone() for k, v in ref.state_dict().items()}
    for name in args.variants:
        model = build(spec, cfg, device)
        model.load_state_dict(state)
        model.train()
        if name.startswith("compiled"):
            mode = "reduce-overhead" if "CUDA graphs" in name else "default"
            runner: torch.nn.Module = torch.compile(model, mode=mode)  # type: ignore[assignment]
        else:
            runner = model
        fwd = functools.partial(loss_of, runner)
        opt = torch.optim.AdamW(
            model.parameters(), lr=1e-3, weight_decay=1e-4, fused=fused and name != "eager"
        )
        steps[name] = make_step(model, fwd, opt, device)
        sync(device)
        t = time.perf_counter()
        for b in batches[:2]:  # compile / warm up (two steps: cudagraph trees record on the second)
            steps[name](b)
        sync(device)
        first[name] = time.perf_counter() - t
        print(f"{name}: warm-up {first[name]:.1f} s", flush=True)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(args.rounds):
        for name in list(steps) if r % 2 == 0 else list(steps)[::-1]:
            steps[name](batches[0])  # one untimed step after each switch
            for b in batches:
                sync(device)
                t = time.perf_counter()
                steps[name](b)
                sync(device)
                times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        steps["eager"](batches[0])
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = float("nan")
    act, opt_bytes = saved_bytes(ref, batches[0], device)
    traffic = 2 * act + opt_bytes
    busy, top = (
        profile_eager(steps["eager"], batches, device) if device.type == "cuda" else (float("nan"), "")
    )
    bw = copy_bandwidth(device) if device.type == "cuda" else float("nan")
    peak_flops = (
        matmul_peak_flops(device, torch.bfloat16, size=8192) if device.type == "cuda" else float("nan")
    )
    base = med["eager"]
    lines = [
        f"# FVMGN training step on {torch.cuda.get_device_name(0) if device.type == 'cuda' else 'CPU'}: "
        "bounds and overheads",
        "",
        f"Command: `{command()}`  ",
        f"Machine: {machine()}  ",
        f"Data: real Trento LiDAR training patches ({n_pixels} px, 2×11×11), {args.batches} batches of {args.batch} "
        "drawn from them, resident on the device for the whole run. Model: FVMGN width 32, 2 scales, embed 128, "
        "MWDis p = 0.5, wavelet frequency pathway, cached MiniLM class texts; bf16 autocast; loss CE + 0.5·align "
        f"+ 0.1·invariance. {args.rounds} interleaved rounds × {args.batches} timed steps per variant; medians.  ",
        f"Measured here: device-to-device copy {bw / 1e12:.2f} TB/s (read + write); bf16 matmul "
        f"{peak_flops / 1e12:.0f} TFLOP/s.",
        "",
        "| variant | first 2 steps (s, incl. compile) | median step (ms) | samples/s | vs eager |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in steps:
        lines.append(
            f"| {name} | {first[name]:.1f} | {med[name] * 1e3:.1f} | {args.batch / med[name]:,.0f} | "
            f"{base / med[name]:.2f}× |"
        )
    best = min(med, key=lambda k: med[k])
    lines += [
        "",
        f"Peak CUDA memory of an eager step: {peak:,.0f} MiB.  ",
        f"GPU busy share of an eager step (profiler, kernel time / wall): {100 * busy:.0f} %.  ",
        f"Traffic lower bound per step: {act / 2**20:,.0f} MiB saved for backward (×2: written, then read) + "
        f"{opt_bytes / 2**20:,.1f} MiB of parameter / gradient / AdamW-state traffic = {traffic / 2**30:.2f} GiB.  ",
        f"Achieved bandwidth, lower bound: eager {traffic / base / 1e12:.3f} TB/s "
        f"({100 * traffic / base / bw:.1f} % of the copy roofline); best variant ({best}) "
        f"{traffic / med[best] / 1e12:.3f} TB/s ({100 * traffic / med[best] / bw:.1f} %).",
        "",
        "Top kernels of an eager step (GPU time):",
        "",
        top,
    ]
    (RESULTS / args.name).parent.mkdir(parents=True, exist_ok=True)
    write_result(f"{args.name}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main(cli(Options, description=__doc__))
