"""Named datasets: where their files are, which sensor each modality is, class names and shipped splits.

The catalog is data (``resources/datasets.yaml``), read here into :class:`Scene` objects. Users add their own
datasets and class mappings without editing the package: YAML files with ``datasets:`` / ``class_sets:``
sections, named by ``$RSMG_CATALOG`` (or :func:`use_catalog`), are merged over the packaged entries
(:mod:`rsmg.data.catalog_yaml` reads and checks them). The data root is, in order: the ``root`` argument, the
environment variable ``RSMG_DATA_ROOT``, ``./data``. A file that is missing raises :class:`MissingDatasetError`
saying which file, and whether ``rsmg download`` fetches it.

Class sets (``resources/class_sets.yaml``) map each scene's native classes onto common names for cross-scene
experiments; ``class_set="native"`` keeps a scene's own classes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rsmg.data.bands import Sensor, get_sensor
from rsmg.data.catalog_yaml import (
    CATALOG_ENV,
    GEOTIFF_SUFFIXES,
    RASTER_SUFFIXES,
    _options,
    _yaml,
    datasets_files,
    use_catalog,
    user_catalogs,
)
from rsmg.data.readers import ENVI_SUFFIXES, read_array, read_envi, read_geotiff, read_mat
from rsmg.data.scene import Scene
from rsmg.data_root import ENV_ROOT, resolve_root_with_origin
from rsmg.errors import DataError, MissingDatasetError, unknown_name_error

__all__ = [
    "CATALOG_ENV",
    "GEOTIFF_SUFFIXES",
    "HEIGHTS",
    "DatasetInfo",
    "class_mapping",
    "class_set_names",
    "dataset_info",
    "datasets_files",
    "list_datasets",
    "load_scene",
    "missing_files",
    "resolve_root",
    "use_catalog",
    "user_catalogs",
]

HEIGHTS = ("absolute", "above_ground")  # what a LiDAR raster's height band holds (catalog field `height`)


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The data root: ``root`` if given, else ``$RSMG_DATA_ROOT``, else ``./data``.

    The order is defined once, in :func:`rsmg.data_root.resolve_root_with_origin`, so that ``rsmg download``
    without ``--root`` fills the folder the data modules read (that module imports no torch, which keeps the
    command fast).
    """
    return resolve_root_with_origin(root)[0]


def list_datasets() -> list[str]:
    """Names of every dataset in the catalog."""
    return sorted(_yaml("datasets.yaml"))


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a catalog dataset (no file is read)."""

    name: str
    kind: str
    description: str
    classes: tuple[str, ...]
    modalities: dict[str, str]  # modality -> sensor
    downloadable_modalities: tuple[str, ...]
    splits: tuple[str, ...]
    heights: dict[str, str]  # modality -> "absolute" | "above_ground", for modalities with a height raster
    labelled: bool = True  # False: no label map (a target to predict, never a source)

    def channels(self, modality: str) -> int:
        """Number of bands of a modality's sensor."""
        return len(get_sensor(self.modalities[modality]).bands)


def dataset_info(name: str) -> DatasetInfo:
    """Look up a dataset by name.

    Raises:
        ConfigError: unknown name; the message lists the valid ones.
    """
    table = _yaml("datasets.yaml")
    if name not in table:
        raise unknown_name_error("dataset", name, list(table), field="data.sources / data.targets")
    e = table[name]
    mods = {m: v["sensor"] for m, v in e["modalities"].items()}
    heights = {m: v["height"] for m, v in e["modalities"].items() if "height" in v}
    for m, h in heights.items():
        if h not in HEIGHTS:
            raise DataError(
                f"unknown LiDAR height kind of {name!r}",
                file=datasets_files(),
                field=f"{name}.modalities.{m}.height",
                expected=" or ".join(HEIGHTS),
                found=h,
                fix="absolute for a surface elevation above a datum, above_ground for a normalised DSM",
            )
    return DatasetInfo(
        name=name,
        kind=e["kind"],
        description=e.get("description", ""),
        classes=tuple(e.get("classes", ())),
        modalities=mods,
        downloadable_modalities=tuple(m for m, v in e["modalities"].items() if v.get("download")),
        splits=tuple(e.get("splits", {})),
        heights=heights,
        labelled="labels" in e,
    )


def _find(root: Path, rel: str | list[str]) -> Path | None:
    """The first accepted location of a catalog file that exists under ``root``, or None."""
    return next((root / o for o in _options(rel) if (root / o).exists()), None)


