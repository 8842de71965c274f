"""FLOP counting, the achievable matmul peak of this machine, and model-FLOP utilisation (MFU).

MFU = (model FLOPs per step / step time) / peak FLOP/s. The peak is *measured* in the same run
(:func:`matmul_peak_flops`: large square matmuls in the dtype the model computes in), not taken from a data
sheet, so the ratio says how much of what this machine can actually do right now (load included) the model
uses. Model FLOPs are counted with :class:`torch.utils.flop_counter.FlopCounterMode`, which counts matmuls,
convolutions and attention (2 FLOPs per multiply-add) and ignores element-wise ops; a training step is
≈ 3× a forward (backward ≈ 2× forward), and :func:`count_flops` can count a real forward + backward instead.

``FlopCounterMode`` has formulas for the CUDA attention kernels but not for the CPU one that
``scaled_dot_product_attention`` dispatches to (``_scaled_dot_product_flash_attention_for_cpu`` and its
backward), so on CPU it silently counted attention as 0 FLOPs; :func:`register_cpu_attention_flops` (run on
import) registers the same formulas for the CPU ops.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode


def register_cpu_attention_flops() -> None:
    """Count the CPU flash-attention forward and backward like their CUDA twins (idempotent)."""
    aten = torch.ops.aten
    fwd = aten._scaled_dot_product_flash_attention_for_cpu
    bwd = aten._scaled_dot_product_flash_attention_for_cpu_backward
    if fwd not in flop_counter.flop_registry:

        @flop_counter.register_flop_formula(fwd)
        def _fwd(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, **kwargs: Any) -> int:
            return int(flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape))

    if bwd not in flop_counter.flop_registry:

        @flop_counter.register_flop_formula(bwd)
        def _bwd(
            grad_shape: Any, query_shape: Any, key_shape: Any, value_shape: Any, *a: Any, **k: Any
        ) -> int:
            return int(flop_counter.sdpa_backward_flop_count(grad_shape, query_shape, key_shape, value_shape))


register_cpu_attention_flops()


def sync(device: torch.device | str) -> None:
    """Wait for queued kernels on ``device`` (no-op on CPU), so wall-clock timings are real."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_flops(
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    size: int = 2048,
    seconds: float = 2.0,
) -> float:
    """Achieved FLOP/s of back-to-back ``size×size @ size×size`` matmuls on ``device`` in ``dtype``.

    Args:
        device: where to measure.
        dtype: matmul dtype (use the dtype the model computes in: bf16 under autocast, fp32 otherwise).
        size: matrix side (2048: ≈17 GFLOP per matmul, large enough to saturate a CPU or GPU).
        seconds: minimum measuring time after one warm-up matmul.

    Returns:
        FLOP/s (``2·size³`` per matmul). On a loaded shared CPU this is what the machine gives *now*.
    """
    dev = torch.device(device)
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=g).to(dev, dtype)
    b = torch.randn(size, size, generator=g).to(dev, dtype)
    out = torch.empty(size, size, device=dev, dtype=dtype)
    torch.matmul(a, b, out=out)  # warm-up (BLAS / cuBLAS handle, clocks)
    sync(dev)
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(1 if dev.type == "cpu" else 20):
            torch.matmul(a, b, out=out)
            n += 1
        sync(dev)
        dt = time.perf_counter() - t0
        if dt >= seconds:
            break
    return 2.0 * size**3 * n / dt


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of everything ``fn()`` runs (forward, backward, ...) as counted by ``FlopCounterMode``."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def model_flops(model: torch.nn.Module, batch: Any) -> int:
    """FLOPs of one forward of ``model`` on ``batch``, in the mode the model is in (train/eval).

    Counted under ``no_grad`` (autograd does not change the forward count). A training step costs about
    ``3 × model_flops`` (forward + backward w.r.t. activations and weights).
    """
    with torch.no_grad():
        return count_flops(lambda: model(batch))


def mfu(flops_per_step: float, step_time: float, peak: float) -> float:
    """Model-FLOP utilisation: achieved model FLOP/s (``flops_per_step / step_time``) over ``peak`` FLOP/s."""
    if step_time <= 0 or peak <= 0:
        return float("nan")
    return flops_per_step / step_time / peak


def fmt_flops(x: float) -> str:
    """``1.23 GFLOP``-style formatting (also for FLOP/s with a suffix added by the caller)."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f} {unit}FLOP"
    return f"{x:.0f} FLOP"


def load1() -> float:
    """1-minute load average now (printed next to every timing: the CPU is shared)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def time_call(fn: Callable[[], Any], device: torch.device | str) -> float:
    """Wall-clock seconds of one ``fn()`` with device synchronisation before and after."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


class PeakMemory:
    """Peak memory of a block: CUDA ``max_memory_allocated`` (reset on entry), or sampled CPU RSS.

    On CPU a thread samples the resident set size every ``interval`` s (psutil); ``peak_mib`` is the highest
    sample and ``delta_mib`` its rise over the RSS at entry (the allocator keeps freed memory, so the RSS of a
    later block includes what earlier blocks left behind; ``delta_mib`` is the better per-block figure).
    On CUDA ``peak_mib`` is the peak of allocated tensors inside the block and ``delta_mib`` the same minus
    what was allocated at entry (weights, optimizer state).
    """

    def __init__(self, device: torch.device | str, interval: float = 0.005) -> None:
        self.device = torch.device(device)
        self.interval = interval
        self.peak_mib = float("nan")
        self.delta_mib = float("nan")
        self._base = self._peak = 0  # bytes of RSS (CPU), sampled by the thread
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        import psutil

        proc = psutil.Process()
        while not self._stop.is_set():
            self._peak = max(self._peak, proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            import psutil

            self._base = self._peak = psutil.Process().memory_info().rss
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
            peak = self._peak
        self.peak_mib = peak / 2**20
        self.delta_mib = (peak - self._base) / 2**20

    @property
    def kind(self) -> str:
        """What was measured, for table headers."""
        return (
            "CUDA max_memory_allocated" if self.device.type == "cuda" else "process RSS (sampled every 5 ms)"
        )


def pick_threads(requested: int = 0) -> str:
    """Set the CPU thread count and say why (returned text goes into the results).

    ``requested > 0`` is used as given. ``0`` (auto) keeps torch's default unless other processes already keep
    cores busy: then it uses the cores that are free by the 1-min load average (at least 1). On a shared,
    loaded CPU two OpenMP threads that must meet at a barrier after every small op wait for each other's
    time slice, which made tiny kernels (an 11×11 DWT) ~50× slower than on one thread here.
    """
    default = torch.get_num_threads()
    if requested > 0:
        torch.set_num_threads(requested)
        return f"{requested} CPU threads (as requested)"
    cores = os.cpu_count() or 1
    free = max(1, min(default, int(cores - load1() + 0.5)))
    torch.set_num_threads(free)
    if free == default:
        return f"{free} CPU threads (torch default)"
    return (
        f"{free} CPU thread(s): auto, because the 1-min load average {load1():.2f} leaves about {free} of "
        f"{cores} cores free (torch default {default}; `--threads N` overrides)"
    )
