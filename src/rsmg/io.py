"""Atomic file outputs: the one place in rsmg that writes a file to a temporary name and renames it into place.

A run killed mid-write (pre-emption, out-of-memory, Ctrl-C) must never leave a half-written metrics file,
split list, prediction archive, view bank or prior that a resumed run then trusts. Every writer in rsmg
(results, predictions, embeddings, figures, caption manifests, the diffusion bank and prior, verified downloads)
goes through :func:`atomic_open` (:func:`atomic_path` for writers that take a file name, such as GDAL) or
:func:`atomic_move` (whole directories, such as a ``save_pretrained`` prior, through :func:`atomic_directory`):
the data goes to a temporary file in the target's directory (so the rename cannot cross file systems), is
fsync'ed, and replaces the target with ``os.replace`` (atomic on POSIX and Windows); the directory is fsync'ed
too so the rename survives a crash. Readers therefore see either the old file or the complete new one. numpy
and torch are imported only by the writers that need them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from rsmg.errors import OutputError

__all__ = [
    "atomic_directory",
    "atomic_move",
    "atomic_open",
    "atomic_path",
    "atomic_save_npz",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
]

PathLike = str | os.PathLike[str]


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()  # read once at import: os.umask is process-global and not thread-safe to probe


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # directory fsync is not supported everywhere (e.g. Windows)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path whose file replaces ``path`` only if the ``with`` block completes.

    For writers that take a file name, not a handle (GDAL through rasterio, PIL): write the file at the yielded
    path. On a clean exit it is fsync'ed, given the permissions the target has (or those ``open`` would give a
    new file: ``mkstemp`` creates 0600) and renamed over the target; on an exception it is deleted and the
    target is untouched. Parent directories are created.

    Raises:
        OutputError: the temporary file cannot be created (read-only or missing directory, permissions).
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # the target's suffix last: writers that pick the format from the name (PIL, GDAL) see the right one
        fd, name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent
        )
    except OSError as exc:
        raise OutputError(
            "cannot write the output file",
            file=target,
            found=f"{exc.strerror}: {exc.filename or target.parent}",
            fix="write to a directory you can create files in (trainer.default_root_dir / the logger's "
            "save_dir), or fix the permissions of this one",
        ) from exc
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDWR)  # Windows' fsync (_commit) needs write access
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            mode = target.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o666 & ~_UMASK
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_open(path: PathLike) -> Iterator[IO[bytes]]:
    """Open a binary file whose content replaces ``path`` only if the ``with`` block completes.

    Inside the block, write to the yielded handle (``torch.save(obj, f)``, ``np.savez(f, ...)``, ``f.write``);
    the rest is :func:`atomic_path`'s.

    Raises:
        OutputError: the temporary file cannot be created (read-only or missing directory, permissions).
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        yield fh


@contextlib.contextmanager
def atomic_directory(path: PathLike) -> Iterator[Path]:
    """Yield a temporary sibling directory whose content replaces the directory ``path`` only on a clean exit.

    For outputs that are several files read together (a diffusers ``save_pretrained`` folder). Inside the block,
    write into the yielded directory; on a clean exit its files are fsync'ed and it is renamed to ``path``. A
    directory cannot be renamed over a non-empty one, so an existing ``path`` is first moved aside to a hidden
    sibling (``.<name>.<hex>.old``) and deleted only once the new directory is in place: a crash leaves the old
    or the new directory complete, at ``path`` or (between the two renames) beside it. On an exception the
    temporary directory is deleted and ``path`` is untouched.

    Raises:
        OutputError: ``path`` is an existing file, or the temporary directory cannot be created.
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise OutputError(
            "cannot write a directory where a file exists",
            file=target,
            found="a file",
            fix="choose another output path, or remove the file",
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise OutputError(
            "cannot write the output directory",
            file=target,
            found=f"{exc.strerror}: {exc.filename or target.parent}",
            fix="write to a directory you can create files in, or fix the permissions of this one",
        ) from exc
    try:
        yield tmp
        for f in sorted(tmp.rglob("*")):
            if f.is_file():
                with open(f, "rb+") as fh:
                    os.fsync(fh.fileno())
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp creates 0700
        _fsync_dir(tmp)
        old = target.parent / f".{target.name}.{uuid.uuid4().hex}.old"
        had_old = target.is_dir()
        if had_old:
            os.replace(target, old)
        try:
            os.replace(tmp, target)
        except BaseException:
            if had_old:  # put the previous directory back
                os.replace(old, target)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(target.parent)
    if had_old:
        shutil.rmtree(old, ignore_errors=True)


def atomic_move(src: PathLike, path: PathLike) -> Path:
    """Move a finished file (a verified download's ``.part``) over ``path`` atomically, durably.

    For files that cannot be written in one go through :func:`atomic_open` (a download resumed across runs);
    ``src`` must be on the same file system as ``path``, e.g. beside it.

    Returns:
        The target path.
    """
    target = Path(path)
    with open(src, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(src, target)
    _fsync_dir(target.parent)
    return target


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see either the old file or the complete new one.

    Returns:
        The target path.
    """
    with atomic_open(path) as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Text version of :func:`atomic_write_bytes` (UTF-8 by default; newlines written as given).

    Returns:
        The target path.
    """
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: PathLike, data: Any, *, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """Write ``data`` as JSON (UTF-8, non-ASCII kept, a final newline) atomically.

    Returns:
        The target path.
    """
    text = json.dumps(data, indent=indent, sort_keys=sort_keys, ensure_ascii=False) + "\n"
    return atomic_write_text(path, text)


def atomic_save_npz(path: PathLike, arrays: Mapping[str, Any], *, compressed: bool = True) -> Path:
    """Write ``arrays`` as a NumPy ``.npz`` archive atomically, streamed to disk (no copy in memory).

    Returns:
        The target path.
    """
    import numpy as np

    save = np.savez_compressed if compressed else np.savez
    with atomic_open(path) as fh:
        save(fh, **arrays)
    return Path(path)


def atomic_torch_save(path: PathLike, obj: Any) -> Path:
    """``torch.save(obj)`` to ``path`` atomically, so a crash never leaves a truncated checkpoint or prior.

    Returns:
        The target path.
    """
    import torch

    with atomic_open(path) as fh:
        torch.save(obj, fh)
    return Path(path)
