"""A scene without labels is predicted strip by strip, reading windows, and gives what the whole raster gives.

Reference: the same data module with windowed reading switched off (``read_in_strips`` → False: the scene read whole
by ``load_scene`` and served by :class:`~rsmg.data.scene.SceneDataset`, the path before windows). Both read the
real MUUFL LiDAR raster of the shared data pack written as a GeoTIFF (with a nodata block), with the
configuration of the headline experiment (nDSM of the absolute DSM, intensity standardised with source
statistics, 11×11 patches), in strips of 37 rows (325 = 8 × 37 + 29); and a synthetic 23 × 31 scene in strips
of 4 rows, in each readable format, with NaN / nodata pixels and every pad mode. Compared: the samples, their
pixels and patches (every one), and end to end the files ``rsmg predict`` writes (``.npz``, ``.csv``, the
GeoTIFF maps and the PNG quick look, byte for byte). Windowed reading is checked too: no read spans more
than a strip and its halos, and a ``.npy`` is memory-mapped while a ``.mat`` is read whole (as documented).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from _paths import SHARED_DATA, missing_shared_data
from rsmg.data import catalog
from rsmg.data import datamodule as datamodule_module
from rsmg.data.readers import read_mat
from rsmg.data.readers.windows import ArrayWindows, GdalWindows
from rsmg.data.scene import SceneDataset
from rsmg.data.strip_dataset import StripSceneDataset
from rsmg.errors import DataError

MUUFL = SHARED_DATA / "muufl/LiDAR.mat"
CRS = "EPSG:32616"
NODATA = -9999.0
ENTRY = """\
  {name}:
    kind: scene
    description: a scene to map, no labels
    modalities:
      lidar: {{file: {file}, sensor: lidar_dsm_intensity, height: absolute{layout}}}
"""


def _muufl() -> np.ndarray:
    if not MUUFL.is_file():
        missing_shared_data(MUUFL, "MUUFL LiDAR raster")
    return np.moveaxis(read_mat(MUUFL, key="LiDAR"), -1, 0).astype(np.float32)  # 2 × 325 × 220


def _write(folder: Path, name: str, bands: np.ndarray, fmt: str) -> str:
    """``bands`` (C×H×W float32) as ``<name>.<fmt>`` in ``folder``; returns the catalog's file name."""
    if fmt in ("tif", "envi"):
        import rasterio
        from rasterio.transform import Affine

        c, h, w = bands.shape
        file = f"{name}.tif" if fmt == "tif" else f"{name}.img"
        profile = {"driver": "GTiff" if fmt == "tif" else "ENVI", "height": h, "width": w, "count": c,
                   "dtype": "float32", "nodata": NODATA, "crs": CRS,
                   "transform": Affine(1.0, 0, 295_000.0, 0, -1.0, 3_360_000.0)}  # fmt: skip
        with rasterio.open(folder / file, "w", **profile) as dst:
            dst.write(bands)
        return file
    hwc = np.moveaxis(bands, 0, -1)
    if fmt == "npy":
        np.save(folder / f"{name}.npy", hwc)
        return f"{name}.npy"
    import scipy.io

    scipy.io.savemat(folder / f"{name}.mat", {"lidar": hwc})
    return f"{name}.mat"


def _catalog(folder: Path, entries: dict[str, str]) -> Path:
    path = folder / "scenes.yaml"
    layout = {
        ".npy": ", layout: HWC",
        ".mat": ", layout: HWC, key: lidar",
    }  # arrays say how they are laid out
    text = "".join(
        ENTRY.format(name=n, file=f, layout=layout.get(Path(f).suffix, "")) for n, f in entries.items()
    )
    path.write_text("datasets:\n" + text)
    return path