def _modality_ref(entry: dict[str, Any], dataset: str, modality: str) -> dict[str, Any]:
    """A dataset's catalog entry for one modality; an unknown modality lists the valid ones."""
    if modality not in entry["modalities"]:
        raise unknown_name_error(
            f"modality of dataset {dataset!r}", modality, list(entry["modalities"]), field="data.modalities"
        )
    return dict(entry["modalities"][modality])


def _file(root: Path, rel: str | list[str], dataset: str, *, download: bool) -> Path:
    found = _find(root, rel)
    if found is not None:
        return found
    options = _options(rel)
    path = root / options[0]
    if download:
        how = f"run `rsmg download {dataset} --root {root}` (it fetches and checks the file), or place it there by hand"
    else:
        how = f"point the data root at the shared data pack (root: or ${ENV_ROOT}; now {root.resolve()})"
    raise MissingDatasetError(
        f"dataset {dataset!r}: file not found",
        file=path,
        expected=" or ".join(str(root / o) for o in options),
        found="nothing",
        fix=how,
    )


def missing_files(
    name: str, modalities: list[str] | tuple[str, ...], *, root: str | os.PathLike[str] | None = None
) -> list[Path]:
    """Files :func:`load_scene` would need for ``modalities`` that are absent under the data root.

    Lets scripts decide up front whether a setting is runnable (e.g. whether the benchmark cubes have been
    fetched with ``rsmg download``) instead of catching :class:`MissingDatasetError` halfway through a grid.

    Raises:
        ConfigError: unknown dataset or modality.
    """
    base = resolve_root(root)
    entry = _yaml("datasets.yaml")[dataset_info(name).name]
    refs = [_modality_ref(entry, name, mod) for mod in modalities]
    refs += [ref for parts in entry.get("splits", {}).values() for ref in parts.values()]
    if "file" in entry.get("labels", {}):
        refs.append(entry["labels"])
    return [base / _options(ref["file"])[0] for ref in refs if _find(base, ref["file"]) is None]


@dataclass
class _Loaded:
    """One catalog file read: the array (a GeoTIFF as ``H×W×C``), its path and, for a GeoTIFF, mask and grid."""

    array: np.ndarray
    path: Path
    mask: np.ndarray | None = None  # H×W, False at the file's nodata / NaN pixels
    georef: dict[str, Any] | None = None  # {"crs": str | None, "transform": 6 floats}; None: no geotransform
    wavelengths: np.ndarray | None = None  # nm per band, from an ENVI header's `wavelength`
    header: Path | None = None  # the ENVI header the wavelengths come from


def _load_array(root: Path, ref: dict[str, Any], dataset: str, *, download: bool = False) -> _Loaded:
    path = _file(root, ref["file"], dataset, download=download or bool(ref.get("download")))
    suffix = path.suffix.lower()
    if suffix in RASTER_SUFFIXES:
        envi = suffix in ENVI_SUFFIXES
        raster = (read_envi if envi else read_geotiff)(path)  # nodata and NaN pixels: masked and zeroed
        georef = None
        if raster.meta["transform"] is not None:
            georef = {"crs": raster.meta["crs"], "transform": tuple(raster.meta["transform"])}
        array = np.moveaxis(raster.array, 0, -1)
        if not envi:
            return _Loaded(array, path, raster.mask, georef)
        header = Path(raster.meta["header"])
        return _Loaded(array, path, raster.mask, georef, raster.meta["wavelengths_nm"], header)
    read = read_array if suffix in (".npy", ".npz") else read_mat  # a user scene saved by numpy
    arr = read(path, key=ref.get("key"), candidates=tuple(ref.get("candidates", ())))
    return _Loaded(np.asarray(arr), path)


def _common_grid(name: str, loaded: dict[str, tuple[Path, dict[str, Any] | None]]) -> dict[str, Any] | None:
    """The CRS + geotransform every GeoTIFF of a scene shares (None when none has one).

    Rasters of one scene are used pixel by pixel together, so two files on different grids (another CRS, a
    shifted origin, another pixel size) are an error, not something to resample silently.

    Args:
        name: the scene, for the message.
        loaded: key (modality, ``labels``) → (file, its grid or None).
    """
    grids = {k: grid for k, (_, grid) in loaded.items() if grid is not None}
    if not grids:
        return None
    first_key, first = next(iter(grids.items()))
    for key, grid in grids.items():
        same = grid["crs"] == first["crs"] and np.allclose(
            grid["transform"], first["transform"], rtol=0, atol=1e-9
        )
        if not same:
            raise DataError(
                f"the GeoTIFFs of scene {name!r} are not on one grid",
                file=f"{loaded[first_key][0]}, {loaded[key][0]}",
                field=f"{name}.modalities.{key} (CRS / geotransform)",
                expected=f"{first['crs']} {first['transform']}",
                found=f"{grid['crs']} {grid['transform']}",
                fix="resample / reproject the rasters onto one grid (e.g. gdalwarp -tr -te -t_srs) before loading",
            )
    return {"crs": first["crs"], "transform": first["transform"]}


