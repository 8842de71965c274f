r"""Run every benchmark script, then regenerate ``benchmarks/results/SUMMARY.md`` and ``docs/results.md``.

Scripts run one after another as subprocesses (never in parallel: they time themselves), with their default
(short) settings unless arguments are given with ``--args NAME='...'``; each one's output is shown live and
kept in ``benchmarks/results/logs/<name>.log``. The accuracy grids (``fvmgn_accuracy``, ``dtaug_accuracy``,
``caption_accuracy``) train many models and run only with ``--with-accuracy``. The two generated documents are
then rebuilt from every results file by ``benchmarks/make_docs.py`` (also those not rerun this time), so
``--summary-only`` just refreshes them.

Usage::

    RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/run_all.py
    RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/run_all.py --only fvmgn_speed tta_cost
    RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/run_all.py --with-accuracy \
        --args fvmgn_accuracy='--seeds 42 43 44 --epochs 10'
    .venv/bin/python benchmarks/run_all.py --summary-only
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Annotated

import make_docs
from _common import RESULTS, ROOT
from make_docs import SCRIPTS
from rsmg.cli.signature import Arg, cli
from rsmg.errors import UsageError
from rsmg.io import atomic_write_text


def load1() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def run_script(name: str, extra: list[str], env: dict[str, str]) -> dict[str, object]:
    """Run one script, tee its output to the console and to ``results/logs/<name>.log``."""
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, f"benchmarks/{name}.py", *extra]
    print(f"\n=== {name}: {shlex.join(cmd[1:])} (load {load1():.2f})", flush=True)
    load0, t0 = load1(), time.perf_counter()
    with open(logs / f"{name}.log", "w", encoding="utf-8") as log:
        p = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert p.stdout is not None
        for line in p.stdout:
            sys.stdout.write(line)
            log.write(line)
        rc = p.wait()
    wall = time.perf_counter() - t0
    print(f"=== {name}: exit {rc} after {wall:.0f} s (load {load1():.2f})", flush=True)
    return {"rc": rc, "wall": wall, "load0": load0, "load1": load1(), "cmd": shlex.join(["python", *cmd[1:]])}


@dataclass(kw_only=True)
class Options:
    """Options of ``run_all.py``.

    Attributes:
        with_accuracy: also run the accuracy grids (long; make_docs.ACCURACY)
        only: run only these scripts
        summary_only: run nothing, rebuild SUMMARY.md and docs/results.md
        args: extra arguments for one script, e.g. --args tta_cost='--n 2048' (repeatable)
    """

    with_accuracy: bool = False
    only: Annotated[list[str] | None, Arg(choices=tuple(SCRIPTS))] = None
    summary_only: bool = False
    args: Annotated[list[str], Arg(repeat=True, metavar="NAME='ARGS'")] = field(default_factory=list)

    def __post_init__(self) -> None:
        for item in self.args:
            name = item.partition("=")[0]
            if name not in SCRIPTS:
                raise UsageError(f"--args: unknown script {name!r} (known: {', '.join(SCRIPTS)})")


def main(args: Options) -> None:
    extra: dict[str, list[str]] = {}
    for item in args.args:
        name, _, rest = item.partition("=")
        extra[name] = shlex.split(rest)

    env = dict(os.environ)
    if "RSMG_DATA_ROOT" not in env and (ROOT.parent / "shared" / "data").is_dir():
        env["RSMG_DATA_ROOT"] = str(ROOT.parent / "shared" / "data")
    selected = args.only or [n for n, (_, default) in SCRIPTS.items() if default or args.with_accuracy]
    runs: dict[str, dict[str, object]] = {}
    history_file = RESULTS / "logs" / "runs.json"
    history: dict[str, dict[str, object]] = (
        json.loads(history_file.read_text(encoding="utf-8")) if history_file.is_file() else {}
    )
    if not args.summary_only:
        for name in selected:
            runs[name] = run_script(name, extra.get(name, []), env)
            runs[name]["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
            history[name] = runs[name]
            atomic_write_text(history_file, json.dumps(history, indent=1))

    make_docs.write()
    failed = [n for n, r in runs.items() if r["rc"] != 0]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(cli(Options, description=__doc__))
