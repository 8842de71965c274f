"""Classification maps of ``rsmg predict`` as GeoTIFFs: ``<domain>_classes.tif`` beside ``predictions_<domain>.npz``.

Why: a remote-sensing user opens a map in QGIS / GDAL, not a table of pixel positions. The map is one uint8 band
on the scene's pixel grid:

* value ``k`` = the predicted class index (``argmax`` of the probabilities, as ``pred`` in the ``.npz``);
  :data:`NOT_PREDICTED` (255, the band's nodata value) where no sample was predicted: nodata pixels of the
  rasters, and the pixels outside a labelled target's predict split (unlabelled targets are predicted whole);
* the source rasters' CRS and geotransform when the scene was read from GeoTIFFs. A scene read from ``.mat`` /
  ``.npy`` has no georeference: its map is written all the same, in pixel coordinates without a CRS, and the
  command says so (a CRS is never invented);
* a colour table with the class colours of the run's figures (:func:`rsmg.plotting.class_colors`), 255
  transparent;
* the class names: in the band description, as band tags ``CLASS_<k>=<name>`` and as the dataset tag
  ``CLASSES`` (a JSON list), all stored inside the file (TIFF ``GDAL_METADATA``), with the tags ``DOMAIN`` and
  ``NOT_PREDICTED``.

The file is built in memory (rasterio ``MemoryFile``, deflate-compressed) and written with
:func:`rsmg.io.atomic_write_bytes`, so a killed run never leaves half a map. rasterio is imported only here.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rsmg.errors import ConfigError
from rsmg.io import atomic_write_bytes

__all__ = ["NOT_PREDICTED", "class_map", "class_map_geotiff", "write_class_map"]

NOT_PREDICTED = 255
"""Map value (and GeoTIFF nodata) of a pixel without a prediction."""


def class_map(rows: np.ndarray, cols: np.ndarray, pred: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``H×W`` uint8 map: ``pred`` at ``(rows, cols)``, :data:`NOT_PREDICTED` elsewhere (negative rows skipped)."""
    out = np.full(shape, NOT_PREDICTED, dtype=np.uint8)
    ok = (np.asarray(rows) >= 0) & (np.asarray(cols) >= 0)
    out[np.asarray(rows)[ok], np.asarray(cols)[ok]] = np.asarray(pred)[ok].astype(np.uint8)
    return out


def _colour_table(n: int) -> dict[int, tuple[int, int, int, int]]:
    from rsmg.plotting import class_colors  # matplotlib: imported when a map is written, not with rsmg

    table = {k: (0, 0, 0, 0) for k in range(256)}
    for k, (r, g, b) in enumerate(class_colors(n)):
        table[k] = (round(255 * r), round(255 * g), round(255 * b), 255)
    return table


def class_map_geotiff(
    classes_map: np.ndarray,
    classes: Sequence[str],
    georef: Mapping[str, Any] | None,
    *,
    domain: str = "",
) -> bytes:
    """The bytes of a one-band uint8 GeoTIFF holding ``classes_map`` (see the module docstring for its content).

    Args:
        classes_map: ``H×W`` uint8 class indices, :data:`NOT_PREDICTED` where none.
        classes: the class names, index ``k`` = ``classes[k]``.
        georef: ``{"crs": ..., "transform": (a, b, c, d, e, f)}`` of the scene, or None (pixel coordinates).
        domain: the scene's name, stored as the ``DOMAIN`` tag.

    Raises:
        ConfigError: 255 classes or more (uint8, with 255 reserved).
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile
    from rasterio.transform import Affine

    if len(classes) >= NOT_PREDICTED:
        raise ConfigError(
            "too many classes for a uint8 classification map",
            field="data.class_set",
            expected=f"at most {NOT_PREDICTED - 1} classes (255 = not predicted)",
            found=len(classes),
            fix="use predictions_<domain>.npz, or PredictionWriter(maps=False) to skip the map",
        )
    h, w = classes_map.shape
    profile: dict[str, Any] = {
        "driver": "GTiff", "height": h, "width": w, "count": 1, "dtype": "uint8",
        "nodata": NOT_PREDICTED, "compress": "deflate", "photometric": "palette",
    }  # fmt: skip
    if georef is not None:
        profile["transform"] = Affine(*georef["transform"])
        if georef.get("crs"):
            profile["crs"] = rasterio.crs.CRS.from_user_input(georef["crs"])
    names = [str(c) for c in classes]
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", NotGeoreferencedWarning
        )  # no georef: pixel coordinates, said by the caller
        with MemoryFile() as mem:
            with mem.open(**profile) as dst:
                dst.write(np.ascontiguousarray(classes_map, dtype=np.uint8), 1)
                dst.write_colormap(1, _colour_table(len(names)))
                dst.set_band_description(
                    1,
                    "class: "
                    + ", ".join(f"{k}={n}" for k, n in enumerate(names))
                    + f" ({NOT_PREDICTED}=none)",
                )
                dst.update_tags(CLASSES=json.dumps(names), DOMAIN=domain, NOT_PREDICTED=str(NOT_PREDICTED))
                dst.update_tags(1, **{f"CLASS_{k}": n for k, n in enumerate(names)})
            return bytes(mem.read())


def write_class_map(
    path: str | Path,
    rows: np.ndarray,
    cols: np.ndarray,
    pred: np.ndarray,
    shape: tuple[int, int],
    classes: Sequence[str],
    georef: Mapping[str, Any] | None,
    *,
    domain: str = "",
) -> Path:
    """Write the GeoTIFF classification map of one scene atomically; returns its path."""
    data = class_map_geotiff(class_map(rows, cols, pred, shape), classes, georef, domain=domain)
    return atomic_write_bytes(path, data)