def _datamodule(cat: Path, target: str, *, windowed: bool, monkeypatch: pytest.MonkeyPatch, **kw: Any):
    """The module of the headline LiDAR experiment (source: the real MUUFL scene); ``windowed=False`` reads the
    target whole (the path before windows)."""
    from rsmg.data.datamodule import CrossDomainDataModule

    args = {"sources": ["muufl"], "targets": [target], "catalog": str(cat), "root": str(SHARED_DATA),
            "source_split": "per_class:20", "batch_size": 16, "eval_batch_size": 256, "ndsm_bands": ["dsm"],
            "standardize": {"lidar": ["intensity"]}, "standardize_stats": "source"} | kw  # fmt: skip
    with monkeypatch.context() as m:
        if not windowed:
            m.setattr(datamodule_module, "read_in_strips", lambda name, **kw: False)
        dm = CrossDomainDataModule(**args)
        dm.setup("predict")
    return dm


def _same_samples(windowed: Any, whole: Any, chunk: int = 4096) -> None:
    """Same samples, pixels and patches (every one, bit for bit), batches cut in an odd size."""
    assert isinstance(windowed, StripSceneDataset) and isinstance(whole, SceneDataset)
    assert len(windowed) == len(whole) and windowed.shape == whole.shape and windowed.georef == whole.georef
    for a, b in zip(windowed.pixel_rows_cols(), whole.pixel_rows_cols(), strict=True):
        np.testing.assert_array_equal(a, b)
    for start in range(0, len(whole), chunk):
        idx = list(range(start, min(start + chunk, len(whole))))
        x, y = windowed.__getitems__(idx), whole.__getitems__(idx)
        assert x.keys() == y.keys()
        for key in x:
            assert x[key].dtype == y[key].dtype and torch.equal(x[key], y[key]), (key, start)


def _predict(dm: Any, out: Path) -> None:
    """A random-weight tiny CNN predicts the target; the writer's files land in ``out``."""
    import lightning.pytorch as pl

    from rsmg.callbacks.prediction_writer import PredictionWriter
    from rsmg.models.baseline import ConcatCNN
    from rsmg.tasks import ClassificationTask

    torch.manual_seed(0)
    model = ClassificationTask(spec=dm.spec, net=lambda s: ConcatCNN(s, width=8))
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[PredictionWriter(output_dir=str(out), confidence_maps=True)], default_root_dir=str(out),
    )  # fmt: skip
    trainer.predict(model, datamodule=dm, return_predictions=False)


def _same_files(a: Path, b: Path, name: str) -> None:
    files = [f"predictions_{name}.npz", f"predictions_{name}.csv", f"prediction_{name}.tif", f"prediction_{name}.png",
             f"prediction_{name}_confidence.tif"]  # fmt: skip
    assert sorted(p.name for p in a.iterdir()) == sorted(files)  # nothing else, no scratch left
    for f in files[1:]:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    za, zb = np.load(a / files[0]), np.load(b / files[0])  # the zip headers hold times: compare the arrays
    assert za.files == zb.files
    for key in za.files:
        assert za[key].dtype == zb[key].dtype and np.array_equal(za[key], zb[key]), key


