"""The catalog's YAML tables: the packaged files, with the user catalogs merged over them and checked.

Users add datasets and class mappings without editing the package: YAML files with ``datasets:`` /
``class_sets:`` sections, named by ``$RSMG_CATALOG`` (or :func:`use_catalog`), are merged over
``resources/datasets.yaml`` and ``resources/class_sets.yaml``. A user entry is checked against the packaged
schema when it is merged, and its relative paths are made absolute against its own file's folder.
"""

from __future__ import annotations

import os
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rsmg.data.bands import get_sensor
from rsmg.data.readers import ENVI_SUFFIXES
from rsmg.errors import ConfigError, DataError

__all__ = [
    "CATALOG_ENV",
    "GEOTIFF_SUFFIXES",
    "RASTER_SUFFIXES",
    "datasets_files",
    "use_catalog",
    "user_catalogs",
]

CATALOG_ENV = "RSMG_CATALOG"
_SECTIONS = {"datasets.yaml": "datasets", "class_sets.yaml": "class_sets"}
_PATH_KEYS = ("file", "dir")

GEOTIFF_SUFFIXES = (".tif", ".tiff")
RASTER_SUFFIXES = (*GEOTIFF_SUFFIXES, *ENVI_SUFFIXES)  # read through GDAL: the file says its own band layout


def _options(rel: str | list[str]) -> list[str]:
    """The accepted locations of a catalog file, preferred first."""
    return [rel] if isinstance(rel, str) else list(rel)


def _is_raster(rel: Any) -> bool:
    return isinstance(rel, str | list) and all(
        str(o).lower().endswith(RASTER_SUFFIXES) for o in _options(rel)
    )


@cache
def _packaged(name: str) -> dict[str, Any]:
    text = resources.files("rsmg.data").joinpath("resources", name).read_text(encoding="utf-8")
    return dict(yaml.safe_load(text))


def user_catalogs() -> tuple[Path, ...]:
    """User catalog files in force: ``$RSMG_CATALOG`` (several joined by ``os.pathsep``), in merge order."""
    raw = os.environ.get(CATALOG_ENV, "")
    return tuple(Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p)


def use_catalog(path: str | os.PathLike[str]) -> None:
    """Merge a user catalog over the packaged one, for this process and the processes it starts.

    Why the environment: DDP ranks and spawned loader workers must see the same datasets as the main process.
    """
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise ConfigError(
            "user catalog not found",
            field="data.catalog",
            expected="a YAML file",
            found=str(p),
            fix="give the path of your catalog YAML (datasets: / class_sets: sections; see the README)",
        )
    paths = [*user_catalogs()]
    if p not in paths:
        paths.append(p)
    os.environ[CATALOG_ENV] = os.pathsep.join(map(str, paths))


def datasets_files() -> str:
    """Where dataset entries come from, for error messages: the packaged file, then every user catalog in force."""
    return ", ".join(["rsmg/data/resources/datasets.yaml", *map(str, user_catalogs())])


def _yaml(name: str) -> dict[str, Any]:
    """A packaged catalog table with the user catalogs (:func:`user_catalogs`) merged over it."""
    return _merged(name, user_catalogs())


@cache
def _merged(name: str, paths: tuple[Path, ...]) -> dict[str, Any]:
    table = dict(_packaged(name))
    section = _SECTIONS.get(name)
    if section is None:
        return table
    for path in paths:
        for key, entry in _read_user_catalog(path).get(section, {}).items():
            where = f"{section}.{key}"
            if section == "datasets":
                _check_user_dataset(entry, where, path)
                table[key] = _absolute_paths(entry, path.parent)
            else:
                table[key] = _merge_class_set(table.get(key), entry, where, path)
    return table


