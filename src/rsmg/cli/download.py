"""``rsmg download``: the argparse front door of :mod:`rsmg.data.download`, its tables and its exit status.

Exit status (also in ``--help``): 0 every selected file is present; 1 a file failed (network, checksum,
``--require-hash``) or the command could not run (usage, unknown name, bad sources table); 2 nothing failed but
files must be placed by hand; 3 (``--verify-only``) nothing failed but files are absent that ``rsmg download``
fetches. 3 is kept apart from 1 because the two call for different actions: 1 needs a person to look at an
error, 3 only needs the download to be run, which a script can do on its own
(``rsmg download x --verify-only || [ $? -ne 3 ] || rsmg download x``).

The data root is the one the data modules read (:func:`rsmg.data_root.resolve_root_with_origin`: ``--root``,
else ``$RSMG_DATA_ROOT``, else ``./data``), printed, with where that choice came from, before anything is touched.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rsmg.data.download.datasets import download_dataset, verify_dataset
from rsmg.data.download.files import STATUS_MEANING, FileStatus
from rsmg.data.download.sources import DatasetInfo, FileSpec, dataset_info, load_sources
from rsmg.data_root import ENV_ROOT, resolve_root_with_origin
from rsmg.errors import ConfigError, DataError, unknown_name_error

__all__ = ["EXIT_FAILED", "EXIT_MANUAL", "EXIT_MISSING", "EXIT_OK", "main"]

#: Exit status of ``rsmg download``: every selected file present (ok / verified / unverified).
EXIT_OK = 0
#: A file failed (network, checksum, ``--require-hash``) or the command could not run.
EXIT_FAILED = 1
#: Nothing failed, but files must still be placed by hand.
EXIT_MANUAL = 2
#: ``--verify-only``: nothing failed, but files are absent that ``rsmg download`` fetches.
EXIT_MISSING = 3


def _human(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _print_table(statuses: Sequence[FileStatus], out: Any) -> None:
    rows = [(s.path, s.status, _human(s.size)) for s in statuses]
    w0 = max([4, *(len(r[0]) for r in rows)])
    w1 = max([6, *(len(r[1]) for r in rows)])
    print(f"{'file':<{w0}}  {'status':<{w1}}  size", file=out)
    print(f"{'-' * w0}  {'-' * w1}  {'-' * 9}", file=out)
    for r in rows:
        print(f"{r[0]:<{w0}}  {r[1]:<{w1}}  {r[2]}", file=out)


def _print_summary(name: str, statuses: Sequence[FileStatus], out: Any) -> None:
    """One line counting each status with its meaning, in the table's words."""
    counts = {k: sum(s.status == k for s in statuses) for k in STATUS_MEANING}
    parts = [f"{n} {k} ({STATUS_MEANING[k]})" for k, n in counts.items() if n]
    print(f"\n{name}: " + ("; ".join(parts) if parts else "no file selected"), file=out)


def _print_missing_hint(
    args: argparse.Namespace, root: Path, statuses: Sequence[FileStatus], out: Any
) -> None:
    """Name the absent files ``rsmg download`` can fetch, and the command that fetches exactly the selection."""
    missing = [s for s in statuses if s.status == "missing"]
    if not missing:
        return
    cmd = ["rsmg", "download", args.name, "--root", str(root)]
    for o in args.only or []:
        cmd += ["--only", o]
    if args.all:
        cmd.append("--all")
    if args.sources is not None:
        cmd += ["--sources", str(args.sources)]
    print(f"\n{len(missing)} file(s) missing under {root}:", file=out)
    for s in missing:
        print(f"  {s.path}", file=out)
    print(f"fetch them with: {shlex.join(cmd)}", file=out)


