"""CrossDomainDataModule on the real Trento / MUUFL LiDAR rasters."""

import numpy as np
import pytest
import torch

from _paths import SHARED_DATA
from rsmg.data.augment import apply_dihedral, dihedral_codes
from rsmg.data.datamodule import CrossDomainDataModule
from rsmg.errors import ConfigError, DataError

pytestmark = pytest.mark.skipif(
    not SHARED_DATA.exists(), reason=f"shared data pack not found at {SHARED_DATA}"
)


@pytest.fixture(scope="module")
def dm():
    d = CrossDomainDataModule(
        sources=["trento"], targets=["muufl"], modalities=["lidar"], root=str(SHARED_DATA), batch_size=32
    )
    d.setup("fit")
    return d


def test_spec_is_known_before_reading_files():
    d = CrossDomainDataModule(
        sources=["trento"], targets=["muufl"], modalities=["lidar"], root="/nonexistent"
    )
    assert d.spec.classes == ("trees", "ground", "road", "buildings")
    assert d.spec.modalities == {"lidar": 2}
    assert d.spec.domains == ("trento", "muufl")


def test_splits_sources_only_and_disjoint(dm):
    s = dm.summary()
    # Trento standard train = 819 px, minus Vineyard (184 px, excluded by the shared class set) = 635
    assert s["trento"]["train"] + s["trento"]["val"] == 819 - 184
    assert s["trento"]["test"] == 0
    assert s["muufl"]["train"] == s["muufl"]["val"] == 0
    # every MUUFL pixel of a mapped class: trees + ground (mixed + dirt) + road (road + sidewalk) + buildings
    assert s["muufl"]["test"] == 23246 + 6882 + 1826 + 6687 + 1385 + 6240
    p = dm._prepared["trento"]
    assert not set(p.train) & set(p.val)
    assert dm.excluded["muufl"]["Water"] == 466


def test_stats_from_training_pixels_only(dm):
    p = dm._prepared["trento"]
    lidar = p.scene.modalities["lidar"].reshape(2, -1)[:, p.train]
    np.testing.assert_allclose(dm.stats["lidar"][0], lidar.mean(1), rtol=1e-5)
    state = dm.state_dict()
    d2 = CrossDomainDataModule(
        sources=["trento"], targets=["muufl"], modalities=["lidar"], root=str(SHARED_DATA)
    )
    d2.load_state_dict(state)
    np.testing.assert_array_equal(d2.stats["lidar"][1], dm.stats["lidar"][1])


def test_patches_are_centred_and_normalised(dm):
    ds = dm.test_dataset("muufl")
    sample = ds[5]
    r, c = ds.pixel_rows_cols()
    raw = dm._prepared["muufl"].scene.modalities["lidar"][:, r[5], c[5]]
    mean, std = dm.stats["lidar"]
    np.testing.assert_allclose(
        sample["image_lidar"][:, 5, 5].numpy(), (raw - mean) / std, rtol=1e-5, atol=1e-5
    )
    assert sample["image_lidar"].shape == (2, 11, 11)
    batch = ds.__getitems__([5, 6])
    torch.testing.assert_close(batch["image_lidar"][0], sample["image_lidar"])


def test_test_loaders_one_per_target(dm):
    loaders = dm.test_dataloader()
    assert len(loaders) == 1
    b = next(iter(loaders[0]))
    assert (b["domain"] == dm.domains.index("muufl")).all()


def test_joint_augmentation_is_per_sample_and_identical_across_modalities():
    idx = torch.arange(64)
    codes = dihedral_codes(idx, seed=1, epoch=0)
    assert len(codes.unique()) > 4
    torch.testing.assert_close(dihedral_codes(idx[10:20], seed=1, epoch=0), codes[10:20])
    x = torch.randn(64, 3, 5, 5)
    y = apply_dihedral(x, codes)
    # same transform applied to a stacked copy = same result (modalities stay co-registered)
    torch.testing.assert_close(apply_dihedral(torch.cat([x, x], 1), codes)[:, 3:], y)


def test_bad_inputs_are_clear():
    with pytest.raises(ConfigError, match="did you mean 'lidar'"):
        CrossDomainDataModule(sources=["trento"], targets=["muufl"], modalities=["lidr"])
    with pytest.raises(ConfigError, match="patch size"):
        CrossDomainDataModule(sources=["trento"], targets=["muufl"], patch_size=4)
    with pytest.raises(ConfigError, match=r"(?s)bands.*dsm"):
        CrossDomainDataModule(sources=["trento"], targets=["muufl"], bands={"lidar": ["height"]})
    with pytest.raises(ConfigError, match="different bands"):
        CrossDomainDataModule(sources=["trento"], targets=["houston2013_vectors"], modalities=["lidar"])
    d = CrossDomainDataModule(
        sources=["muufl"],
        targets=["trento"],
        modalities=["lidar"],
        root=str(SHARED_DATA),
        source_split="standard",
    )
    with pytest.raises(ConfigError, match="per_class"):
        d.setup("fit")
    d = CrossDomainDataModule(
        sources=["trento"], targets=["muufl"], modalities=["lidar"], root=str(SHARED_DATA), patch_size=201
    )
    with pytest.raises(DataError, match="patch size larger than scene"):
        d.setup("fit")  # checked when the scenes are read, before any loader or run directory exists


def test_class_scope_sources_and_targets_is_the_closed_set_protocol():
    """MUUFL → Trento: grass and water are MUUFL classes Trento does not have (Trento's list, not its labels)."""
    kw = {"sources": ["muufl"], "targets": ["trento"], "modalities": ["lidar"], "root": str(SHARED_DATA)}
    wide = CrossDomainDataModule(**kw, source_split="per_class:20")
    assert wide.spec.classes == ("trees", "grass", "ground", "road", "buildings", "water")
    closed = CrossDomainDataModule(**kw, source_split="per_class:20", class_scope="sources_and_targets")
    assert closed.spec.classes == ("trees", "ground", "road", "buildings")
    closed.setup("fit")
    p = closed._prepared["muufl"]
    train_labels = closed._class_map("muufl")[p.scene.labels.reshape(-1)[np.concatenate([p.train, p.val])]]
    assert set(train_labels.tolist()) == {
        0,
        1,
        2,
        3,
    }  # no MUUFL grass / water pixel is trained or validated on
    assert closed.summary()["trento"]["test"] == wide_test_pixels(kw)
    with pytest.raises(ConfigError, match="class scope"):
        CrossDomainDataModule(**kw, class_scope="targets")


def wide_test_pixels(kw: dict) -> int:
    """Trento test pixels with the default scope: the same, since every Trento class mapped is also in MUUFL."""
    d = CrossDomainDataModule(**kw, source_split="per_class:20")
    d.setup("fit")
    return d.summary()["trento"]["test"]
