"""DTAug prior: training signal on real patches, data checks, config errors, persistence, Lightning task."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from rsmg.data.spec import DataSpec
from rsmg.diffusion import DiffusionPrior
from rsmg.errors import ConfigError, DataError

from . import TINY_UNET, lidar_patches, make_prior, make_spec, random_images


def fixed_loss(prior: DiffusionPrior, x0: torch.Tensor) -> float:
    g = torch.Generator().manual_seed(123)
    t = torch.randint(0, prior.num_train_timesteps, (x0.shape[0],), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    with torch.no_grad():
        return prior.loss(x0, timesteps=t, noise=noise).item()


def test_loss_falls_on_real_lidar_patches():
    x0 = lidar_patches(n=64, size=8)
    prior = make_prior({"lidar": 2}, patch_size=8)
    before = fixed_loss(prior, x0)
    opt = torch.optim.Adam(prior.parameters(), lr=2e-3)
    torch.manual_seed(0)
    for _ in range(30):
        loss = prior.loss(prior.stack({"image_lidar": x0}))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = fixed_loss(prior, x0)
    assert after < 0.7 * before, (before, after)


@pytest.mark.parametrize(("patch", "blocks", "padded"), [(11, 2, 12), (11, 3, 12), (5, 3, 8), (8, 2, 8)])
def test_odd_patches_are_padded_and_cropped(patch, blocks, padded):
    unet = {**TINY_UNET, "block_out_channels": (8, 16, 16)[:blocks]}
    prior = DiffusionPrior({"lidar": 2}, patch, unet=unet, num_train_timesteps=10)
    assert prior.padded_size == padded
    x = torch.randn(3, 2, patch, patch)
    with torch.no_grad():
        out = prior(x, torch.tensor([0, 5, 9]))
    assert out.shape == x.shape


def test_stack_uses_sorted_modalities_and_unstack_inverts():
    prior = make_prior({"lidar": 2, "hsi": 3})
    assert list(prior.modalities) == ["hsi", "lidar"]
    images = random_images(4)
    x = prior.stack({**images, "label": torch.zeros(4), "domain": torch.zeros(4)})
    assert x.shape == (4, 5, 11, 11)
    assert torch.equal(x[:, :3], images["image_hsi"])
    back = prior.unstack(x)
    assert set(back) == {"image_hsi", "image_lidar"}
    assert all(torch.equal(back[k], images[k]) for k in images)
    bare = prior.unstack(x, prefixed=False)
    assert torch.equal(prior.stack(bare), x)


def test_stack_rejects_missing_modality_and_bad_shapes():
    prior = make_prior()
    images = random_images(2)
    with pytest.raises(DataError, match="image_hsi"):
        prior.stack({"image_lidar": images["image_lidar"]})
    with pytest.raises(DataError, match="B×3×11×11"):
        prior.stack({**images, "image_hsi": torch.randn(2, 4, 11, 11)})
    with pytest.raises(DataError, match="batch dimension"):
        prior.stack({k: v[0] for k, v in images.items()})


def test_incompatible_prior_and_spec_name_both_sides():
    bands = {"lidar": ("dsm", "intensity"), "hsi": ("b1", "b2", "b3")}
    prior = DiffusionPrior(
        {"lidar": 2, "hsi": 3}, 11, band_names=bands, unet=TINY_UNET, num_train_timesteps=10
    )
    prior.check_compatible(make_spec(band_names=bands))
    prior.check_compatible(make_spec())  # no band names on the data side: nothing to compare
    with pytest.raises(DataError) as err:
        prior.check_compatible(make_spec({"lidar": 1, "hsi": 3}, patch_size=7))
    msg = str(err.value)
    assert "channels of 'lidar': prior 2 vs classifier data 1" in msg
    assert "patch_size: prior 11 vs classifier data 7" in msg
    with pytest.raises(DataError, match=r"bands of .lidar.: prior .* vs classifier data"):
        prior.check_compatible(make_spec(band_names={"lidar": ("dsm", "dtm")}))
    with pytest.raises(
        DataError, match=r"modalities: prior \['hsi', 'lidar'\] vs classifier data \['lidar'\]"
    ):
        prior.check_compatible(make_spec({"lidar": 2}))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"unet": {"in_channels": 5}}, "unet.in_channels"),
        ({"unet": {"sample_size": 16}}, "unet.sample_size"),
        ({"unet": {"num_class_embeds": 3}}, "unet.num_class_embeds"),
        ({"unet": {"no_such_arg": 1}}, "unet.no_such_arg"),
        ({"unet": {**TINY_UNET, "norm_num_groups": 5}}, "unet.norm_num_groups"),
        ({"unet": {**TINY_UNET, "down_block_types": ["DownBlock2D"]}}, "unet.down_block_types"),
        ({"unet": {"block_out_channels": []}}, "unet.block_out_channels"),
        ({"unet": TINY_UNET, "num_train_timesteps": 0}, "num_train_timesteps"),
        ({"unet": TINY_UNET, "scheduler": {"prediction_type": "v_prediction"}}, "scheduler.prediction_type"),
        ({"unet": TINY_UNET, "scheduler": {"clip_sample": True}}, "scheduler.clip_sample"),
        ({"unet": TINY_UNET, "patch_size": 0}, "patch_size"),
        ({"unet": TINY_UNET, "modalities": {"lidar": 0}}, "modalities.lidar"),
        ({"unet": TINY_UNET, "band_names": {"lidar": ("dsm",)}}, "band_names.lidar"),
    ],
)
def test_bad_prior_config_names_the_field(kwargs, field):
    args = {"modalities": {"lidar": 2}, "patch_size": 11, **kwargs}
    with pytest.raises(ConfigError) as err:
        DiffusionPrior(**args)
    assert err.value.field == field


def test_save_load_round_trip(tmp_path):
    prior = make_prior()
    with torch.no_grad():  # weights a fresh init under any seed cannot reproduce
        prior.unet.conv_out.weight.normal_()
    path = prior.save(tmp_path / "sub" / "prior.pt")
    assert sorted(p.name for p in path.parent.iterdir()) == ["prior.pt"]  # no temp file left behind
    loaded = DiffusionPrior.load(path)
    assert loaded.config == prior.config
    assert loaded.checksum() == prior.checksum()
    x, t = torch.randn(3, 5, 11, 11), torch.tensor([1, 50, 99])
    with torch.no_grad():
        assert torch.equal(prior.eval()(x, t), loaded.eval()(x, t))
    other = make_prior(seed=1)
    assert other.checksum() != prior.checksum()


def test_load_rejects_other_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        DiffusionPrior.load(tmp_path / "missing.pt")
    torch.save({"state_dict": {}}, tmp_path / "ckpt.pt")
    with pytest.raises(DataError, match="export_prior"):
        DiffusionPrior.load(tmp_path / "ckpt.pt")


def test_diffusers_is_imported_lazily():
    """``import rsmg`` must stay light: no module-level diffusers import in the DTAug modules.

    (Checked on the source rather than in a subprocess, which would cost a cold torch import.)
    """
    import rsmg.diffusion
    import rsmg.tasks.diffusion_prior as task_module

    files = [*Path(rsmg.diffusion.__file__).parent.glob("*.py"), Path(task_module.__file__)]
    for file in files:
        for node in ast.parse(file.read_text()).body:  # module level only; imports inside functions are fine
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] == "diffusers" for n in names), file


# ---------------------------------------------------------------------- Lightning task


def task_batch(n: int = 8, domains: list[int] | None = None) -> dict:
    return {
        **random_images(n),
        "label": torch.zeros(n, dtype=torch.long),
        "domain": torch.tensor(domains if domains is not None else [0] * n),
        "index": torch.arange(n),
    }


def make_task(**kwargs):
    from rsmg.tasks.diffusion_prior import DiffusionPriorTask

    torch.manual_seed(0)
    return DiffusionPriorTask(make_spec(), unet=TINY_UNET, num_train_timesteps=50, **kwargs)


@pytest.mark.filterwarnings("ignore:.*self.trainer.*")
def test_task_refuses_target_domain_samples():
    task = make_task()
    assert torch.isfinite(task.training_step(task_batch(), 0))
    with pytest.raises(DataError, match=r"non-source domains \['houston'\]"):
        task.training_step(task_batch(4, [0, 0, 2, 0]), 0)
    with pytest.raises(DataError, match="muufl"):
        task.validation_step(task_batch(2, [1, 0]), 0)
    batch = task_batch()
    del batch["domain"]
    with pytest.raises(DataError, match="'domain'"):
        task.training_step(batch, 0)


def test_task_config_errors():
    with pytest.raises(ConfigError) as err:
        make_task(lr=0)
    assert err.value.field == "lr"
    spec = DataSpec(classes=("a",), modalities={"lidar": 2}, domains=("t", "s"), source_domains=("s",))
    from rsmg.tasks.diffusion_prior import DiffusionPriorTask

    with pytest.raises(ConfigError) as err:
        DiffusionPriorTask(spec, unet=TINY_UNET)
    assert err.value.field == "spec.source_domains"


class _Batches(torch.utils.data.Dataset):
    def __init__(self, n: int, domain: int = 0) -> None:
        self.images = random_images(n, seed=3)
        self.domain = domain

    def __len__(self) -> int:
        return len(self.images["image_hsi"])

    def __getitem__(self, i: int) -> dict:
        return {
            **{k: v[i] for k, v in self.images.items()},
            "label": torch.tensor(0),
            "domain": torch.tensor(self.domain),
            "index": torch.tensor(i),
        }


def fit(task, train, val, **trainer_kwargs):
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=3,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **trainer_kwargs,
    )
    trainer.fit(task, DataLoader(train, batch_size=4), DataLoader(val, batch_size=4))
    return trainer


def test_trainer_never_trains_on_target_data():
    with pytest.raises(DataError, match="never see target data"):
        fit(make_task(), _Batches(8, domain=1), _Batches(4))


def test_task_checkpoint_and_export_round_trip(tmp_path):
    from rsmg.tasks.diffusion_prior import DiffusionPriorTask

    task = make_task()
    trainer = fit(task, _Batches(8), _Batches(4), check_val_every_n_epoch=1)
    assert {"train/loss", "val/loss"} <= set(trainer.callback_metrics)
    ckpt = tmp_path / "prior.ckpt"
    trainer.save_checkpoint(ckpt)
    raw = torch.load(ckpt, weights_only=True)
    assert raw["rsmg"]["spec"] == make_spec().to_dict()
    assert raw["rsmg"]["prior_config"] == task.prior.config

    loaded = DiffusionPriorTask.load_from_checkpoint(ckpt, weights_only=True)
    assert loaded.spec == task.spec
    exported = DiffusionPrior.load(task.export_prior(tmp_path / "prior.pt"))
    x, t = torch.randn(2, 5, 11, 11), torch.tensor([3, 40])
    with torch.no_grad():
        ref = task.prior.eval()(x, t)
        assert torch.equal(loaded.prior.eval()(x, t), ref)
        assert torch.equal(exported.eval()(x, t), ref)
    assert exported.checksum() == task.prior.checksum()
    # load_prior reads the checkpoint without the task (rsmg.diffusion never imports rsmg.tasks): same weights
    from rsmg.diffusion.loading import load_prior

    from_ckpt = load_prior(ckpt)
    assert not from_ckpt.training and from_ckpt.checksum() == task.prior.checksum()
    with torch.no_grad():
        assert torch.equal(from_ckpt(x, t), ref)
    raw["state_dict"] = {}  # a Lightning checkpoint of something else
    torch.save(raw, tmp_path / "other.ckpt")
    with pytest.raises(DataError, match=r"(?s)not one of the diffusion prior task.*other\.ckpt"):
        load_prior(tmp_path / "other.ckpt")