def _presence(spec: FileSpec, root: Path) -> str:
    """Whether a file is at its target under ``root``, judged by name and size only (no hashing, no network)."""
    target = spec.target(root)
    if target.is_file():
        if spec.size is not None and target.stat().st_size != spec.size:
            return "present, wrong size"
        return "present"
    return "partial" if target.with_name(target.name + ".part").is_file() else "absent"


def _print_list(
    table: Mapping[str, tuple[FileSpec, ...]],
    info: Mapping[str, DatasetInfo],
    names: Sequence[str],
    root: Path,
    out: Any,
) -> None:
    """Every dataset with its size, source, licence and what of it is already under ``root``; files below."""
    for n in names:
        specs = table[n]
        folder = specs[0].relpath[: -len(specs[0].path) - 1]
        fetched = [s for s in specs if not s.optional]  # what `rsmg download <name>` selects
        known = sum(s.size or 0 for s in fetched)
        unknown = sum(s.size is None for s in fetched)
        size = _human(known) if not unknown else f"{_human(known)} + {unknown} file(s) of unknown size"
        presence = [_presence(s, root) for s in specs]
        here = sum(p == "present" for p in presence)
        state = (
            "all present"
            if here == len(specs)
            else ("none present" if here == 0 else f"{here} of {len(specs)} present")
        )
        print(f"{n}  ({len(specs)} files, folder {folder}/; {size}; {state} under {root / folder})", file=out)
        meta = info.get(n, DatasetInfo(n))
        if meta.description:
            print(f"  {meta.description}", file=out)
        print(f"  source: {meta.homepage or 'not recorded'}", file=out)
        print(f"  licence: {meta.licence or 'not recorded in the sources table'}", file=out)
        for s, p in zip(specs, presence, strict=True):
            check = "sha256" if s.sha256 else ("md5" if s.md5 else "no checksum")
            flags = [check, _human(s.size)]
            if not s.urls:
                flags.append("manual only")
            elif s.manual:
                flags.append("manual fallback")
            if s.optional:
                flags.append("optional")
            if s.unpack:
                flags.append("unpacked")
            flags.append(p)
            print(f"  {s.path}  [{', '.join(flags)}]", file=out)
            for u in s.urls[:2]:
                print(f"      {u}", file=out)
    print(
        "\npresent: a file of the listed name (and size, where known) is there; "
        "`rsmg download <name> --verify-only` checks the checksums",
        file=out,
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rsmg download",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keep the exit-status lines one per line
        description=(
            "Download a benchmark dataset into ROOT/<dataset>/ and verify every file against its published\n"
            "or measured checksum. Files that cannot be fetched automatically are listed with instructions."
        ),
        epilog=(
            f"data root: --root, else ${ENV_ROOT}, else ./data (the default of the data modules); printed first.\n"
            "\n"
            "exit status:\n"
            f"  {EXIT_OK}  every selected file is present (ok / verified / unverified)\n"
            f"  {EXIT_FAILED}  a file failed (network, checksum, --require-hash), or the command could not run\n"
            "     (usage error, unknown name)\n"
            f"  {EXIT_MANUAL}  nothing failed, but files must still be placed by hand\n"
            f"  {EXIT_MISSING}  --verify-only: nothing failed, but files are missing that `rsmg download` fetches\n"
            f"  when several apply: {EXIT_FAILED}, then {EXIT_MISSING}, then {EXIT_MANUAL}"
        ),
    )
    p.add_argument("name", nargs="?", help="dataset name (see --list)")
    p.add_argument(
        "--root",
        type=Path,
        help=f"data root; files land in ROOT/<dataset folder>/ (default ${ENV_ROOT}, else ./data)",
    )
    p.add_argument("--only", action="append", metavar="FILE", help="only this file (repeatable)")
    p.add_argument("--mirror", metavar="URL", help="fetch every file from URL/<relative path> instead")
    p.add_argument("--verify-only", action="store_true", help="check files on disk; no network")
    p.add_argument(
        "--list",
        action="store_true",
        help="list datasets (size, source, licence, what is already under the root) and their files; no network",
    )
    p.add_argument("--all", action="store_true", help="include optional files (huge archives, alt. copies)")
    p.add_argument("--require-hash", action="store_true", help="fail on files with no known checksum")
    p.add_argument("--retries", type=int, default=3, help="attempts per URL (default 3)")
    p.add_argument("--timeout", type=float, default=60.0, help="socket timeout in seconds (default 60)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--sources", type=Path, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``rsmg download``; see ``rsmg download --help``.

    Args:
        argv: arguments after ``download`` (default: ``sys.argv[1:]``).

    Returns:
        The exit status: :data:`EXIT_OK` all selected files present, :data:`EXIT_FAILED` a failure or a usage
        error, :data:`EXIT_MANUAL` files still to be placed by hand, :data:`EXIT_MISSING` (``--verify-only``)
        files absent that the download fetches. A usage error returns 1, not argparse's 2, because 2 already
        means "place files by hand".
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help exits 0; argparse's usage error would exit 2, which means "manual" here
        return EXIT_OK if e.code in (0, None) else EXIT_FAILED
    out, err = sys.stdout, sys.stderr
    try:
        table = load_sources(args.sources)
        if args.list:
            if args.name is not None and args.name not in table:
                raise unknown_name_error("dataset", args.name, list(table), field="download.name")
            given, origin = resolve_root_with_origin(args.root)
            root = given.resolve()
            print(f"data root: {root} (from {origin})\n", file=out)
            _print_list(
                table, dataset_info(args.sources), [args.name] if args.name else list(table), root, out
            )
            return 0
        if args.name is None:
            parser.print_usage(err)
            print("rsmg download: error: NAME is required (or use --list)", file=err)
            return EXIT_FAILED
        if args.name not in table:
            raise unknown_name_error("dataset", args.name, list(table), field="download.name")
        given, origin = resolve_root_with_origin(args.root)
        root = given.resolve()
        note = "" if origin != "default ./data" else f"; set --root or ${ENV_ROOT} to choose another"
        print(f"data root: {root} (from {origin}{note})", file=out, flush=True)
        if args.verify_only:
            statuses = verify_dataset(
                args.name,
                root,
                only=args.only,
                sources=args.sources,
                require_hash=args.require_hash,
                include_optional=args.all,
            )
        else:
            statuses = download_dataset(
                args.name,
                root,
                only=args.only,
                base_url=args.mirror,
                retries=args.retries,
                timeout=args.timeout,
                progress=not args.no_progress,
                sources=args.sources,
                require_hash=args.require_hash,
                include_optional=args.all,
                strict=False,
            )
    except (ConfigError, DataError) as e:
        print(f"rsmg download: {e}", file=err)
        return EXIT_FAILED

    for s in statuses:
        if s.status == "manual" and s.message:
            print(f"\n[manual] {s.path}\n  " + s.message.replace("\n", "\n  "), file=out)
        elif s.status == "unverified" and s.message:
            print(f"\n[unverified] {s.path}: {s.message}", file=out)
    for s in statuses:
        if s.status == "failed" and s.message:
            print(f"\n[failed] {s.path}\n  {s.message}", file=err)
    print(file=out)
    _print_table(statuses, out)
    _print_summary(args.name, statuses, out)
    _print_missing_hint(args, root, statuses, out)
    if not args.verify_only and not args.only and not args.all:
        not_fetched = [s for s in table[args.name] if s.optional]
        if not_fetched:
            print(
                f"\n{len(not_fetched)} optional file(s) not fetched (use --all or --only FILE): "
                + ", ".join(s.path for s in not_fetched),
                file=out,
            )
    if any(s.status == "failed" for s in statuses):
        return EXIT_FAILED
    if any(s.status == "missing" for s in statuses):
        return EXIT_MISSING
    return EXIT_MANUAL if any(s.status == "manual" for s in statuses) else EXIT_OK
