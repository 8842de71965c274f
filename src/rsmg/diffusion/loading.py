"""Load a DTAug prior from an exported prior (``.pt`` file or ``save_pretrained`` directory) or a checkpoint.

Users train the prior with ``rsmg fit --config experiments/dtaug/prior_*.yaml`` and then name the resulting
checkpoint (``.../checkpoints/last.ckpt``) in the classifier config; exporting first is optional.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from rsmg.diffusion.prior import CHECKPOINT_KEY, PRETRAINED_METADATA, PRETRAINED_WEIGHTS, DiffusionPrior
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
        return _from_checkpoint(head, p, map_location)
    return DiffusionPrior.load(p, map_location=map_location)


def _from_checkpoint(ckpt: dict, path: Path, map_location: str | torch.device) -> DiffusionPrior:
    """The prior of a prior-task checkpoint, rebuilt from the config the task stores beside its weights.

    Read here rather than through ``DiffusionPriorTask.load_from_checkpoint``, so that loading a prior never
    reaches up into :mod:`rsmg.tasks` (the task writes :data:`CHECKPOINT_KEY` for exactly this).
    """
    meta = ckpt.get(CHECKPOINT_KEY)
    state = {k.removeprefix("prior."): v for k, v in ckpt["state_dict"].items() if k.startswith("prior.")}
    if not isinstance(meta, dict) or "prior_config" not in meta or not state:
        raise DataError(
            "checkpoint is not one of the diffusion prior task",
            file=path,
            field="prior_path",
            expected=_ACCEPTED,
            found="a Lightning checkpoint without the prior's config and weights (a classifier's?)",
            fix="give the checkpoint of `rsmg fit --config experiments/dtaug/prior_*.yaml`, or an exported prior",
        )
    prior = DiffusionPrior.from_config(meta["prior_config"])
    prior.load_state_dict(state)
    return prior.to(map_location).eval()
