"""``rsmg predict`` on a whole scene streams: memory per batch, not per pixel, and the same files as in memory.

A real crop of the MUUFL LiDAR raster (90 × 70 px, a nodata block) is a user-catalog GeoTIFF without labels;
a random-weight tiny CNN (the files, not the accuracy, are the point) predicts it in batches of 64 (~100
batches). The streamed run must hold nothing per batch in the writer (tracemalloc of the writer's own
allocations after the first and the last batch), never cut more than a batch of patches, and write the same
``.npz``, ``.csv`` and maps as the in-memory path that DDP still uses. The unit test drives
:class:`~rsmg.callbacks.prediction_table.DiskTable` with shuffled, repeated and missing samples.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _paths import SHARED_DATA, missing_shared_data
from rsmg.callbacks import prediction_writer
from rsmg.callbacks.prediction_table import COLUMNS, DiskTable, MemoryTable, write_csv, write_npz
from rsmg.data import catalog

MUUFL = SHARED_DATA / "muufl/LiDAR.mat"
CROP = (slice(100, 190), slice(60, 130))  # 90 × 70 px of the real raster
NODATA_BLOCK = (slice(0, 8), slice(0, 10))
BATCH = 64
CATALOG = """\
datasets:
  muufl_crop:
    kind: scene
    description: a 90 x 70 px crop of the MUUFL LiDAR raster, no labels
    modalities:
      lidar: {file: muufl_crop.tif, sensor: lidar_dsm_intensity, height: absolute}
"""


@pytest.fixture
def crop_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import rasterio
    from rasterio.transform import Affine

    from rsmg.data.readers import read_mat

    if not MUUFL.is_file():
        missing_shared_data(MUUFL, "MUUFL LiDAR raster")
    monkeypatch.setenv(catalog.CATALOG_ENV, "")  # use_catalog writes the variable; restored after the test
    lidar = np.moveaxis(read_mat(MUUFL, key="LiDAR"), -1, 0)[:, CROP[0], CROP[1]].astype(np.float32)
    lidar[:, NODATA_BLOCK[0], NODATA_BLOCK[1]] = -9999.0
    profile = {"driver": "GTiff", "height": 90, "width": 70, "count": 2, "dtype": "float32", "nodata": -9999.0,
               "crs": "EPSG:32616", "transform": Affine(1.0, 0, 295_000.0, 0, -1.0, 3_360_000.0)}  # fmt: skip
    with rasterio.open(tmp_path / "muufl_crop.tif", "w", **profile) as dst:
        dst.write(lidar)
    path = tmp_path / "crop.yaml"
    path.write_text(CATALOG)
    return path


class _Probe:
    """Per batch the patches cut; after the first and last batch the bytes held by the writer's code (tracemalloc)."""

    def __init__(self) -> None:
        self.patches: list[int] = []
        self.held: list[int] = []
        self.seen: list[int] = []  # batches whose sample indices Lightning still holds, after the last batch

    def callback(self) -> Any:
        import lightning.pytorch as pl

        probe = self

        class Callback(pl.Callback):
            def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
                probe.patches.append(int(batch["image_lidar"].shape[0]))
                if batch_idx == trainer.num_predict_batches[0] - 1:
                    seen = trainer.predict_dataloaders[0].batch_sampler.seen_batch_indices
                    probe.seen = [len(seen), sum(map(bool, seen))]
                if batch_idx in (0, trainer.num_predict_batches[0] - 1):  # after the first and the last batch
                    snap = tracemalloc.take_snapshot().filter_traces(
                        [tracemalloc.Filter(True, "*rsmg/callbacks/*", all_frames=True)]
                    )
                    probe.held.append(sum(t.size for t in snap.traces))

        return Callback()


def _predict(cat: Path, out: Path, probe: _Probe | None = None) -> Any:
    """A random-weight tiny CNN predicts the crop (source: the labelled MUUFL scene, for classes and stats)."""
    import lightning.pytorch as pl
    import torch

    from rsmg.data.datamodule import CrossDomainDataModule
    from rsmg.models.baseline import ConcatCNN
    from rsmg.tasks import ClassificationTask

    dm = CrossDomainDataModule(
        sources=["muufl"], targets=["muufl_crop"], catalog=str(cat), root=str(SHARED_DATA), patch_size=7,
        source_split="per_class:20", batch_size=16, eval_batch_size=BATCH,
    )  # fmt: skip
    dm.setup("predict")
    torch.manual_seed(0)
    model = ClassificationTask(spec=dm.spec, net=lambda s: ConcatCNN(s, width=8))
    writer = prediction_writer.PredictionWriter(output_dir=str(out), confidence_maps=True)
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[writer, *([probe.callback()] if probe else [])], default_root_dir=str(out),
    )  # fmt: skip
    tracemalloc.start(4)
    try:
        trainer.predict(model, datamodule=dm, return_predictions=False)
    finally:
        tracemalloc.stop()
    return dm


