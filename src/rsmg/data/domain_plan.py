"""What a :class:`~rsmg.data.datamodule.CrossDomainDataModule` will serve, decided from the catalog alone.

Why a module of its own: the classes, the band names (and the common HSI wavelength grid) and the check of the
standardised bands make the data spec that the model is built from, and they must fail with a clear error before
any raster is read. Each function takes the catalog entries (:class:`~rsmg.data.catalog.DatasetInfo`) and the
datamodule's options, and reads no file.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

import numpy as np

from rsmg.data.bands import get_sensor
from rsmg.data.catalog import DatasetInfo, class_mapping, class_set_names
from rsmg.data.spectral import common_grid
from rsmg.errors import ConfigError

__all__ = ["check_standardize", "plan_bands", "plan_classes"]


def plan_classes(
    infos: Mapping[str, DatasetInfo], sources: list[str], targets: list[str], class_set: str, class_scope: str
) -> tuple[str, ...]:
    """The class names, in class-set order: every name each scene in scope has (scenes without labels: none).

    Raises:
        ConfigError: ``native`` classes of scenes that differ, or scenes without a common class.
    """
    labelled = [n for n, info in infos.items() if info.labelled]  # no labels, no classes to reconcile
    if class_set == "native":
        first = infos[sources[0]].classes
        for n in labelled:
            info = infos[n]
            if info.classes != first:
                raise ConfigError(
                    "class_set 'native' needs scenes with identical class lists",
                    field="data.class_set",
                    expected=list(first),
                    found={n: list(info.classes)},
                    fix="use class_set: shared to map the scenes onto common names",
                )
        return first
    names = class_set_names(class_set)
    present = set(names)
    scenes = sources + (targets if class_scope == "sources_and_targets" else [])
    scenes = [n for n in scenes if n in labelled]
    for s in scenes:
        present &= {t for t in class_mapping(class_set, s).values() if t}
    classes = tuple(c for c in names if c in present)
    if not classes:
        which = "sources" if class_scope == "sources" else "sources and targets"
        raise ConfigError(
            f"the {which} share no class of the class set {class_set!r}",
            field="data.sources" if class_scope == "sources" else "data.class_scope",
            expected="scenes with common classes",
            found=scenes,
            fix="choose other sources" + ("" if class_scope == "sources" else ", or class_scope: sources"),
        )
    return classes


def plan_bands(
    infos: Mapping[str, DatasetInfo],
    modalities: Sequence[str],
    bands: Mapping[str, list[str]],
    hsi_bands: int | None,
) -> tuple[dict[str, tuple[str, ...]], np.ndarray | None]:
    """Band names per modality, and the common HSI wavelength grid when the scenes' HSI sensors differ.

    Raises:
        ConfigError: a scene lacks a modality, a band name is unknown, or non-HSI bands differ between scenes.
    """
    names: dict[str, tuple[str, ...]] = {}
    grid = None
    for mod in modalities:
        sensors = {}
        for n, info in infos.items():
            if mod not in info.modalities:
                close = difflib.get_close_matches(mod, list(info.modalities), n=1)
                raise ConfigError(
                    f"dataset {n!r} has no modality {mod!r}",
                    field="data.modalities",
                    expected=f"modalities of {n}: {sorted(info.modalities)}",
                    found=mod,
                    fix=(f"did you mean {close[0]!r}? " if close else "")
                    + "drop the modality or the dataset",
                )
            sensors[n] = get_sensor(info.modalities[mod])
        if mod in bands:
            for s in sensors.values():
                s.band_indices(bands[mod], field=f"data.bands.{mod}")
            names[mod] = tuple(bands[mod])
        elif len({s.name for s in sensors.values()}) == 1:
            names[mod] = next(iter(sensors.values())).band_names
        elif mod == "hsi":
            grid = common_grid(list({s.name: s for s in sensors.values()}.values()), hsi_bands)
            names[mod] = tuple(f"nm{w:.1f}" for w in grid)
        else:
            counts = {n: s.band_names for n, s in sensors.items()}
            if len({len(v) for v in counts.values()}) != 1 or len(set(counts.values())) != 1:
                raise ConfigError(
                    f"modality {mod!r} has different bands in different scenes",
                    field=f"data.bands.{mod}",
                    expected="one band list for every scene",
                    found={n: list(v) for n, v in counts.items()},
                    fix=f"choose common bands by name, e.g. bands: {{{mod}: [{next(iter(counts.values()))[0]}]}}",
                )
            names[mod] = next(iter(counts.values()))
    return names, grid


def check_standardize(
    standardize: Mapping[str, list[str]],
    band_names: Mapping[str, tuple[str, ...]],
    stats: str,
    patch_size: int,
) -> None:
    """Every band to standardise is loaded, and per-patch statistics have a patch to be computed on.

    Raises:
        ConfigError: naming ``data.standardize`` / ``data.standardize_stats`` and the fix.
    """
    for mod, bands in standardize.items():
        loaded = band_names.get(mod, ())
        for band in bands:
            if band not in loaded:
                raise ConfigError(
                    "standardize band not loaded",
                    field=f"data.standardize.{mod}",
                    expected=list(loaded),
                    found=band,
                    fix="name a loaded band, or drop it (e.g. standardize: {} with bands: {lidar: [dsm]})",
                )
    if standardize and stats == "per_patch" and patch_size < 3:
        raise ConfigError(
            "per-patch standardisation needs patches",
            field="data.standardize_stats",
            expected="patch_size >= 3",
            found=f"per_patch with patch_size {patch_size}",
            fix="use standardize_stats: source, or a larger patch_size",
        )
