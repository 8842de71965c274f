"""Spatially disjoint validation: whole tiles go to validation and a buffer keeps training patches away."""

import numpy as np
import pytest

from _paths import SHARED_DATA
from rsmg.data.datamodule import CrossDomainDataModule
from rsmg.data.splits import block_train_val_split, parse_val_split
from rsmg.errors import ConfigError


def chebyshev_gap(pos_a: np.ndarray, pos_b: np.ndarray, width: int) -> int:
    """Smallest Chebyshev distance between any pixel of ``pos_a`` and any of ``pos_b`` (flat positions)."""
    ra, ca = np.divmod(pos_a, width)
    rb, cb = np.divmod(pos_b, width)
    d = np.maximum(np.abs(ra[:, None] - rb[None]), np.abs(ca[:, None] - cb[None]))
    return int(d.min())


def clustered_scene(seed: int = 0, size: int = 96):
    """Labelled pixels in clumps (as ground-truth polygons are), 4 classes, about 15 % of the scene labelled."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((size, size), dtype=np.int64)
    for _ in range(40):
        r, c, h, w = rng.integers(0, size - 8, 2).tolist() + rng.integers(2, 8, 2).tolist()
        labels[r : r + h, c : c + w] = rng.integers(1, 5)
    pos = np.flatnonzero(labels.ravel() > 0)
    return pos, labels.ravel()[pos] - 1, size


@pytest.mark.parametrize(("block", "buffer"), [(16, 10), (8, 4), (32, 0)])
def test_no_training_pixel_within_the_buffer_of_a_validation_pixel(block, buffer):
    pos, lab, width = clustered_scene()
    tr, va = block_train_val_split(pos, lab, width, 0.2, block, buffer=buffer, seed=3)
    assert len(va) and len(tr)
    assert not set(tr) & set(va)
    assert chebyshev_gap(pos[tr], pos[va], width) > buffer
    # validation is made of whole tiles: every labelled pool pixel of a validation tile is in validation
    tiles = (pos // width // block) * 1000 + (pos % width) // block
    val_tiles = set(tiles[va])
    assert set(np.flatnonzero(np.isin(tiles, list(val_tiles)))) == set(va)
    # every class keeps training pixels, and every class spread over >= 2 tiles is validated
    assert set(lab[tr]) == set(lab)
    for c in np.unique(lab):
        if len(set(tiles[lab == c])) >= 2:
            assert (lab[va] == c).any(), c


def test_seeded_and_roughly_stratified():
    pos, lab, width = clustered_scene(seed=1)
    a = block_train_val_split(pos, lab, width, 0.25, 8, buffer=0, seed=5)
    b = block_train_val_split(pos, lab, width, 0.25, 8, buffer=0, seed=5)
    c = block_train_val_split(pos, lab, width, 0.25, 8, buffer=0, seed=6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])
    share = np.bincount(lab[a[1]], minlength=4) / np.bincount(lab, minlength=4)
    assert ((share >= 0.2) & (share <= 0.6)).all(), share  # tiles bring all their classes along


def test_class_in_one_tile_stays_in_training_and_fraction_zero_is_no_validation():
    pos = np.array([0, 1, 2, 40, 41, 300, 301])  # width 20: class 1 only in the first tile of 8 px
    lab = np.array([1, 1, 1, 0, 0, 0, 0])
    tr, va = block_train_val_split(pos, lab, 20, 0.5, 8, buffer=0, seed=0)
    assert set(lab[tr]) == {0, 1} and (lab[va] == 0).all() and len(va)
    tr, va = block_train_val_split(pos, lab, 20, 0.0, 8, buffer=0, seed=0)
    assert len(va) == 0 and len(tr) == len(pos)


def test_a_tile_whose_buffer_would_empty_a_class_is_skipped():
    # class 1 has one pixel in each of two neighbouring tiles, 1 px apart: validating either tile would put
    # the other pixel in its buffer, so class 1 stays in training and gets no validation pixel
    pos = np.array([7, 8, 200, 210, 290])  # width 100, tiles of 8: 7 -> tile 0, 8 -> tile 1; rows 2
    lab = np.array([1, 1, 0, 0, 0])
    tr, va = block_train_val_split(pos, lab, 100, 0.5, 8, buffer=3, seed=0)
    assert set(tr) >= {0, 1} and not (lab[va] == 1).any()
    tr, va = block_train_val_split(pos, lab, 100, 0.5, 8, buffer=0, seed=0)
    assert (lab[va] == 1).sum() == 1  # without the buffer one of the two tiles can be validated


def test_parse_val_split():
    assert parse_val_split("random") is None
    assert parse_val_split("blocks:32") == 32
    for bad in ["blocks", "blocks:0", "blocks:x", "tiles:8", "Random"]:
        with pytest.raises(ConfigError, match="'random' or 'blocks:B'"):
            parse_val_split(bad)


def test_datamodule_blocks_on_real_trento():
    if not (SHARED_DATA / "trento").exists():
        from _paths import missing_shared_data

        missing_shared_data(SHARED_DATA / "trento", "Trento LiDAR")
    kw = dict(sources=["trento"], targets=["muufl"], modalities=["lidar"], root=str(SHARED_DATA))
    with pytest.raises(ConfigError, match=r"data\.val_split"):
        CrossDomainDataModule(**kw, val_split="blocks")
    with pytest.raises(ConfigError, match=r"data\.val_buffer"):
        CrossDomainDataModule(**kw, val_split="blocks:16", val_buffer=-1)
    rnd = CrossDomainDataModule(**kw)
    rnd.setup("fit")
    dm = CrossDomainDataModule(**kw, val_split="blocks:16")
    dm.setup("fit")
    p, q = dm._prepared["trento"], rnd._prepared["trento"]
    width = p.scene.shape[1]
    assert (
        chebyshev_gap(p.train, p.val, width) >= dm.patch_size
    )  # no training patch overlaps a validation one
    assert chebyshev_gap(q.train, q.val, width) < dm.patch_size  # (random pixels: they do)
    pool = set(q.train) | set(q.val)
    assert set(p.train) | set(p.val) <= pool and len(p.val) > 0.1 * len(pool)
    lab = p.class_map[p.scene.labels.ravel()]
    assert set(lab[p.train]) == set(lab[q.train])
