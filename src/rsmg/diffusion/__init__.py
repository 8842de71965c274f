"""DTAug (FVMGN, arXiv 2511.10774): a diffusion prior over source patches, used to augment inputs.

* :class:`DiffusionPrior` — the denoiser over stacked normalised modalities (save, load, data checks);
* :class:`DiffusionAugmenter` — SDEdit-style views, deterministic per ``(seed, sample, view)``;
* :class:`ViewBank` — the views of a training set precomputed once on disk.

The Lightning task that trains the prior is :class:`rsmg.tasks.diffusion_prior.DiffusionPriorTask`.
diffusers is imported only when a prior or augmenter is built.
"""

from rsmg.diffusion.augment import DiffusionAugmenter, ddim_timesteps, view_seed
from rsmg.diffusion.bank import ViewBank, dataset_fingerprint
from rsmg.diffusion.prior import DiffusionPrior

__all__ = [
    "DiffusionAugmenter",
    "DiffusionPrior",
    "ViewBank",
    "dataset_fingerprint",
    "ddim_timesteps",
    "view_seed",
]
