"""Intensity standardisation is inductive by default; the per-scene variant is labelled transductive.

The defining property, checked on the real Trento → MUUFL LiDAR: under an inductive option the input of a target
pixel depends only on its own neighbourhood (and on source constants), so rescaling target pixels far away leaves
it unchanged; under ``per_scene`` the target's own median / IQR move with them.
"""

import numpy as np
import pytest
import torch

import rsmg.data.datamodule as datamodule_module
from _paths import SHARED_DATA
from rsmg.data.catalog import load_scene
from rsmg.data.datamodule import CrossDomainDataModule
from rsmg.data.standardize import DEFAULT_STATS, patch_standardize, protocol, robust_stats
from rsmg.errors import ConfigError

pytestmark = pytest.mark.skipif(
    not SHARED_DATA.exists(), reason=f"shared data pack not found at {SHARED_DATA}"
)
INTENSITY = 1  # band index of lidar_dsm_intensity


def make(stats: str, **kw) -> CrossDomainDataModule:
    d = CrossDomainDataModule(
        sources=["trento"], targets=["muufl"], root=str(SHARED_DATA), batch_size=64, ndsm_bands=["dsm"],
        standardize={"lidar": ["intensity"]}, standardize_stats=stats, **kw,
    )  # fmt: skip
    d.setup("fit")
    return d


def near_target_inputs(d: CrossDomainDataModule) -> torch.Tensor:
    """Inputs of the first 256 MUUFL test pixels in rows < 100 (sorted positions: the top of the scene)."""
    ds = d.test_dataset("muufl")
    rows = ds.positions // ds.width
    idx = np.flatnonzero(rows < 100)[:256]
    return ds.__getitems__(list(idx))["image_lidar"]


@pytest.fixture
def far_target_rescaled(monkeypatch):
    """Load MUUFL with the intensity of every pixel in rows >= 200 multiplied by 10 (far from rows < 100)."""

    def load(name, modalities, **kw):
        scene = load_scene(name, modalities, **kw)
        if name == "muufl":
            scene.modalities["lidar"][INTENSITY, 200:] *= 10
        return scene

    monkeypatch.setattr(datamodule_module, "load_scene", load)


@pytest.mark.parametrize("stats", ["source", "per_patch"])
def test_inductive_options_ignore_the_rest_of_the_target(stats, far_target_rescaled):
    rescaled = near_target_inputs(make(stats))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datamodule_module, "load_scene", load_scene)
        d = make(stats)
        clean = near_target_inputs(d)
    torch.testing.assert_close(rescaled, clean)
    assert d.protocol == "inductive"


def test_per_scene_reads_the_target_and_says_transductive(far_target_rescaled):
    rescaled = near_target_inputs(make("per_scene"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datamodule_module, "load_scene", load_scene)
        d = make("per_scene")
        clean = near_target_inputs(d)
    torch.testing.assert_close(rescaled[:, 0], clean[:, 0])  # height: untouched
    assert (rescaled[:, INTENSITY] - clean[:, INTENSITY]).abs().max() > 0.1  # intensity: target statistics
    assert d.protocol == "transductive" and "muufl" in d.protocol_reason


def test_source_statistics_are_the_source_rasters_robust_ones():
    d = make("source")
    trento = load_scene("trento", ["lidar"], root=SHARED_DATA).modalities["lidar"][INTENSITY]
    med, scale = robust_stats(trento)
    assert (med, scale) == pytest.approx((77.0, 15.0 / 1.349))  # Trento intensity: median 77, IQR 15
    assert d.stats is not None
    assert d.stats["lidar"][0][INTENSITY] == pytest.approx(med)
    assert d.stats["lidar"][1][INTENSITY] == pytest.approx(scale)
    # MUUFL (median 99.3) keeps its offset from the source: the target is not re-centred on itself
    muufl = near_target_inputs(d)[:, INTENSITY, 5, 5]
    assert muufl.median() > 0.5
    # the statistics travel in the checkpoint, like every normalisation statistic
    d2 = CrossDomainDataModule(
        sources=["trento"], targets=["muufl"], root=str(SHARED_DATA),
        standardize={"lidar": ["intensity"]}, standardize_stats="source",
    )  # fmt: skip
    d2.load_state_dict(d.state_dict())
    np.testing.assert_array_equal(d2.stats["lidar"][1], d.stats["lidar"][1])


def test_per_patch_centres_and_scales_each_patch():
    x = near_target_inputs(make("per_patch"))[:, INTENSITY].reshape(-1, 121)
    q25, med, q75 = torch.quantile(x, torch.tensor([0.25, 0.5, 0.75]), dim=1)
    torch.testing.assert_close(med, torch.zeros_like(med), atol=1e-5, rtol=0)
    torch.testing.assert_close((q75 - q25) / 1.349, torch.ones_like(med), atol=1e-4, rtol=0)


def test_a_flat_patch_stays_finite():
    flat = torch.full((2, 11, 11), 3.0)
    flat[1, 0, 0] = 5.0  # one outlier, IQR 0: divided by the floor, not by ~0
    out = patch_standardize(flat)
    assert torch.isfinite(out).all() and out[0].abs().max() == 0
    assert out[1, 0, 0] == pytest.approx(2.0 / 1e-2)


def test_protocol_rule():
    bands = {"lidar": ["intensity"]}
    assert protocol(bands, "per_scene", ["trento"], ["muufl"])[0] == "transductive"
    assert protocol(bands, "per_scene", ["salinas_a"], ["salinas_a"])[0] == "inductive"  # in-scene
    assert protocol({}, "per_scene", ["trento"], ["muufl"])[0] == "inductive"  # nothing standardised
    assert protocol(bands, DEFAULT_STATS, ["trento"], ["muufl"])[0] == "inductive"  # the default


def test_old_option_is_refused_with_the_new_names():
    with pytest.raises(ConfigError, match="standardize_stats: per_scene") as e:
        CrossDomainDataModule(
            sources=["trento"], targets=["muufl"], scene_standardize={"lidar": ["intensity"]}
        )
    assert "data.standardize" in str(e.value)
    CrossDomainDataModule(
        sources=["trento"], targets=["muufl"], scene_standardize={}
    )  # empty: nothing to mean


def test_bad_standardize_options():
    with pytest.raises(ConfigError, match=r"data\.standardize\.lidar"):
        CrossDomainDataModule(
            sources=["trento"],
            targets=["muufl"],
            bands={"lidar": ["dsm"]},
            standardize={"lidar": ["intensity"]},
        )
    with pytest.raises(ConfigError, match="patch_size >= 3"):
        CrossDomainDataModule(
            sources=["trento"], targets=["muufl"], patch_size=1, standardize={"lidar": ["intensity"]},
            standardize_stats="per_patch",
        )  # fmt: skip
    with pytest.raises(ConfigError, match=r"data\.standardize_stats"):
        CrossDomainDataModule(sources=["trento"], targets=["muufl"], standardize_stats="per_target")  # type: ignore[arg-type]
