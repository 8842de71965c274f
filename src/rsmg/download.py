"""``rsmg download``: fetch benchmark files, check them against known checksums, report what could not be had.

Why a downloader of our own: the HSI benchmarks (Trento, MUUFL, Houston 2013, Augsburg) are not pip- or
torchvision-installable; copies live in paper repositories, behind registration forms or on Google Drive,
and several "Trento HSI.mat" files in the wild hold different bytes. Every file rsmg fetches is therefore
pinned in ``rsmg/data/resources/sources.yaml`` to a URL list (official first, public mirrors after) and,
where one is known, a sha256 (or md5) that the bytes must match before they are moved into place. Files that
cannot be fetched automatically carry a ``manual`` note: the command prints it with the exact path to put
the file at, and verifies the file once a user has placed it.

Guarantees:

* a file only ever appears at its target path complete and verified (download to ``<target>.part``, check size
  and checksum, then :func:`os.replace`, which is atomic on one filesystem);
* an interrupted download resumes (``Range: bytes=N-``; a server that ignores Range answers 200 and the
  download restarts from byte 0 instead of appending a second copy);
* a checksum mismatch deletes the ``.part`` and raises :class:`~rsmg.errors.DataError` naming the file, the
  expected and the found checksum;
* a file with no known checksum is never silently trusted: it is reported ``unverified`` with the sha256 it
  has, and ``require_hash=True`` (``--require-hash``) refuses it.

Only the standard library talks to the network (:mod:`urllib.request`), so a proxy set through ``https_proxy``
works and no ``requests`` dependency is needed.

The data root is the one the data modules read (:func:`rsmg.data_root.resolve_root_with_origin`: ``--root``,
else ``$RSMG_DATA_ROOT``, else ``./data``), so ``rsmg download trento`` fills exactly the folder a config without
``root:`` reads from. The command prints which root it uses, and where that choice came from, before it touches
anything. That function lives in a standard-library-only module shared with :mod:`rsmg.data.catalog`, because
importing the catalog pulls in torch, five seconds on every ``rsmg download`` call.

Exit status of ``rsmg download`` (also in ``--help``): 0 every selected file is present; 1 a file failed
(network, checksum, ``--require-hash``) or the command could not run (usage, unknown name, bad sources table);
2 nothing failed but files must be placed by hand; 3 (``--verify-only``) nothing failed but files are absent that
``rsmg download`` fetches. 3 is kept apart from 1 because the two call for different actions: 1 needs a person to
look at an error, 3 only needs the download to be run, which a script can do on its own
(``rsmg download x --verify-only || [ $? -ne 3 ] || rsmg download x``).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import re
import shlex
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.client import HTTPException
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from rsmg import __version__
from rsmg.data_root import ENV_ROOT, resolve_root_with_origin
from rsmg.errors import ConfigError, DataError, unknown_name_error

__all__ = [
    "ENV_ROOT",
    "EXIT_FAILED",
    "EXIT_MANUAL",
    "EXIT_MISSING",
    "EXIT_OK",
    "DatasetInfo",
    "FileSpec",
    "FileStatus",
    "dataset_info",
    "dataset_names",
    "download_dataset",
    "load_sources",
    "main",
    "resolve_root_with_origin",
    "verify_dataset",
]

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

#: Environment variable naming the data root, shared with the data modules (:mod:`rsmg.data.catalog`).

#: Exit status of ``rsmg download``: every selected file present (ok / verified / unverified).
EXIT_OK = 0
#: A file failed (network, checksum, ``--require-hash``) or the command could not run.
EXIT_FAILED = 1
#: Nothing failed, but files must still be placed by hand.
EXIT_MANUAL = 2
#: ``--verify-only``: nothing failed, but files are absent that ``rsmg download`` fetches.
EXIT_MISSING = 3

#: Seconds to wait before retry ``k`` (``k * RETRY_BACKOFF_S``); module level so tests can set it to 0.
RETRY_BACKOFF_S = 2.0
_CHUNK = 1 << 20
_USER_AGENT = f"rsmg/{__version__} (python-urllib; rsmg download)"
_HEX = re.compile(r"[0-9a-f]+")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_ARCHIVE_FORMATS = (
    (".tar.gz", "gztar"),
    (".tgz", "gztar"),
    (".tar.bz2", "bztar"),
    (".tar.xz", "xztar"),
    (".tar", "tar"),
    (".zip", "zip"),
    (".whl", "zip"),
)


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset, as described in ``sources.yaml``.

    Attributes:
        dataset: dataset name (``"trento"``).
        path: target path relative to the dataset folder (``"MGMNet/TRLabel.mat"``).
        relpath: target path relative to the download root (``"trento/MGMNet/TRLabel.mat"``); also the path
            appended to ``--mirror``.
        urls: direct URLs, official first, mirrors after (empty for manual-only files).
        sha256: lowercase hex sha256 of the bytes the URLs serve, or None if unknown.
        md5: lowercase hex md5 where only an md5 is published, or None.
        size: size in bytes, or None if unknown.
        manual: instructions for getting the file by hand, or None.
        optional: fetched only when asked for by name (``only``) or with ``include_optional``.
        unpack: unpack the archive next to it after verification.
        hash_source: where the checksum comes from (printed by ``--list``).
    """

    dataset: str
    path: str
    relpath: str
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    manual: str | None = None
    optional: bool = False
    unpack: bool = False
    hash_source: str | None = None

    @property
    def has_hash(self) -> bool:
        """Whether a checksum is known, i.e. whether a copy of this file can be verified."""
        return self.sha256 is not None or self.md5 is not None

    def target(self, root: str | Path) -> Path:
        """Return where the file lives under ``root``."""
        return Path(root).joinpath(*PurePosixPath(self.relpath).parts)


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


