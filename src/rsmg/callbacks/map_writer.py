"""Classification maps of ``rsmg predict`` as GeoTIFFs: ``prediction_<domain>.tif`` beside ``predictions_<domain>.npz``.

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

:class:`SceneMap` is filled batch by batch while ``rsmg predict`` runs, so a whole scene costs one byte per
pixel (plus four for the optional confidence map ``prediction_<domain>_confidence.tif``: the largest
probability, float32, NaN where nothing was predicted), never the probabilities of every pixel.

Beside it, ``prediction_<domain>.png`` is a quick look for a file browser or a report: the same map as an
8-bit paletted PNG in the same colours, :data:`NOT_PREDICTED` transparent, no georeference; a map wider or
taller than :data:`QUICKLOOK_MAX_SIDE` pixels is subsampled (every ``f``-th row and column, nearest: a class
map is never blended) to at most that side.

GDAL writes each GeoTIFF (deflate-compressed) straight to a temporary file beside its target, renamed into place
by :func:`rsmg.io.atomic_path`, so a killed run never leaves half a map and no second copy of the map (a
compressed in-memory file) is held; the PNG is built by PIL and written with :func:`rsmg.io.atomic_write_bytes`.
rasterio is imported only here.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rsmg.errors import ConfigError
from rsmg.io import atomic_path, atomic_write_bytes

__all__ = [
    "NOT_PREDICTED",
    "QUICKLOOK_MAX_SIDE",
    "SceneMap",
    "class_map",
    "class_map_png",
    "write_class_map",
    "write_class_map_geotiff",
    "write_confidence_geotiff",
    "write_scene_maps",
]

NOT_PREDICTED = 255
"""Map value (and GeoTIFF nodata) of a pixel without a prediction."""
QUICKLOOK_MAX_SIDE = 2048
"""Longest side (px) of the PNG quick look; a larger map is subsampled by a whole factor to fit."""


class SceneMap:
    """The maps of one scene, filled as predictions arrive: uint8 classes, optionally float32 confidence.

    Args:
        shape: ``(H, W)`` of the scene.
        confidence: also keep the largest probability of every predicted pixel.
    """

    def __init__(self, shape: tuple[int, int], *, confidence: bool = False) -> None:
        self.classes = np.full(shape, NOT_PREDICTED, dtype=np.uint8)
        self.confidence = np.full(shape, np.nan, dtype=np.float32) if confidence else None

    def add(
        self, rows: np.ndarray, cols: np.ndarray, pred: np.ndarray, probs: np.ndarray | None = None
    ) -> None:
        """Set ``pred`` (and ``probs.max(1)``) at ``(rows, cols)``; samples with a negative row are skipped."""
        rows, cols = np.asarray(rows), np.asarray(cols)
        ok = (rows >= 0) & (cols >= 0)
        self.classes[rows[ok], cols[ok]] = np.asarray(pred)[ok].astype(np.uint8)
        if self.confidence is not None and probs is not None:
            self.confidence[rows[ok], cols[ok]] = np.asarray(probs)[ok].max(axis=1)


def class_map(rows: np.ndarray, cols: np.ndarray, pred: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``H×W`` uint8 map: ``pred`` at ``(rows, cols)``, :data:`NOT_PREDICTED` elsewhere (negative rows skipped)."""
    m = SceneMap(shape)
    m.add(rows, cols, pred)
    return m.classes


def _colour_table(n: int) -> dict[int, tuple[int, int, int, int]]:
    from rsmg.plotting import class_colors  # matplotlib: imported when a map is written, not with rsmg

    table = {k: (0, 0, 0, 0) for k in range(256)}
    for k, (r, g, b) in enumerate(class_colors(n)):
        table[k] = (round(255 * r), round(255 * g), round(255 * b), 255)
    return table