def _read_user_catalog(path: Path) -> dict[str, Any]:
    """Parse a user catalog; anything but ``datasets:`` / ``class_sets:`` mappings is an error naming the file."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise DataError("user catalog unreadable", file=path, found=str(e), fix="fix the YAML") from e
    if not isinstance(doc, dict) or set(doc) - set(_SECTIONS.values()):
        extra = sorted(set(doc) - set(_SECTIONS.values())) if isinstance(doc, dict) else type(doc).__name__
        raise DataError(
            "user catalog has unknown top-level keys",
            file=path,
            field="(top level)",
            expected="datasets: and/or class_sets: mappings",
            found=extra,
            fix="put dataset entries under datasets: and class mappings under class_sets:",
        )
    for section in _SECTIONS.values():
        if not isinstance(doc.get(section, {}), dict):
            raise DataError(
                f"user catalog {section}: must be a mapping",
                file=path,
                field=section,
                expected="name: {...} entries",
                found=type(doc[section]).__name__,
                fix="fix the YAML",
            )
    return doc


def _check_user_dataset(entry: Any, where: str, path: Path) -> None:
    """The fields every dataset entry needs (the packaged schema), each missing one named with its fix."""
    need = {
        "kind": "scene | image_folder | captioned | vectors",
        "classes": "[class names in label order]",
        "modalities": "{<modality>: {sensor: <sensor>, file: ...}}",
    }
    if not isinstance(entry, dict):
        raise DataError(
            "dataset entry must be a mapping",
            file=path,
            field=where,
            expected=need,
            found=entry,
            fix="see the packaged rsmg/data/resources/datasets.yaml for the schema",
        )
    for key, expected in need.items():
        if (
            key == "classes"
            and isinstance(entry, dict)
            and entry.get("kind") == "scene"
            and "labels" not in entry
        ):
            continue  # no label map, so no class list to name its ids
        if key not in entry:
            raise DataError(
                f"dataset entry lacks {key!r}",
                file=path,
                field=f"{where}.{key}",
                expected=expected,
                found="nothing",
                fix=f"add {key}: to the entry (schema as in datasets.yaml)",
            )
    for mod, ref in entry["modalities"].items():
        if not isinstance(ref, dict) or "sensor" not in ref:
            raise DataError(
                "modality entry lacks its sensor",
                file=path,
                field=f"{where}.modalities.{mod}",
                expected="{sensor: <name>, ...}",
                found=ref,
                fix="add sensor: (e.g. rgb, lidar_dsm)",
            )
        get_sensor(ref["sensor"])  # an unknown sensor lists the known ones
        if entry["kind"] == "scene" and _is_raster(ref.get("file")) and ref.get("layout", "HWC") == "HWC":
            continue  # a GeoTIFF / ENVI file says its own layout (bands x rows x columns, read as a raster)
        if entry["kind"] in ("scene", "vectors") and ref.get("layout") not in ("HWC", "NC"):
            raise DataError(
                "raster modality lacks its layout",
                file=path,
                field=f"{where}.modalities.{mod}.layout",
                expected="HWC (rows x columns x bands) or NC (vectors: samples x bands)",
                found=ref.get("layout", "nothing"),
                fix="add layout: HWC for an H x W x C raster (an H x W array is read as one band)",
            )
    # a scene without labels: is a target that `rsmg predict` classifies whole (a source needs labels)
    optional = entry["kind"] == "scene" and "labels" not in entry
    if entry["kind"] in ("scene", "vectors") and not optional and not isinstance(entry.get("labels"), dict):
        raise DataError(
            "scene entry lacks its label map",
            file=path,
            field=f"{where}.labels",
            expected="{file: <.tif / .hdr / .mat / .npy / .npz>, key: <variable, .mat / .npz only>} (0 unlabelled, "
            "1..K classes)",
            found=entry.get("labels", "nothing"),
            fix="add labels: {file: ...} with ids in the order of classes: (or leave labels: out for a target "
            "to predict without ground truth)",
        )


def _absolute_paths(entry: Any, base: Path) -> Any:
    """Copy of an entry with every relative ``file:`` / ``dir:`` made absolute against the catalog's folder."""
    if isinstance(entry, dict):
        return {k: (_abs(v, base) if k in _PATH_KEYS else _absolute_paths(v, base)) for k, v in entry.items()}
    if isinstance(entry, list):
        return [_absolute_paths(v, base) for v in entry]
    return entry


def _abs(value: Any, base: Path) -> Any:
    if isinstance(value, str):
        return str((base / value).expanduser())
    if isinstance(value, list):
        return [_abs(v, base) for v in value]
    return value


def _merge_class_set(packaged: dict[str, Any] | None, entry: Any, where: str, path: Path) -> dict[str, Any]:
    """A user class set: new, or extra dataset mappings for a packaged set (its class names must not change)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("scenes", {}), dict):
        raise DataError(
            "class set must be a mapping with scenes:",
            file=path,
            field=where,
            expected="{classes: [...], scenes: {<dataset>: {<class>: {to: ..., why: ...}}}}",
            found=entry,
            fix="fix the YAML",
        )
    if packaged is None:
        if "classes" not in entry:
            raise DataError(
                "a new class set needs its classes",
                file=path,
                field=f"{where}.classes",
                expected="[common class names]",
                found="nothing",
                fix="add classes: [...]",
            )
        return dict(entry)
    if "classes" in entry and list(entry["classes"]) != list(packaged["classes"]):
        raise DataError(
            "a user catalog cannot change a packaged class set's classes",
            file=path,
            field=f"{where}.classes",
            expected=list(packaged["classes"]),
            found=entry["classes"],
            fix="leave classes: out to add datasets to the set, or give the set a new name",
        )
    return {**packaged, "scenes": {**packaged["scenes"], **entry.get("scenes", {})}}
