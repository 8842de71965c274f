"""Training-time DTAug: on-the-fly views and the precomputed view bank, inside a real fit on Trento LiDAR."""

from __future__ import annotations

import json

import lightning.pytorch as pl
import pytest
import torch

from _paths import SHARED_DATA
from rsmg.data.augment import augment_batch
from rsmg.data.datamodule import CrossDomainDataModule
from rsmg.diffusion import DiffusionPrior, ViewBank
from rsmg.diffusion.augment import view_seed
from rsmg.diffusion.train_views import TrainingViews
from rsmg.errors import ConfigError
from rsmg.models.baseline import ConcatCNN
from rsmg.tasks import ClassificationTask

pytestmark = pytest.mark.skipif(
    not SHARED_DATA.exists(), reason=f"shared data pack not found at {SHARED_DATA}"
)
TINY_UNET = {"block_out_channels": [8, 16], "layers_per_block": 1, "norm_num_groups": 4}


def _dm(seed: int = 42) -> CrossDomainDataModule:
    return CrossDomainDataModule(
        sources=["trento"],
        targets=["muufl"],
        modalities=["lidar"],
        root=str(SHARED_DATA),
        patch_size=7,
        source_split="per_class:20",
        target_split="per_class:5",
        batch_size=32,
        ndsm_bands=["dsm"],
        standardize={"lidar": ["intensity"]},
        seed=seed,
    )


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One real epoch with a bank-backed TrainingViews (p=1: every training input is a bank view)."""
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("views")
    dm = _dm()
    prior = DiffusionPrior.from_spec(dm.spec, unet=TINY_UNET, num_train_timesteps=50)
    prior_path = str(prior.save(tmp / "prior.pt"))
    tv = TrainingViews(prior_path, p=1.0, strength=0.5, steps=2, bank_dir=str(tmp / "bank"), bank_views=2)
    task = ClassificationTask(spec=dm.spec, net=lambda s: ConcatCNN(s, width=8), train_views=tv)
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp,
    )
    trainer.fit(task, datamodule=dm)
    return dm, tv, prior_path, tmp


def test_bank_is_built_over_the_source_training_split(fitted):
    dm, tv, _, tmp = fitted
    assert tv.bank_path is not None and tv.bank_path.parent == tmp / "bank"
    bank = ViewBank.open(tv.bank_path)
    train = dm.train_dataset()
    assert len(bank) == len(train) and bank.num_views == 2
    meta = json.loads((tv.bank_path / "meta.json").read_text())
    assert meta["complete"] and meta["steps"] == 2 and meta["strength"] == 0.5
    assert sorted(tv._rows) == sorted(int(train[i]["index"]) for i in range(len(train)))


def test_bank_views_replace_inputs_with_the_epochs_dihedral_transform(fitted):
    dm, tv, _, _ = fitted
    bank = ViewBank.open(tv.bank_path)
    batch = next(iter(dm.train_dataloader()))
    epoch = 3
    batch = augment_batch(dict(batch), seed=dm.seed, epoch=epoch)  # what the training step receives
    out = tv(dict(batch), epoch=epoch, spec=dm.spec)
    for j, idx in enumerate(batch["index"].tolist()):
        v = view_seed(tv.seed, idx, 20_000 + epoch) % 2
        raw = bank.get(tv._rows[idx], v)
        expected = augment_batch(
            {"image_lidar": raw["image_lidar"][None], "index": torch.tensor([idx])}, seed=dm.seed, epoch=epoch
        )["image_lidar"][0]
        torch.testing.assert_close(out["image_lidar"][j], expected)
        assert not torch.equal(out["image_lidar"][j], batch["image_lidar"][j])
    assert torch.equal(out["label"], batch["label"])  # labels untouched


def test_bank_is_reused_and_selection_follows_p(fitted):
    dm, tv, prior_path, tmp = fitted
    stamp = (tv.bank_path / "views.npy").stat().st_mtime_ns
    again = TrainingViews(prior_path, p=0.5, strength=0.5, steps=2, bank_dir=str(tmp / "bank"), bank_views=2)
    task = ClassificationTask(spec=dm.spec, net=lambda s: ConcatCNN(s, width=8), train_views=again)
    pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp / "again",
    ).fit(task, datamodule=_dm())
    assert again.bank_path == tv.bank_path  # same split: same bank
    assert (tv.bank_path / "views.npy").stat().st_mtime_ns == stamp  # reused, not rebuilt
    batch = next(iter(dm.train_dataloader()))
    out = again(dict(batch), epoch=0, spec=dm.spec)
    sel = again.selected(batch["index"], 0)
    assert 0 < int(sel.sum()) < len(sel)
    same = (out["image_lidar"] == batch["image_lidar"]).flatten(1).all(1)
    assert torch.equal(same, ~sel)
    with pytest.raises(ConfigError, match="not in the DTAug view bank"):
        again({**batch, "index": batch["index"] + 10**9}, epoch=0, spec=dm.spec)


def test_another_split_gets_its_own_bank(fitted):
    _, tv, prior_path, tmp = fitted
    other = TrainingViews(prior_path, p=1.0, strength=0.5, steps=2, bank_dir=str(tmp / "bank"), bank_views=2)
    dm = _dm(seed=7)  # another data seed: another training split
    task = ClassificationTask(spec=dm.spec, net=lambda s: ConcatCNN(s, width=8), train_views=other)
    pl.Trainer(
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=0,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp / "other",
    ).fit(task, datamodule=dm)
    assert other.bank_path is not None and other.bank_path != tv.bank_path
    assert sorted(p.name for p in (tmp / "bank").iterdir()) == sorted(
        [tv.bank_path.name, other.bank_path.name]
    )


def test_on_the_fly_views_replace_only_selected_samples(fitted):
    dm, _, prior_path, _ = fitted
    tv = TrainingViews(prior_path, p=0.5, strength=0.5, steps=2)
    batch = next(iter(dm.train_dataloader()))
    out = tv(dict(batch), epoch=1, spec=dm.spec)
    sel = tv.selected(batch["index"], 1)
    same = (out["image_lidar"] == batch["image_lidar"]).flatten(1).all(1)
    assert sel.any() and torch.equal(same, ~sel)
    assert torch.equal(
        tv(dict(batch), epoch=1, spec=dm.spec)["image_lidar"], out["image_lidar"]
    )  # deterministic


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="p"):
        TrainingViews("x.pt", p=1.5)
    with pytest.raises(ConfigError, match="strength"):
        TrainingViews("x.pt", strength=0.0)
    with pytest.raises(ConfigError, match="bank"):
        TrainingViews("x.pt", bank_dir="b", bank_views=0)
