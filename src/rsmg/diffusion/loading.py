"""Load a DTAug prior from an exported prior (``.pt`` file or ``save_pretrained`` directory) or a checkpoint.

Users train the prior with ``rsmg fit --config experiments/dtaug/prior_*.yaml`` and then name the resulting
checkpoint (``.../checkpoints/last.ckpt``) in the classifier config; exporting first is optional.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from rsmg.diffusion.prior import PRETRAINED_METADATA, PRETRAINED_WEIGHTS, DiffusionPrior
from rsmg.errors import DataError

_ACCEPTED = (
    "an exported prior file (.pt), a save_pretrained directory (with "
    f"{PRETRAINED_METADATA}) or a checkpoint of the prior task (.ckpt)"
)


def load_prior(path: str | Path, map_location: str | torch.device = "cpu") -> DiffusionPrior:
    """Load a :class:`DiffusionPrior` from any of the three forms rsmg writes.

    * a directory of :meth:`DiffusionPrior.save_pretrained` (diffusers layout + ``rsmg_prior.json``);
    * a single file of :meth:`DiffusionPrior.save` (``DiffusionPriorTask.export_prior("x.pt")``);
    * a Lightning checkpoint of :class:`rsmg.tasks.diffusion_prior.DiffusionPriorTask`.

    Raises:
        DataError: the path does not exist or holds none of these forms (the message names the path and
            what to give instead).
    """
    p = Path(path)
    if p.is_dir():
        if not (p / PRETRAINED_METADATA).is_file():
            raise DataError(
                "directory is not a saved diffusion prior",
                file=p,
                field="prior_path",
                expected=_ACCEPTED,
                found=f"a directory without {PRETRAINED_METADATA}",
                fix="give the directory written by DiffusionPriorTask.export_prior(directory), or a .pt/.ckpt file",
            )
        return DiffusionPrior.from_pretrained(p, map_location=map_location)
    if not p.is_file():
        raise DataError(
            "diffusion prior not found",
            file=p,
            field="prior_path",
            expected=_ACCEPTED,
            found="nothing",
            fix="train the prior first (experiments/dtaug/prior_*.yaml) and give its checkpoint or exported prior",
        )
    if p.name == PRETRAINED_WEIGHTS or p.name == PRETRAINED_METADATA:
        raise DataError(
            "a file inside a save_pretrained prior directory was given",
            file=p,
            field="prior_path",
            expected=_ACCEPTED,
            found=p.name,
            fix=f"give the directory instead: {p.parent}",
        )
    try:
        head = torch.load(p, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError) as exc:
        raise DataError(
            "file is not a diffusion prior torch file",
            file=p,
            field="prior_path",
            expected=_ACCEPTED,
            found=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            fix="export the prior again (DiffusionPriorTask.export_prior) or give the prior task's checkpoint",
        ) from exc
    if isinstance(head, dict) and "state_dict" in head and "hyper_parameters" in head:
        from rsmg.tasks.diffusion_prior import DiffusionPriorTask

        task = DiffusionPriorTask.load_from_checkpoint(p, map_location=map_location)
        prior = task.prior
        prior.eval()
        return prior
    return DiffusionPrior.load(p, map_location=map_location)
