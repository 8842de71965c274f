"""One file of a dataset: check a copy already in place, or fetch, verify and move it there; unpack archives.

A file only ever appears at its target path complete and verified: it is downloaded to ``<target>.part``, its
size and checksum are checked, then it is renamed into place (atomic on one filesystem).
"""

from __future__ import annotations

import shutil
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rsmg.data.download.fetch import _TRANSIENT, _describe, _fetch, _hash_file, _mismatch, _Permanent
from rsmg.data.download.sources import FileSpec
from rsmg.errors import ConfigError, DataError
from rsmg.io import atomic_move

__all__ = ["STATUS_MEANING", "FileStatus", "Status"]

Status = Literal["ok", "verified", "unverified", "manual", "missing", "failed"]

#: What each status means, printed in the summary line so the table's one-word labels are never ambiguous.
STATUS_MEANING: dict[str, str] = {
    "ok": "downloaded, checksum ok",
    "verified": "present, checksum ok",
    "unverified": "present, no checksum known",
    "manual": "absent, place by hand",
    "missing": "absent, `rsmg download` fetches it",
    "failed": "see the errors above",
}

_ARCHIVE_FORMATS = (
    (".tar.gz", "gztar"),
    (".tgz", "gztar"),
    (".tar.bz2", "bztar"),
    (".tar.xz", "xztar"),
    (".tar", "tar"),
    (".zip", "zip"),
    (".whl", "zip"),
)


@dataclass
class FileStatus:
    """What happened to one file.

    Attributes:
        dataset: dataset name.
        path: path relative to the download root (``"trento/MGMNet/TRLabel.mat"``).
        target: absolute target path.
        status: ``ok`` (downloaded and verified), ``verified`` (already present and its checksum matches;
            nothing was fetched), ``unverified`` (present, but no checksum is known to check it against),
            ``manual`` (absent; must be placed by hand, see ``message``), ``missing`` (absent, and
            ``rsmg download`` fetches it; only from :func:`verify_dataset`) or ``failed``.
        size: size in bytes of the file on disk (or the expected size when absent and known).
        url: the URL it was downloaded from, if it was downloaded.
        sha256: sha256 of the file on disk, when it was computed.
        message: the manual-download instructions or the error text.
        error: the error, for ``failed``.
    """

    dataset: str
    path: str
    target: Path
    status: Status
    size: int | None = None
    url: str | None = None
    sha256: str | None = None
    message: str | None = None
    error: DataError | None = field(default=None, repr=False)


# ----------------------------------------------------------------------------------------------- one file


def _archive_format(path: Path) -> str | None:
    name = path.name.lower()
    return next((fmt for suffix, fmt in _ARCHIVE_FORMATS if name.endswith(suffix)), None)


def _unpack(spec: FileSpec, target: Path) -> None:
    """Unpack an archive next to itself once; a marker file records that it was done for these bytes."""
    marker = target.with_name(f".{target.name}.unpacked")
    if marker.exists():
        return
    fmt = _archive_format(target)
    if fmt is None:
        raise ConfigError(
            "unpack is set for a file that is not a known archive",
            field=f"datasets.{spec.dataset}:{spec.path}.unpack",
            expected=[s for s, _ in _ARCHIVE_FORMATS],
            found=target.name,
        )
    try:
        if fmt == "zip":  # shutil skips members with absolute paths or '..' components
            shutil.unpack_archive(target, target.parent, format="zip")
        else:  # the "data" filter refuses links out of the folder, device files and absolute names
            shutil.unpack_archive(target, target.parent, format=fmt, filter="data")
    except (OSError, ValueError, EOFError, shutil.ReadError) as e:
        raise DataError(
            "could not unpack the archive",
            file=target,
            found=_describe(e),
            fix="delete the archive and run `rsmg download` again; check free disk space",
        ) from e
    marker.write_text(f"unpacked into {target.parent}\n", encoding="utf-8")