def test_a_whole_scene_streams_and_writes_what_the_in_memory_path_writes(
    crop_catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rasterio

    probe = _Probe()
    dm = _predict(crop_catalog, tmp_path / "stream", probe)
    ds = dm.predict_dataloader()[0].dataset
    n = 90 * 70 - 8 * 10
    assert len(ds) == n and len(probe.patches) == -(-n // BATCH) and max(probe.patches) == BATCH
    assert ds.labels.strides == (0,)  # no ground truth: no label array per pixel
    ds[0]  # the crop is one strip (tests/test_windowed_predict.py cuts scenes into many)
    assert [tuple(a.shape) for a in ds._strips[0].values()] == [
        (2, 96, 76)
    ]  # one padded strip, no patch bank
    assert probe.held[-1] - probe.held[0] < n  # under a byte per pixel more after ~100 batches
    assert probe.seen == [len(probe.patches), 0]  # Lightning's per-batch index lists: emptied once written

    memory = _Probe()
    with monkeypatch.context() as m:  # the in-memory path (DDP ranks, non-scene datasets), for comparison
        m.setattr(
            prediction_writer.PredictionWriter, "_sink", lambda self, *a: prediction_writer._MemorySink()
        )
        _predict(crop_catalog, tmp_path / "memory", memory)
    assert memory.held[-1] - memory.held[0] > 24 * (n - BATCH)  # it keeps index, label, domain per sample

    a, b = tmp_path / "stream", tmp_path / "memory"
    za, zb = np.load(a / "predictions_muufl_crop.npz"), np.load(b / "predictions_muufl_crop.npz")
    assert za.files == zb.files == [*COLUMNS, "classes", "domain"]
    for key in za.files:
        assert za[key].dtype == zb[key].dtype and np.array_equal(za[key], zb[key]), key
    assert len(za["pred"]) == n and np.all(np.diff(za["index"]) == 1)
    assert (a / "predictions_muufl_crop.csv").read_text() == (b / "predictions_muufl_crop.csv").read_text()
    for tif in (
        "prediction_muufl_crop.tif",
        "prediction_muufl_crop.png",
        "prediction_muufl_crop_confidence.tif",
    ):
        assert (a / tif).read_bytes() == (b / tif).read_bytes(), tif
    with rasterio.open(a / "prediction_muufl_crop.tif") as src:
        classes = src.read(1)
    with rasterio.open(a / "prediction_muufl_crop_confidence.tif") as src:
        conf = src.read(1)
    r, c = za["row"], za["col"]
    assert np.array_equal(classes[r, c], za["pred"]) and (classes[NODATA_BLOCK] == 255).all()
    np.testing.assert_array_equal(conf[r, c], za["probs"].max(1))
    assert np.isnan(conf[NODATA_BLOCK]).all()
    assert not list(a.glob(".*tmp*")) and not list(a.glob("*.tmp*"))  # the scratch files are gone


def test_disk_table_keeps_one_row_per_sample_in_index_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n, k, offset = 1000, 3, 7 << 36
    index = np.arange(n, dtype=np.int64) + offset
    full = {"index": index, "row": rng.integers(0, 50, n), "col": rng.integers(0, 50, n),
            "label": rng.integers(-1, k, n), "pred": rng.integers(0, k, n),
            "probs": rng.random((n, k), dtype=np.float32)}  # fmt: skip
    predicted = np.sort(rng.choice(n, 900, replace=False))  # 100 samples never predicted
    order = rng.permutation(np.concatenate([predicted, predicted[:50]]))  # shuffled, 50 predicted twice
    (tmp_path / "scratch").mkdir()
    table = DiskTable(tmp_path / "scratch", n, k, index_offset=offset)
    for batch in np.array_split(order, 37):
        table.put({name: v[batch] for name, v in full.items()})
    expected = MemoryTable({name: v[predicted] for name, v in full.items()})
    assert table.n == expected.n == 900
    whole = {name: np.concatenate([c[name] for c in table.chunks(size=128)]) for name in COLUMNS}
    for name in COLUMNS:
        assert np.array_equal(whole[name], expected.columns[name]), name
    extra = {"classes": np.array(["a", "b", "c"]), "domain": np.array("d")}
    write_npz(tmp_path / "disk.npz", table, extra)
    np.savez_compressed(tmp_path / "numpy.npz", **expected.columns, **extra)
    disk, ref = np.load(tmp_path / "disk.npz"), np.load(tmp_path / "numpy.npz")
    assert disk.files == ref.files
    for key in ref.files:
        assert disk[key].dtype == ref[key].dtype and np.array_equal(disk[key], ref[key]), key
    write_csv(tmp_path / "disk.csv", table, ["a", "b", "c"])
    write_csv(tmp_path / "memory.csv", expected, ["a", "b", "c"])
    assert (tmp_path / "disk.csv").read_text() == (tmp_path / "memory.csv").read_text()
    with pytest.raises(IndexError, match="not one of the 1000 samples"):
        table.put({name: v[:1] - (offset if name == "index" else 0) for name, v in full.items()})
    table.close()
    assert not (tmp_path / "scratch").exists()


def test_forgetting_batch_indices_tolerates_only_a_loader_without_the_record() -> None:
    """The writer touches Lightning's private record (``seen_batch_indices``): a loader without it is left alone,
    any other failure surfaces instead of being swallowed."""
    from types import SimpleNamespace

    sampler = SimpleNamespace(seen_batch_indices=[[0, 1], [2, 3]])
    trainer: Any = SimpleNamespace(predict_dataloaders=[SimpleNamespace(batch_sampler=sampler)])
    prediction_writer._forget_batch_indices(trainer, 0, 1)
    assert sampler.seen_batch_indices == [[0, 1], []]
    for loader in (SimpleNamespace(batch_sampler=None), SimpleNamespace()):  # no record: nothing held
        trainer.predict_dataloaders = [loader]
        prediction_writer._forget_batch_indices(trainer, 0, 0)
    trainer.predict_dataloaders = []
    with pytest.raises(IndexError):  # a dataloader index the trainer has not got is a bug, not "no record"
        prediction_writer._forget_batch_indices(trainer, 0, 0)
