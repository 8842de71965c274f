"""Whole datasets: download or verify every selected file of a dataset, reporting each one's status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rsmg.data.download.files import FileStatus, _check_present, _download_file, _manual_message
from rsmg.data.download.sources import _select
from rsmg.errors import DataError

__all__ = ["download_dataset", "verify_dataset"]


def download_dataset(
    name: str,
    root: str | Path,
    *,
    only: Sequence[str] | None = None,
    base_url: str | None = None,
    retries: int = 3,
    timeout: float = 60,
    progress: bool = True,
    sources: str | Path | Mapping[str, Any] | None = None,
    require_hash: bool = False,
    include_optional: bool = False,
    strict: bool = True,
) -> list[FileStatus]:
    """Download the files of a dataset into ``root/<dir>/``, verifying each against its checksum.

    Files already present are checked, not fetched again (status ``verified``), so running it again is cheap
    and safe. Every file is attempted even after one fails, so a single dead mirror does not hide the state of
    the others.

    Args:
        name: dataset name (see :func:`dataset_names`).
        root: download root; files land at ``root/<relpath>``.
        only: restrict to these files (dataset-relative ``"MGMNet/TRLabel.mat"`` or root-relative
            ``"trento/MGMNet/TRLabel.mat"``); names optional files too.
        base_url: fetch every file from ``base_url + "/" + relpath`` instead of the configured URLs (an
            internal mirror holding the same layout; also used by the tests). Manual files are tried there
            too.
        retries: attempts per URL for transient errors (timeouts, resets, 5xx); each retry resumes the .part.
        timeout: socket timeout in seconds per request.
        progress: show a tqdm progress bar per file on stderr.
        sources: a sources table (path or parsed mapping) replacing the packaged ``sources.yaml``.
        require_hash: treat files with no known checksum as failures instead of ``unverified``.
        include_optional: also fetch files marked ``optional`` (huge archives, alternative copies).
        strict: raise when a file failed; False returns the ``failed`` statuses instead (the CLI's mode).

    Returns:
        One :class:`FileStatus` per selected file, in table order.

    Raises:
        ConfigError: unknown dataset or file name, or a malformed sources table.
        DataError: with ``strict``, a file could not be downloaded or did not verify (the one file's error, or
            a summary naming every failed file).
    """
    specs = _select(name, sources, only, include_optional)
    root = Path(root).expanduser().resolve()
    statuses: list[FileStatus] = []
    for s in specs:
        try:
            st = _download_file(
                s,
                root,
                base_url=base_url,
                retries=retries,
                timeout=timeout,
                progress=progress,
                require_hash=require_hash,
            )
        except DataError as e:  # e.g. an archive that verified but will not unpack (disk full)
            st = FileStatus(s.dataset, s.relpath, s.target(root), "failed", s.size, message=str(e), error=e)
        statuses.append(st)
    failed = [s for s in statuses if s.status == "failed"]
    if strict and failed:
        if len(failed) == 1 and failed[0].error is not None:
            raise failed[0].error
        raise DataError(
            f"{len(failed)} of {len(statuses)} files of {name!r} failed",
            file=root,
            found="\n    ".join(["", *(s.message or s.path for s in failed)]),
            fix="see each file's fix above; rerun to resume, or use --mirror / manual placement",
        )
    return statuses


def verify_dataset(
    name: str,
    root: str | Path,
    *,
    only: Sequence[str] | None = None,
    sources: str | Path | Mapping[str, Any] | None = None,
    require_hash: bool = False,
    include_optional: bool = False,
) -> list[FileStatus]:
    """Check the files of a dataset already on disk against their checksums; never touches the network.

    This is how a file placed by hand (Trento HSI from the authors, Augsburg from Google Drive) is checked.
    Optional files that are absent are not reported unless named in ``only`` or ``include_optional``.

    Args:
        name: dataset name.
        root: download root.
        only: restrict to these files (see :func:`download_dataset`).
        sources: a sources table replacing the packaged one.
        require_hash: report files with no known checksum as ``failed``.
        include_optional: also report absent optional files.

    Returns:
        One status per file: ``verified`` (present, checksum ok), ``unverified``, ``failed`` (present but
        wrong), ``manual`` (absent, must be placed by hand) or ``missing`` (absent, can be downloaded).

    Raises:
        ConfigError: unknown dataset or file name.
    """
    specs = _select(name, sources, only, include_optional=True)
    asked = include_optional or bool(only)
    root = Path(root).expanduser().resolve()
    out: list[FileStatus] = []
    for spec in specs:
        target = spec.target(root)
        if target.exists():
            out.append(_check_present(spec, target, require_hash))
        elif spec.optional and not asked:
            continue
        elif spec.urls:
            msg = f"run `rsmg download {spec.dataset} --root {root}`"
            out.append(FileStatus(spec.dataset, spec.relpath, target, "missing", spec.size, message=msg))
        else:
            msg = _manual_message(spec, target)
            out.append(FileStatus(spec.dataset, spec.relpath, target, "manual", spec.size, message=msg))
    return out
