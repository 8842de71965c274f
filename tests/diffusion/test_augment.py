"""DTAug views (determinism, sampler, config errors) and the on-disk view bank (build, reuse, resume)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rsmg.diffusion import DiffusionAugmenter, ViewBank, ddim_timesteps, view_seed
from rsmg.errors import ConfigError, DataError

from . import make_prior, random_images

TOL = 1e-5


@pytest.fixture(scope="module")
def prior():
    return make_prior().eval()


def make_aug(prior, **kwargs):
    return DiffusionAugmenter(prior, **{"strength": 0.4, "steps": 2, "views": 3, "seed": 7, **kwargs})


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def select(images: dict, rows) -> dict:
    return {k: v[rows] for k, v in images.items()}


def test_view_seed_is_stable_and_distinct():
    assert view_seed(0, 1, 2) == view_seed(0, 1, 2)
    seeds = {view_seed(s, i, v) for s in range(3) for i in range(20) for v in range(4)}
    assert len(seeds) == 3 * 20 * 4
    assert all(0 <= s < 2**63 for s in seeds)


def test_ddim_timesteps():
    assert ddim_timesteps(1.0, 4, 1000) == [999, 749, 499, 249]
    assert ddim_timesteps(0.4, 5, 1000) == [399, 319, 239, 159, 79]
    assert ddim_timesteps(0.4, 2, 100) == [39, 19]
    assert ddim_timesteps(0.05, 10, 20) == [0]  # more steps than noise levels: deduplicated


def test_views_are_deterministic_per_seed_sample_and_view(prior):
    images = random_images(5)
    idx = torch.tensor([10, 11, 12, 13, 14])
    views = make_aug(prior)(images, idx)
    assert len(views) == 3
    again = make_aug(prior)(images, idx)
    assert all(max_diff(a, b) == 0 for a, b in zip(views, again, strict=True))
    assert max_diff(views[0], views[1]) > 1e-3  # views of one sample differ
    other = make_aug(prior, seed=8)(images, idx)
    assert max_diff(views[0], other[0]) > 1e-3  # the seed matters
    shifted = make_aug(prior)(images, idx + 1)
    assert max_diff(views[0], shifted[0]) > 1e-3  # the sample index matters
    assert views[0]["image_hsi"].shape == images["image_hsi"].shape
    assert torch.isfinite(views[0]["image_hsi"]).all()


def test_views_do_not_depend_on_batch_composition(prior):
    images = random_images(6)
    idx = torch.arange(100, 106)
    aug = make_aug(prior)
    full = aug(images, idx)
    # alone
    for i in (0, 3, 5):
        alone = aug(select(images, [i]), idx[[i]])
        for j in range(3):
            assert max_diff(alone[j], select(full[j], [i])) <= TOL
    # reversed order
    perm = torch.tensor([5, 4, 3, 2, 1, 0])
    rev = aug(select(images, perm), idx[perm])
    for j in range(3):
        assert max_diff(rev[j], select(full[j], perm)) <= TOL
    # two "DDP ranks", each with an interleaved shard (DistributedSampler style)
    for rank in range(2):
        rows = torch.arange(rank, 6, 2)
        shard = aug(select(images, rows), idx[rows])
        for j in range(3):
            assert max_diff(shard[j], select(full[j], rows)) <= TOL
    # a batch mixing other samples in
    mixed_images = {k: torch.cat([random_images(2, seed=9)[k], v[[2]]]) for k, v in images.items()}
    mixed = aug(mixed_images, torch.tensor([7, 8, 102]))
    for j in range(3):
        assert max_diff(select(mixed[j], [2]), select(full[j], [2])) <= TOL


def test_eta_noise_is_also_per_sample(prior):
    images = random_images(3)
    idx = torch.tensor([0, 1, 2])
    aug = make_aug(prior, eta=1.0, steps=3)
    full = aug(images, idx)
    alone = aug(select(images, [1]), idx[[1]])
    assert max_diff(alone[2], select(full[2], [1])) <= TOL
    assert max_diff(full[0], make_aug(prior, steps=3)(images, idx)[0]) > 1e-4


def test_zero_views_gives_empty_list(prior):
    assert make_aug(prior, views=0)(random_images(2), torch.tensor([0, 1])) == []


def test_output_keys_dtype_and_mode_follow_the_input(prior):
    images = random_images(2)
    bare = {"hsi": images["image_hsi"].double(), "lidar": images["image_lidar"].double()}
    prior.train()
    views = make_aug(prior, views=1)(bare, torch.tensor([0, 1]))
    assert prior.training  # mode restored
    prior.eval()
    assert set(views[0]) == {"hsi", "lidar"}
    assert views[0]["hsi"].dtype == torch.float64
    ref = make_aug(prior, views=1)({**images, "label": torch.zeros(2)}, torch.tensor([0, 1]))
    assert set(ref[0]) == {"image_hsi", "image_lidar"}
    assert (views[0]["hsi"].float() - ref[0]["image_hsi"]).abs().max() <= TOL


def test_indices_must_match_batch(prior):
    with pytest.raises(DataError, match="indices"):
        make_aug(prior)(random_images(3), torch.tensor([0, 1]))


def test_sampler_matches_diffusers_ddim(prior):
    """At strength 1 the views follow diffusers' DDIMScheduler ("trailing" spacing) step for step."""
    from diffusers import DDIMScheduler

    images = random_images(2)
    steps = 4
    aug = make_aug(prior, strength=1.0, steps=steps, views=1)
    ours = prior.stack(aug(images, torch.tensor([3, 4]))[0])

    sched = DDIMScheduler(**prior.scheduler_config, set_alpha_to_one=True, timestep_spacing="trailing")
    sched.set_timesteps(steps)
    assert sched.timesteps.tolist() == aug.timesteps
    x0 = prior.stack(images)
    noise = torch.stack(
        [
            torch.randn(x0.shape[1:], generator=torch.Generator().manual_seed(view_seed(7, i, 0)))
            for i in (3, 4)
        ]
    )
    x = sched.add_noise(x0, noise, torch.tensor([aug.timesteps[0]] * 2))
    with torch.no_grad():
        for t in sched.timesteps:
            x = sched.step(prior(x, t.expand(2)), t, x).prev_sample
    assert (ours - x).abs().max() <= TOL


