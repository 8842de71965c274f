"""DTAug views: noise a patch part-way and denoise it with the source prior (SDEdit / img2img reading).

FVMGN's DTAug (arXiv 2511.10774, component 1) maps inputs through a diffusion model of the source domains.
The paper does not give the sampler; rsmg reads it as SDEdit (Meng et al., 2022), with the knobs of diffusers'
img2img pipelines (``docs/decisions.md#dtaug-views``): forward-diffuse the clean stacked patch to timestep
``t_s ≈ strength·T`` (:meth:`rsmg.diffusion.prior.DiffusionPrior.add_noise`), then denoise with ``steps``
DDIM updates (Song et al., 2021), each one ``diffusers.DDIMScheduler.step`` on the prior's schedule respaced to
the visited timesteps (:func:`respaced_ddim_scheduler`). Low ``strength`` keeps the view faithful, high makes
it diverse.

Determinism: every view has its own ``torch.Generator`` seeded from ``(seed, sample index, view index)``
(:func:`view_seed`) and noise is drawn per sample on the CPU, so a sample's views do not depend on the batch
it is in, its position in that batch, the device, or the number of DDP ranks. With ``eta = 0`` (default) DDIM
is deterministic given the starting noise; with ``eta > 0`` the extra noise comes from the same per-view
generators and reaches ``DDIMScheduler.step`` as ``variance_noise`` (drawn per view as above, not by the
scheduler from one generator for the whole batch). On CUDA the noise is still identical, but the UNet's
arithmetic may vary with the batch size (TF32 convolutions, cuDNN algorithm choice); set
``torch.backends.cudnn.allow_tf32 = False`` and ``torch.use_deterministic_algorithms(True)`` where views must
match across batchings to float rounding.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from rsmg.data.spec import IMAGE_PREFIX
from rsmg.diffusion.prior import DiffusionPrior
from rsmg.diffusion.prior_config import _import_diffusers
from rsmg.errors import ConfigError, DataError

_MASK63 = (1 << 63) - 1


def view_seed(seed: int, index: int, view: int) -> int:
    """Combine ``(seed, sample index, view index)`` into one 63-bit generator seed.

    A cryptographic hash (not Python's salted ``hash``) keeps seeds identical across processes and machines,
    and makes nearby triples (index ``i`` view ``j`` vs index ``j`` view ``i``) unrelated.
    """
    digest = hashlib.blake2b(struct.pack("<qqq", int(seed), int(index), int(view)), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _MASK63


def ddim_timesteps(strength: float, steps: int, num_train_timesteps: int) -> list[int]:
    """Timesteps visited when denoising from ``strength·T`` to the clean sample, descending.

    With ``n = round(strength·T)`` noising steps, the start index is ``n - 1`` (diffusers timesteps are
    0-based: index 0 already holds one step of noise) and the ``steps`` points are evenly spaced down from it
    ("trailing" spacing): ``round(n·(steps - i)/steps) - 1`` for ``i = 0..steps-1``. The update after the last
    one lands on the clean sample (``ᾱ = 1``). Duplicates (more steps than noise levels) are dropped.

    Example: ``strength=1, steps=4, T=1000`` gives ``[999, 749, 499, 249]``, exactly diffusers' DDIM with
    ``timestep_spacing="trailing"``.
    """
    n = max(1, round(strength * num_train_timesteps))
    out: list[int] = []
    for i in range(steps):
        t = max(0, round(n * (steps - i) / steps) - 1)
        if not out or t < out[-1]:
            out.append(t)
    return out


def respaced_ddim_scheduler(scheduler_config: Mapping[str, Any], timesteps: Sequence[int]) -> Any:
    """A ``diffusers.DDIMScheduler`` whose steps are the jumps between ``timesteps`` of the prior's schedule.

    ``DDIMScheduler.step`` always steps from ``t`` to ``t - T // num_inference_steps``, a fixed integer
    stride, so it cannot visit SDEdit's timesteps (:func:`ddim_timesteps`: from ``strength·T`` down, stride
    ``strength·T / steps``, e.g. 80 for the defaults, which no ``T // N`` equals). Respacing, as in Nichol &
    Dhariwal's ``space_timesteps`` (improved DDPM), rewrites the schedule instead: a scheduler of
    ``S = len(timesteps)`` training steps whose ``ᾱ'_k`` is the prior's ``ᾱ`` at the ``k``-th smallest visited
    timestep (betas ``1 - ᾱ'_k / ᾱ'_{k-1}``), stepped with stride 1 down to ``ᾱ = 1``. Every DDIM update
    (eq. 12 and the ``eta`` variance, eq. 16, of Song et al. 2021) is then diffusers' own; the caller feeds
    the UNet the prior's timestep ``timesteps[S - 1 - k]`` at scheduler step ``k``.

    Args:
        scheduler_config: the prior's noise-schedule config (:attr:`DiffusionPrior.scheduler_config`).
        timesteps: prior timesteps to visit, strictly descending.

    Returns:
        A DDIMScheduler with ``set_timesteps(S)`` applied; its ``timesteps`` are ``S-1, ..., 0``.
    """
    diffusers = _import_diffusers()
    full = diffusers.DDIMScheduler(**scheduler_config).alphas_cumprod  # the prior's ᾱ table (same config)
    visited = full[list(reversed(timesteps))]  # ascending timesteps
    previous = torch.cat([torch.ones(1, dtype=visited.dtype), visited[:-1]])
    betas = 1 - visited.double() / previous.double()
    sched = diffusers.DDIMScheduler(
        num_train_timesteps=len(visited),
        trained_betas=betas.tolist(),
        clip_sample=False,
        set_alpha_to_one=True,
        prediction_type=scheduler_config["prediction_type"],
        timestep_spacing="leading",
        steps_offset=0,
    )
    # cumprod(1 - betas) in float32 only recovers ᾱ' to ~1e-4 relative at ᾱ ≈ 4e-5 (strength 1, 1 step);
    # use the prior's table entries themselves so that views follow the trained schedule exactly.
    sched.alphas_cumprod = visited.clone()
    sched.set_timesteps(len(visited))
    return sched


def _check_number(value: object, field: str, *, integer: bool) -> None:
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        raise ConfigError(
            f"{field} must be {'an integer' if integer else 'a number'}",
            field=field,
            expected="int" if integer else "float",
            found=repr(value),
        )


class DiffusionAugmenter:
    """Produce ``views`` DTAug reconstructions of a batch with a trained :class:`DiffusionPrior`.

    Args:
        prior: the source-domain diffusion prior (put in eval mode while sampling; weights unchanged).
        strength: fraction of the noise schedule to diffuse to, in ``(0, 1]`` (papers.md: 0.3-0.5).
        steps: DDIM denoising steps, ``>= 1`` (papers.md: ≤ 10).
        views: number of views ``K`` per sample, ``>= 0`` (papers.md: 4 at test time, plus the original).
        seed: base seed; views are a function of ``(seed, sample index, view index)`` only.
        eta: DDIM stochasticity in ``[0, 1]``; 0 is the deterministic DDIM sampler.

    Raises:
        ConfigError: a value out of range, naming the field.
    """

    def __init__(
        self,
        prior: DiffusionPrior,
        strength: float = 0.4,
        steps: int = 5,
        views: int = 4,
        seed: int = 0,
        eta: float = 0.0,
    ) -> None:
        if not isinstance(prior, DiffusionPrior):
            raise ConfigError(
                "prior must be a DiffusionPrior",
                field="prior",
                expected="rsmg.diffusion.DiffusionPrior",
                found=type(prior).__name__,
            )
        _check_number(strength, "strength", integer=False)
        if not 0.0 < float(strength) <= 1.0:
            raise ConfigError(
                "strength must be in (0, 1]", field="strength", expected="0 < strength <= 1", found=strength
            )
        _check_number(steps, "steps", integer=True)
        if steps < 1:
            raise ConfigError("steps must be at least 1", field="steps", expected="steps >= 1", found=steps)
        _check_number(views, "views", integer=True)
        if views < 0:
            raise ConfigError("views must be non-negative", field="views", expected="views >= 0", found=views)
        _check_number(seed, "seed", integer=True)
        _check_number(eta, "eta", integer=False)
        if not 0.0 <= float(eta) <= 1.0:
            raise ConfigError("eta must be in [0, 1]", field="eta", expected="0 <= eta <= 1", found=eta)
        self.prior = prior
        self.strength = float(strength)
        self.steps = int(steps)
        self.views = int(views)
        self.seed = int(seed)
        self.eta = float(eta)
        self.timesteps = ddim_timesteps(self.strength, self.steps, prior.num_train_timesteps)
        self.scheduler = respaced_ddim_scheduler(prior.scheduler_config, self.timesteps)

    @property
    def config(self) -> dict[str, Any]:
        """The settings that determine the views (with the prior checksum: the key of a view bank)."""
        return {
            "strength": self.strength,
            "steps": self.steps,
            "views": self.views,
            "seed": self.seed,
            "eta": self.eta,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"

    def _noise(self, gens: list[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
        # One draw per (sample, view) from its own CPU generator: independent of batch and device.
        return torch.stack([torch.randn(shape, generator=g, dtype=torch.float32) for g in gens])

    @torch.no_grad()
    def __call__(
        self, images: Mapping[str, torch.Tensor], indices: torch.Tensor
    ) -> list[dict[str, torch.Tensor]]:
        """Return ``K`` views of a batch.

        Args:
            images: ``image_<modality>`` (or bare modality) tensors ``B×C×H×W``; other keys are ignored, so a
                whole batch dict can be passed.
            indices: ``B`` dataset indices of the samples (the ``index`` field), which seed their views.

        Returns:
            ``K`` dicts with the same keys as the modalities in ``images``, each tensor ``B×C×H×W`` in the
            input's dtype and device; an empty list when ``views == 0``.

        Raises:
            DataError: missing modalities, wrong shapes, or ``indices`` that do not match the batch.
        """
        if self.views == 0:
            return []
        x0 = self.prior.stack(images)
        idx = torch.as_tensor(indices).reshape(-1).tolist()
        if len(idx) != x0.shape[0]:
            raise DataError(
                "indices must give one dataset index per sample",
                field="indices",
                expected=f"{x0.shape[0]} indices",
                found=f"{len(idx)} indices",
            )
        first = next(iter(self.prior.modalities))
        prefixed = IMAGE_PREFIX + first in images  # answer in the caller's key style
        ref = images[IMAGE_PREFIX + first] if prefixed else images[first]
        b, k = x0.shape[0], self.views
        param = next(self.prior.parameters())
        device, dtype = param.device, param.dtype

        # B·K trajectories in one batch, ordered sample-major: row i·K + j is view j of sample i.
        gens = [torch.Generator().manual_seed(view_seed(self.seed, i, j)) for i in idx for j in range(k)]
        full = x0.to(device=device, dtype=dtype).repeat_interleave(k, dim=0)
        x0 = self.prior.to_prior(full)  # the prior's resolution (the same tensor when it is the data's)
        shape = tuple(x0.shape[1:])

        t0 = self.timesteps[0]
        noise = self._noise(gens, shape).to(device=device, dtype=dtype)
        x = self.prior.add_noise(x0, noise, torch.full((x0.shape[0],), t0, device=device, dtype=torch.long))

        was_training = self.prior.training
        self.prior.eval()
        try:
            # The scheduler steps through respaced indices S-1..0; the UNet sees the prior's own timesteps.
            for step_index, t in zip(self.scheduler.timesteps.tolist(), self.timesteps, strict=True):
                eps = self.prior(x, torch.full((x.shape[0],), t, device=device, dtype=torch.long)).float()
                # The last update lands on ᾱ = 1, where DDIM's σ is 0: no noise to draw (eta 0 there).
                eta = self.eta if step_index > 0 else 0.0
                extra = self._noise(gens, shape).to(device) if eta > 0 else None
                out = self.scheduler.step(eps, step_index, x.float(), eta=eta, variance_noise=extra)
                x = out.prev_sample.to(dtype)
        finally:
            self.prior.train(was_training)

        x = self.prior.to_data(x, full, x0)
        x = x.to(device=ref.device, dtype=ref.dtype).view(b, k, *full.shape[1:])
        return [self.prior.unstack(x[:, j], prefixed=prefixed) for j in range(k)]
