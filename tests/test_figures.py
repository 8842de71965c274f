"""Figures (rsmg.plotting), FigureCallback and EmbeddingExport on a tiny in-memory two-scene datamodule."""

from types import SimpleNamespace

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from matplotlib.figure import Figure
from torch.utils.data import DataLoader

from rsmg import plotting
from rsmg.callbacks.embeddings import EmbeddingExport, SampleBuffer, batch_outputs, hash_priority
from rsmg.callbacks.figures import FigureCallback, log_figure, truth_map
from rsmg.data.scene import Scene, SceneDataset, collate_samples
from rsmg.data.spec import DataSpec
from rsmg.errors import ConfigError
from rsmg.tasks import ClassificationTask

PNG = b"\x89PNG\r\n\x1a\n"
CLASSES = ("water", "field", "forest")


def _scene(name, h, w, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, size=(h, w)).astype(np.int64)  # 0 unlabelled, 4 = a class outside the set
    labels[0, :5] = [0, 1, 2, 3, 4]
    lidar = (rng.normal(size=(2, h, w)) + labels[None]).astype(np.float32)
    return Scene(name, {"lidar": lidar}, labels, class_names=("water", "field", "forest", "cloud"))


class TinyDM(pl.LightningDataModule):
    """Source scene "src", target scene "tgt", laid out like CrossDomainDataModule (incl. ``_prepared``)."""

    def __init__(self):
        super().__init__()
        lut = np.array([-1, 0, 1, 2, -1])
        self.spec = DataSpec(
            classes=CLASSES,
            modalities={"lidar": 2},
            domains=("src", "tgt"),
            source_domains=("src",),
            patch_size=3,
        )
        self._prepared = {}
        for i, (name, shape) in enumerate({"src": (12, 14), "tgt": (10, 16)}.items()):
            scene = _scene(name, *shape, seed=i)
            pos = np.flatnonzero(lut[scene.labels.ravel()] >= 0)
            self._prepared[name] = SimpleNamespace(
                scene=scene, class_map=lut, train=pos[::2], val=pos[1::2], test=pos
            )

    def _ds(self, name, part):
        p = self._prepared[name]
        offset = (self.spec.domains.index(name) << 40) | {"train": 0, "val": 1 << 36, "test": 2 << 36}[part]
        return SceneDataset(
            p.scene,
            getattr(p, part),
            patch_size=3,
            class_map=p.class_map,
            domain=self.spec.domains.index(name),
            index_offset=offset,
        )

    def _dl(self, ds, bs=16):
        return DataLoader(ds, batch_size=bs, collate_fn=collate_samples)

    def train_dataloader(self):
        return self._dl(self._ds("src", "train"))

    def val_dataloader(self):
        return self._dl(self._ds("src", "val"))

    def test_dataloader(self):
        return [self._dl(self._ds("tgt", "test"), bs=23)]

    def test_dataset(self, name):
        return self._ds(name, "test")


