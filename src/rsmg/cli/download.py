"""``rsmg download``: the command line of :mod:`rsmg.data.download`, its tables and its exit status.

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

import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

from rsmg.cli.signature import Arg, parse_kwargs, signature_parser
from rsmg.data.download.datasets import download_dataset, verify_dataset
from rsmg.data.download.files import STATUS_MEANING, FileStatus
from rsmg.data.download.sources import DatasetInfo, FileSpec, dataset_info, load_sources
from rsmg.data_root import ENV_ROOT, resolve_root_with_origin
from rsmg.errors import ConfigError, DataError, UsageError, unknown_name_error

__all__ = ["EXIT_FAILED", "EXIT_MANUAL", "EXIT_MISSING", "EXIT_OK", "download", "main", "parser"]

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
    name: str,
    root: Path,
    statuses: Sequence[FileStatus],
    out: Any,
    *,
    only: Sequence[str] | None,
    include_all: bool,
    sources: Path | None,
) -> None:
    """Name the absent files ``rsmg download`` can fetch, and the command that fetches exactly the selection."""
    missing = [s for s in statuses if s.status == "missing"]
    if not missing:
        return
    cmd = ["rsmg", "download", name, "--root", str(root)]
    for o in only or []:
        cmd += ["--only", o]
    if include_all:
        cmd.append("--all")
    if sources is not None:
        cmd += ["--sources", str(sources)]
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


_EPILOG = (
    f"data root: --root, else ${ENV_ROOT}, else ./data (the default of the data modules); printed first.\n"
    "\n"
    "exit status:\n"
    f"  {EXIT_OK}  every selected file is present (ok / verified / unverified)\n"
    f"  {EXIT_FAILED}  a file failed (network, checksum, --require-hash), or the command could not run\n"
    "     (usage error, unknown name)\n"
    f"  {EXIT_MANUAL}  nothing failed, but files must still be placed by hand\n"
    f"  {EXIT_MISSING}  --verify-only: nothing failed, but files are missing that `rsmg download` fetches\n"
    f"  when several apply: {EXIT_FAILED}, then {EXIT_MISSING}, then {EXIT_MANUAL}"
)


def download(
    name: str | None = None,
    *,
    root: Path | None = None,
    only: Annotated[list[str] | None, Arg(metavar="FILE", repeat=True)] = None,
    mirror: Annotated[str | None, Arg(metavar="URL")] = None,
    verify_only: bool = False,
    list_datasets: Annotated[bool, Arg(option="--list")] = False,
    include_optional: Annotated[bool, Arg(option="--all")] = False,
    require_hash: bool = False,
    retries: int = 3,
    timeout: float = 60.0,
    no_progress: bool = False,
    sources: Annotated[Path | None, Arg(hidden=True)] = None,
) -> int:
    """Download a benchmark dataset into ROOT/<dataset>/ and verify every file's checksum.

    The checksums are the published or measured ones. Files that cannot be fetched automatically are listed
    with instructions.

    Args:
        name: dataset name (see --list)
        root: data root; files land in ROOT/<dataset folder>/ (none: $RSMG_DATA_ROOT, else ./data)
        only: only this file (repeatable)
        mirror: fetch every file from URL/<relative path> instead
        verify_only: check files on disk; no network
        list_datasets: list datasets (size, source, licence, what is already under the root) and their
            files; no network
        include_optional: include optional files (huge archives, alt. copies)
        require_hash: fail on files with no known checksum
        retries: attempts per URL
        timeout: socket timeout in seconds
        no_progress: no progress bars
        sources: the sources table (default: the shipped one); for tests

    Returns:
        The exit status (see the module docstring).

    Raises:
        UsageError: no NAME (and no --list).
        ConfigError: an unknown dataset name or a bad sources table.
        DataError: a file that cannot be verified.
    """
    out = sys.stdout
    table = load_sources(sources)
    if list_datasets:
        if name is not None and name not in table:
            raise unknown_name_error("dataset", name, list(table), field="download.name")
        given, origin = resolve_root_with_origin(root)
        where = given.resolve()
        print(f"data root: {where} (from {origin})\n", file=out)
        _print_list(table, dataset_info(sources), [name] if name else list(table), where, out)
        return EXIT_OK
    if name is None:
        raise UsageError("NAME is required (or use --list)")
    if name not in table:
        raise unknown_name_error("dataset", name, list(table), field="download.name")
    given, origin = resolve_root_with_origin(root)
    where = given.resolve()
    note = "" if origin != "default ./data" else f"; set --root or ${ENV_ROOT} to choose another"
    print(f"data root: {where} (from {origin}{note})", file=out, flush=True)
    if verify_only:
        statuses = verify_dataset(
            name,
            where,
            only=only,
            sources=sources,
            require_hash=require_hash,
            include_optional=include_optional,
        )
    else:
        statuses = download_dataset(
            name,
            where,
            only=only,
            base_url=mirror,
            retries=retries,
            timeout=timeout,
            progress=not no_progress,
            sources=sources,
            require_hash=require_hash,
            include_optional=include_optional,
            strict=False,
        )
    _report(name, statuses, out, sys.stderr)
    _print_missing_hint(name, where, statuses, out, only=only, include_all=include_optional, sources=sources)
    if not verify_only and not only and not include_optional:
        not_fetched = [s for s in table[name] if s.optional]
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


def _report(name: str, statuses: Sequence[FileStatus], out: Any, err: Any) -> None:
    """The per-file messages (manual steps, unverified files, failures), the table and the summary line."""
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
    _print_summary(name, statuses, out)


def parser() -> Any:
    """The jsonargparse parser of ``rsmg download``, built from :func:`download`'s signature and docstring."""
    return signature_parser(download, prog="rsmg download", epilog=_EPILOG)


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
    p = parser()
    try:
        kwargs = parse_kwargs(p, download, argv)
    except SystemExit as e:  # --help exits 0; a usage error would exit 2, which means "manual" here
        return EXIT_OK if e.code in (0, None) else EXIT_FAILED
    try:
        return download(**kwargs)
    except UsageError as e:
        p.print_usage(sys.stderr)
        print(f"rsmg download: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except (ConfigError, DataError) as e:
        print(f"rsmg download: {e}", file=sys.stderr)
        return EXIT_FAILED