# ----------------------------------------------------------------------------------------------- sources


def _default_sources_file() -> Any:
    return resources.files("rsmg.data").joinpath("resources", "sources.yaml")


def _yaml_load(text: str, where: str) -> Any:
    import yaml

    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        raise ConfigError("the sources file is not valid YAML", file=where, found=str(e)) from e


@functools.lru_cache(maxsize=1)
def _default_doc() -> tuple[Any, str]:
    ref = _default_sources_file()
    return _yaml_load(ref.read_text(encoding="utf-8"), str(ref)), str(ref)


@functools.lru_cache(maxsize=1)
def _default_sources() -> dict[str, tuple[FileSpec, ...]]:
    """Parse the packaged table once per process (500 entries; the CLI and tests ask for it repeatedly)."""
    return _parse_sources(*_default_doc())


def _read_doc(source: str | Path | Mapping[str, Any] | None) -> tuple[Any, str]:
    """The parsed sources document and where it came from (for messages)."""
    if source is None:
        return _default_doc()
    if isinstance(source, Mapping):
        return source, "<sources mapping>"
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(
            "cannot read the sources file", file=source, found=str(e), fix="pass an existing YAML file"
        ) from e
    return _yaml_load(text, str(source)), str(source)


def load_sources(source: str | Path | Mapping[str, Any] | None = None) -> dict[str, tuple[FileSpec, ...]]:
    """Read and validate the sources table.

    Validation happens here, once, so that a typo in a checksum or a ``..`` in a path is reported as a
    :class:`~rsmg.errors.ConfigError` naming the key before anything is written to disk.

    Args:
        source: a YAML file, an already-parsed mapping (either the whole document or just its ``datasets``
            mapping; tests and internal mirrors pass their own), or None for the packaged ``sources.yaml``.

    Returns:
        dataset name → its files, in table order.

    Raises:
        ConfigError: the table is malformed.
    """
    if source is None:
        return dict(_default_sources())
    return _parse_sources(*_read_doc(source))


@dataclass(frozen=True)
class DatasetInfo:
    """What the sources table says about a dataset besides its files (printed by ``rsmg download --list``).

    Attributes:
        name: dataset name (``"trento"``).
        description: one line (sensor, size, classes).
        homepage: the official page.
        licence: the terms the data are distributed under, as far as its publishers state them.
    """

    name: str
    description: str | None = None
    homepage: str | None = None
    licence: str | None = None


