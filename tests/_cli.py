"""Run the ``rsmg`` command in a subprocess, as a user would, for the end-to-end tests."""

import os
import subprocess
import sys
from pathlib import Path

from _paths import REPO, SHARED_DATA

RSMG_ENV = {**os.environ, "RSMG_DATA_ROOT": str(SHARED_DATA), "PYTHONWARNINGS": "ignore"}


def run_rsmg(
    *args: str, cwd: Path | str | None = None, check: bool = True, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    """``python -m rsmg ARGS`` with the shared data root; on failure (``check``) the output's tail is the message."""
    p = subprocess.run(
        [sys.executable, "-m", "rsmg", *args],
        capture_output=True,
        text=True,
        env=RSMG_ENV,
        cwd=cwd or REPO,
        timeout=timeout,
    )
    if check and p.returncode != 0:
        raise AssertionError(
            f"rsmg {' '.join(args)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}"
        )
    return p


def log_args(tmp: Path, name: str) -> list[str]:
    """CLI flags that put a run's logs (``<tmp>/logs/<name>/version_N``) and default root under ``tmp``."""
    return [
        "--trainer.logger.init_args.save_dir",
        str(tmp / "logs"),
        "--trainer.logger.init_args.name",
        name,
        "--trainer.default_root_dir",
        str(tmp),
    ]
