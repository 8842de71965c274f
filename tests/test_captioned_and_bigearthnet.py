"""Image+caption datamodule and the S1/S2 dataset on the real shared data."""

import pytest
import torch

from _paths import SHARED_DATA
from rsmg.data.bigearthnet import BigEarthNetS1S2, nomenclature_19
from rsmg.data.captioned import CaptionedSceneDataModule, scan_aid_layout
from rsmg.errors import ConfigError, DataError

pytestmark = pytest.mark.skipif(
    not SHARED_DATA.exists(), reason=f"shared data pack not found at {SHARED_DATA}"
)


def test_ucm_official_split_and_captions():
    dm = CaptionedSceneDataModule("ucm_captions", root=str(SHARED_DATA), split="official", image_size=64)
    dm.setup()
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 126, "val": 42, "test": 42}
    assert all(len(it.captions) == 5 for it in dm.splits["train"])
    b = next(iter(dm.train_dataloader()))
    assert b["image_rgb"].shape[1:] == (3, 64, 64) and len(b["text"]) == b["label"].shape[0]


def test_aid_seeded_split_held_out_classes_never_train():
    kw = dict(root=str(SHARED_DATA), split="fraction:0.5", image_size=32, held_out_classes=["Beach"], seed=3)
    a, b = CaptionedSceneDataModule("aid_minitest", **kw), CaptionedSceneDataModule("aid_minitest", **kw)
    a.setup()
    b.setup()
    assert [it.image for it in a.splits["train"]] == [it.image for it in b.splits["train"]]
    beach = a.all_classes.index("Beach")
    assert all(it.label != beach for p in ("train", "val") for it in a.splits[p])
    assert sum(it.label == beach for it in a.splits["test"]) == 50
    assert a.classes[-1] == "Beach" and a.seen_classes == ("Airport", "BareLand", "BaseballField")
    sizes = [len(a.splits[p]) for p in ("train", "val", "test")]
    assert sum(sizes) == 200


def test_missing_caption_and_unknown_class(tmp_path):
    (tmp_path / "image" / "A").mkdir(parents=True)
    (tmp_path / "text" / "A").mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "image" / "A" / "a_1.jpg")
    with pytest.raises(DataError, match=r"(?s)missing caption.*a_1\.txt"):
        scan_aid_layout(tmp_path, ("A",))
    with pytest.raises(ConfigError, match="Beach"):
        CaptionedSceneDataModule("aid_minitest", held_out_classes=["Beech"])


def test_bigearthnet_pairs_resampled_and_multilabel():
    ds = BigEarthNetS1S2(SHARED_DATA / "bigearthnet_s1s2_examples")
    assert len(ds) == 6
    s = ds[0]
    assert s["image_msi"].shape == (12, 120, 120) and s["image_sar"].shape == (2, 120, 120)
    assert torch.isfinite(s["image_msi"]).all()
    assert len(ds.classes) == 19 and len(nomenclature_19()) == 19
    names = {tuple(ds.label_names(i)) for i in range(len(ds))}
    assert ("Pastures",) in names
    ds43 = BigEarthNetS1S2(
        SHARED_DATA / "bigearthnet_s1s2_examples", nomenclature="43", s2_bands=["B04", "B03", "B02"]
    )
    assert ds43[0]["image_msi"].shape == (3, 120, 120)
    assert "Peatbogs" in ds43.classes
