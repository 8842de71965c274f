"""File readers for every format rsmg consumes (the atomic writers for what it produces are in :mod:`rsmg.io`).

Each reader turns one file on disk into numpy arrays or plain Python objects and nothing else: no band
selection by name, no normalisation, no patching (those live in the dataset modules). What the readers do
own is *failing well*: a missing, truncated, mislabelled or badly encoded file raises
:class:`~rsmg.errors.DataError` naming the file, the field, what was expected, what was found and the fix,
instead of a traceback from deep inside GDAL, HDF5 or scipy.

Formats:

* GeoTIFF (and anything else GDAL opens) → :func:`read_geotiff` → :class:`Raster` (array + validity mask + geo
  metadata).
* ENVI (``.hdr`` + binary) → :func:`read_envi` → :class:`Raster` with the header's wavelengths in nanometres.
* MATLAB ``.mat`` v5 (scipy) and v7.3 (HDF5, h5py) → :func:`read_mat`, :func:`list_mat_keys`.
* numpy ``.npy`` / ``.npz`` → :func:`read_array`.
* 8-bit images (JPEG, PNG, RGB TIFF) → :func:`read_image`.
* captions: one-text-per-image folders (:func:`read_caption_txt`), Karpathy ``dataset_*.json``
  (:func:`read_captions_karpathy_json`), COCO captions (:func:`read_captions_coco_json`), the Sydney-captions
  description list (:func:`read_sydney_descriptions`) and plain name lists (:func:`read_name_list`).

Heavy libraries (rasterio, h5py, scipy, PIL) are imported inside the functions that need them so that
``import rsmg.data`` stays cheap for code that never touches a raster.

Modules, one per kind of file: :mod:`~rsmg.data.readers.rasters` (GeoTIFF, images), :mod:`~rsmg.data.readers.envi`,
:mod:`~rsmg.data.readers.arrays` (``.mat``, ``.npy`` / ``.npz``), :mod:`~rsmg.data.readers.captions` (caption
and name files) and :mod:`~rsmg.data.readers.checks` (what they all check); every public name is importable
from ``rsmg.data.readers``.
"""

from rsmg.data.readers.arrays import list_mat_keys, read_array, read_mat
from rsmg.data.readers.captions import (
    CaptionRecord,
    read_caption_txt,
    read_captions_coco_json,
    read_captions_karpathy_json,
    read_name_list,
    read_sydney_descriptions,
)
from rsmg.data.readers.checks import check_finite
from rsmg.data.readers.envi import ENVI_SUFFIXES, envi_files, read_envi
from rsmg.data.readers.rasters import Raster, read_geotiff, read_image

__all__ = [
    "ENVI_SUFFIXES",
    "CaptionRecord",
    "Raster",
    "check_finite",
    "envi_files",
    "list_mat_keys",
    "read_array",
    "read_caption_txt",
    "read_captions_coco_json",
    "read_captions_karpathy_json",
    "read_envi",
    "read_geotiff",
    "read_image",
    "read_mat",
    "read_name_list",
    "read_sydney_descriptions",
]
