"""DiffusionTTA inside a real test run: K=0 equals plain inference exactly; K>0 adds a with-TTA table.

On Trento → MUUFL LiDAR patches with the concat CNN, and on UC Merced images with their captions with the unified
model (``fvmgn_captions``, which reads ``batch["text"]``): a view replaces the images only, so every view of a
sample is classified with that sample's caption.
"""

import json

import lightning.pytorch as pl
import pytest
import torch

from _paths import SHARED_DATA, missing_shared_data
from _tiny import TINY_CAPTION_NET_UCM21, with_options
from rsmg.callbacks.diffusion_tta import DiffusionTTA, aggregate_views
from rsmg.callbacks.results import PerDomainResults
from rsmg.data.datamodule import CrossDomainDataModule
from rsmg.data.scene_domains import SceneDomainDataModule
from rsmg.diffusion import DiffusionPrior
from rsmg.errors import ConfigError
from rsmg.models.baseline import ConcatCNN
from rsmg.models.fvmgn_captions import CaptionFVMGN
from rsmg.tasks import ClassificationTask
from rsmg.tasks.diffusion_prior import DiffusionPriorTask

pytestmark = pytest.mark.skipif(
    not SHARED_DATA.exists(), reason=f"shared data pack not found at {SHARED_DATA}"
)
TINY_UNET = {"block_out_channels": [8, 16], "layers_per_block": 1, "norm_num_groups": 4}


@pytest.fixture(scope="module")
def setup_run(tmp_path_factory):
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("tta")
    dm = CrossDomainDataModule(
        sources=["trento"],
        targets=["muufl"],
        modalities=["lidar"],
        root=str(SHARED_DATA),
        patch_size=7,
        target_split="per_class:40",
        eval_batch_size=64,
        ndsm_bands=["dsm"],
        standardize={"lidar": ["intensity"]},
    )
    prior = DiffusionPrior.from_spec(dm.spec, unet=TINY_UNET, num_train_timesteps=50)
    prior_path = prior.save(tmp / "prior.pt")
    task = ClassificationTask(spec=dm.spec, net=lambda s: ConcatCNN(s, width=8), lr=1e-2)
    pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp,
    ).fit(task, datamodule=dm)  # a classifier whose predictions depend on the input
    return dm, task, prior_path, tmp


def _test(dm, task, tmp, views):
    results = PerDomainResults()
    tta = DiffusionTTA(str(tmp / "prior.pt"), strength=0.5, steps=2, views=views, seed=1)
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        default_root_dir=tmp / f"k{views}",
        callbacks=[tta, results],
        enable_checkpointing=False,
    )
    trainer.test(task, datamodule=dm, verbose=False)
    return task.test_results, tta.results, tmp / f"k{views}"


def test_k0_equals_plain_exactly(setup_run):
    dm, task, _, tmp = setup_run
    plain, tta, _ = _test(dm, task, tmp, views=0)
    assert plain["muufl"]["confusion"] == tta["muufl"]["confusion"]
    assert plain["muufl"]["oa"] == tta["muufl"]["oa"]


def test_views_change_predictions_and_table_shows_both(setup_run):
    dm, task, _, tmp = setup_run
    plain, tta, out = _test(dm, task, tmp, views=2)
    assert plain["muufl"]["n"] == tta["muufl"]["n"] == 160
    assert plain["muufl"]["confusion"] != tta["muufl"]["confusion"]  # an untrained prior moves the inputs
    blocks = json.loads((out / "metrics.json").read_text())["results"]
    assert len(blocks) == 2 and any("TTA" in k for k in blocks)
    assert "DTAug TTA (K=2" in (out / "results.md").read_text()


def test_aggregation_and_bad_config():
    logits = torch.tensor([[[2.0, 0.0]], [[0.0, 1.0]], [[0.0, 1.0]]])
    assert aggregate_views(logits, "vote").argmax(-1).item() == 1
    assert torch.allclose(aggregate_views(logits, "mean_prob").sum(-1), torch.ones(1))
    for kw, field in [({"strength": 0.0}, "strength"), ({"steps": 0}, "steps"), ({"views": -1}, "views")]:
        with pytest.raises(ConfigError, match=field):
            DiffusionTTA("p.pt", **kw)


