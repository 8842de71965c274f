"""Run the ``rsmg`` command for the end-to-end tests: in this process, or in a subprocess as a user would.

:func:`call_rsmg` calls ``rsmg.cli.main.main(ARGS)`` (the function behind the console script and
``python -m rsmg``) in the test process: the same parsing, exit codes and messages, without paying a fresh
interpreter's torch + Lightning import (5-10 s on a 2-core machine) per command. :func:`run_rsmg` keeps the
subprocess for the tests whose point is the process boundary (SIGKILL, DDP, SLURM, the real command's exit).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import random
import subprocess
import sys
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path

from _paths import REPO, SHARED_DATA

RSMG_ENV = {**os.environ, "RSMG_DATA_ROOT": str(SHARED_DATA), "PYTHONWARNINGS": "ignore"}
_LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning", "pytorch_lightning")


def _failure(args: tuple[str, ...], code: int, out: str, err: str) -> AssertionError:
    return AssertionError(f"rsmg {' '.join(args)} failed ({code}):\n{out[-3000:]}\n{err[-5000:]}")


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
        raise _failure(args, p.returncode, p.stdout, p.stderr)
    return p


@contextlib.contextmanager
def _isolated(cwd: Path | str, env: dict[str, str]) -> Iterator[None]:
    """Run a command as if in its own process: cwd, environment, argv, RNG, torch flags and warnings restored.

    A CLI run seeds every RNG, sets ``PL_GLOBAL_SEED`` and may switch torch to deterministic algorithms; none
    of that may leak into the next test.
    """
    import numpy as np
    import torch

    saved_env, saved_cwd, saved_argv = dict(os.environ), os.getcwd(), sys.argv
    rng = random.getstate(), np.random.get_state(), torch.get_rng_state()
    flags = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        torch.get_num_threads(),
    )
    os.environ.update(env)
    os.chdir(cwd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # as PYTHONWARNINGS=ignore for the subprocess
            yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv = saved_argv
        random.setstate(rng[0])
        np.random.set_state(rng[1])
        torch.set_rng_state(rng[2])
        torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = flags[2], flags[3]
        torch.set_num_threads(flags[4])


@contextlib.contextmanager
def _captured(out: io.StringIO, err: io.StringIO) -> Iterator[None]:
    """Send prints and log records (Lightning's go to stderr, as in a terminal) into ``out`` / ``err``.

    Lightning's own stderr handlers hold whatever ``sys.stderr`` was when Lightning was imported (possibly
    an earlier test's capture, closed since): they write to ``err`` while the command runs.
    """
    handler = logging.StreamHandler(err)
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    own = [
        h
        for lg in (root, *map(logging.getLogger, _LIGHTNING_LOGGERS))
        for h in lg.handlers
        if type(h) is logging.StreamHandler  # not pytest's capture handlers (subclasses)
    ]
    streams = [h.stream for h in own]
    for h in own:
        h.stream = err
    root.addHandler(handler)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield
    finally:
        root.removeHandler(handler)
        for h, stream in zip(own, streams, strict=True):
            h.stream = stream


def call_rsmg(
    *args: str, cwd: Path | str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``rsmg ARGS`` in this process, in ``cwd``, with the shared data root (or ``env``) set while it runs.

    Returns what :func:`run_rsmg` returns: the exit status (``SystemExit`` code; 1 and the traceback on stderr
    for an uncaught exception, as the interpreter would) and the captured stdout / stderr.
    """
    from rsmg.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with _isolated(cwd, {"RSMG_DATA_ROOT": str(SHARED_DATA), **(env or {})}), _captured(out, err):
        sys.argv = ["rsmg", *args]
        try:
            main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if e.code is not None and not isinstance(e.code, int):
                print(e.code, file=sys.stderr)
        except Exception:
            traceback.print_exc()
            code = 1
    p = subprocess.CompletedProcess(["rsmg", *args], code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise _failure(args, code, p.stdout, p.stderr)
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


def parses(args: list[str]) -> str:
    """``rsmg fit ARGS --print_config`` in-process: checks every key against the signatures without training."""
    from rsmg.cli.main import print_config

    return print_config(["fit", *args])
