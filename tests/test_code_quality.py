"""The style gate: ruff (lint + format) and mypy over the package and the benchmarks, as part of the suite.

Why in the tests: CI runs exactly the README's test command, so a check that is not in the suite is a check
nobody runs. The tools are pinned in the ``dev`` extra (``setup.cfg``), so a new release cannot turn a green
tree red; mypy's configuration (files, strictness) lives in ``setup.cfg``'s ``[mypy]`` section.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    exe = BIN / name
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is not installed: run `bash scripts/setup.sh` (it installs rsmg[dev], which pins it)"
        )
    return found


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    ("name", "args"),
    [("ruff", ["check", "."]), ("ruff", ["format", "--check", "."])],
    ids=["ruff-check", "ruff-format"],
)
def test_ruff_clean(name: str, args: list[str]) -> None:
    res = _run([_tool(name), *args])
    assert res.returncode == 0, (
        f"`{name} {' '.join(args)}` found problems (fix, or `ruff format .`):\n{res.stdout}"
    )


@pytest.mark.slow
def test_mypy_clean() -> None:
    res = _run([_tool("mypy")])  # files and flags from setup.cfg [mypy]: src/rsmg and benchmarks
    assert res.returncode == 0, f"mypy found type errors:\n{res.stdout[-6000:]}"
