"""Your own scenes, end to end: a georeferenced GeoTIFF scene without labels → ``rsmg predict`` → a GeoTIFF map.

The test writes two tiny LiDAR GeoTIFF scenes (UTM 32N, like Trento) and registers them in a user catalog:
``my_source`` with a label GeoTIFF, and ``my_target`` on another grid, without labels and with a nodata block.
An in-process ``rsmg fit`` (three steps) on the source and an in-process ``rsmg predict`` of its ``last.ckpt``
with the run's own ``config.yaml`` must write ``prediction_my_target.tif``: the target's CRS and geotransform
(not the source's), a class per valid pixel, 255 in the nodata block, the figures' colour table and the class
names. The unit tests check the datamodule side (every valid pixel a predict sample, no test loader, a
source without labels refused) without training.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _budget import SMOKE_BUDGET
from _cli import call_rsmg
from _experiments import BASELINE
from rsmg.data import catalog
from rsmg.errors import ConfigError, DataError

CRS = "EPSG:32632"
SOURCE_ORIGIN, TARGET_ORIGIN = (664_000.0, 5_104_000.0), (665_500.0, 5_103_200.0)  # metres, UTM 32N
TARGET_SHAPE = (30, 36)
NODATA = -9999.0
NODATA_BLOCK = (slice(0, 5), slice(30, 36))  # the target's top-right corner: no LiDAR return
CATALOG = """\
datasets:
  my_source:
    kind: scene
    description: 40 x 40 px LiDAR GeoTIFF with its label GeoTIFF
    classes: [Forest, Street]
    labels: {file: my_source/labels.tif}
    modalities:
      lidar: {file: my_source/lidar.tif, sensor: lidar_dsm_intensity, height: above_ground}
  my_target:
    kind: scene
    description: a LiDAR GeoTIFF to map, no ground truth
    modalities:
      lidar: {file: my_target/lidar.tif, sensor: lidar_dsm_intensity, height: above_ground}
class_sets:
  shared:
    scenes:
      my_source:
        Forest: {to: trees, why: tree canopy}
        Street: {to: road, why: same class}