def dataset_info(source: str | Path | Mapping[str, Any] | None = None) -> dict[str, DatasetInfo]:
    """Dataset name → its description, homepage and licence, in table order (the table is validated first)."""
    names = list(load_sources(source))
    doc, where = _read_doc(source)
    datasets = doc.get("datasets", doc)
    out: dict[str, DatasetInfo] = {}
    for name in names:
        entry = datasets[name]
        meta: dict[str, str | None] = {}
        for key in ("description", "homepage", "licence"):
            value = entry.get(key)
            if value is not None and not isinstance(value, str):
                raise ConfigError(
                    f"dataset {key} is not text",
                    file=where,
                    field=f"datasets.{name}.{key}",
                    expected="a string",
                    found=repr(value)[:80],
                )
            meta[key] = None if value is None else " ".join(value.split())
        out[name] = DatasetInfo(name, **meta)
    return out


def _parse_sources(doc: Any, where: str) -> dict[str, tuple[FileSpec, ...]]:
    if not isinstance(doc, Mapping):
        raise ConfigError("the sources table is not a mapping", file=where, found=type(doc).__name__)
    datasets = doc.get("datasets", doc)
    if not isinstance(datasets, Mapping) or not datasets:
        raise ConfigError(
            "the sources table has no datasets",
            file=where,
            field="datasets",
            expected="a mapping of dataset name to {dir, files}",
            found=repr(datasets)[:80],
        )
    return {str(name): _parse_dataset(str(name), entry, where) for name, entry in datasets.items()}


def _parse_dataset(name: str, entry: Any, where: str) -> tuple[FileSpec, ...]:
    key = f"datasets.{name}"
    if not isinstance(entry, Mapping):
        raise ConfigError("dataset entry is not a mapping", file=where, field=key, found=repr(entry)[:80])
    ds_dir = _safe_relpath(str(entry.get("dir", name)), where, f"{key}.dir")
    specs: list[FileSpec] = []
    for i, f in enumerate(entry.get("files") or []):
        fkey = f"{key}.files[{i}]"
        if not isinstance(f, Mapping) or "path" not in f:
            raise ConfigError("file entry needs a `path`", file=where, field=fkey, found=repr(f)[:80])
        path = _safe_relpath(str(f["path"]), where, f"{fkey}.path")
        urls = list(_str_list(f.get("urls"), where, f"{fkey}.urls"))
        if f.get("github") is not None:
            urls += _github_urls(f["github"], where, f"{fkey}.github")
        specs.append(
            FileSpec(
                dataset=name,
                path=path,
                relpath=f"{ds_dir}/{path}",
                urls=tuple(urls),
                sha256=_hex(f.get("sha256"), 64, where, f"{fkey}.sha256"),
                md5=_hex(f.get("md5"), 32, where, f"{fkey}.md5"),
                size=_size(f.get("size"), where, f"{fkey}.size"),
                manual=None if f.get("manual") is None else str(f["manual"]).strip(),
                optional=bool(f.get("optional", False)),
                unpack=bool(f.get("unpack", False)),
                hash_source=None if f.get("hash_source") is None else str(f["hash_source"]).strip(),
            )
        )
    for g_i, group in enumerate(entry.get("groups") or []):
        gkey = f"{key}.groups[{g_i}]"
        if not isinstance(group, Mapping) or not isinstance(group.get("files"), Mapping):
            raise ConfigError(
                "group needs a `files` mapping", file=where, field=gkey, expected="{path: [size, sha256]}"
            )
        prefixes = list(_str_list(group.get("url_prefixes"), where, f"{gkey}.url_prefixes"))
        if group.get("github") is not None:
            prefixes += _github_urls(group["github"], where, f"{gkey}.github")
        for rel, meta in group["files"].items():
            fkey = f"{gkey}.files[{rel!r}]"
            path = _safe_relpath(str(rel), where, fkey)
            if not (isinstance(meta, Sequence) and len(meta) == 2):
                raise ConfigError("group file needs [size, sha256]", file=where, field=fkey, found=repr(meta))
            specs.append(
                FileSpec(
                    dataset=name,
                    path=path,
                    relpath=f"{ds_dir}/{path}",
                    urls=tuple(p.rstrip("/") + "/" + urllib.parse.quote(path) for p in prefixes),
                    sha256=_hex(meta[1], 64, where, fkey),
                    size=_size(meta[0], where, fkey),
                    hash_source=None if group.get("source") is None else str(group["source"]),
                )
            )
    if not specs:
        raise ConfigError("dataset lists no files", file=where, field=key, expected="`files` or `groups`")
    seen: set[str] = set()
    for s in specs:
        if s.path in seen:
            raise ConfigError("file listed twice", file=where, field=f"{key}:{s.path}")
        seen.add(s.path)
        if not s.urls and not s.manual:
            raise ConfigError(
                "file has neither a URL nor manual instructions",
                file=where,
                field=f"{key}:{s.path}",
                fix="add `urls`/`github` or a `manual` note",
            )
    return tuple(specs)


