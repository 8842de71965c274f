"""A DTAug prior at a lower resolution than its data (``patch_size`` < ``data_size``), for scene images on a CPU.

Checked on real UC Merced images: a view is the original plus the upsampled change the prior made at its own
resolution (detail above that resolution is the original's), views keep the data's shape and stay independent
of the batch, the prior states which data it serves, and the task trains at the lower resolution.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _paths import SHARED_DATA, missing_shared_data
from rsmg.diffusion import DiffusionAugmenter, DiffusionPrior
from rsmg.errors import ConfigError, DataError

from . import TINY_UNET, make_spec

UCM = SHARED_DATA / "ucm_150"


@pytest.fixture(scope="module")
def scenes() -> dict[str, torch.Tensor]:
    """Four real UC Merced images (two classes), 32 px, normalised as the scene datamodules do (mean = std = 0.5)."""
    from PIL import Image

    paths = [UCM / c / f"{c}{i:02d}.jpg" for c in ("airplane", "forest") for i in (0, 1)]
    if not all(p.is_file() for p in paths):
        missing_shared_data(UCM, "UC Merced at 150 px")
    arrays = [
        np.asarray(Image.open(p).convert("RGB").resize((32, 32), Image.BICUBIC), np.float32) for p in paths
    ]
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 255.0
    return {"image_rgb": (x - 0.5) / 0.5}


def low_prior(seed: int = 0) -> DiffusionPrior:
    torch.manual_seed(seed)
    return DiffusionPrior({"rgb": 3}, 16, unet=TINY_UNET, num_train_timesteps=50, data_size=32)


def test_a_view_is_the_original_plus_the_upsampled_change_made_at_the_prior_s_resolution(scenes):
    prior = low_prior()
    views = DiffusionAugmenter(prior, strength=0.5, steps=2, views=2, seed=3)(scenes, torch.arange(4))
    assert [v["image_rgb"].shape for v in views] == [(4, 3, 32, 32)] * 2

    # the same weights as a full-resolution prior of the downsampled images give the low-resolution views
    same = DiffusionPrior({"rgb": 3}, 16, unet=TINY_UNET, num_train_timesteps=50)
    same.load_state_dict(prior.state_dict())
    low = F.interpolate(scenes["image_rgb"], size=(16, 16), mode="area")
    low_views = DiffusionAugmenter(same, strength=0.5, steps=2, views=2, seed=3)(
        {"image_rgb": low}, torch.arange(4)
    )
    for view, lv in zip(views, low_views, strict=True):
        change = F.interpolate(lv["image_rgb"] - low, size=(32, 32), mode="bilinear", align_corners=False)
        torch.testing.assert_close(view["image_rgb"], scenes["image_rgb"] + change, rtol=0, atol=1e-5)
        assert (view["image_rgb"] - scenes["image_rgb"]).abs().mean() > 0.05  # the view does differ


def test_low_resolution_views_do_not_depend_on_the_batch(scenes):
    aug = DiffusionAugmenter(low_prior(), strength=0.4, steps=2, views=1, seed=0)
    whole = aug(scenes, torch.arange(4))[0]["image_rgb"]
    rows = [2, 0]
    part = aug({"image_rgb": scenes["image_rgb"][rows]}, torch.tensor(rows))[0]["image_rgb"]
    torch.testing.assert_close(part, whole[rows], rtol=0, atol=1e-5)


def test_the_prior_states_the_data_it_serves_and_refuses_other_data(tmp_path):
    prior = low_prior()
    assert (
        prior.config["data_size"] == 32 and "data_size" not in make_full().config
    )  # old checksums unchanged
    prior.check_compatible(make_spec({"rgb": 3}, patch_size=32))
    with pytest.raises(DataError, match=r"patch_size: prior 32 \(modelled at 16\) vs classifier data 16"):
        prior.check_compatible(make_spec({"rgb": 3}, patch_size=16))
    again = DiffusionPrior.load(prior.save(tmp_path / "p.pt"))
    assert (again.patch_size, again.data_size, again.checksum()) == (16, 32, prior.checksum())
    with pytest.raises(DataError, match=r"B×3×32×32"):
        prior.stack({"image_rgb": torch.zeros(1, 3, 16, 16)})
    with pytest.raises(ConfigError, match="cannot exceed its data's"):
        DiffusionPrior({"rgb": 3}, 32, unet=TINY_UNET, data_size=16)


def make_full() -> DiffusionPrior:
    return DiffusionPrior({"rgb": 3}, 16, unet=TINY_UNET, num_train_timesteps=50)


@pytest.mark.filterwarnings("ignore:.*self.trainer.*")
def test_the_task_trains_a_lower_resolution_prior_of_its_data(scenes, tmp_path):
    from rsmg.tasks.diffusion_prior import DiffusionPriorTask

    torch.manual_seed(0)
    spec = make_spec({"rgb": 3}, patch_size=32)
    task = DiffusionPriorTask(spec, unet=TINY_UNET, num_train_timesteps=50, patch_size=16)
    batch = {**scenes, "domain": torch.zeros(4, dtype=torch.long), "index": torch.arange(4)}
    assert torch.isfinite(task.training_step(batch, 0)) and torch.isfinite(task.validation_step(batch, 0))
    exported = DiffusionPrior.load(task.export_prior(tmp_path / "prior.pt"))
    assert (exported.patch_size, exported.data_size) == (16, 32)
    with pytest.raises(ConfigError, match="cannot exceed its data's"):
        DiffusionPriorTask(spec, unet=TINY_UNET, patch_size=64)


def test_a_view_bank_of_a_low_resolution_prior_holds_views_at_the_data_s_size(scenes, tmp_path):
    from rsmg.diffusion import ViewBank

    class Scenes(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> dict:
            return {"image_rgb": scenes["image_rgb"][i], "index": i}

    aug = DiffusionAugmenter(low_prior(), strength=0.4, steps=2, views=2, seed=1)
    bank = ViewBank.build(Scenes(), aug, tmp_path / "bank", fingerprint="ucm4", batch_size=3)
    direct = aug(scenes, torch.arange(4))
    for i in range(4):
        for v in range(2):
            view = bank.get(i, v)["image_rgb"]
            assert view.shape == (3, 32, 32)
            torch.testing.assert_close(
                view.float(), direct[v]["image_rgb"][i], rtol=0, atol=2e-2
            )  # float16 bank


def test_the_diffusers_directory_and_the_task_checkpoint_keep_the_data_size(tmp_path):
    from rsmg.diffusion.loading import load_prior

    prior = low_prior()
    again = load_prior(prior.save_pretrained(tmp_path / "prior"))
    assert (again.patch_size, again.data_size, again.checksum()) == (16, 32, prior.checksum())
