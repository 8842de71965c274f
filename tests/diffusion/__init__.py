"""Shared helpers of the DTAug tests: tiny priors, synthetic and real (Trento LiDAR) patches."""

from __future__ import annotations

import numpy as np
import torch

from _paths import SHARED_DATA, missing_shared_data
from rsmg.data.spec import DataSpec

TRENTO = SHARED_DATA / "trento"
LIDAR_MAT = TRENTO / "tyust-dayu" / "Italy_lidar.mat"
GT_MAT = TRENTO / "wzr78998" / "Trento_gt.mat"

# A UNet small enough for CPU tests (diffusers' get_dummy_components habit): two resolutions, one layer each.
TINY_UNET = {
    "block_out_channels": (16, 32),
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "attention_head_dim": 8,
}


def make_spec(
    modalities: dict[str, int] | None = None, patch_size: int = 11, band_names: dict | None = None
) -> DataSpec:
    return DataSpec(
        classes=("a", "b"),
        modalities=modalities or {"lidar": 2, "hsi": 3},
        domains=("trento", "muufl", "houston"),
        source_domains=("trento",),
        patch_size=patch_size,
        band_names=band_names or {},
    )


def make_prior(
    modalities: dict[str, int] | None = None, patch_size: int = 11, timesteps: int = 100, seed: int = 0
):
    from rsmg.diffusion import DiffusionPrior

    torch.manual_seed(seed)
    return DiffusionPrior(
        modalities or {"lidar": 2, "hsi": 3}, patch_size, unet=TINY_UNET, num_train_timesteps=timesteps
    )


def random_images(n: int, modalities: dict[str, int] | None = None, patch_size: int = 11, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mods = modalities or {"lidar": 2, "hsi": 3}
    return {f"image_{m}": torch.randn(n, c, patch_size, patch_size, generator=g) for m, c in mods.items()}


def lidar_patches(n: int = 64, size: int = 8, seed: int = 0) -> torch.Tensor:
    """``n`` real Trento LiDAR patches (``n×2×size×size``) around labelled pixels, normalised per channel."""
    if not (LIDAR_MAT.is_file() and GT_MAT.is_file()):
        missing_shared_data(TRENTO, "Trento LiDAR (LiDAR + ground-truth .mat)")
    from scipy.io import loadmat

    data = loadmat(LIDAR_MAT)["data"].astype(np.float32)  # 166×600×2
    gt = loadmat(GT_MAT)["Trento_gt"]
    data = (data - data.mean(axis=(0, 1))) / data.std(axis=(0, 1))
    half = size // 2
    rows, cols = np.nonzero(gt[half : gt.shape[0] - half, half : gt.shape[1] - half])
    pick = np.random.default_rng(seed).choice(len(rows), size=n, replace=False)
    patches = [
        data[r : r + size, c : c + size].transpose(2, 0, 1)
        for r, c in zip(rows[pick], cols[pick], strict=True)
    ]
    return torch.from_numpy(np.stack(patches)).float()