def _safe_relpath(value: str, where: str, key: str) -> str:
    """Reject absolute paths and ``..``: a sources table must never write outside the download root."""
    p = PurePosixPath(value)
    if not value or p.is_absolute() or ".." in p.parts or "\\" in value or value.startswith("~"):
        raise ConfigError(
            "unsafe path in the sources table",
            file=where,
            field=key,
            expected="a relative POSIX path without '..'",
            found=repr(value),
        )
    return p.as_posix()


def _str_list(value: Any, where: str, key: str) -> Iterable[str]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError("expected a list of URLs", file=where, field=key, found=repr(value)[:80])
    return [v.strip() for v in value]


def _github_urls(gh: Any, where: str, key: str) -> list[str]:
    """Expand ``{repo, commit, path[, lfs]}``; ``github.com/<repo>/raw/`` follows Git LFS, raw.* does not."""
    if not isinstance(gh, Mapping) or not all(gh.get(k) for k in ("repo", "commit", "path")):
        raise ConfigError(
            "github entry needs repo, commit and path", file=where, field=key, found=repr(gh)[:80]
        )
    repo, ref = str(gh["repo"]).strip("/"), str(gh["commit"])
    path = urllib.parse.quote(_safe_relpath(str(gh["path"]), where, f"{key}.path"))
    urls = [f"https://github.com/{repo}/raw/{ref}/{path}"]
    if gh.get("lfs"):
        urls.insert(0, f"https://media.githubusercontent.com/media/{repo}/{ref}/{path}")
    else:
        urls.append(f"https://raw.githubusercontent.com/{repo}/{ref}/{path}")
    return urls


def _hex(value: Any, n: int, where: str, key: str) -> str | None:
    if value is None:
        return None
    v = str(value).strip().lower()
    if len(v) != n or not _HEX.fullmatch(v):
        raise ConfigError(
            "malformed checksum", file=where, field=key, expected=f"{n} hex digits", found=repr(value)
        )
    return v


def _size(value: Any, where: str, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError("malformed size", file=where, field=key, expected="bytes (int >= 0)", found=value)
    return value


def dataset_names(sources: str | Path | Mapping[str, Any] | None = None) -> list[str]:
    """Return the names ``rsmg download`` accepts, in table order."""
    return list(load_sources(sources))


def _select(
    name: str,
    sources: str | Path | Mapping[str, Any] | None,
    only: Sequence[str] | None,
    include_optional: bool,
) -> tuple[FileSpec, ...]:
    table = load_sources(sources)
    if name not in table:
        raise unknown_name_error("dataset", name, list(table), field="download.name")
    specs = table[name]
    if not only:
        return tuple(s for s in specs if include_optional or not s.optional)
    by_name = {}
    for s in specs:
        by_name[s.path] = s
        by_name[s.relpath] = s
    chosen: list[FileSpec] = []
    for o in only:
        key = PurePosixPath(o.replace("\\", "/")).as_posix()
        if key not in by_name:
            raise unknown_name_error(f"file of dataset {name!r}", o, [s.path for s in specs], field="--only")
        if by_name[key] not in chosen:
            chosen.append(by_name[key])
    return tuple(chosen)


# ----------------------------------------------------------------------------------------------- hashing


class _Digests:
    """The checksums a spec asks for, fed while bytes stream in so a fresh download is read only once."""

    def __init__(self, spec: FileSpec) -> None:
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False) if spec.md5 else None

    def update(self, data: bytes) -> None:
        self.sha256.update(data)
        if self.md5 is not None:
            self.md5.update(data)

    def feed_file(self, path: Path) -> None:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                self.update(chunk)


def _hash_file(path: Path, spec: FileSpec) -> _Digests:
    d = _Digests(spec)
    d.feed_file(path)
    return d


