"""The sources table (``sources.yaml``): each dataset's files, where to fetch them, the checksum each must match.

Parsed and validated before anything touches the network or the disk, so a malformed entry is a
:class:`~rsmg.errors.ConfigError` naming the key, never a half-finished download.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from rsmg.errors import ConfigError, unknown_name_error

__all__ = ["DatasetInfo", "FileSpec", "dataset_info", "dataset_names", "load_sources"]

_HEX = re.compile(r"[0-9a-f]+")


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