class ImageLogger(CSVLogger):
    """A CSV logger that also accepts images, like W&B's ``log_image``."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.images = {}

    def log_image(self, key, images, step=None, **kwargs):
        self.images[key] = images


@pytest.fixture(scope="module")
def tested(tmp_path_factory):
    root = tmp_path_factory.mktemp("figrun")
    torch.manual_seed(0)
    dm = TinyDM()
    task = ClassificationTask(spec=dm.spec)
    figs = FigureCallback(every=["confusion", "per_class", "map", "tsne"], tsne_points=120)
    emb = EmbeddingExport(max_samples=50, source_samples=30)
    logger = ImageLogger(str(root), name="tiny")
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        logger=logger,
        accelerator="cpu",
        callbacks=[figs, emb],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        log_every_n_steps=1,
    )
    trainer.fit(task, datamodule=dm)
    trainer.test(task, datamodule=dm, verbose=False)
    return SimpleNamespace(
        dm=dm, task=task, figs=figs, emb=emb, logger=logger, run=root / "tiny" / "version_0"
    )


def test_figure_callback_writes_and_logs_every_figure(tested):
    names = sorted(p.name for p in tested.figs.written)
    assert names == ["confusion_tgt.png", "map_tgt.png", "per_class_accuracy.png", "tsne_fused.png"]
    for p in tested.figs.written:
        assert p.parent == tested.run / "figures" and p.read_bytes()[:8] == PNG
    assert set(tested.logger.images) == {
        "figures/confusion_tgt",
        "figures/map_tgt",
        "figures/per_class_accuracy",
        "figures/tsne_fused",
    }


def test_embedding_export_contents(tested):
    (path,) = tested.emb.written
    assert path == tested.run / "embeddings.npz"
    z = np.load(path)
    assert list(z["classes"]) == list(CLASSES) and list(z["domains"]) == ["src", "tgt"]
    assert sorted(z["embedding_names"]) == ["fused", "lidar"]
    test = z["split"] == "test"
    assert test.sum() == 50 and (z["split"] == "source_val").sum() == 30  # max_samples / source_samples
    assert (z["domain"][test] == 1).all() and (z["domain"][~test] == 0).all()
    assert z["emb_fused"].shape == (80, 64) and z["emb_fused"].dtype == np.float32
    # row/col point at the pixel whose (mapped) label the sample carries
    truth = truth_map(tested.dm, "tgt")
    assert (truth[z["row"][test], z["col"][test]] == z["label"][test]).all()
    assert (z["row"][~test] == -1).all()
    assert len(np.unique(z["index"])) == 80


def test_truth_map_marks_unlabelled_and_excluded():
    dm = TinyDM()
    labels = dm._prepared["tgt"].scene.labels
    t = truth_map(dm, "tgt")
    assert t.shape == labels.shape
    assert (t[labels == 0] == plotting.UNLABELLED).all() and (t[labels == 4] == plotting.NOT_EVALUATED).all()
    assert (t[labels == 2] == 1).all()
    assert truth_map(SimpleNamespace(), "tgt") is None


def test_bottom_k_sample_does_not_depend_on_batching():
    idx = np.arange(1000) * 7 + 3
    picks = []
    for bs in (1000, 64, 7):
        buf = SampleBuffer(max_per_domain=40, seed=5)
        for s in range(0, len(idx), bs):
            buf.add({"index": idx[s : s + bs], "domain": np.zeros(len(idx[s : s + bs]), int)})
        picks.append(buf.state()[0]["index"])
    assert len(picks[0]) == 40 and all((p == picks[0]).all() for p in picks)
    # merging two "ranks" that saw halves (plus a padded duplicate) gives the same subset
    a, b = SampleBuffer(40, 5), SampleBuffer(40, 5)
    a.add({"index": idx[::2], "domain": np.zeros(500, int)})
    b.add({"index": np.r_[idx[1::2], idx[:1]], "domain": np.zeros(501, int)})
    merged = SampleBuffer.merge([a.state(), b.state()], 40, 5)
    assert (merged[0]["index"] == picks[0]).all()
    u = hash_priority(np.arange(10_000), seed=1)
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.02


def test_batch_outputs_reuses_step_outputs_or_runs_the_model_once():
    calls = []

    class Net(torch.nn.Module):
        def forward(self, batch):
            calls.append(1)
            return SimpleNamespace(logits=torch.tensor([[0.0, 2.0]]), embeddings={"fused": torch.ones(1, 3)})

    net, batch = Net(), {"label": torch.tensor([1])}
    net._trainer = None
    res = batch_outputs(net, batch, {"logits": torch.tensor([[2.0, 0.0]]), "embeddings": {}})
    assert calls == [] and res["probs"].argmax(1).item() == 0  # ClassificationTask.test_step's outputs
    first = batch_outputs(net, batch, None)  # a task whose test_step returns nothing
    second = batch_outputs(net, batch, None)  # another callback, same batch: cached
    assert calls == [1] and first is second and first["probs"].argmax(1).item() == 1
    assert set(first["embeddings"]) == {"fused"}


def test_log_figure_dispatches_by_capability(tmp_path):
    fig = plotting.plot_per_class_accuracy({"tgt": [0.5, float("nan"), 1.0]}, CLASSES)
    path = plotting.save_figure(fig, tmp_path / "f.png")

    class TB:
        def __init__(self):
            self.experiment = SimpleNamespace(calls=[])
            self.experiment.add_figure = lambda tag, f, global_step, close: self.experiment.calls.append(tag)

    class Broken:
        def log_image(self, **kwargs):
            raise RuntimeError("offline")

    tb, csv_like = TB(), SimpleNamespace(experiment=SimpleNamespace())
    trainer = SimpleNamespace(loggers=[tb, csv_like, Broken()], global_step=3)
    with pytest.warns(UserWarning, match="could not log figure"):
        done = log_figure(trainer, "figures/f", fig, path)
    assert done == ["TB"] and tb.experiment.calls == ["figures/f"]


def test_plotting_functions_return_figures(tmp_path):
    cm = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    fig = plotting.plot_confusion_matrix(cm, CLASSES, "tgt")
    texts = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert texts == ["water (n=6)", "field (n=5)", "forest (absent)"] and "tgt" in fig.axes[0].get_title()
    truth = np.full((6, 9), plotting.UNLABELLED)
    truth[2:5, 1:8] = 1
    truth[0, 0] = plotting.NOT_EVALUATED
    pred = plotting.label_map_from_predictions(
        truth.shape, np.array([2, 3]), np.array([1, 2]), np.array([1, 0])
    )
    fig = plotting.plot_classification_map(pred, truth, CLASSES, "tgt")
    assert isinstance(fig, Figure) and "errors (OA 50.0 % on 2 pixels)" in [a.get_title() for a in fig.axes]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:4] == [*CLASSES, "unlabelled"] and "correct" in legend
    with pytest.raises(ValueError, match="same H×W"):
        plotting.plot_classification_map(pred[:2], truth, CLASSES)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8))
    fig = plotting.plot_tsne(
        x,
        rng.integers(0, 3, 60),
        rng.integers(0, 2, 60),
        CLASSES,
        ["src", "tgt"],
        max_points=40,
        source_domains=["src"],
    )
    assert "40 points" in fig._suptitle.get_text()
    assert any("src (source)" in t.get_text() for t in fig.axes[1].get_legend().get_texts())
    assert plotting.save_figure(fig, tmp_path / "deep" / "t.png").read_bytes()[:8] == PNG
    assert len(set(plotting.class_colors(60))) == 60
    assert not any(max(c) - min(c) < 0.06 for c in plotting.class_colors(60))  # never grey


def test_unknown_figure_kind_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown figure kind 'confusoin'") as e:
        FigureCallback(every=["confusoin"])
    assert "confusion" in str(e.value)
