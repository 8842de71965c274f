r"""Run every benchmark script and write ``benchmarks/results/SUMMARY.md`` with their key numbers.

Scripts run one after another as subprocesses (never in parallel: they time themselves), with their default
(short) settings unless arguments are given with ``--args NAME='...'``; each one's output is shown live and
kept in ``benchmarks/results/logs/<name>.log``. The accuracy grids (``fvmgn_accuracy``, ``dtaug_accuracy``,
``caption_accuracy``) train many models and run only with ``--with-accuracy``. The summary is then rebuilt
from the results files (also those of scripts that were not run this time, marked with their own date), so
``--summary-only`` just refreshes it.

Parsed per results file: the ``## Key numbers`` bullet list (fvmgn_speed, tta_cost, fusion_throughput), the
``Best:`` line and table of data_throughput, the tables of the accuracy grids, and each file's
``Machine:`` line.

Usage::

    RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/run_all.py
    RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/run_all.py --only fvmgn_speed tta_cost
    RSMG_DATA_ROOT=../shared/data .venv/bin/python benchmarks/run_all.py --with-accuracy \
        --args fvmgn_accuracy='--seeds 42 --epochs 10'
    .venv/bin/python benchmarks/run_all.py --summary-only
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from _common import RESULTS, ROOT, machine, write_result
from rsmg.io import atomic_write_text

BENCH = ROOT / "benchmarks"
# name -> (results file, runs by default)
SCRIPTS: dict[str, tuple[str, bool]] = {
    "data_throughput": ("data_throughput.md", True),
    "fvmgn_speed": ("fvmgn_speed.md", True),
    "tta_cost": ("tta_cost.md", True),
    "fusion_throughput": ("fusion_throughput.md", True),
    "scene_data_throughput": ("scene_data_throughput.md", True),
    "scene_step_cost": ("scene_step_cost.md", True),
    "fvmgn_accuracy": ("fvmgn_accuracy.md", False),
    "dtaug_accuracy": ("dtaug_accuracy.md", False),
    "caption_accuracy": ("caption_accuracy.md", False),
}
ACCURACY = {"fvmgn_accuracy", "dtaug_accuracy", "caption_accuracy"}  # train many models: --with-accuracy


def load1() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def run_script(name: str, extra: list[str], env: dict[str, str]) -> dict[str, object]:
    """Run one script, tee its output to the console and to ``results/logs/<name>.log``."""
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(BENCH / f"{name}.py"), *extra]
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


def section(text: str, heading: str) -> list[str]:
    """Lines of the ``## heading`` section (up to the next ``#``/``##`` heading), without blank edges."""
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        if line.startswith("#"):
            if inside:
                break
            inside = line.strip("# ").lower() == heading.lower()
            continue
        if inside:
            out.append(line)
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    return out


def field(text: str, name: str) -> str | None:
    m = re.search(rf"^{name}:\s*(.+?)\s*$", text, flags=re.M)
    return m.group(1) if m else None


def summarize(name: str, path: Path) -> list[str]:
    """Markdown lines with the key numbers of one results file."""
    text = path.read_text(encoding="utf-8")
    stamp = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = text.splitlines()[0].lstrip("# ").strip() if text else name
    lines = [
        f"## {name} — {title}",
        "",
        f"Results file: `benchmarks/results/{path.name}` (written {stamp})  ",
    ]
    mach = field(text, "Machine")
    if mach:
        lines.append(f"Machine: {mach}  ")
    lines.append("")
    if name == "data_throughput":
        best = field(text, "Best")
        lines += [f"- best: {best}" if best else "- (no `Best:` line found)"]
        rows = [ln for ln in text.splitlines() if ln.startswith("|")]
        if rows:
            lines += ["", *rows]
    elif name in ACCURACY:
        for line in text.splitlines():
            if line.startswith("## "):
                lines += ["", f"**{line[3:]}**", ""]
            elif line.startswith("|"):
                lines.append(line)
    else:
        key = section(text, "Key numbers")
        lines += key or ["- (no `## Key numbers` section found)"]
    return [*lines, ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--with-accuracy", action="store_true", help=f"also run the accuracy grids {sorted(ACCURACY)} (long)"
    )
    ap.add_argument("--only", nargs="+", choices=list(SCRIPTS), help="run only these scripts")
    ap.add_argument("--summary-only", action="store_true", help="run nothing, rebuild SUMMARY.md")
    ap.add_argument(
        "--args",
        action="append",
        default=[],
        metavar="NAME='ARGS'",
        help="extra arguments for one script, e.g. --args tta_cost='--n 2048'",
    )
    args = ap.parse_args()
    extra: dict[str, list[str]] = {}
    for item in args.args:
        name, _, rest = item.partition("=")
        if name not in SCRIPTS:
            ap.error(f"--args: unknown script {name!r} (known: {', '.join(SCRIPTS)})")
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

    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmark summary",
        "",
        f"Written {now} by `benchmarks/run_all.py`; this machine: {machine()}.  ",
        "Each section below is parsed from that benchmark's own results file, which has the method, the data "
        "(real or generated) and every table; a file not rerun this time keeps its own date and machine.",
        "",
    ]
    if history:
        lines += [
            "Last run of each script through run_all (this invocation: "
            + (", ".join(runs) if runs else "none, summary only")
            + "):",
            "",
            "| script | finished | exit | wall time | load before → after | command |",
            "|---|---|---:|---:|---|---|",
        ]
        for name in SCRIPTS:
            if name in history:
                r = history[name]
                lines.append(
                    f"| {name} | {r.get('date', '?')} | {r['rc']} | {float(r['wall']):.0f} s | "  # type: ignore[arg-type]
                    f"{float(r['load0']):.2f} → {float(r['load1']):.2f} | `{r['cmd']}` |"  # type: ignore[arg-type]
                )
        lines.append("")
    for name, (fname, _) in SCRIPTS.items():
        path = RESULTS / fname
        if path.is_file():
            lines += summarize(name, path)
        else:
            how = "run with `--with-accuracy`" if name in ACCURACY else "not run yet"
            lines += [f"## {name}", "", f"No results file (`benchmarks/results/{fname}`): {how}.", ""]
    write_result("SUMMARY.md", "\n".join(lines))
    failed = [n for n, r in runs.items() if r["rc"] != 0]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