# ------------------------------------------------------------------------ captioned scenes, unified model
CAPTION_NET = TINY_CAPTION_NET_UCM21


@pytest.fixture(scope="module")
def scene_run(tmp_path_factory):
    """UC Merced at 64 px with captions, a tiny prior fitted (2 steps) on its training images, the unified model."""
    for folder in ("ucm_150", "ucm_captions"):
        if not (SHARED_DATA / folder).is_dir():
            missing_shared_data(SHARED_DATA / folder, folder)
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("tta_scenes")
    dm = SceneDomainDataModule(
        ["ucm"], ["ucm"], class_set="ucm21", root=str(SHARED_DATA), image_size=64, source_split="per_class:2",
        captions=True, text_transforms=["drop_verdicts", "mask_class_names"], batch_size=8, eval_batch_size=12,
    )  # fmt: skip
    prior = DiffusionPriorTask(spec=dm.spec, unet=TINY_UNET, num_train_timesteps=50)
    trainer = pl.Trainer(
        max_steps=2,
        limit_val_batches=0,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp,
    )
    trainer.fit(prior, datamodule=dm)  # DTAug step 1 on the scene datamodule: source images only
    prior_path = prior.export_prior(tmp / "prior.pt")
    task = ClassificationTask(spec=dm.spec, net=lambda s: CaptionFVMGN(s, **with_options(CAPTION_NET)))
    return dm, task, prior_path, tmp


def _scene_test(dm, task, prior_path, tmp, views):
    tta = DiffusionTTA(str(prior_path), strength=0.5, steps=2, views=views, seed=1)
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        default_root_dir=tmp / f"scenes_k{views}",
        callbacks=[tta, PerDomainResults()],
        enable_checkpointing=False,
        limit_test_batches=2,  # 24 of the 210 held-out images
    )
    trainer.test(task, datamodule=dm, verbose=False)
    return task.test_results["ucm"], tta.results["ucm"], tta


def test_tta_views_of_captioned_scenes_keep_each_samples_caption(scene_run, monkeypatch):
    dm, task, prior_path, tmp = scene_run
    calls: list[tuple[list[str], torch.Tensor, torch.Tensor]] = []
    forward = task.net.forward

    def spy(batch):
        calls.append((list(batch["text"]), batch["index"].clone(), batch["image_rgb"].clone()))
        return forward(batch)

    monkeypatch.setattr(task.net, "forward", spy)
    plain, tta, _ = _scene_test(dm, task, prior_path, tmp, views=2)
    assert plain["n"] == tta["n"] == 24
    # per test batch: the task's own forward (whose logits the callback reuses), then one per view
    assert len(calls) == 2 * 3
    for b in range(2):
        (texts, index, image), *views = calls[3 * b : 3 * b + 3]
        assert len(texts) == 12 and any(texts)  # real captions (leakage-controlled), one per image
        for v_texts, v_index, v_image in views:
            assert v_texts == texts and torch.equal(v_index, index)
            assert v_image.shape == image.shape and not torch.equal(v_image, image)  # only the images change


def test_tta_on_captioned_scenes_k0_is_plain_and_views_move_the_captioned_prediction(scene_run):
    dm, task, prior_path, tmp = scene_run
    plain, tta, _ = _scene_test(dm, task, prior_path, tmp, views=0)
    assert plain["confusion"] == tta["confusion"] and plain["oa"] == tta["oa"]

    cb = DiffusionTTA(str(prior_path), strength=0.5, steps=2, views=2, seed=1)
    cb.setup(pl.Trainer(accelerator="cpu", logger=False), task, "test")
    batch = next(iter(dm.test_dataloader()[0]))
    task.eval()
    with torch.no_grad():
        alone = task(batch).logits.softmax(-1)
    with_views = cb.tta_probs(task, batch)
    assert with_views.shape == alone.shape == (12, 21)
    assert not torch.allclose(with_views, alone)  # the views reach the classifier
    no_caption = cb.tta_probs(task, {**batch, "text": [""] * 12})
    assert not torch.allclose(with_views, no_caption)  # and so do the captions, through every view