"""


def _transform(origin: tuple[float, float], res: float):
    from rasterio.transform import Affine

    return Affine(res, 0.0, origin[0], 0.0, -res, origin[1])  # north-up, square pixels


def _write_tif(path: Path, bands: np.ndarray, transform, nodata: float | None = None) -> None:
    import rasterio

    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "height": bands.shape[1], "width": bands.shape[2], "count": bands.shape[0],
               "dtype": bands.dtype.name, "crs": CRS, "transform": transform, "nodata": nodata}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bands)


def _lidar(trees: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """2 × H × W (dsm, intensity): tall trees, flat street."""
    height = np.where(trees, 12.0, 0.1) + rng.normal(0, 0.5, trees.shape)
    return np.stack([height, rng.uniform(0, 255, trees.shape)]).astype(np.float32)


@pytest.fixture
def geotiff_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(catalog.CATALOG_ENV, "")  # use_catalog writes the variable; restored after the test
    rng = np.random.default_rng(0)
    labels = np.zeros((40, 40), dtype=np.uint8)
    labels[:, :18], labels[:, 22:] = 1, 2  # forest | 4-px unlabelled seam | street
    _write_tif(tmp_path / "my_source/lidar.tif", _lidar(labels == 1, rng), _transform(SOURCE_ORIGIN, 1.0))
    _write_tif(tmp_path / "my_source/labels.tif", labels[None], _transform(SOURCE_ORIGIN, 1.0))
    trees = np.zeros(TARGET_SHAPE, dtype=bool)
    trees[:15] = True  # forest above, street below
    target = _lidar(trees, rng)
    target[:, NODATA_BLOCK[0], NODATA_BLOCK[1]] = NODATA
    _write_tif(tmp_path / "my_target/lidar.tif", target, _transform(TARGET_ORIGIN, 0.5), nodata=NODATA)
    path = tmp_path / "my_geotiffs.yaml"
    path.write_text(CATALOG)
    return path


def _datamodule(cat: Path, **kw):
    from rsmg.data.datamodule import CrossDomainDataModule

    args = {"sources": ["my_source"], "targets": ["my_target"], "catalog": str(cat), "source_split": "all",
            "patch_size": 5, "batch_size": 16, "eval_batch_size": 4096} | kw  # fmt: skip
    return CrossDomainDataModule(**args)


def test_every_valid_pixel_of_an_unlabelled_target_is_a_predict_sample(geotiff_catalog: Path) -> None:
    dm = _datamodule(geotiff_catalog)
    dm.setup("predict")
    assert dm.spec.classes == ("trees", "road")
    assert dm.predict_domains == ("my_target",) and dm.test_domains == ()
    (loader,) = dm.predict_dataloader()
    ds = loader.dataset
    n_valid = TARGET_SHAPE[0] * TARGET_SHAPE[1] - 5 * 6
    assert len(ds) == n_valid and ds.shape == TARGET_SHAPE
    assert ds.georef["crs"] == CRS
    assert ds.georef["transform"] == tuple(_transform(TARGET_ORIGIN, 0.5))[:6]
    rows, cols = ds.pixel_rows_cols()
    assert not ((rows < 5) & (cols >= 30)).any()  # the nodata block is not predicted
    batch = next(iter(loader))
    assert batch["image_lidar"].shape == (n_valid, 2, 5, 5) and (batch["label"] == -1).all()
    assert dm._prepared["my_source"].scene.labelled and len(dm._prepared["my_source"].train) > 0
    with pytest.raises(ConfigError, match="no target has labels"):
        dm.test_dataloader()  # nothing to test: no metrics for a scene without ground truth


def test_a_source_without_labels_names_the_catalog_and_field(geotiff_catalog: Path) -> None:
    with pytest.raises(DataError) as err:
        _datamodule(geotiff_catalog, sources=["my_target"], targets=["my_source"])
    assert str(geotiff_catalog) in str(err.value) and "datasets.my_target.labels" in str(err.value)


def test_rasters_of_one_scene_on_different_grids_are_refused(geotiff_catalog: Path) -> None:
    labels = np.ones((1, 40, 40), dtype=np.uint8)
    _write_tif(geotiff_catalog.parent / "my_source/labels.tif", labels, _transform(TARGET_ORIGIN, 1.0))
    with pytest.raises(DataError, match="not on one grid") as err:
        _datamodule(geotiff_catalog).setup("fit")
    assert "labels.tif" in str(err.value) and "gdalwarp" in str(err.value)


def test_predict_writes_a_georeferenced_map_of_the_whole_unlabelled_scene(
    geotiff_catalog: Path, tmp_path: Path
) -> None:
    import rasterio

    from rsmg.plotting import class_colors

    data = ("--data.init_args.catalog", str(geotiff_catalog), "--data.init_args.sources", "[my_source]",
            "--data.init_args.targets", "[my_target]", "--data.init_args.source_split", "all",
            "--data.init_args.patch_size", "5", "--data.init_args.batch_size", "32",
            "--data.init_args.ndsm_bands", "[]", "--model.init_args.net.init_args.width", "8")  # fmt: skip
    logs = ("--trainer.logger.init_args.save_dir", str(tmp_path / "logs"), "--trainer.logger.init_args.version",
            "mine", "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false")  # fmt: skip
    call_rsmg("fit", *BASELINE, *data, *SMOKE_BUDGET, *logs, cwd=tmp_path)
    run = tmp_path / "logs/baseline_trento_to_muufl/mine"
    p = call_rsmg(
        "predict", "--config", str(run / "config.yaml"), "--ckpt_path", "last", cwd=tmp_path
    )  # as docs/data.md
    out = run / "predict_0"  # <run>/predict_<k>: the finished run is left as it is
    tif = out / "prediction_my_target.tif"
    assert f"classification map of my_target written to {tif} ({CRS})" in p.stdout
    classes = ["trees", "road"]
    with rasterio.open(tif) as src:
        assert (src.count, src.dtypes[0], src.shape, src.nodata) == (1, "uint8", TARGET_SHAPE, 255)
        assert src.crs.to_string() == CRS
        assert tuple(src.transform)[:6] == tuple(_transform(TARGET_ORIGIN, 0.5))[:6]  # the target's grid
        assert json.loads(src.tags()["CLASSES"]) == classes and src.tags()["DOMAIN"] == "my_target"
        assert src.tags(1) == {"CLASS_0": "trees", "CLASS_1": "road"}
        assert "0=trees" in src.descriptions[0] and "1=road" in src.descriptions[0]
        cmap = src.colormap(1)
        m = src.read(1)
    for k, rgb in enumerate(class_colors(len(classes))):
        assert cmap[k] == (*(round(255 * c) for c in rgb), 255)  # the figures' class colours
    assert cmap[255][3] == 0  # not predicted: transparent
    valid = np.ones(TARGET_SHAPE, dtype=bool)
    valid[NODATA_BLOCK] = False
    assert (m[~valid] == 255).all() and (m[valid] < len(classes)).all()  # every valid pixel got a class
    z = np.load(out / "predictions_my_target.npz")
    assert len(z["pred"]) == valid.sum() and (z["label"] == -1).all()  # no ground truth
    assert np.array_equal(m[z["row"], z["col"]], z["pred"])  # the map is the .npz's predictions
    assert not list(out.glob("*.tmp*")) and not (out / "metrics.json").exists()
    png = _png_rgba(
        out / "prediction_my_target.png"
    )  # the quick look beside the map: same grid, same colours
    assert f"quick look of my_target written to {out / 'prediction_my_target.png'}" in p.stdout
    assert png.shape == (*TARGET_SHAPE, 4) and (png[~valid] == 0).all()  # nodata: transparent
    for k in np.unique(m[valid]):
        assert (png[m == k] == np.array(cmap[int(k)])).all(), k


def _png_rgba(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        assert img.format == "PNG" and img.mode == "P"  # paletted: one byte a pixel
        return np.asarray(img.convert("RGBA"))


def test_the_quick_look_of_a_large_map_is_subsampled_and_can_be_turned_off(tmp_path: Path) -> None:
    from rsmg.callbacks.map_writer import QUICKLOOK_MAX_SIDE, SceneMap, write_scene_maps
    from rsmg.plotting import class_colors

    scene = SceneMap((5000, 301))
    rows, cols = np.mgrid[0:5000, 0:301]
    scene.add(rows.ravel(), cols.ravel(), ((rows // 100 + cols // 100) % 3).ravel())  # 3 classes in blocks
    scene.classes[:300, :150] = 255  # not predicted
    paths = write_scene_maps(tmp_path / "big", scene, ["a", "b", "c"], None, domain="big")
    assert [q.name for q in paths] == ["prediction_big.tif", "prediction_big.png"]
    png = _png_rgba(paths[1])
    f = -(-5000 // QUICKLOOK_MAX_SIDE)  # 3: every third row and column
    assert png.shape == (-(-5000 // f), -(-301 // f), 4) and max(png.shape[:2]) <= QUICKLOOK_MAX_SIDE
    expected = scene.classes[::f, ::f]
    for k, rgb in enumerate(class_colors(3)):
        assert (png[expected == k] == [*(round(255 * c) for c in rgb), 255]).all(), k
    assert (png[expected == 255] == 0).all()
    off = write_scene_maps(tmp_path / "off", scene, ["a", "b", "c"], None, domain="off", quicklook=False)
    assert [q.name for q in off] == ["prediction_off.tif"] and not (tmp_path / "prediction_off.png").exists()


def test_a_second_writer_s_map_prefix_keeps_both_writers_maps(tmp_path):
    from rsmg.callbacks.map_writer import SceneMap, write_scene_maps

    scene = SceneMap((4, 5), confidence=True)
    rows, cols = np.mgrid[0:4, 0:5]
    probs = np.full((20, 2), 0.5, dtype=np.float32)
    scene.add(rows.ravel(), cols.ravel(), (cols.ravel() % 2), probs)
    first = write_scene_maps(tmp_path / "x", scene, ["a", "b"], None, domain="x")
    second = write_scene_maps(tmp_path / "x", scene, ["a", "b"], None, domain="x", prefix="tta")
    assert [q.name for q in second] == ["tta_x.tif", "tta_x.png", "tta_x_confidence.tif"]
    assert all(q.exists() for q in first + second) and len(set(first + second)) == 6


@pytest.mark.parametrize("bad", ["", "maps/prediction"])
def test_a_map_prefix_that_is_not_a_file_name_part_is_refused(bad):
    from rsmg.callbacks.prediction_writer import PredictionWriter
    from rsmg.errors import ConfigError

    with pytest.raises(ConfigError, match=r"map_prefix(.|\n)*output_dir chooses the folder"):
        PredictionWriter(map_prefix=bad)