def _check_present(spec: FileSpec, target: Path, require_hash: bool) -> FileStatus:
    """Status of a file already at its target: verified, unverified or wrong (never overwritten)."""
    size = target.stat().st_size
    if not spec.has_hash:
        d = _hash_file(target, spec)
        if require_hash:
            err = _no_hash_error(spec, target)
            return FileStatus(
                spec.dataset,
                spec.relpath,
                target,
                "failed",
                size,
                sha256=d.sha256.hexdigest(),
                message=str(err),
                error=err,
            )
        return FileStatus(
            spec.dataset,
            spec.relpath,
            target,
            "unverified",
            size,
            sha256=d.sha256.hexdigest(),
            message="present, but no published checksum to verify it against",
        )
    d = _hash_file(target, spec)
    bad = _mismatch(spec, target, d)
    if bad is None:
        return FileStatus(spec.dataset, spec.relpath, target, "verified", size, sha256=d.sha256.hexdigest())
    fld, expected, found = bad
    err = DataError(
        "a file at the target path does not match its published checksum (it was left untouched)",
        file=target,
        field=fld,
        expected=expected,
        found=found,
        fix=(
            "if you placed it by hand, it is a different copy (other preprocessing or a truncated download): "
            f"delete it and run `rsmg download {spec.dataset}` again, or get the exact file described in "
            "`rsmg download --list`"
        ),
    )
    return FileStatus(spec.dataset, spec.relpath, target, "failed", size, None, found, str(err), err)


def _no_hash_error(spec: FileSpec, target: Path) -> DataError:
    return DataError(
        "no published checksum is known for this file, and --require-hash is set",
        file=target,
        field="sha256",
        expected="a sha256 or md5 in sources.yaml",
        found="none",
        fix="drop --require-hash to accept it as 'unverified', or add its checksum to the sources table",
    )


def _manual_message(spec: FileSpec, target: Path) -> str:
    lines = [f"place the file by hand at: {target}"]
    if spec.manual:
        lines.append(spec.manual)
    if spec.has_hash:
        lines.append("then check it with: rsmg download " + f"{spec.dataset} --root <ROOT> --verify-only")
    return "\n".join(lines)


def _download_file(
    spec: FileSpec,
    root: Path,
    *,
    base_url: str | None,
    retries: int,
    timeout: float,
    progress: bool,
    require_hash: bool,
) -> FileStatus:
    target = spec.target(root)
    if target.exists():
        st = _check_present(spec, target, require_hash)
        if spec.unpack and st.status in ("verified", "unverified"):
            _unpack(spec, target)
        return st
    urls = (base_url.rstrip("/") + "/" + urllib.parse.quote(spec.relpath),) if base_url else spec.urls
    if not urls:
        return FileStatus(
            spec.dataset, spec.relpath, target, "manual", spec.size, message=_manual_message(spec, target)
        )
    if require_hash and not spec.has_hash:
        err = _no_hash_error(spec, target)
        return FileStatus(
            spec.dataset, spec.relpath, target, "failed", spec.size, message=str(err), error=err
        )

    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    failures: list[str] = []
    mismatch: DataError | None = None
    for url in urls:
        try:
            digests = _fetch(url, part, spec, retries, timeout, progress)
        except (_Permanent, *_TRANSIENT) as e:
            failures.append(f"{url} -> {_describe(e)}")
            continue
        bad = _mismatch(spec, part, digests)
        if bad is not None:
            part.unlink(missing_ok=True)  # never keep bytes we know are wrong: the next run starts clean
            fld, expected, found = bad
            failures.append(f"{url} -> {fld} mismatch")
            mismatch = DataError(
                "downloaded file does not match its published checksum; the partial file was deleted",
                file=target,
                field=fld,
                expected=expected,
                found=f"{found} (from {url})",
                fix=(
                    "rerun to retry (a transfer error does not repeat); if it persists the server holds a "
                    "different file: pass --mirror URL, or place a trusted copy at the target path by hand"
                    + (f". Manual source: {spec.manual}" if spec.manual else "")
                ),
            )
            continue
        atomic_move(part, target)
        sha = digests.sha256.hexdigest()
        size = target.stat().st_size
        if spec.unpack:
            _unpack(spec, target)
        if not spec.has_hash:
            return FileStatus(
                spec.dataset,
                spec.relpath,
                target,
                "unverified",
                size,
                url,
                sha,
                message=f"no published checksum; sha256 of what was downloaded: {sha}",
            )
        return FileStatus(spec.dataset, spec.relpath, target, "ok", size, url, sha)

    if mismatch is not None and len(failures) == 1:
        err = mismatch
    else:
        err = DataError(
            f"could not download {spec.relpath}",
            file=target,
            field="url",
            expected="a complete, checksum-matching answer from one of the URLs",
            found="; ".join(failures),
            fix=(
                "check the network or proxy (https_proxy) and rerun (a partial download resumes); pass "
                "--mirror URL to fetch from another server holding the same relative paths; or download it "
                f"yourself and place it at {target}"
                + (f". Manual source: {spec.manual}" if spec.manual else "")
            ),
        )
    return FileStatus(spec.dataset, spec.relpath, target, "failed", spec.size, message=str(err), error=err)