@pytest.fixture
def muufl_tif(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The whole real MUUFL LiDAR raster as a GeoTIFF with a nodata block, and a 101 × 83 crop of it."""
    monkeypatch.setenv(catalog.CATALOG_ENV, "")  # use_catalog writes the variable; restored after the test
    lidar = _muufl()
    lidar[:, 30:44, 100:130] = NODATA  # a block without returns, across a strip boundary (row 37)
    crop = np.ascontiguousarray(lidar[:, 20:121, 60:143])
    files = {"muufl_map": _write(tmp_path, "muufl_map", lidar, "tif")}
    files["muufl_crop"] = _write(tmp_path, "muufl_crop", crop, "tif")
    return _catalog(tmp_path, files)


def test_the_real_muufl_raster_in_strips_gives_every_patch_of_the_whole_raster(
    muufl_tif: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spans: list[int] = []
    read = GdalWindows.read

    def spy(self: GdalWindows, r0: int, r1: int) -> Any:
        spans.append(r1 - r0)
        return read(self, r0, r1)

    monkeypatch.setattr(GdalWindows, "read", spy)
    dm = _datamodule(
        muufl_tif, "muufl_map", windowed=True, monkeypatch=monkeypatch, strip_rows=37, patch_size=11
    )
    windowed = dm.predict_dataloader()[0].dataset
    assert windowed.index.counts.tolist()[:3] == [37 * 220 - 7 * 30] * 2 + [37 * 220]  # 7 nodata rows each
    assert (
        len(windowed.index.counts) == 9 and sum(b is None for b in windowed.index.bits) == 7
    )  # bits only where nodata
    spans.clear()
    whole = _datamodule(muufl_tif, "muufl_map", windowed=False, monkeypatch=monkeypatch, patch_size=11)
    assert not spans  # the reference reads the file whole, through load_scene
    _same_samples(windowed, whole.predict_dataloader()[0].dataset, chunk=3001)
    halo = 11 // 2 + 2 * (41 // 2) + 15 // 2  # the patch's and the nDSM's (opening 41 px, smoothing 15 px)
    assert spans and max(spans) <= 37 + 2 * halo < 325  # windows of a strip and its halos, never the raster
    assert len(windowed._strips) <= 2  # the strips kept in memory


def test_predict_on_a_real_raster_in_strips_writes_the_whole_raster_files(
    muufl_tif: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for windowed, out in ((True, tmp_path / "strips"), (False, tmp_path / "whole")):
        dm = _datamodule(
            muufl_tif, "muufl_crop", windowed=windowed, monkeypatch=monkeypatch, strip_rows=37, patch_size=7
        )
        assert isinstance(dm.predict_dataloader()[0].dataset, StripSceneDataset) is windowed
        _predict(dm, out)
    _same_files(tmp_path / "strips", tmp_path / "whole", "muufl_crop")


def _synthetic(fmt: str) -> np.ndarray:
    """2 × 23 × 31 LiDAR-like rasters: a building on sloping ground, NaN (arrays) or nodata (GDAL) pixels."""
    rng = np.random.default_rng(3)
    rows, cols = np.mgrid[0:23, 0:31]
    dsm = 4.0 + 0.05 * rows + np.where((rows > 5) & (rows < 14) & (cols > 8) & (cols < 20), 9.0, 0.0)
    bands = np.stack([dsm + rng.normal(0, 0.2, dsm.shape), rng.uniform(0, 255, dsm.shape)]).astype(np.float32)
    bad = NODATA if fmt in ("tif", "envi") else np.nan
    bands[0, 3, 4] = bands[1, 17, 30] = bands[:, 22, 0] = bad  # in strips 0, 4 and the last (3 rows)
    return bands


@pytest.mark.parametrize(
    ("fmt", "pad_mode"),
    [("tif", "reflect"), ("tif", "edge"), ("tif", "constant"), ("envi", "reflect"), ("npy", "reflect"),
     ("mat", "constant")],
)  # fmt: skip
def test_an_odd_sized_scene_in_strips_of_four_rows_gives_every_patch_of_the_whole_scene(
    fmt: str, pad_mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(catalog.CATALOG_ENV, "")
    _muufl()
    cat = _catalog(tmp_path, {"odd": _write(tmp_path, "odd", _synthetic(fmt), fmt)})
    kw = {"strip_rows": 4, "patch_size": 7, "pad_mode": pad_mode, "ndsm_window": 5, "nonfinite": "mask"}
    windowed = _datamodule(cat, "odd", windowed=True, monkeypatch=monkeypatch, **kw).predict_dataloader()[0]
    whole = _datamodule(cat, "odd", windowed=False, monkeypatch=monkeypatch, **kw).predict_dataloader()[0]
    assert len(windowed.dataset) == 23 * 31 - 3 and len(windowed.dataset.index.counts) == 6
    _same_samples(windowed.dataset, whole.dataset, chunk=50)  # batches straddle strips
    win = windowed.dataset.scene.windows["lidar"]
    if fmt == "npy":  # memory-mapped at each read: rows come from disk, nothing held
        assert isinstance(win, ArrayWindows) and win.array is None
    elif fmt == "mat":  # scipy reads a variable whole: documented, in memory once
        assert isinstance(win, ArrayWindows) and win.array is not None and win.array.shape == (23, 31, 2)
    else:
        assert isinstance(win, GdalWindows)


def test_predict_on_an_odd_sized_scene_in_strips_writes_the_whole_scene_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(catalog.CATALOG_ENV, "")
    _muufl()
    cat = _catalog(tmp_path, {"odd": _write(tmp_path, "odd", _synthetic("tif"), "tif")})
    kw = {"strip_rows": 4, "patch_size": 7, "ndsm_window": 5, "eval_batch_size": 50}
    for windowed in (True, False):
        dm = _datamodule(cat, "odd", windowed=windowed, monkeypatch=monkeypatch, **kw)
        _predict(dm, tmp_path / str(windowed))
    _same_files(tmp_path / "True", tmp_path / "False", "odd")


def test_nan_in_a_scene_read_in_strips_is_refused_up_front_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(catalog.CATALOG_ENV, "")
    _muufl()
    cat = _catalog(tmp_path, {"odd": _write(tmp_path, "odd", _synthetic("npy"), "npy")})
    with pytest.raises(DataError, match="NaN/inf values in modality 'lidar'") as err:
        _datamodule(cat, "odd", windowed=True, monkeypatch=monkeypatch, strip_rows=4, nonfinite="reject")
    assert "odd.npy" in str(err.value) and "nonfinite='mask'" in str(err.value)


def test_spectral_resampling_gives_the_same_values_for_any_slice_of_pixels() -> None:
    from rsmg.data.spectral import resample_cube, resampling_matrix

    rng = np.random.default_rng(0)
    src, dst = np.linspace(400, 1000, 64), np.linspace(420, 980, 60)
    cube = rng.normal(0, 1000, (64, 41, 37)).astype(np.float32)
    for mode in ("interpolate", "common"):
        whole = resample_cube(cube, src, dst, mode)  # type: ignore[arg-type]
        strips = np.concatenate(
            [resample_cube(cube[:, a : a + 6], src, dst, mode) for a in range(0, 41, 6)], 1
        )  # type: ignore[arg-type]
        assert whole.dtype == np.float32 and np.array_equal(strips, whole), mode
        matmul = (resampling_matrix(src, dst, mode) @ cube.reshape(64, -1)).reshape(whole.shape)  # type: ignore[arg-type]
        np.testing.assert_allclose(whole, matmul, rtol=1e-6, atol=1e-3)  # the matrix it applies


ONE_BAND = """\
datasets:
  src:
    kind: scene
    description: a labelled one-band DSM
    classes: [Building, Ground]
    labels: {file: labels.npy}
    modalities:
      lidar: {file: src.npy, sensor: lidar_dsm, layout: HWC, height: absolute}
  dsm:
    kind: scene
    description: a one-band DSM to map, no labels
    modalities:
      lidar: {file: FILE, sensor: lidar_dsm, layout: HWC, height: absolute, key: lidar}
class_sets:
  shared:
    scenes:
      src:
        Building: {to: buildings, why: same class}
        Ground: {to: ground, why: same class}
"""


def _one_band_catalog(folder: Path, fmt: str, squeeze: bool) -> Path:
    """A one-band float32 DSM (:func:`_synthetic`'s, NaN pixels kept) as ``H×W`` (``squeeze``) or ``H×W×1``
    target, and the same DSM without NaN, labelled, as its source (no other scene has one band)."""
    dsm = _synthetic(fmt)[0]
    arr = dsm if squeeze else dsm[:, :, None]
    if fmt == "npy":
        np.save(folder / "dsm.npy", arr)
    elif fmt == "npz":
        np.savez(folder / "dsm.npz", lidar=arr)
    else:
        import scipy.io

        scipy.io.savemat(folder / "dsm.mat", {"lidar": arr})
    np.save(folder / "src.npy", np.nan_to_num(dsm, nan=4.0)[:, :, None])
    np.save(folder / "labels.npy", np.where(dsm > 10.0, 1, 2).astype(np.uint8))
    path = folder / "scenes.yaml"
    path.write_text(ONE_BAND.replace("FILE", f"dsm.{fmt}"))
    return path


@pytest.mark.parametrize(("fmt", "squeeze"), [("npy", True), ("npy", False), ("npz", True), ("mat", False)])
def test_a_one_band_float32_dsm_in_strips_gives_every_patch_of_the_whole_scene(
    fmt: str, squeeze: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows of a one-band float32 array are a copy: NaN zeroing and the nDSM edit them in place, so a view would
    write into a read-only memory map (``.npy``) or into the raster held in memory (``.npz``, ``.mat``), whose
    halo rows a later strip would then read with the nDSM applied twice."""
    monkeypatch.setenv(catalog.CATALOG_ENV, "")
    cat = _one_band_catalog(tmp_path, fmt, squeeze)
    kw = {"sources": ["src"], "root": str(tmp_path), "strip_rows": 4, "patch_size": 7, "ndsm_window": 5,
          "nonfinite": "mask", "standardize": {}}  # fmt: skip
    windowed = _datamodule(cat, "dsm", windowed=True, monkeypatch=monkeypatch, **kw).predict_dataloader()[0]
    whole = _datamodule(cat, "dsm", windowed=False, monkeypatch=monkeypatch, **kw).predict_dataloader()[0]
    assert len(windowed.dataset) == 23 * 31 - 2 and len(windowed.dataset.index.counts) == 6
    _same_samples(windowed.dataset, whole.dataset, chunk=50)
    win = windowed.dataset.scene.windows["lidar"]
    if fmt != "npy":  # the raster in memory is the file's, NaN and all: never edited by a strip
        stored = _synthetic(fmt)[0]
        assert win.array is not None and np.array_equal(
            win.array.reshape(stored.shape), stored, equal_nan=True
        )


def _short_scene(h: int, tmp_path: Path) -> tuple[Any, Any]:
    """A 2-band ``h × 13`` scene without labels, as a windowed scene and as a scene in memory."""
    from rsmg.data.scene import Scene
    from rsmg.data.windowed_scene import WindowedScene

    cube = np.random.default_rng(h).normal(3.0, 2.0, (h, 13, 2)).astype(np.float32)
    windows = {"lidar": ArrayWindows(tmp_path / "x.npz", cube.shape, cube)}
    whole = {"lidar": np.moveaxis(cube, -1, 0).copy()}
    return (
        WindowedScene(f"short{h}", windows, (), {}, {}, {}),
        Scene(f"short{h}", whole, np.zeros((h, 13), np.uint8), (), labelled=False),
    )


@pytest.mark.parametrize("pad_mode", ["reflect", "edge", "constant"])
def test_a_scene_as_short_as_the_patch_in_strips_of_one_row_gives_every_patch_and_a_shorter_one_is_refused(
    pad_mode: str, tmp_path: Path
) -> None:
    """Padded rows come from ``np.pad`` as for the whole raster; a scene shorter than the patch is refused by the
    strip dataset as by :class:`~rsmg.data.scene.SceneDataset` (its padding would need rows it has not got)."""
    kw: dict[str, Any] = {"patch_size": 11, "domain": 0, "pad_mode": pad_mode,
                          "normalize": {"lidar": (np.array([3.0, 1.0]), np.array([2.0, 0.5]))}}  # fmt: skip
    unlabelled = {"class_map": np.array([-1]), "unlabelled": True}
    scene, whole = _short_scene(11, tmp_path)
    _same_samples(
        StripSceneDataset(scene, scene.scan(1), **kw),
        SceneDataset(whole, np.arange(11 * 13), **unlabelled, **kw),
        chunk=20,
    )
    scene, whole = _short_scene(3, tmp_path)
    with pytest.raises(DataError, match="patch size larger than scene 'short3'"):
        StripSceneDataset(scene, scene.scan(1), **kw)
    with pytest.raises(DataError, match="patch size larger than scene 'short3'"):
        SceneDataset(whole, np.arange(3 * 13), **unlabelled, **kw)


def test_a_target_read_whole_says_why_and_how_to_read_it_in_strips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A scene without labels read whole may not fit in memory: a warning (not an info line) names the cause."""
    from rsmg.data.windowed_scene import windowable

    monkeypatch.setenv(catalog.CATALOG_ENV, "")
    _muufl()
    np.save(tmp_path / "vectors.npy", np.ones((40, 2), np.float32))
    cat = _catalog(tmp_path, {"odd": _write(tmp_path, "odd", _synthetic("tif"), "tif"), "vec": "vectors.npy"})
    hwc = "vectors.npy, sensor: lidar_dsm_intensity, height: absolute, layout: HWC"
    cat.write_text(cat.read_text().replace(hwc, hwc.removesuffix("HWC") + "NC"))  # samples × bands
    kw = {"patch_size": 7, "ndsm_window": 5, "standardize_stats": "per_scene"}
    with caplog.at_level("WARNING"):
        dm = _datamodule(cat, "odd", windowed=True, monkeypatch=monkeypatch, **kw)
        assert isinstance(dm.predict_dataloader()[0].dataset, SceneDataset)
        assert "odd: read whole, not in strips: standardize_stats per_scene" in caplog.text
        assert "use standardize_stats: source" in caplog.text
        assert not windowable("vec")
    assert "vec: read whole, not in strips" in caplog.text and "['NC']" in caplog.text
    assert "layout: HWC to predict in strips" in caplog.text


def test_an_array_of_other_rank_is_refused_naming_the_catalog_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rsmg.data.windowed_scene import open_windowed_scene

    monkeypatch.setenv(catalog.CATALOG_ENV, "")
    np.save(tmp_path / "cube.npy", np.ones((4, 5, 6, 2), np.float32))
    catalog.use_catalog(_catalog(tmp_path, {"cube": "cube.npy"}))
    with pytest.raises(DataError, match="must be H×W×C or H×W") as err:
        open_windowed_scene("cube", ["lidar"], root=tmp_path)
    assert "cube.modalities.lidar.file" in str(err.value) and "2-D (H×W, one band)" in str(err.value)


def test_predict_with_two_workers_reads_each_strip_in_one_worker_and_writes_the_same_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker ``k`` serves one contiguous run of batches (rsmg.data.sampling.worker_order), so it reads the strips
    of its run, not every strip; the files equal the whole-scene path's."""
    import os

    monkeypatch.setenv(catalog.CATALOG_ENV, "")
    _muufl()
    cat = _catalog(tmp_path, {"odd": _write(tmp_path, "odd", _synthetic("tif"), "tif")})
    log = tmp_path / "reads"
    log.mkdir()
    read = GdalWindows.read

    def spy(self: GdalWindows, r0: int, r1: int) -> Any:  # forked into the workers with the patch
        with open(log / str(os.getpid()), "a") as fh:
            fh.write(f"{r0} {r1}\n")
        return read(self, r0, r1)

    kw = {"strip_rows": 4, "patch_size": 7, "ndsm_window": 5, "eval_batch_size": 50}
    _predict(_datamodule(cat, "odd", windowed=False, monkeypatch=monkeypatch, **kw), tmp_path / "whole")
    dm = _datamodule(cat, "odd", windowed=True, monkeypatch=monkeypatch, num_workers=2, **kw)
    monkeypatch.setattr(GdalWindows, "read", spy)
    _predict(dm, tmp_path / "workers")
    _same_files(tmp_path / "workers", tmp_path / "whole", "odd")
    reads = {p.name: p.read_text().split("\n")[:-1] for p in log.iterdir() if p.name != str(os.getpid())}
    # 710 samples in batches of 50: runs of 7 batches (rows 0-11, 11-22) and the short last batch (row 22),
    # of 6 strips; each worker used to read all 6
    assert len(reads) == 2 and sorted(len(r) for r in reads.values()) == [4, 4], reads
