"""Load a DTAug prior from either an exported prior file or a ``rsmg fit`` checkpoint of the prior task.

Users train the prior with ``rsmg fit --config experiments/dtaug/prior_*.yaml`` and then name the resulting
checkpoint (``.../checkpoints/last.ckpt``) in the classifier config; exporting first is optional.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rsmg.diffusion.prior import DiffusionPrior
from rsmg.errors import DataError, require_file


def load_prior(path: str | Path, map_location: str | torch.device = "cpu") -> DiffusionPrior:
    """Load a :class:`DiffusionPrior` from an exported file or a Lightning checkpoint of ``DiffusionPriorTask``.

    Raises:
        DataError: the file does not exist or holds neither format.
    """
    p = require_file(
        path,
        what="diffusion prior not found",
        field="prior_path",
        expected="an existing file",
        found="nothing",
        fix="train the prior first (experiments/dtaug/prior_*.yaml) and give its checkpoint",
        error=DataError,
    )
    head = torch.load(p, map_location="cpu", weights_only=False)
    if isinstance(head, dict) and "state_dict" in head and "hyper_parameters" in head:
        from rsmg.tasks.diffusion_prior import DiffusionPriorTask

        task = DiffusionPriorTask.load_from_checkpoint(p, map_location=map_location)
        prior = task.prior
        prior.eval()
        return prior
    return DiffusionPrior.load(p, map_location=map_location)