def _mismatch(spec: FileSpec, path: Path, d: _Digests) -> tuple[str, str, str] | None:
    """Return (field, expected, found) for the first checksum that does not match, or None."""
    size = path.stat().st_size
    if spec.size is not None and size != spec.size:
        return "size", f"{spec.size} bytes", f"{size} bytes"
    if spec.sha256 is not None and d.sha256.hexdigest() != spec.sha256:
        return "sha256", spec.sha256, d.sha256.hexdigest()
    if spec.md5 is not None and d.md5 is not None and d.md5.hexdigest() != spec.md5:
        return "md5", spec.md5, d.md5.hexdigest()
    return None


# ----------------------------------------------------------------------------------------------- HTTP


class _Permanent(Exception):
    """An answer that retrying the same URL cannot change (404, 403, ...)."""


class _Restart(Exception):
    """The server's partial answer does not continue our .part: start again from byte 0."""


def _open(url: str, offset: int, timeout: float) -> Any:
    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"})
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    return urllib.request.urlopen(req, timeout=timeout)


def _fetch_once(url: str, part: Path, spec: FileSpec, timeout: float, progress: bool) -> _Digests:
    """One HTTP request: resume or (re)start ``part`` and return the checksums of its full content."""
    offset = part.stat().st_size if part.exists() else 0
    if spec.size is not None and offset > spec.size:
        part.unlink()
        offset = 0
    if offset and spec.size is not None and offset == spec.size:
        return _hash_file(part, spec)  # a previous run got every byte but stopped before verifying
    try:
        resp = _open(url, offset, timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            # "Range not satisfiable": our .part is at least as long as the file. Verify what we have;
            # a wrong .part is deleted by the caller's checksum check, and the next attempt starts at 0.
            return _hash_file(part, spec)
        if 400 <= e.code < 500 and e.code not in (408, 425, 429):
            raise _Permanent(f"HTTP {e.code} {e.reason}") from e
        raise
    with resp:
        digests = _Digests(spec)
        status = getattr(resp, "status", 200)
        if offset and status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if m is None or int(m.group(1)) != offset:
                part.unlink()
                raise _Restart(f"server answered Content-Range {resp.headers.get('Content-Range')!r}")
            digests.feed_file(part)
            mode = "ab"
        else:
            offset = 0  # 200: the server ignored Range (or there was none); appending would duplicate bytes
            mode = "wb"
        length_header = resp.headers.get("Content-Length")
        expected_len = int(length_header) if length_header and length_header.isdigit() else None
        total = offset + expected_len if expected_len is not None else spec.size
        if spec.size is not None and total is not None and total != spec.size:
            # Not the file we want (an HTML error page, a Git-LFS pointer, another version): do not
            # spend the bandwidth, and leave any .part alone for the next URL to resume.
            raise _Permanent(f"server announces {total} bytes, expected {spec.size}")
        received = 0
        from tqdm import tqdm

        with (
            open(part, mode) as f,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=spec.relpath,
                disable=not progress,
                leave=False,
                file=sys.stderr,
            ) as bar,
        ):
            while chunk := resp.read(_CHUNK):
                f.write(chunk)
                digests.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            f.flush()
            os.fsync(f.fileno())
        if expected_len is not None and received != expected_len:
            # The connection closed early; the .part is kept so the next attempt resumes from here.
            raise ConnectionError(f"connection closed after {received} of {expected_len} bytes")
        return digests


_TRANSIENT = (urllib.error.URLError, HTTPException, OSError, TimeoutError, _Restart)


def _fetch(url: str, part: Path, spec: FileSpec, retries: int, timeout: float, progress: bool) -> _Digests:
    """Fetch ``url`` into ``part`` with up to ``retries`` attempts; every retry resumes the .part."""
    last: BaseException | None = None
    for attempt in range(max(1, retries)):
        if attempt:
            time.sleep(RETRY_BACKOFF_S * attempt)
        try:
            return _fetch_once(url, part, spec, timeout, progress)
        except _Permanent:
            raise
        except _TRANSIENT as e:
            last = e
    assert last is not None
    raise last


def _describe(e: BaseException) -> str:
    if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError):
        return f"{type(e).__name__}: {e.reason}"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


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
        os.replace(part, target)
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


# ----------------------------------------------------------------------------------------------- API


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


# ----------------------------------------------------------------------------------------------- CLI


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


if __name__ == "__main__":
    sys.exit(main())
