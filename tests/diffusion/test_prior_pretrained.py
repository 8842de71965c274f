"""DTAug prior in the diffusers layout: save_pretrained/from_pretrained, load_prior on every form, bad inputs."""

from __future__ import annotations

import json

import pytest
import torch

from rsmg.diffusion import DiffusionPrior
from rsmg.diffusion.loading import load_prior
from rsmg.diffusion.prior import PRETRAINED_METADATA, PRETRAINED_WEIGHTS
from rsmg.errors import DataError, OutputError

from . import TINY_UNET, make_prior, make_spec

X, T = torch.randn(3, 5, 11, 11, generator=torch.Generator().manual_seed(7)), torch.tensor([1, 50, 99])


def trained_like_prior(seed: int = 0) -> DiffusionPrior:
    prior = make_prior(seed=seed)
    with torch.no_grad():  # weights a fresh init under any seed cannot reproduce
        prior.unet.conv_out.weight.normal_()
    return prior.eval()


def assert_same(a: DiffusionPrior, b: DiffusionPrior) -> None:
    assert a.config == b.config
    assert a.checksum() == b.checksum()
    with torch.no_grad():
        assert torch.equal(a.eval()(X, T), b.eval()(X, T))


def test_save_pretrained_round_trip_and_diffusers_layout(tmp_path):
    prior = trained_like_prior()
    assert all(k.startswith("unet.") for k in prior.state_dict())  # the UNet files hold every weight
    out = prior.save_pretrained(tmp_path / "run" / "prior")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["config.json", PRETRAINED_WEIGHTS, PRETRAINED_METADATA]
    )
    assert sorted(p.name for p in out.parent.iterdir()) == ["prior"]  # no temp directory left behind
    meta = json.loads((out / PRETRAINED_METADATA).read_text())
    assert meta["config"] == prior.config
    assert meta["config"]["scheduler"]["num_train_timesteps"] == 100
    assert_same(prior, DiffusionPrior.from_pretrained(out))

    import diffusers  # the UNet part is plain diffusers: its own loader reads it

    unet = diffusers.UNet2DModel.from_pretrained(out).eval()
    z, t = torch.randn(2, 5, 12, 12, generator=torch.Generator().manual_seed(1)), torch.tensor([3, 60])
    with torch.no_grad():
        assert torch.equal(unet(z, t).sample, prior.unet(z, t).sample)


def test_save_pretrained_replaces_a_previous_prior_and_keeps_other_folders(tmp_path):
    out = trained_like_prior(seed=0).save_pretrained(tmp_path / "prior")
    newer = trained_like_prior(seed=1)
    newer.save_pretrained(out)
    assert_same(newer, DiffusionPrior.from_pretrained(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prior"]  # old directory removed after the swap

    other = tmp_path / "results"
    other.mkdir()
    (other / "metrics.json").write_text("{}")
    with pytest.raises(OutputError, match="not a saved diffusion prior"):
        newer.save_pretrained(other)
    assert sorted(p.name for p in other.iterdir()) == ["metrics.json"]


def test_failed_save_pretrained_keeps_the_previous_prior(tmp_path, monkeypatch):
    first = trained_like_prior(seed=0)
    out = first.save_pretrained(tmp_path / "prior")
    second = trained_like_prior(seed=1)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(second.unet, "save_pretrained", crash)
    with pytest.raises(KeyboardInterrupt):
        second.save_pretrained(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prior"]
    assert_same(first, DiffusionPrior.from_pretrained(out))


def test_load_prior_reads_file_directory_and_task_export(tmp_path):
    from rsmg.tasks.diffusion_prior import DiffusionPriorTask

    prior = trained_like_prior()
    assert_same(prior, load_prior(prior.save(tmp_path / "prior.pt")))
    assert_same(prior, load_prior(prior.save_pretrained(tmp_path / "prior_dir")))

    torch.manual_seed(0)
    task = DiffusionPriorTask(make_spec(), unet=TINY_UNET, num_train_timesteps=50)
    as_dir = task.export_prior(tmp_path / "exported")
    assert (as_dir / PRETRAINED_WEIGHTS).is_file()
    as_file = task.export_prior(tmp_path / "exported.pt")
    assert as_file.is_file()
    assert_same(load_prior(as_dir), load_prior(as_file))


def test_truncated_weights_and_other_inputs_raise_rsmg_errors(tmp_path):
    out = trained_like_prior().save_pretrained(tmp_path / "prior")
    weights = out / PRETRAINED_WEIGHTS
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated") as err:
        load_prior(out)
    assert str(weights) in str(err.value) and "export_prior" in str(err.value)

    with pytest.raises(DataError, match="give the directory instead"):
        load_prior(weights)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a saved diffusion prior") as err:
        load_prior(tmp_path / "empty")
    assert "empty" in str(err.value)
    (tmp_path / "notes.txt").write_text("not a prior")
    with pytest.raises(DataError, match="not a diffusion prior torch file") as err:
        load_prior(tmp_path / "notes.txt")
    assert "notes.txt" in str(err.value) and "export_prior" in str(err.value)
    with pytest.raises(DataError, match="not found"):
        load_prior(tmp_path / "missing")
    with pytest.raises(DataError, match="from_pretrained"):
        DiffusionPrior.load(out)


def test_weights_that_do_not_fit_the_metadata_are_refused(tmp_path):
    out = trained_like_prior().save_pretrained(tmp_path / "prior")
    meta = json.loads((out / PRETRAINED_METADATA).read_text())
    meta["config"]["modalities"]["hsi"] = 4
    (out / PRETRAINED_METADATA).write_text(json.dumps(meta))
    with pytest.raises(DataError, match="do not match the config"):
        DiffusionPrior.from_pretrained(out)