def _to_chw(arr: np.ndarray, layout: str, path: Path, modality: str) -> np.ndarray:
    if layout == "HWC":
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3:
            raise DataError(
                f"{modality} raster must be H×W×C",
                file=path,
                field=modality,
                expected="3-D array",
                found=arr.shape,
                fix="check the file and the catalog key",
            )
        return np.ascontiguousarray(np.moveaxis(arr, -1, 0), dtype=np.float32)
    if layout == "NC":  # vectors: N×C -> C×1×N
        if arr.ndim == 1:
            arr = arr[:, None]
        return np.ascontiguousarray(arr.T[:, None, :], dtype=np.float32)
    raise DataError(
        "unknown layout", file=path, field="layout", expected="HWC or NC", found=layout, fix="fix the catalog"
    )


def _checked_sensor(
    name: str,
    mod: str,
    ref: dict[str, Any],
    count: int,
    path: Path,
    wavelengths: np.ndarray | None,
    header: Path | None,
) -> Sensor:
    """The catalog sensor of a modality's file, once its band count (and ENVI band centres) match it."""
    sensor = get_sensor(ref["sensor"])
    if count != len(sensor.bands):
        raise DataError(
            f"wrong band count for {name}/{mod}",
            file=path,
            field="bands",
            expected=f"{len(sensor.bands)} bands of sensor {sensor.name!r}",
            found=count,
            fix="use the benchmark file from `rsmg download`, or register a sensor that matches this file",
        )
    if wavelengths is not None:  # an ENVI header's band centres must be the sensor's
        sensor.check_wavelengths(wavelengths, file=header, field=f"{name}.{mod}")
    return sensor


def load_scene(
    name: str,
    modalities: list[str] | tuple[str, ...],
    *,
    root: str | os.PathLike[str] | None = None,
    nonfinite: str = "reject",
) -> Scene:
    """Read a catalog dataset into a :class:`Scene` with the requested modalities.

    Args:
        name: catalog name (see :func:`list_datasets`).
        modalities: modalities to load; each must exist for the dataset.
        root: data root (see :func:`resolve_root`).
        nonfinite: ``"reject"`` raises on NaN/inf; ``"mask"`` zeroes them and marks the pixel invalid.

    Raises:
        ConfigError: unknown dataset or modality.
        MissingDatasetError: a file is absent (the message says how to get it).
        DataError: wrong band count, mismatched shapes, non-finite values with ``nonfinite="reject"``.
    """
    info = dataset_info(name)
    base = resolve_root(root)
    entry = _yaml("datasets.yaml")[name]
    arrays: dict[str, np.ndarray] = {}
    files: dict[str, str] = {}
    band_names: dict[str, tuple[str, ...]] = {}
    loaded: dict[str, _Loaded] = {}
    for mod in modalities:
        ref = _modality_ref(entry, name, mod)
        loaded[mod] = _load_array(base, ref, name)
        raw, path = loaded[mod].array, loaded[mod].path
        arr = _to_chw(raw, ref.get("layout", "HWC"), path, mod)
        sensor = _checked_sensor(
            name, mod, ref, arr.shape[0], path, loaded[mod].wavelengths, loaded[mod].header
        )
        arrays[mod], files[mod], band_names[mod] = arr, str(path), sensor.band_names

    split_maps: dict[str, np.ndarray] = {}
    for split, parts in entry.get("splits", {}).items():
        for part, ref in parts.items():
            part_map = _load_array(base, ref, name)
            split_maps[f"{split}/{part}"] = _plane(part_map).astype(np.int64)
            files[f"{split}/{part}"] = str(part_map.path)

    lab = entry.get("labels")
    labels: np.ndarray
    if lab is None:  # a target without ground truth: every pixel unlabelled (0)
        labels = np.zeros(next(iter(arrays.values())).shape[1:], dtype=np.int64)
    elif "union_of_splits" in lab:
        s = lab["union_of_splits"]
        labels = np.maximum(split_maps[f"{s}/train"], split_maps[f"{s}/test"])
        files["labels"] = files[f"{s}/train"]
    else:
        loaded["labels"] = _load_array(base, lab, name)
        labels = _plane(loaded["labels"])
        files["labels"] = str(loaded["labels"].path)
        if info.kind == "vectors":
            labels = labels.reshape(1, -1)
    labels = labels.astype(np.int64)
    ids = entry.get("label_ids")
    if ids is not None:  # sparse native ids (Salinas-A: 1, 10..14) -> 1..K
        lut = np.zeros(int(labels.max()) + 1, dtype=np.int64)
        for k, i in enumerate(ids, start=1):
            if i < len(lut):
                lut[i] = k
        labels = lut[labels]
    if labels.max() > len(info.classes) or labels.min() < 0:
        raise DataError(
            f"label map of {name!r} has ids outside its class list",
            file=files["labels"],
            field="labels",
            expected=f"0..{len(info.classes)}",
            found=f"{labels.min()}..{labels.max()}",
            fix="check the label file",
        )

    valid = None
    if nonfinite == "mask":
        valid = np.ones(labels.shape, dtype=bool)
        for arr in arrays.values():
            bad = ~np.isfinite(arr)
            if bad.any():
                valid &= ~bad.any(axis=0)
                arr[bad] = 0.0
    for mod in arrays:  # a GeoTIFF's declared nodata is never data, whatever `nonfinite` says
        mask = loaded[mod].mask
        if mask is not None and mask.shape == labels.shape and not mask.all():
            valid = mask.copy() if valid is None else valid & mask
    return Scene(
        name=name,
        modalities=arrays,
        labels=labels,
        class_names=info.classes,
        band_names=band_names,
        sensors={m: info.modalities[m] for m in arrays},
        split_maps=split_maps,
        files=files,
        valid=valid,
        georef=_common_grid(name, {k: (v.path, v.georef) for k, v in loaded.items()}),
        labelled=lab is not None,
    )


