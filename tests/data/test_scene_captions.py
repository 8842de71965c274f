"""Captions as a modality of image-folder scenes: UC Merced's human captions on all 2,100 real images.

The caption of each image must be its own (``<class>NN`` ↔ entry ``100·c + NN + 1`` of ``dataset.json``);
leakage control must reach every served caption; which caption a training sample gets must not depend on its
batch; and an image whose captions are all removed must be served with none (``""``), not with another's.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _paths import SHARED_DATA, missing_shared_data
from rsmg.data.catalog import dataset_info
from rsmg.data.scene_captions import choose_train_captions, eval_text
from rsmg.data.scene_domains import SceneDomainDataModule
from rsmg.errors import ConfigError, DataError


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


# ------------------------------------------------------------------------- the standard (Karpathy) split
def _split_field() -> dict[str, str]:
    """``<class>NN.jpg`` → its ``split`` in dataset.json, read here with json alone (``n = 100·c + NN + 1``)."""
    doc = json.loads((SHARED_DATA / "ucm_captions" / "dataset.json").read_text())
    classes = sorted(p.name for p in (SHARED_DATA / "ucm_150").iterdir() if p.is_dir())
    out = {}
    for entry in doc["images"]:
        c, nn = divmod(int(entry["filename"].removesuffix(".tif")) - 1, 100)
        out[f"{classes[c]}{nn:02d}.jpg"] = entry["split"]
    return out


def test_karpathy_split_is_the_caption_files_split_field(ucm):
    dm = SceneDomainDataModule(
        ["ucm"],
        ["ucm"],
        class_set="ucm21",
        root=str(SHARED_DATA),
        image_size=32,
        cache=False,
        split="karpathy",
    )  # captions not served: the split still comes from the caption file
    dm.setup("fit")
    field = _split_field()
    assert Counter(field.values()) == {"train": 1680, "val": 210, "test": 210}
    # the one exact duplicate (airplane01 = airplane02, both train) leaves one copy
    assert dm.summary()["ucm"] == {"train": 1679, "val": 210, "test": 210}
    assert dm.dedup_report()["ucm"]["across_splits"] == 0
    dom = dm._prepared["ucm"]
    for part in ("train", "val", "test"):
        names = [dom.records[i].path.name for i in getattr(dom, part)]
        assert {field[n] for n in names} == {part}, part
    kept = {r.path.name for r in dom.records}
    assert {n for n, s in field.items() if n in kept} == kept and set(field) - kept == {"airplane02.jpg"}
    assert ucm.split == "seeded"  # the default: results measured before the option stay reproducible
    seeded = {ucm._prepared["ucm"].records[i].path.name for i in ucm._prepared["ucm"].test}
    assert seeded != {n for n, s in field.items() if s == "test"}


def test_karpathy_split_with_held_out_classes():
    held = ["airplane", "harbor"]
    kw: dict = {"class_set": "ucm21", "root": str(SHARED_DATA), "image_size": 32, "cache": False}
    zs = SceneDomainDataModule(["ucm"], ["ucm"], split="karpathy", held_out_classes=held, **kw)
    zs.setup("fit")
    field = _split_field()
    dom = zs._prepared["ucm"]
    ids = [zs.classes.index(c) for c in held]
    labels = np.array([r.label for r in dom.records])
    name = [r.path.name for r in dom.records]
    assert not np.isin(labels[np.concatenate([dom.train, dom.val])], ids).any()
    # every kept image of a held-out class is tested (airplane: 99 after the duplicate), whatever its split
    assert [(labels[dom.test] == i).sum() for i in ids] == [99, 100]
    seen = ~np.isin(labels, ids)
    for part in ("train", "val", "test"):
        pos = getattr(dom, part)
        assert {field[name[i]] for i in pos[seen[pos]]} == {part}
    # the file's counts of the seen classes (airplane and harbor are 81 / 9 / 10), plus 199 held-out images
    counts = Counter(s for n, s in field.items() if not n.startswith(("airplane", "harbor")))
    assert counts == {"train": 1518, "val": 192, "test": 190}
    assert zs.summary()["ucm"] == {"train": 1518, "val": 192, "test": 190 + 199}


def test_karpathy_split_errors_name_the_file_field_and_fix(tmp_path):
    with pytest.raises(ConfigError, match="no usable caption source") as e:  # before any file is read
        SceneDomainDataModule(["aid"], ["aid"], class_set="scene7", root=str(SHARED_DATA), split="karpathy")
    assert "aid.captions" in str(e.value) and "split: seeded" in str(e.value)
    with pytest.raises(ConfigError, match="no Karpathy-format caption file") as e:  # one text file per image
        SceneDomainDataModule(
            ["aid_minitest_vlm"], ["aid_minitest_vlm"], class_set="ucm_aid", split="karpathy"
        )
    assert "aid_minitest_vlm.captions.format" in str(e.value) and "txt_beside" in str(e.value)
    with pytest.raises(ConfigError, match="cannot be subsampled"):
        SceneDomainDataModule(
            ["ucm"], ["ucm"], class_set="ucm21", split="karpathy", source_split="per_class:5"
        )
    with pytest.raises(ConfigError, match=r"data\.split"):
        SceneDomainDataModule(["ucm"], ["ucm"], class_set="ucm21", split="standard")  # type: ignore[arg-type]
    root = tiny_ucm(tmp_path, {})
    doc = json.loads((root / "ucm_captions" / "dataset.json").read_text())
    del doc["images"][3]["split"]
    (root / "ucm_captions" / "dataset.json").write_text(json.dumps(doc))
    dm = SceneDomainDataModule(
        ["ucm"], ["ucm"], class_set="scene5", root=str(root), image_size=16, split="karpathy"
    )
    with pytest.raises(DataError, match="without a train / val / test split") as e:
        dm.setup("fit")
    msg = str(e.value)
    assert "dataset.json" in msg and "images[].split" in msg and "split: seeded" in msg


TINY = ["agricultural", "denseresidential", "forest", "mediumresidential", "parkinglot", "river",
        "sparseresidential"]  # fmt: skip # the folders scene5 maps (ucm)


def tiny_ucm(root: Path, splits: dict[str, str]) -> Path:
    """6 random images in each of UC Merced's scene5 folders and a dataset.json giving each a split.

    Images 00-03 are train, 04 val, 05 test unless ``splits`` (``<class>NN`` → split) says otherwise.
    """
    order = dataset_info("ucm").classes
    images = []
    for c, cls in enumerate(TINY):
        (root / "ucm_150" / cls).mkdir(parents=True)
        for k in range(6):
            px = np.random.default_rng(100 * c + k).integers(0, 255, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(px).save(root / "ucm_150" / cls / f"{cls}{k:02d}.jpg")
            split = splits.get(f"{cls}{k:02d}", "train" if k < 4 else ("val" if k == 4 else "test"))
            number = 100 * order.index(cls) + k + 1
            images.append(
                {"filename": f"{number}.tif", "split": split, "sentences": [{"raw": f"{cls} {k} ."}]}
            )
    (root / "ucm_captions").mkdir()
    (root / "ucm_captions" / "dataset.json").write_text(json.dumps({"images": images}))
    return root


def test_duplicates_across_karpathy_splits_keep_one_copy_in_one_split(tmp_path):
    root = tiny_ucm(tmp_path, {})
    forest = root / "ucm_150" / "forest"
    (forest / "forest05.jpg").write_bytes(
        (forest / "forest00.jpg").read_bytes()
    )  # a train image, again in test
    river = root / "ucm_150" / "river"
    (river / "river04.jpg").write_bytes((forest / "forest01.jpg").read_bytes())  # other label, in val
    dm = SceneDomainDataModule(
        ["ucm"], ["ucm"], class_set="scene5", root=str(root), image_size=16, split="karpathy", captions=True
    )
    dm.setup("fit")
    rep = dm.dedup_report()["ucm"]
    assert (rep["duplicates"], rep["conflicting"], rep["across_splits"]) == (1, 2, 2)
    dom = dm._prepared["ucm"]
    parts = {p: {dom.records[i].path.name for i in getattr(dom, p)} for p in ("train", "val", "test")}
    assert "forest00.jpg" in parts["train"] and "forest05.jpg" not in set().union(*parts.values())
    assert not {"forest01.jpg", "river04.jpg"} & set().union(*parts.values())
    assert not (
        parts["train"] & parts["val"] or parts["train"] & parts["test"] or parts["val"] & parts["test"]
    )
    # the rest follow the file: 7 classes x (4 train, 1 val, 1 test), less the removed copies
    assert {p: len(v) for p, v in parts.items()} == {"train": 27, "val": 6, "test": 6}
    assert dm.train_dataset().captions[0] == ("agricultural 0 .",)  # type: ignore[index]