def _write_geotiff(
    path: str | Path,
    band: np.ndarray,
    georef: Mapping[str, Any] | None,
    describe: Callable[[Any], None],
    **profile: Any,
) -> Path:
    """Write a one-band GeoTIFF of ``band`` on the scene's grid atomically; ``describe(dataset)`` adds tags etc."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.transform import Affine

    h, w = band.shape
    profile = {"driver": "GTiff", "height": h, "width": w, "count": 1, "dtype": band.dtype.name,
               "compress": "deflate", **profile}  # fmt: skip
    if georef is not None:
        profile["transform"] = Affine(*georef["transform"])
        if georef.get("crs"):
            profile["crs"] = rasterio.crs.CRS.from_user_input(georef["crs"])
    with warnings.catch_warnings(), atomic_path(path) as tmp:
        warnings.simplefilter(
            "ignore", NotGeoreferencedWarning
        )  # no georef: pixel coordinates, said by the caller
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(band, 1)
            describe(dst)
    return Path(path)


def write_class_map_geotiff(
    path: str | Path,
    classes_map: np.ndarray,
    classes: Sequence[str],
    georef: Mapping[str, Any] | None,
    *,
    domain: str = "",
) -> Path:
    """Write ``classes_map`` as a one-band uint8 GeoTIFF (content: the module docstring) atomically; its path.

    Args:
        path: the ``.tif`` to write.
        classes_map: ``H×W`` uint8 class indices, :data:`NOT_PREDICTED` where none.
        classes: the class names, index ``k`` = ``classes[k]``.
        georef: ``{"crs": ..., "transform": (a, b, c, d, e, f)}`` of the scene, or None (pixel coordinates).
        domain: the scene's name, stored as the ``DOMAIN`` tag.

    Raises:
        ConfigError: 255 classes or more (uint8, with 255 reserved).
    """
    if len(classes) >= NOT_PREDICTED:
        raise ConfigError(
            "too many classes for a uint8 classification map",
            field="data.class_set",
            expected=f"at most {NOT_PREDICTED - 1} classes (255 = not predicted)",
            found=len(classes),
            fix="use predictions_<domain>.npz, or PredictionWriter(maps=False) to skip the map",
        )
    names = [str(c) for c in classes]

    def describe(dst: Any) -> None:
        dst.write_colormap(1, _colour_table(len(names)))
        dst.set_band_description(
            1, "class: " + ", ".join(f"{k}={n}" for k, n in enumerate(names)) + f" ({NOT_PREDICTED}=none)"
        )
        dst.update_tags(CLASSES=json.dumps(names), DOMAIN=domain, NOT_PREDICTED=str(NOT_PREDICTED))
        dst.update_tags(1, **{f"CLASS_{k}": n for k, n in enumerate(names)})

    band = np.ascontiguousarray(classes_map, dtype=np.uint8)
    return _write_geotiff(path, band, georef, describe, nodata=NOT_PREDICTED, photometric="palette")


def write_confidence_geotiff(
    path: str | Path, confidence: np.ndarray, georef: Mapping[str, Any] | None, *, domain: str = ""
) -> Path:
    """Write the largest class probability as a one-band float32 GeoTIFF (nodata NaN) atomically; its path."""

    def describe(dst: Any) -> None:
        dst.set_band_description(1, "confidence: largest class probability (NaN = not predicted)")
        dst.update_tags(DOMAIN=domain)

    band = np.ascontiguousarray(confidence, dtype=np.float32)
    return _write_geotiff(path, band, georef, describe, nodata=float("nan"))


def class_map_png(classes_map: np.ndarray, n_classes: int, *, max_side: int = QUICKLOOK_MAX_SIDE) -> bytes:
    """The bytes of the PNG quick look of ``classes_map``: paletted, class colours, :data:`NOT_PREDICTED` clear.

    The map is subsampled by ``f = ceil(max(H, W) / max_side)`` (rows and columns ``0, f, 2f, …``), so the
    PNG is ``ceil(H / f) × ceil(W / f)`` pixels.
    """
    from PIL import Image

    h, w = classes_map.shape
    f = max(1, -(-max(h, w) // max_side))
    band = np.ascontiguousarray(classes_map[::f, ::f], dtype=np.uint8)
    table = _colour_table(n_classes)
    img = Image.fromarray(band)  # mode L; a palette makes it P
    img.putpalette([v for k in range(256) for v in table[k][:3]], rawmode="RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True, transparency=bytes(table[k][3] for k in range(256)))
    return buf.getvalue()


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
    return write_class_map_geotiff(path, class_map(rows, cols, pred, shape), classes, georef, domain=domain)


def write_scene_maps(
    stem: Path,
    scene_map: SceneMap,
    classes: Sequence[str],
    georef: Mapping[str, Any] | None,
    *,
    domain: str,
    quicklook: bool = True,
    prefix: str = "prediction",
) -> list[Path]:
    """Write ``<prefix>_<name>.tif``, ``.png`` (``quicklook``) and ``<prefix>_<name>_confidence.tif`` (if kept).

    ``stem`` is ``<folder>/<name>``; the files go to ``<folder>``.

    Each file is written atomically; returns the paths written, in that order.
    """
    base = Path(stem).parent / f"{prefix}_{Path(stem).name}"
    paths = [write_class_map_geotiff(f"{base}.tif", scene_map.classes, classes, georef, domain=domain)]
    if quicklook:
        paths.append(atomic_write_bytes(f"{base}.png", class_map_png(scene_map.classes, len(classes))))
    if scene_map.confidence is not None:
        paths.append(
            write_confidence_geotiff(f"{base}_confidence.tif", scene_map.confidence, georef, domain=domain)
        )
    return paths