def _plane(loaded: _Loaded) -> np.ndarray:
    """A label / split map as ``H×W`` (a one-band GeoTIFF is read as ``H×W×1``)."""
    arr = loaded.array
    if loaded.mask is not None and arr.ndim == 3 and arr.shape[-1] == 1:
        return arr[..., 0]
    return arr


def _class_sets_files() -> str:
    """Where class mappings come from: the packaged file, then every user catalog in force."""
    return ", ".join(["rsmg/data/resources/class_sets.yaml", *map(str, user_catalogs())])


def class_set_names(class_set: str) -> tuple[str, ...]:
    """The common class names of a class set (``"native"`` has none of its own)."""
    sets = _yaml("class_sets.yaml")
    if class_set not in sets:
        raise unknown_name_error("class set", class_set, [*sets, "native"], field="data.class_set")
    return tuple(sets[class_set]["classes"])


def class_mapping(class_set: str, dataset: str) -> dict[str, str | None]:
    """Native class name → common class name (``None`` = excluded) for one dataset.

    Raises:
        DataError: the class set does not cover every native class of the dataset.
    """
    info = dataset_info(dataset)
    if class_set == "native":
        return {c: c for c in info.classes}
    sets = _yaml("class_sets.yaml")
    if class_set not in sets:
        raise unknown_name_error("class set", class_set, [*sets, "native"], field="data.class_set")
    scenes = sets[class_set]["scenes"]
    key = dataset.removesuffix("_vectors")
    if key not in scenes:
        raise DataError(
            f"class set {class_set!r} has no mapping for dataset {dataset!r}",
            file=_class_sets_files(),
            field=f"{class_set}.scenes",
            expected=f"one of {sorted(scenes)}",
            found=dataset,
            fix=f"add a mapping for {dataset!r} or use class_set: native",
        )
    table = scenes[key]
    missing = [c for c in info.classes if c not in table]
    if missing:
        raise DataError(
            f"class set {class_set!r} does not cover every class of {dataset!r}",
            file=_class_sets_files(),
            field=f"{class_set}.scenes.{key}",
            expected=list(info.classes),
            found=f"missing {missing}",
            fix="map each missing class (or to null)",
        )
    names = set(sets[class_set]["classes"])
    out: dict[str, str | None] = {}
    for c in info.classes:
        to = table[c]["to"]
        if to is not None and to not in names:
            raise DataError(
                "class set maps onto a name it does not define",
                file=_class_sets_files(),
                field=f"{class_set}.scenes.{key}.{c}",
                expected=sorted(names),
                found=to,
                fix="fix the YAML",
            )
        out[c] = to
    return out
