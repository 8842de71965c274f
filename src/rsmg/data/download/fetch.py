"""Fetching one URL into a ``.part`` file: resumable HTTP (``Range``), retries, and checksums fed while streaming.

Only the standard library talks to the network (:mod:`urllib.request`), so a proxy set through ``https_proxy``
works and no ``requests`` dependency is needed.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path
from typing import Any

from rsmg import __version__
from rsmg.data.download.sources import FileSpec

#: Seconds to wait before retry ``k`` (``k * RETRY_BACKOFF_S``); module level so tests can set it to 0.
RETRY_BACKOFF_S = 2.0
_CHUNK = 1 << 20
_USER_AGENT = f"rsmg/{__version__} (python-urllib; rsmg download)"
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


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
