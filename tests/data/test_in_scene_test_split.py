"""In-scene spatially disjoint test split on the real Indian Pines cube: no training patch sees a test pixel."""

import numpy as np
import pytest

from _paths import SHARED_DATA, missing_shared_data
from rsmg.data.datamodule import CrossDomainDataModule
from rsmg.errors import ConfigError

PATCH = 7


@pytest.fixture(scope="module")
def disjoint():
    if not (SHARED_DATA / "indian_pines/Indian_pines_corrected.npy").is_file():
        missing_shared_data(SHARED_DATA / "indian_pines", "Indian Pines cube")
    dm = CrossDomainDataModule(
        sources=["indian_pines"], targets=["indian_pines"], modalities=["hsi"], root=str(SHARED_DATA),
        class_set="native", patch_size=PATCH, source_split="all", target_split="blocks:16", test_fraction=0.25,
        val_split="blocks:16", val_fraction=0.2, val_buffer=PATCH // 2, seed=0,
    )  # fmt: skip
    dm.setup("fit")
    return dm


def window_hits(centres: np.ndarray, others: np.ndarray, width: int, height: int) -> int:
    """How many ``others`` pixels lie inside the PATCH x PATCH windows around ``centres`` (flat positions)."""
    mark = np.zeros(height * width, dtype=bool)
    mark[others] = True
    mark = mark.reshape(height, width)
    r, c = np.divmod(centres, width)
    half = PATCH // 2
    hits = 0
    for dy in range(-half, half + 1):
        for dx in range(-half, half + 1):
            rr, cc = r + dy, c + dx
            inside = (rr >= 0) & (rr < height) & (cc >= 0) & (cc < width)
            hits += int(mark[rr[inside], cc[inside]].sum())
    return hits


def test_no_training_or_validation_window_contains_a_test_pixel(disjoint):
    p = disjoint._prepared["indian_pines"]
    h, w = p.scene.shape
    assert len(p.train) > 1000 and len(p.val) > 300 and len(p.test) > 1500
    assert not (set(p.train) | set(p.val)) & set(p.test)
    assert window_hits(p.train, p.test, w, h) == 0  # the claim of the protocol, checked window by window
    assert window_hits(p.val, p.test, w, h) == 0
    assert window_hits(p.test, p.train, w, h) == 0  # symmetric: no test patch contains a training pixel
    assert window_hits(p.train, p.val, w, h) == 0  # validation carved from the rest with the same buffer
    # a per-pixel split of the same sizes puts test pixels inside most training windows (why this matters)
    rng = np.random.default_rng(0)
    labelled = np.flatnonzero(p.scene.labels.ravel() > 0)
    shuffled = rng.permutation(labelled)
    assert window_hits(shuffled[: len(p.train)], shuffled[-len(p.test) :], w, h) > len(p.train)


def test_class_coverage_is_reported_and_every_class_trains(disjoint):
    counts = disjoint.class_counts()["indian_pines"]
    train, val, test = (np.array(counts[k]) for k in ("train", "val", "test"))
    assert len(train) == 16 and (train > 0).all()  # the tile chooser never takes a class's last pixels
    assert (test > 0).sum() >= 13  # small single-field classes (e.g. Grass-pasture-mowed) may stay untested
    assert test.sum() == len(disjoint._prepared["indian_pines"].test)
    assert train.sum() + val.sum() + test.sum() < 10249  # the buffer pixels are used by neither side


def test_split_is_seeded_and_moves_with_the_seed():
    kw = {"sources": ["indian_pines"], "targets": ["indian_pines"], "modalities": ["hsi"],
          "root": str(SHARED_DATA), "class_set": "native", "patch_size": PATCH, "target_split": "blocks:16",
          "source_split": "all"}  # fmt: skip
    tests = []
    for seed in (0, 0, 1):
        dm = CrossDomainDataModule(**kw, seed=seed)
        dm.setup("fit")
        tests.append(dm._prepared["indian_pines"].test)
    assert np.array_equal(tests[0], tests[1]) and not np.array_equal(tests[0], tests[2])


def test_blocks_test_split_needs_an_in_scene_target():
    with pytest.raises(ConfigError, match="in-scene"):
        CrossDomainDataModule(
            sources=["trento"], targets=["muufl"], modalities=["lidar"], target_split="blocks:16"
        )
    with pytest.raises(ConfigError, match=r"data\.target_split"):
        CrossDomainDataModule(
            sources=["indian_pines"], targets=["indian_pines"], modalities=["hsi"], class_set="native",
            target_split="blocks:x",
        )  # fmt: skip