def reference_views(prior, images, indices, *, strength, steps, views, seed, eta):
    """rsmg's hand-written DDIM loop before it used ``DDIMScheduler.step``, kept as the reference.

    DDIM (Song et al. 2021, eq. 12, σ from eq. 16) between the visited timesteps of the prior's own ᾱ table,
    landing on ᾱ = 1, with the per-(sample, view) generators of :func:`view_seed`.
    """
    from diffusers import DDIMScheduler

    alphas = DDIMScheduler(**prior.scheduler_config).alphas_cumprod
    timesteps = ddim_timesteps(strength, steps, prior.num_train_timesteps)
    x0 = prior.stack(images)
    gens = [
        torch.Generator().manual_seed(view_seed(seed, i, j)) for i in indices.tolist() for j in range(views)
    ]
    shape = tuple(x0.shape[1:])

    def draw():
        return torch.stack([torch.randn(shape, generator=g) for g in gens])

    x0 = x0.repeat_interleave(views, dim=0)
    x = prior.add_noise(x0, draw(), torch.full((x0.shape[0],), timesteps[0]))
    with torch.no_grad():
        for n, t in enumerate(timesteps):
            prev = timesteps[n + 1] if n + 1 < len(timesteps) else -1
            a_t = alphas[t]
            a_prev = alphas[prev] if prev >= 0 else torch.tensor(1.0)
            eps = prior(x, torch.full((x.shape[0],), t))
            x0_pred = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
            sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).clamp(min=0).sqrt()
            x = a_prev.sqrt() * x0_pred + (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
            if eta > 0 and prev >= 0:
                x = x + sigma * draw()
    return x.view(len(indices), views, *shape)


@pytest.mark.parametrize(
    ("timesteps", "strength", "steps", "eta"),
    [
        (100, 0.4, 2, 0.0),
        (100, 0.3, 4, 1.0),
        (100, 0.05, 10, 0.5),  # more steps than noise levels: deduplicated timesteps
        (1000, 0.4, 5, 0.0),  # the defaults: stride 80, which no DDIMScheduler T // N equals
        (1000, 1.0, 1, 0.0),  # ᾱ ≈ 4e-5: float32 cumprod of the respaced betas alone would be off by 1e-4
        (1000, 0.5, 3, 0.7),
    ],
)
def test_scheduler_step_reproduces_the_hand_written_ddim_loop(timesteps, strength, steps, eta):
    prior = make_prior(timesteps=timesteps).eval()
    images, idx = random_images(2), torch.tensor([5, 9])
    kwargs = {"strength": strength, "steps": steps, "views": 2, "seed": 3, "eta": eta}
    ours = DiffusionAugmenter(prior, **kwargs)(images, idx)
    ref = reference_views(prior, images, idx, **kwargs)
    for j in range(2):
        assert (prior.stack(ours[j]) - ref[:, j]).abs().max() <= TOL
    assert (prior.stack(ours[0]) - prior.stack(images)).abs().max() > 1e-3  # the views did move


def test_respaced_scheduler_keeps_the_prior_schedule():
    from diffusers import DDIMScheduler

    from rsmg.diffusion.augment import respaced_ddim_scheduler

    config = make_prior(timesteps=1000).scheduler_config
    visited = ddim_timesteps(0.4, 5, 1000)  # [399, 319, 239, 159, 79]
    sched = respaced_ddim_scheduler(config, visited)
    full = DDIMScheduler(**config).alphas_cumprod
    assert sched.timesteps.tolist() == [4, 3, 2, 1, 0]
    assert torch.equal(sched.alphas_cumprod, full[visited[::-1]])
    assert float(sched.final_alpha_cumprod) == 1.0
    assert not sched.config.clip_sample
    # the respaced betas are those of the visited ᾱ (stored ᾱ is not a free override)
    assert torch.allclose(torch.cumprod(1 - sched.betas.double(), 0), full[visited[::-1]].double(), rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"strength": 0.0}, "strength"),
        ({"strength": 1.5}, "strength"),
        ({"strength": "0.4"}, "strength"),
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"views": -1}, "views"),
        ({"views": True}, "views"),
        ({"seed": None}, "seed"),
        ({"eta": 2.0}, "eta"),
        ({"prior": object()}, "prior"),
    ],
)
def test_bad_augmenter_config_names_the_field(prior, kwargs, field):
    args = {"prior": prior, **kwargs}
    with pytest.raises(ConfigError) as err:
        DiffusionAugmenter(**args)
    assert err.value.field == field
    assert field in str(err.value)


