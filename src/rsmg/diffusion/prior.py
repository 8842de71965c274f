"""The diffusion prior of DTAug: a small DDPM over stacked, normalised multimodal source patches.

FVMGN's DTAug (arXiv 2511.10774, component 1) passes inputs through a diffusion model of the *source* domains.
The paper does not publish the architecture; rsmg uses a small :class:`diffusers.UNet2DModel` trained with the
DDPM noise-prediction objective, DDIM for sampling (:mod:`rsmg.diffusion.augment`). Choices where the paper is
silent, all configurable (``docs/decisions.md#dtaug-prior``):

* one joint prior over all modalities, stacked in *sorted* modality-name order (as
  :meth:`rsmg.models.base.RsmgModel.images`), so a view keeps the modalities consistent;
* inputs already normalised by the datamodule, so views replace inputs one for one;
* odd patches reflect-padded inside :meth:`DiffusionPrior.forward` to a multiple of
  ``2 ** (len(block_out_channels) - 1)`` and cropped back (replicate padding when too small to reflect);
* epsilon prediction, linear betas, ``clip_sample`` off (normalised values are not confined to ``[-1, 1]``);
* unconditional: no labels, no domains, so no label information can leak into views;
* optionally at a lower resolution than the data (``data_size``), for images too large to diffuse on a CPU:
  inputs are area-downsampled to ``patch_size`` and a view keeps the original's detail above that resolution
  (``docs/decisions.md#dtaug-prior-resolution``).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rsmg.data.spec import IMAGE_PREFIX, DataSpec, image_key
from rsmg.diffusion.prior_config import (
    _import_diffusers,
    _positive_int,
    resolve_scheduler_config,
    resolve_unet_config,
)
from rsmg.errors import ConfigError, DataError, OutputError
from rsmg.io import atomic_directory, atomic_torch_save

FORMAT = "rsmg.diffusion_prior"
FORMAT_VERSION = 1

#: rsmg's metadata in a :meth:`DiffusionPrior.save_pretrained` directory, beside diffusers' UNet files.
CHECKPOINT_KEY = "rsmg"
"""Key of a prior-task checkpoint holding ``{"spec", "prior_config"}``: the prior loads from it without the task."""
PRETRAINED_METADATA = "rsmg_prior.json"
#: The UNet weights diffusers writes with ``safe_serialization=True``.
PRETRAINED_WEIGHTS = "diffusion_pytorch_model.safetensors"


class DiffusionPrior(nn.Module):
    """DDPM noise predictor over stacked multimodal patches (DTAug's reconstruction model).

    The prior records which data it models (modalities with channel counts, patch size, band names) so that a
    prior trained on one dataset cannot silently augment another one (:meth:`check_compatible`).

    Args:
        modalities: modality name → channels; stored in sorted name order, which is the stacking order.
        patch_size: side of the square patches (H = W); any size, odd included (padded internally).
        band_names: modality → band names in channel order, checked against the classifier's data.
        unet: ``UNet2DModel`` keyword arguments merged over :data:`~rsmg.diffusion.prior_config.DEFAULT_UNET`.
        scheduler: ``DDPMScheduler`` keyword arguments merged over
            :data:`~rsmg.diffusion.prior_config.DEFAULT_SCHEDULER`.
        num_train_timesteps: shortcut for ``scheduler["num_train_timesteps"]``.
        data_size: side of the data this prior serves when it models it at a lower resolution (``patch_size``);
            ``None``: the same as ``patch_size``.

    Raises:
        ConfigError: bad modalities, patch size, UNet or scheduler config (the message names the field).
    """

    alphas_cumprod: torch.Tensor

    def __init__(
        self,
        modalities: Mapping[str, int],
        patch_size: int,
        band_names: Mapping[str, Sequence[str]] | None = None,
        unet: Mapping[str, Any] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        num_train_timesteps: int | None = None,
        data_size: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(modalities, Mapping) or not modalities:
            raise ConfigError(
                "the diffusion prior needs at least one modality",
                field="modalities",
                expected="e.g. {'hsi': 63, 'lidar': 2}",
                found=repr(modalities),
            )
        self.modalities: dict[str, int] = {
            str(m): _positive_int(modalities[m], f"modalities.{m}") for m in sorted(modalities)
        }
        self.patch_size: int = _positive_int(patch_size, "patch_size")
        self.data_size: int = self.patch_size if data_size is None else _positive_int(data_size, "data_size")
        if self.data_size < self.patch_size:
            raise ConfigError(
                "the prior's resolution cannot exceed its data's",
                field="patch_size",
                expected=f"<= data_size {self.data_size}",
                found=self.patch_size,
                fix="train the prior at the data's patch size or below",
            )
        self.band_names: dict[str, tuple[str, ...]] = {
            str(m): tuple(str(b) for b in names) for m, names in sorted((band_names or {}).items())
        }
        for m, names in self.band_names.items():
            if m not in self.modalities or len(names) != self.modalities[m]:
                raise ConfigError(
                    f"band_names of modality {m!r} do not match its channel count",
                    field=f"band_names.{m}",
                    expected=f"{self.modalities.get(m, 'a known modality')} names",
                    found=f"{len(names)} names",
                )
        self.unet_config = resolve_unet_config(unet)
        self.scheduler_config = resolve_scheduler_config(scheduler, num_train_timesteps)

        diffusers = _import_diffusers()
        self.num_channels = sum(self.modalities.values())
        self.multiple = 2 ** (len(self.unet_config["block_out_channels"]) - 1)
        self.padded_size = -(-self.patch_size // self.multiple) * self.multiple
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in self.unet_config.items()}
        self.unet = diffusers.UNet2DModel(
            sample_size=self.padded_size,
            in_channels=self.num_channels,
            out_channels=self.num_channels,
            **kwargs,
        )
        ddpm = diffusers.DDPMScheduler(**self.scheduler_config)
        # A buffer (not persistent: it is a function of the config) so it follows .to(device).
        self.register_buffer("alphas_cumprod", ddpm.alphas_cumprod.clone().float(), persistent=False)

    # ------------------------------------------------------------------ construction / config
    @classmethod
    def from_spec(
        cls,
        spec: DataSpec,
        unet: Mapping[str, Any] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        num_train_timesteps: int | None = None,
        patch_size: int | None = None,
    ) -> DiffusionPrior:
        """Build a prior for the data described by ``spec`` (modalities, patch size, band names).

        ``patch_size`` below the spec's makes a lower-resolution prior of that data (``data_size``).
        """
        return cls(
            modalities=spec.modalities,
            patch_size=spec.patch_size if patch_size is None else patch_size,
            band_names=spec.band_names,
            unet=unet,
            scheduler=scheduler,
            num_train_timesteps=num_train_timesteps,
            data_size=spec.patch_size,
        )

    @property
    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this prior (JSON-serialisable); weights excluded.

        ``data_size`` is recorded only when it differs from ``patch_size``, so the checksums (and view banks)
        of full-resolution priors saved before it existed stay valid.
        """
        config: dict[str, Any] = {
            "modalities": dict(self.modalities),
            "patch_size": self.patch_size,
            "band_names": {m: list(b) for m, b in self.band_names.items()},
            "unet": copy.deepcopy(self.unet_config),
            "scheduler": dict(self.scheduler_config),
        }
        if self.data_size != self.patch_size:
            config["data_size"] = self.data_size
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DiffusionPrior:
        """Inverse of :attr:`config` (fresh weights)."""
        return cls(
            modalities=config["modalities"],
            patch_size=config["patch_size"],
            band_names=config.get("band_names"),
            unet=config.get("unet"),
            scheduler=config.get("scheduler"),
            data_size=config.get("data_size"),
        )

    @property
    def num_train_timesteps(self) -> int:
        """Number of DDPM training timesteps ``T``."""
        return int(self.scheduler_config["num_train_timesteps"])

    def checksum(self) -> str:
        """SHA-256 of config and weights: identifies the prior a view bank was built with."""
        h = hashlib.sha256(json.dumps(self.config, sort_keys=True).encode())
        for name, tensor in sorted(self.state_dict().items()):
            t = tensor.detach().cpu().contiguous()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    # ------------------------------------------------------------------ data checks
    def check_compatible(self, spec: DataSpec) -> None:
        """Check that this prior models the data of ``spec`` (the classifier's data).

        A prior trained on other bands, another channel count or another patch size would feed the classifier
        views from a different distribution, so every difference is reported in one error.

        Band names are compared only for modalities where both the prior and the spec record them.

        Raises:
            DataError: naming both sides ("prior" vs "classifier data") for each difference.
        """
        problems: list[str] = []
        if set(self.modalities) != set(spec.modalities):
            problems.append(
                f"modalities: prior {sorted(self.modalities)} vs classifier data {sorted(spec.modalities)}"
            )
        for m in sorted(set(self.modalities) & set(spec.modalities)):
            if self.modalities[m] != spec.modalities[m]:
                problems.append(
                    f"channels of {m!r}: prior {self.modalities[m]} vs classifier data {spec.modalities[m]}"
                )
            mine, theirs = self.band_names.get(m), spec.band_names.get(m)
            if mine and theirs and tuple(mine) != tuple(theirs):
                diff = [i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b][:3]
                problems.append(
                    f"bands of {m!r}: prior {list(mine)[:5]}... vs classifier data {list(theirs)[:5]}... "
                    f"(first differing channels {diff})"
                )
        if self.data_size != spec.patch_size:
            at = "" if self.data_size == self.patch_size else f" (modelled at {self.patch_size})"
            problems.append(f"patch_size: prior {self.data_size}{at} vs classifier data {spec.patch_size}")
        if problems:
            raise DataError(
                "the diffusion prior was trained on different data than the classifier uses",
                field="; ".join(problems),
                expected="prior and classifier data with the same modalities, channels, bands and patch size",
                found="the differences listed in 'field'",
                fix="train (rsmg.tasks.diffusion_prior) or load a prior for this data configuration",
            )

    def stack(self, images: Mapping[str, Any]) -> torch.Tensor:
        """Concatenate the modalities of a batch along channels, in sorted modality order.

        Args:
            images: a batch dict with ``image_<modality>`` keys (other keys are ignored), or a dict keyed by
                bare modality names; each tensor ``B×C×H×W``.

        Returns:
            ``B×sum(C)×H×W`` float tensor.

        Raises:
            DataError: a missing modality, or a tensor of the wrong shape.
        """
        parts: list[torch.Tensor] = []
        batch: int | None = None
        for m, c in self.modalities.items():
            key = image_key(m)
            if key in images:
                t = images[key]
            elif m in images:
                t = images[m]
            else:
                raise DataError(
                    f"modality {m!r} is missing from the batch given to the diffusion prior",
                    field=key,
                    expected=f"keys {[image_key(k) for k in self.modalities]}",
                    found=sorted(k for k in images if isinstance(k, str)),
                )
            expected = (c, self.data_size, self.data_size)
            if not isinstance(t, torch.Tensor) or t.ndim != 4 or tuple(t.shape[1:]) != expected:
                raise DataError(
                    f"modality {m!r} has the wrong shape for the diffusion prior",
                    field=key,
                    expected=f"B×{c}×{self.data_size}×{self.data_size}",
                    found=tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__,
                    fix="pass batched tensors (add a batch dimension to single samples)",
                )
            if batch is not None and t.shape[0] != batch:
                raise DataError(
                    "modalities of one batch have different batch sizes",
                    field=key,
                    expected=batch,
                    found=t.shape[0],
                )
            batch = t.shape[0]
            parts.append(t.float())
        return torch.cat(parts, dim=1)

    def to_prior(self, x: torch.Tensor) -> torch.Tensor:
        """Stacked data ``B×C×data_size×data_size`` at the prior's resolution (area average; identity if equal)."""
        if self.data_size == self.patch_size:
            return x
        return F.interpolate(x, size=(self.patch_size, self.patch_size), mode="area")

    def to_data(self, x: torch.Tensor, x0: torch.Tensor, x_low: torch.Tensor) -> torch.Tensor:
        """A view at the data's resolution: the original ``x0`` plus the upsampled change ``x - x_low``.

        The prior only sees (and changes) what its resolution holds; detail above it is the original's.
        """
        if self.data_size == self.patch_size:
            return x
        up = F.interpolate(
            x - x_low, size=(self.data_size, self.data_size), mode="bilinear", align_corners=False
        )
        return x0 + up

    def unstack(self, x: torch.Tensor, prefixed: bool = True) -> dict[str, torch.Tensor]:
        """Split a stacked ``B×sum(C)×H×W`` tensor back into modalities (inverse of :meth:`stack`).

        Args:
            x: stacked tensor.
            prefixed: key the result ``image_<modality>`` (sample contract) rather than by bare modality name.
        """
        if x.ndim != 4 or x.shape[1] != self.num_channels:
            raise DataError(
                "stacked tensor has the wrong shape",
                field="x",
                expected=f"B×{self.num_channels}×H×W",
                found=tuple(x.shape),
            )
        chunks = torch.split(x, list(self.modalities.values()), dim=1)
        prefix = IMAGE_PREFIX if prefixed else ""
        return {prefix + m: chunk for m, chunk in zip(self.modalities, chunks, strict=True)}

    # ------------------------------------------------------------------ model
    def forward(self, sample: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Predict the noise in ``sample`` at ``timesteps``.

        The patch is reflect-padded to a multiple of ``2 ** (num_blocks - 1)`` (see module docstring) and the
        prediction cropped back to ``patch_size``.

        Args:
            sample: noisy stacked patches ``B×C×patch×patch``.
            timesteps: ``B`` integer timesteps in ``[0, T)`` (or a scalar, shared by the batch).

        Returns:
            Predicted noise, same shape as ``sample``.
        """
        p = self.patch_size
        total = self.padded_size - p
        lo, hi = total // 2, total - total // 2
        x = sample
        if total:
            mode = "reflect" if hi < p else "replicate"
            x = F.pad(x, (lo, hi, lo, hi), mode=mode)
        if timesteps.ndim == 0:
            timesteps = timesteps.expand(sample.shape[0])
        out = self.unet(x, timesteps.to(sample.device)).sample
        return out[..., lo : lo + p, lo : lo + p]

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """DDPM forward process ``q(x_t | x_0) = sqrt(ᾱ_t)·x_0 + sqrt(1-ᾱ_t)·ε`` (per-sample timesteps)."""
        a = self.alphas_cumprod.to(x0.device)[timesteps.to(x0.device).long()].view(-1, 1, 1, 1)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def loss(
        self,
        x0: torch.Tensor,
        timesteps: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """DDPM "simple" loss: MSE between the true and predicted noise at random timesteps.

        Args:
            x0: clean stacked patches ``B×C×H×W``.
            timesteps: ``B`` timesteps; uniform on ``[0, T)`` from the global RNG when omitted.
            noise: the noise ``ε``; standard normal from the global RNG when omitted.
        """
        if timesteps is None:
            timesteps = torch.randint(0, self.num_train_timesteps, (x0.shape[0],), device=x0.device)
        if noise is None:
            noise = torch.randn_like(x0)
        pred = self(self.add_noise(x0, noise, timesteps), timesteps)
        return F.mse_loss(pred.float(), noise.float())

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Save config + weights to one file, atomically (temp file in the same folder, then rename).

        A crash mid-write therefore never leaves a truncated prior that a later run would load.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": self.config,
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
        }
        return atomic_torch_save(path, payload)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Save in the diffusers layout: the UNet's ``config.json`` + safetensors weights, and rsmg's metadata.

        The UNet part is ``UNet2DModel.save_pretrained(..., safe_serialization=True)``, so diffusers tools read
        it as is (``UNet2DModel.from_pretrained(directory)``); :data:`PRETRAINED_METADATA` holds what the UNet
        config does not (modalities, band names, patch size, noise schedule) and is what rsmg rebuilds from.
        The UNet holds every weight of the prior. The directory is written atomically
        (:func:`rsmg.io.atomic_directory`): a previous one stays until the new one is complete.

        Raises:
            OutputError: ``directory`` is a file or a non-empty folder that is not a saved prior (never
                overwritten), or cannot be written.
        """
        directory = Path(directory)
        if (
            directory.is_dir()
            and any(directory.iterdir())
            and not (directory / PRETRAINED_METADATA).is_file()
        ):
            raise OutputError(
                "refusing to replace a non-empty directory that is not a saved diffusion prior",
                file=directory,
                found=f"no {PRETRAINED_METADATA} in it",
                fix="export to a new or empty directory (or a path ending in .pt for the single-file format)",
            )
        metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": self.config}
        with atomic_directory(directory) as tmp:
            self.unet.save_pretrained(tmp, safe_serialization=True)
            (tmp / PRETRAINED_METADATA).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        return directory

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, map_location: str | torch.device = "cpu"
    ) -> DiffusionPrior:
        """Load a prior written by :meth:`save_pretrained`.

        Raises:
            DataError: the directory, its metadata or its weights are missing, unreadable (e.g. a truncated
                safetensors file), from a newer rsmg, or do not match the recorded config.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = Path(directory)
        fix = "export the prior again: DiffusionPriorTask.export_prior(directory) or DiffusionPrior.save_pretrained"
        meta_path = directory / PRETRAINED_METADATA
        if not meta_path.is_file():
            raise DataError(
                "not a saved diffusion prior directory",
                file=directory,
                field=PRETRAINED_METADATA,
                expected=f"{PRETRAINED_METADATA} and {PRETRAINED_WEIGHTS}",
                found="missing" if directory.is_dir() else "no such directory",
                fix=fix,
            )
        try:
            metadata = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(
                "diffusion prior metadata is unreadable", file=meta_path, found=str(exc), fix=fix
            ) from exc
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT or "config" not in metadata:
            raise DataError(
                "file is not rsmg diffusion prior metadata",
                file=meta_path,
                field="format",
                expected=FORMAT,
                found=metadata.get("format") if isinstance(metadata, dict) else type(metadata).__name__,
                fix=fix,
            )
        if metadata.get("format_version", 0) > FORMAT_VERSION:
            raise DataError(
                "diffusion prior directory was written by a newer rsmg",
                file=meta_path,
                field="format_version",
                expected=f"<= {FORMAT_VERSION}",
                found=metadata.get("format_version"),
                fix="upgrade rsmg",
            )
        weights = directory / PRETRAINED_WEIGHTS
        if not weights.is_file():
            raise DataError("diffusion prior weights not found", file=weights, found="nothing", fix=fix)
        try:
            state = load_file(weights, device=str(map_location))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise DataError(
                "diffusion prior weights are unreadable (truncated or not a safetensors file)",
                file=weights,
                found=str(exc),
                fix=fix,
            ) from exc
        prior = cls.from_config(metadata["config"])
        try:
            prior.unet.load_state_dict(state)
        except RuntimeError as exc:
            raise DataError(
                f"diffusion prior weights do not match the config in {PRETRAINED_METADATA}",
                file=weights,
                found=str(exc).splitlines()[0],
                fix=fix,
            ) from exc
        return prior

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> DiffusionPrior:
        """Load a prior written by :meth:`save` (or ``DiffusionPriorTask.export_prior``).

        Raises:
            DataError: the file is missing or is not an rsmg diffusion prior.
        """
        path = Path(path)
        if (path / PRETRAINED_METADATA).is_file():
            raise DataError(
                "this diffusion prior is a save_pretrained directory, not a .pt file",
                file=path,
                fix="load it with DiffusionPrior.from_pretrained(path) or rsmg.diffusion.loading.load_prior(path)",
            )
        if not path.is_file():
            raise DataError(
                "diffusion prior file not found",
                file=path,
                fix="train one with rsmg.tasks.diffusion_prior and export it with export_prior(path)",
            )
        payload = torch.load(path, map_location=map_location, weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise DataError(
                "file is not an rsmg diffusion prior",
                file=path,
                field="format",
                expected=FORMAT,
                found=payload.get("format") if isinstance(payload, dict) else type(payload).__name__,
                fix="a Lightning checkpoint must be exported first: DiffusionPriorTask.export_prior(path)",
            )
        if payload.get("format_version", 0) > FORMAT_VERSION:
            raise DataError(
                "diffusion prior file was written by a newer rsmg",
                file=path,
                field="format_version",
                expected=f"<= {FORMAT_VERSION}",
                found=payload.get("format_version"),
                fix="upgrade rsmg",
            )
        prior = cls.from_config(payload["config"])
        prior.load_state_dict(payload["state_dict"])
        return prior
