"""Tiny, deterministic files in every format rsmg reads, plus broken ones, for the reader tests.

Everything is derived from ``numpy.random.default_rng(SEED)``; :func:`arrays` recomputes the exact values
written, so tests compare what a reader returns with what was written. Output is byte-for-byte identical on
every run for every format (the MAT v5 header timestamp and the npz zip timestamps are fixed on purpose).

Run ``python tests/data/fixtures.py OUTDIR`` to write them somewhere to look at.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

SEED = 0
SIZE = 16
CRS = "EPSG:32633"
ORIGIN = (500000.0, 5000000.0)  # UTM 33N, upper-left corner
PIXEL = 10.0
NODATA = 0
NODATA_PIXELS = ((0, 0), (3, 7), (15, 15))  # (row, col): nodata in every band
NODATA_BAND1_ONLY = (8, 2)  # nodata in band index 1 only: the pixel must still be masked
NAN_PIXELS = ((2, 3), (10, 11))  # NaN in the float GeoTIFF
INF_PIXEL = (5, 5)
MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: rsmg-fixtures, Created on: Thu Jan  1 00:00:00 1970"
MAT73_HEADER = (
    b"MATLAB 7.3 MAT-file, Platform: rsmg-fixtures, Created on: Thu Jan  1 00:00:00 1970 HDF5 schema 1.00 ."
)
AID_CLASSES = ("Airport", "Beach")
AID_PER_CLASS = 3
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def arrays() -> dict[str, np.ndarray]:
    """Every array the fixtures hold, recomputed from the seed (always in the same order)."""
    rng = np.random.default_rng(SEED)
    out: dict[str, np.ndarray] = {}
    out["rgb_tif"] = rng.integers(1, 10000, size=(3, SIZE, SIZE), dtype=np.uint16)
    for r, c in NODATA_PIXELS:
        out["rgb_tif"][:, r, c] = NODATA
    out["rgb_tif"][1, NODATA_BAND1_ONLY[0], NODATA_BAND1_ONLY[1]] = NODATA
    out["dsm_tif"] = rng.normal(20.0, 5.0, size=(1, SIZE, SIZE)).astype(np.float32)
    nan = rng.normal(0.0, 1.0, size=(2, SIZE, SIZE)).astype(np.float32)
    for r, c in NAN_PIXELS:
        nan[0, r, c] = np.nan
    nan[1, INF_PIXEL[0], INF_PIXEL[1]] = np.inf
    out["nan_tif"] = nan
    out["HSI"] = rng.random((SIZE, SIZE, 5), dtype=np.float64).astype(np.float32)
    out["LiDAR"] = rng.normal(10.0, 3.0, size=(SIZE, SIZE, 2)).astype(np.float32)
    gt = rng.integers(0, 4, size=(SIZE, SIZE)).astype(np.uint8)  # 0 = unlabelled, classes 1..3
    gt[0, :4] = [0, 1, 2, 3]  # every value present whatever the draw
    out["gt"] = gt
    out["npy"] = rng.normal(size=(4, 3)).astype(np.float32)
    out["npz_features"] = rng.normal(size=(6, 2)).astype(np.float64)
    out["npz_labels"] = rng.integers(0, 3, size=(6,)).astype(np.int64)
    out["png"] = rng.integers(0, 256, size=(SIZE, SIZE, 3), dtype=np.uint8)
    out["png_gray"] = rng.integers(0, 256, size=(SIZE, SIZE), dtype=np.uint8)
    out["jpeg"] = np.repeat(np.linspace(0, 255, SIZE, dtype=np.uint8)[None, :, None], SIZE, axis=0).repeat(
        3, 2
    )
    return out


CAPTION_WORDS = ("a", "large", "small", "green", "runway", "beach", "with", "many", "planes", "waves", "sand")


def _sentence(rng: np.random.Generator) -> str:
    return " ".join(CAPTION_WORDS[i] for i in rng.integers(0, len(CAPTION_WORDS), size=6)) + " ."


def captions() -> dict[str, object]:
    """Caption contents of the caption fixtures, recomputed from the seed."""
    rng = np.random.default_rng(SEED + 1)
    aid = {
        f"{cls}/{cls.lower()}_{i}": f"An aerial view of a {cls.lower()} number {i}. " + _sentence(rng)
        for cls in AID_CLASSES
        for i in range(1, AID_PER_CLASS + 1)
    }
    karpathy = [
        {"filename": f"{n}.tif", "split": split, "captions": [_sentence(rng) for _ in range(5)]}
        for n, split in zip(range(1, 6), ("train", "train", "train", "val", "test"), strict=True)
    ]
    coco = {f"square_{n}.jpg": [_sentence(rng) for _ in range(5)] for n in (221, 222, 223)}
    sydney = {n: [_sentence(rng) for _ in range(5)] for n in (1, 2, 3)}
    return {"aid": aid, "karpathy": karpathy, "coco": coco, "sydney": sydney}


def _write_geotiff(
    path: Path, data: np.ndarray, *, nodata: float | None, descriptions: tuple[str, ...] = ()
) -> None:
    import rasterio
    from affine import Affine

    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": str(data.dtype),
        "crs": CRS,
        "transform": Affine(PIXEL, 0.0, ORIGIN[0], 0.0, -PIXEL, ORIGIN[1]),
        "nodata": nodata,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions, start=1):
            dst.set_band_description(i, d)


def _mat_v5_bytes(variables: dict[str, np.ndarray]) -> bytes:
    import scipy.io

    buf = io.BytesIO()
    scipy.io.savemat(buf, variables)
    raw = bytearray(buf.getvalue())
    raw[:116] = MAT_HEADER.ljust(
        116, b" "
    )  # replace the "Created on: <now>" text so the file is reproducible
    return bytes(raw)


def _write_mat_v73(path: Path, variables: dict[str, np.ndarray]) -> None:
    """Write a MATLAB v7.3 file: HDF5 with a 512-byte MATLAB header block, column-major data."""
    import h5py

    classes = {
        "float32": "single",
        "float64": "double",
        "uint8": "uint8",
        "int64": "int64",
        "bool": "logical",
    }
    with h5py.File(path, "w", userblock_size=512, libver="earliest", track_order=False) as f:
        for name, arr in variables.items():
            # MATLAB is column-major: HDF5 sees its dimensions reversed, i.e. the transpose of the C array.
            data = np.ascontiguousarray(arr.T).astype(np.uint8 if arr.dtype == bool else arr.dtype)
            ds = f.create_dataset(name, data=data, track_times=False)
            ds.attrs.create("MATLAB_class", np.bytes_(classes[str(arr.dtype)]))
    header = MAT73_HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM"
    with path.open("r+b") as fh:
        fh.write(header.ljust(512, b"\x00"))


def _write_npz(path: Path, members: dict[str, np.ndarray]) -> None:
    """Like numpy.savez, but with fixed zip timestamps so the archive is byte-for-byte reproducible."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in members.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_TIME), buf.getvalue())


