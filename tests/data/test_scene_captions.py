"""Captions as a modality of image-folder scenes: UC Merced's human captions on all 2,100 real images.

The caption of each image must be its own (``<class>NN`` ↔ entry ``100·c + NN + 1`` of ``dataset.json``);
leakage control must reach every served caption; which caption a training sample gets must not depend on its
batch; and an image whose captions are all removed must be served with none (``""``), not with another's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _paths import SHARED_DATA, missing_shared_data
from rsmg.data.scene_captions import choose_train_captions, eval_text
from rsmg.data.scene_domains import SceneDomainDataModule
from rsmg.errors import ConfigError


@pytest.fixture(scope="module")
def ucm() -> SceneDomainDataModule:
    for folder in ("ucm_150", "ucm_captions"):
        if not (SHARED_DATA / folder).is_dir():
            missing_shared_data(SHARED_DATA / folder, folder)
    dm = SceneDomainDataModule(
        ["ucm"], ["ucm"], class_set="ucm21", root=str(SHARED_DATA), image_size=32, cache=False,
        test_fraction=0.1, val_fraction=1 / 9, captions=True,
        text_transforms=["drop_verdicts", "mask_class_names"], caption_dropout=0.2,
    )  # fmt: skip
    dm.setup("fit")
    return dm


def test_each_image_gets_its_own_captions_and_the_standard_split_sizes(ucm):
    assert ucm.spec.has_text and len(ucm.classes) == 21
    assert ucm.summary()["ucm"]["val"] == 210 and ucm.summary()["ucm"]["train"] + 1 == 1680  # 1 duplicate out
    raw = SceneDomainDataModule(
        ["ucm"], ["ucm"], class_set="ucm21", root=str(SHARED_DATA), image_size=32, cache=False, captions=True
    )
    raw.setup("fit")
    ds = raw.train_dataset()
    by_name = {r.path.name: c for r, c in zip(ds.records, ds.captions, strict=True)}  # type: ignore[arg-type]
    # 1.tif is agricultural00, 401.tif is buildings00 (ucm_150/README.md)
    if "agricultural00.jpg" in by_name:
        assert by_name["agricultural00.jpg"][0] == "There is a piece of farmland ."
    if "buildings00.jpg" in by_name:
        assert by_name["buildings00.jpg"][0] == "There is one road between two buildings ."
    assert {"agricultural00.jpg", "buildings00.jpg"} & set(by_name)
    assert all(len(c) == 5 for c in ds.captions)  # type: ignore[union-attr]


def test_leakage_control_reaches_every_caption_and_empties_some(ucm):
    ds = ucm.train_dataset()
    caps = ds.captions
    assert caps is not None
    flat = [c for t in caps for c in t]
    assert flat and not any(" beach " in f" {c.lower()} " or "farmland" in c.lower() for c in flat)
    assert any("[MASK]" in c for c in flat)
    empty = [i for i, t in enumerate(caps) if not t]
    assert empty, "some UC Merced images only have verdict captions ('it is a beach .')"
    batch = ds.__getitems__(empty[:2] + [i for i, t in enumerate(caps) if t][:2])
    assert batch["text"][:2] == ["", ""] and all(batch["text"][2:])


def test_training_caption_choice_is_per_sample_not_per_batch():
    caps = [tuple(f"caption {i}.{k}" for k in range(5)) for i in range(64)]
    index = torch.arange(64) * 7 + 3
    full = choose_train_captions(caps, index, seed=1, epoch=2, dropout=0.25)
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    shuffled = choose_train_captions([caps[i] for i in perm], index[perm], seed=1, epoch=2, dropout=0.25)
    assert shuffled == [full[i] for i in perm]
    assert choose_train_captions(caps[:5], index[:5], seed=1, epoch=2, dropout=0.25) == full[:5]
    other_epoch = choose_train_captions(caps, index, seed=1, epoch=3, dropout=0.25)
    assert other_epoch != full
    dropped = [
        t == "" for t in choose_train_captions(caps * 40, torch.arange(2560), seed=0, epoch=0, dropout=0.25)
    ]
    assert 0.2 < sum(dropped) / len(dropped) < 0.3
    assert all(t for t in choose_train_captions(caps, index, seed=1, epoch=2, dropout=0.0))


def test_eval_caption_modes():
    caps = ("a", "b")
    assert (
        eval_text(caps, "first") == "a" and eval_text(caps, "join") == "a b" and eval_text(caps, "none") == ""
    )
    assert eval_text((), "first") == ""


def test_a_dataset_without_captions_is_refused_with_the_fix():
    if not (SHARED_DATA / "aid_150").is_dir():
        missing_shared_data(SHARED_DATA / "aid_150", "AID scene folder")
    dm = SceneDomainDataModule(
        ["aid"], ["aid"], class_set="scene7", root=str(SHARED_DATA), cache=False, captions=True
    )
    dm.setup("fit")
    with pytest.raises(ConfigError, match="no usable caption source") as e:
        dm.train_dataset()
    assert "aid.captions" in str(e.value) and "captions: false" in str(e.value)


def test_held_out_classes_never_train_and_are_tested_in_full():
    held = ["baseballdiamond", "harbor"]
    kw: dict = {"class_set": "ucm21", "root": str(SHARED_DATA), "image_size": 32, "cache": False}
    kw |= {"test_fraction": 0.1, "val_fraction": 1 / 9}
    plain = SceneDomainDataModule(["ucm"], ["ucm"], **kw)
    zs = SceneDomainDataModule(["ucm"], ["ucm"], held_out_classes=held, **kw)
    for dm in (plain, zs):
        dm.setup(None)
    assert zs.classes == plain.classes and zs.seen_classes == tuple(c for c in plain.classes if c not in held)
    ids = [plain.classes.index(c) for c in held]
    a, b = plain._prepared["ucm"], zs._prepared["ucm"]
    labels = np.array([r.label for r in b.records])
    assert not np.isin(labels[b.train], ids).any() and not np.isin(labels[b.val], ids).any()
    assert all((labels[b.test] == i).sum() == (labels == i).sum() == 100 for i in ids)
    seen = ~np.isin(labels, ids)
    # the seen classes' three splits are exactly those of the run without held-out classes
    for part in ("train", "val", "test"):
        pa, pb = getattr(a, part), getattr(b, part)
        assert set(pa[seen[pa]].tolist()) == set(pb[seen[pb]].tolist()), part
    with pytest.raises(ConfigError, match="held-out class"):
        SceneDomainDataModule(["ucm"], ["ucm"], held_out_classes=["harbour"], **kw)
