"""DiffusionTTA inside a real test run: K=0 equals plain inference exactly; K>0 adds a with-TTA table."""

import json

import lightning.pytorch as pl
import pytest
import torch

from _paths import SHARED_DATA
from rsmg.callbacks.diffusion_tta import DiffusionTTA, aggregate_views
from rsmg.callbacks.results import PerDomainResults
from rsmg.data.datamodule import CrossDomainDataModule
from rsmg.diffusion import DiffusionPrior
from rsmg.errors import ConfigError
from rsmg.models.baseline import ConcatCNN
from rsmg.tasks import ClassificationTask

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