def _write_image(path: Path, arr: np.ndarray, **save_kw: object) -> None:
    from PIL import Image

    Image.fromarray(arr).save(path, **save_kw)


def make_all(root: Path) -> dict[str, Path]:
    """Write every fixture under ``root`` and return name → path.

    Good files: ``geotiff_rgb`` (3 bands uint16, EPSG:32633, nodata 0 at a few pixels), ``geotiff_1band``
    (float32 DSM), ``mat_v5`` (``HSI`` 16×16×5, ``LiDAR`` 16×16×2, ``gt`` 16×16 uint8), ``mat_v73`` (same
    variables, HDF5), ``mat_v5_single`` (only ``gt``), ``npy``, ``npz`` (``features``, ``labels``), ``png``,
    ``png_gray``, ``jpeg``, ``aid_root`` (``image/<Class>/<name>.jpg`` + ``text/<Class>/<name>.txt``),
    ``karpathy_json``, ``coco_json``, ``sydney_txt`` (CRLF, no final newline), ``name_list``.
    Broken files: ``mat_truncated`` (first half of ``mat_v5``), ``mat73_truncated``, ``tif_not_raster``
    (text named .tif), ``caption_latin1`` (byte 0xe9), ``caption_empty``, ``geotiff_nan`` (float32 with NaN
    and inf), ``json_truncated``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    a = arrays()
    caps = captions()
    out: dict[str, Path] = {}

    def put(name: str, rel: str) -> Path:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        out[name] = p
        return p

    # rasters
    _write_geotiff(
        put("geotiff_rgb", "geotiff_rgb.tif"), a["rgb_tif"], nodata=NODATA, descriptions=("B04", "B03", "B02")
    )
    _write_geotiff(put("geotiff_1band", "geotiff_1band.tif"), a["dsm_tif"], nodata=None)
    _write_geotiff(put("geotiff_nan", "broken/geotiff_nan.tif"), a["nan_tif"], nodata=None)

    # MATLAB
    scene = {"HSI": a["HSI"], "LiDAR": a["LiDAR"], "gt": a["gt"]}
    v5 = _mat_v5_bytes(scene)
    put("mat_v5", "scene_v5.mat").write_bytes(v5)
    put("mat_v5_single", "gt_v5.mat").write_bytes(_mat_v5_bytes({"gt": a["gt"]}))
    _write_mat_v73(put("mat_v73", "scene_v73.mat"), scene)
    put("mat_truncated", "broken/scene_truncated.mat").write_bytes(v5[: len(v5) // 2])
    v73 = out["mat_v73"].read_bytes()
    put("mat73_truncated", "broken/scene_v73_truncated.mat").write_bytes(v73[: len(v73) // 2])

    # numpy
    put("npy", "array.npy").write_bytes(_npy_bytes(a["npy"]))
    _write_npz(put("npz", "arrays.npz"), {"features": a["npz_features"], "labels": a["npz_labels"]})

    # images
    _write_image(put("png", "image.png"), a["png"])
    _write_image(put("png_gray", "image_gray.png"), a["png_gray"])
    _write_image(put("jpeg", "image.jpg"), a["jpeg"], quality=95)

    # AID-style caption folder
    aid_root = put("aid_root", "aid")
    for stem, text in caps["aid"].items():  # type: ignore[union-attr]
        cls, name = stem.split("/")
        img = np.full((SIZE, SIZE, 3), 40 * AID_CLASSES.index(cls) + int(name.rsplit("_", 1)[1]), np.uint8)
        (aid_root / "image" / cls).mkdir(parents=True, exist_ok=True)
        (aid_root / "text" / cls).mkdir(parents=True, exist_ok=True)
        _write_image(aid_root / "image" / cls / f"{name}.jpg", img, quality=95)
        (aid_root / "text" / cls / f"{name}.txt").write_bytes(text.encode("utf-8"))

    # caption files
    karpathy = {
        "images": [
            {
                "filename": r["filename"],
                "imgid": i,
                "split": r["split"],
                "sentids": list(range(5 * i, 5 * i + 5)),
                "sentences": [
                    {"raw": c, "tokens": c.split(), "imgid": i, "sentid": 5 * i + j}
                    for j, c in enumerate(r["captions"])
                ],
            }
            for i, r in enumerate(caps["karpathy"])  # type: ignore[arg-type]
        ],
        "dataset": "tiny",
    }
    put("karpathy_json", "dataset_tiny.json").write_bytes(json.dumps(karpathy, indent=1).encode())
    coco_caps: dict[str, list[str]] = caps["coco"]  # type: ignore[assignment]
    coco = {
        "info": {"description": "rsmg fixture in COCO captions format"},
        "licenses": [],
        "images": [
            {"id": 8736 + i, "file_name": fn, "width": 224, "height": 224} for i, fn in enumerate(coco_caps)
        ],
        "annotations": [
            {"id": 100 + 5 * i + j, "image_id": 8736 + i, "caption": c}
            for i, cs in enumerate(coco_caps.values())
            for j, c in enumerate(cs)
        ],
    }
    # annotations deliberately not grouped by image: the reader must group them by image_id
    coco["annotations"] = coco["annotations"][::2] + coco["annotations"][1::2]
    put("coco_json", "captions_val_tiny.json").write_bytes(json.dumps(coco, indent=1).encode())
    sydney: dict[int, list[str]] = caps["sydney"]  # type: ignore[assignment]
    lines = [f"{n} {c}" for n, cs in sydney.items() for c in cs]
    put("sydney_txt", "descriptions_tiny.txt").write_bytes("\r\n".join(lines).encode())
    put("name_list", "filenames_train.txt").write_bytes(b"1.tif\r\n2.tif\r\n3.tif\r\n")

    # other broken files
    put("tif_not_raster", "broken/not_a_raster.tif").write_bytes(b"this is a text file, not a GeoTIFF\n")
    put("caption_latin1", "broken/caption_latin1.txt").write_bytes(b"caf\xe9 next to a runway\n")
    put("caption_empty", "broken/caption_empty.txt").write_bytes(b"  \n")
    raw_json = out["karpathy_json"].read_bytes()
    put("json_truncated", "broken/dataset_truncated.json").write_bytes(raw_json[: len(raw_json) // 2])
    return out


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/data/fixtures.py OUTDIR", file=sys.stderr)
        return 2
    paths = make_all(Path(argv[0]))
    for name, p in paths.items():
        print(f"{name:16s} {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