# ---------------------------------------------------------------------- view bank


class Samples(torch.utils.data.Dataset):
    def __init__(self, n: int = 10, seed: int = 0) -> None:
        self.images = random_images(n, seed=seed)

    def __len__(self) -> int:
        return len(self.images["image_hsi"])

    def __getitem__(self, i: int) -> dict:
        return {
            **{k: v[i] for k, v in self.images.items()},
            "label": torch.tensor(0),
            "index": torch.tensor(i),
        }


class Counting(DiffusionAugmenter):
    """An augmenter that counts its calls and can simulate a crash after ``fail_after`` calls."""

    def __init__(self, *args, fail_after: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0
        self.fail_after = fail_after

    def __call__(self, images, indices):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        return super().__call__(images, indices)


def counting(prior, **kwargs):
    return Counting(prior, **{"strength": 0.4, "steps": 2, "views": 2, "seed": 7, **kwargs})


def test_bank_build_matches_augmenter_and_is_reused(prior, tmp_path):
    data = Samples(10)
    aug = counting(prior)
    bank = ViewBank.build(data, aug, tmp_path / "bank", batch_size=4, dtype="float32")
    assert aug.calls == 3
    assert len(bank) == 10 and bank.num_views == 2
    meta = json.loads((tmp_path / "bank" / "meta.json").read_text())
    assert meta["complete"] and meta["completed_chunks"] == [0, 1, 2]
    assert meta["prior_checksum"] == prior.checksum()
    assert (meta["strength"], meta["steps"], meta["seed"]) == (0.4, 2, 7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank"]  # no partial / temp folders left

    direct = aug(data.images, torch.arange(10))
    for i in (0, 5, 9):
        for v in range(2):
            assert max_diff(bank.get(i, v), {k: t[i] for k, t in direct[v].items()}) <= TOL
    assert len(bank.views(3)) == 2
    with pytest.raises(IndexError):
        bank.get(10, 0)

    again = counting(prior)
    reused = ViewBank.build(data, again, tmp_path / "bank", batch_size=3, dtype="float32")
    assert again.calls == 0
    assert np.array_equal(reused.array, bank.array)


def test_bank_mismatch_errors_or_rebuilds(prior, tmp_path):
    data = Samples(6)
    ViewBank.build(data, counting(prior), tmp_path / "bank", batch_size=3)
    with pytest.raises(DataError, match="strength") as err:
        ViewBank.build(data, counting(prior, strength=0.3), tmp_path / "bank")
    assert "on_mismatch='rebuild'" in str(err.value)
    with pytest.raises(DataError, match="dataset_fingerprint"):
        ViewBank.build(Samples(6, seed=1), counting(prior), tmp_path / "bank")
    rebuilt = ViewBank.build(data, counting(prior, strength=0.3), tmp_path / "bank", on_mismatch="rebuild")
    assert rebuilt.meta["strength"] == 0.3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not a view bank"):
        ViewBank.build(data, counting(prior), tmp_path / "other", on_mismatch="rebuild")


def test_bank_resumes_after_interrupted_build(prior, tmp_path):
    data = Samples(10)
    ref = ViewBank.build(data, counting(prior), tmp_path / "ref", batch_size=4)

    crashing = counting(prior, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        ViewBank.build(data, crashing, tmp_path / "bank", batch_size=4)
    assert not (tmp_path / "bank").exists()  # never half-written
    partial = json.loads((tmp_path / ".bank.partial" / "meta.json").read_text())
    assert partial["completed_chunks"] == [0, 1] and not partial["complete"]
    with pytest.raises(DataError, match="no view bank"):
        ViewBank.open(tmp_path / "bank")

    resumed_aug = counting(prior)
    bank = ViewBank.build(
        data, resumed_aug, tmp_path / "bank", batch_size=2
    )  # the chunk size it started with
    assert resumed_aug.calls == 1  # only the last chunk
    assert np.array_equal(bank.array, ref.array)
    assert not (tmp_path / ".bank.partial").exists()
    assert ViewBank.open(tmp_path / "bank").meta["completed_chunks"] == [0, 1, 2]


def test_bank_config_errors(prior, tmp_path):
    with pytest.raises(ConfigError) as err:
        ViewBank.build(Samples(2), counting(prior, views=0), tmp_path / "b")
    assert err.value.field == "views"
    with pytest.raises(ConfigError) as err:
        ViewBank.build(Samples(2), counting(prior), tmp_path / "b", batch_size=0)
    assert err.value.field == "batch_size"
    with pytest.raises(ConfigError) as err:
        ViewBank.build(Samples(2), counting(prior), tmp_path / "b", dtype="int8")
    assert err.value.field == "dtype"
