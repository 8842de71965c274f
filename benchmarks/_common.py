"""Helpers shared by the benchmark scripts: machine description, peak memory, atomic result files."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WALL_FILE = "bench_wall_s.txt"  # wall seconds of fit + test, written by the accuracy grids beside each run
# The LiDAR cross-scene settings (Trento -> MUUFL, shared data pack) as their experiments/ pieces: data, model, trainer
BASELINE_LIDAR = (
    "experiments/data/trento_to_muufl_lidar.yaml",
    "experiments/model/concat_cnn.yaml",
    "experiments/trainer/lidar.yaml",
)
FVMGN_LIDAR = (
    "experiments/data/trento_to_muufl_lidar.yaml",
    "experiments/model/fvmgn_lidar.yaml",
    "experiments/trainer/lidar.yaml",
)
sys.path.insert(0, str(ROOT / "src"))

from rsmg.io import atomic_write_text  # noqa: E402


def machine() -> str:
    """One line describing where the numbers were measured (CPU count, load, torch threads, GPU if any)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, {gpu}, 1-min load average at start {load:.2f}"
    )


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def command(*, data: bool = True) -> str:
    """How this script was run, as the `Command:` line of a results file shows it (to rerun it as is).

    Args:
        data: prefix ``RSMG_DATA_ROOT=../shared/data`` (scripts that read the shared data pack).
    """
    import shlex

    script = Path(sys.argv[0]).name
    args = "".join(" " + shlex.quote(a) for a in sys.argv[1:])
    env = "RSMG_DATA_ROOT=../shared/data " if data else ""
    return f"{env}.venv/bin/python benchmarks/{script}{args}"


def checkout() -> str:
    """The commit the benchmark ran on (``+ local changes`` when the working tree differs): its configs' state."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT).stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git(
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        "src",
        "experiments",
        "benchmarks",
        ":!benchmarks/results",
    )
    return sha + (" + local changes" if dirty else "")


def write_result(name: str, text: str) -> Path:
    """Write ``benchmarks/results/<name>`` atomically and echo it."""
    path = RESULTS / name
    atomic_write_text(path, text)
    print(text)
    print(f"written to {path}")
    return path


def config_args(pieces: Iterable[str], *, absolute: bool = True) -> list[str]:
    """``--config PIECE`` for each experiment piece, in order (absolute: under the repository, for any cwd)."""
    return [arg for p in pieces for arg in ("--config", str(ROOT / p) if absolute else p)]


def slug(s: str) -> str:
    """A folder name for a method / protocol label (alphanumerics kept, everything else ``_``)."""
    return "".join(c if c.isalnum() else "_" for c in s).strip("_")


def rsmg_fit(args: list[str], label: str) -> bool:
    """Run ``python -m rsmg fit ARGS`` from the repository root; print progress, and stderr's tail on failure.

    The accuracy grids run every training as its own process, exactly as a user would (same CLI, same
    configs), so a grid result is reproducible by copying the run's ``config.yaml``.

    Returns:
        Whether the run exited 0.
    """
    print(f"{label}: running", flush=True)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "rsmg", "fit", *args], capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        print(f"{label}: FAILED (exit {p.returncode})\n{p.stderr[-3000:]}", file=sys.stderr, flush=True)
        return False
    print(f"{label}: done in {time.perf_counter() - t0:.0f} s", flush=True)
    return True


def timed_fit(args: list[str], label: str, run_dir: Path) -> float | None:
    """:func:`rsmg_fit`, its wall seconds kept in ``run_dir/WALL_FILE``: the seconds, or None when it failed.

    Kept beside the run so that a table built later from reused runs still shows what each run cost.
    """
    t0 = time.perf_counter()
    if not rsmg_fit(args, label):
        return None
    wall = time.perf_counter() - t0
    (run_dir / WALL_FILE).write_text(f"{wall:.1f}\n")
    return wall


def recorded_wall(run_dir: Path) -> float:
    """The wall seconds :func:`timed_fit` recorded for a run; NaN for a run trained before the record."""
    wall_file = run_dir / WALL_FILE
    return float(wall_file.read_text()) if wall_file.exists() else float("nan")


def grid_run_args(save_dir: Path, name: str, seed: int, *, test: bool = True) -> list[str]:
    """The ``rsmg fit`` arguments every accuracy-grid run shares: seeds, run directory, no bar, test at the end.

    The run lands in ``save_dir/name/seed<seed>/``, which is where the grids look for ``metrics.json`` to reuse it.
    ``test=False``: no test after fit, so no target number exists (choices made on source validation only).
    """
    return [
        "--seed_everything",
        str(seed),
        "--data.init_args.seed",
        str(seed),
        "--trainer.logger.init_args.save_dir",
        str(save_dir),
        "--trainer.logger.init_args.name",
        name,
        "--trainer.logger.init_args.version",
        f"seed{seed}",
        "--trainer.enable_progress_bar",
        "false",
        "--test_after_fit",
        "true" if test else "false",
    ]
