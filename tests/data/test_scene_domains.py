"""Image-folder scene domains (RSSCN7 / AID / UC Merced): class sets, splits, duplicates, target isolation, errors.

Real-data tests read the shared pack (150-px copies of the three datasets); error tests build tiny image
folders in ``tmp_path``.
"""

from __future__ import annotations

import builtins
import io
from collections import Counter
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from _paths import SHARED_DATA, missing_shared_data
from rsmg.data.catalog import class_mapping, dataset_info
from rsmg.data.scene_domains import SceneDomainDataModule
from rsmg.data.scene_folders import (
    SceneTransform,
    dataset_folder,
    decode_image,
    parse_domain,
    read_images,
    remove_duplicates,
    scan_domain,
)
from rsmg.errors import ConfigError, DataError, MissingDatasetError

SCENE5_FOLDERS = {  # the folders scene5 maps onto its classes
    "ucm": [
        "agricultural",
        "denseresidential",
        "forest",
        "mediumresidential",
        "parkinglot",
        "river",
        "sparseresidential",
    ],
    "rsscn7": ["bField", "dRiverLake", "eForest", "fResident", "gParking"],
}
PACK = {"ucm": "ucm_150", "aid": "aid_150", "rsscn7": "rsscn7"}


@pytest.fixture(scope="module")
def shared() -> Path:
    for folder in PACK.values():
        if not (SHARED_DATA / folder).is_dir():
            missing_shared_data(SHARED_DATA / folder, f"scene folder {folder}")
    return SHARED_DATA


class OpenRecorder:
    """Every path opened through ``open`` / ``io.open`` (what ``Path.read_bytes`` and PIL use)."""

    def __init__(self) -> None:
        self.paths: list[Path] = []
        self._real = builtins.open

    def __call__(self, file, *args, **kwargs):
        if isinstance(file, str | Path):
            self.paths.append(Path(file).resolve())
        return self._real(file, *args, **kwargs)


def under(paths: list[Path], folder: Path) -> list[Path]:
    folder = folder.resolve()
    return [p for p in paths if folder in p.parents]


@pytest.fixture(scope="module")
def lodo(shared):
    """UC Merced + AID → RSSCN7 on scene5 at 64 px, with every file opening recorded per stage."""
    rec = OpenRecorder()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(builtins, "open", rec)
        mp.setattr(io, "open", rec)
        dm = SceneDomainDataModule(
            ["ucm", "aid"], ["rsscn7"], root=str(shared), image_size=64, batch_size=8, cache=False, seed=3
        )
        dm.setup("fit")
        train_batch = next(iter(dm.train_dataloader()))
        val_batch = next(iter(dm.val_dataloader()))
        in_fit = list(rec.paths)
        dm.setup("test")
        test_batch = next(iter(dm.test_dataloader()[0]))
        in_test = rec.paths[len(in_fit) :]
    return {
        "dm": dm,
        "train": train_batch,
        "val": val_batch,
        "test": test_batch,
        "fit_targets": under(in_fit, shared / "rsscn7"),
        "fit_sources": under(in_fit, shared / "ucm_150"),
        "test_targets": under(in_test, shared / "rsscn7"),
    }


# ----------------------------------------------------------------------------------------------- class sets
@pytest.mark.parametrize("class_set", ["scene5", "scene7"])
def test_class_sets_map_every_catalog_class_with_a_reason(class_set):
    table = yaml.safe_load(
        (resources.files("rsmg.data") / "resources" / "class_sets.yaml").read_text(encoding="utf-8")
    )[class_set]
    for ds in ("rsscn7", "aid", "ucm"):
        mapping = class_mapping(class_set, ds)
        assert set(mapping) == set(dataset_info(ds).classes)
        assert all(len(entry["why"].strip()) >= 10 for entry in table["scenes"][ds].values())
    assert {t for t in class_mapping(class_set, "ucm").values() if t} == set(
        ["field", "river or lake", "forest", "residential", "parking"]
    )


def test_shared_pack_folders_are_catalog_classes_with_published_counts(shared):
    counts = {}
    for ds in ("rsscn7", "aid", "ucm"):
        folder = dataset_folder(ds, shared)
        assert folder == shared / PACK[ds]
        classes = {d.name: len(list(d.glob("*.jpg"))) for d in folder.iterdir() if d.is_dir()}
        assert set(classes) <= set(dataset_info(ds).classes)
        counts[ds] = classes
    assert set(counts["rsscn7"].values()) == {400} and len(counts["rsscn7"]) == 7
    assert sum(counts["aid"].values()) == 3510 and len(counts["aid"]) == 10
    assert set(counts["ucm"].values()) == {100} and len(counts["ucm"]) == 21


def test_scene5_images_per_class_on_real_data(shared):
    d = parse_domain("aid")
    classes = ["field", "river or lake", "forest", "residential", "parking"]
    records, excluded = scan_domain(
        d, dataset_folder("aid", shared), class_mapping("scene5", "aid"), classes, class_set="scene5"
    )
    per_class = Counter(classes[r.label] for r in records)
    assert per_class == {
        "field": 370,
        "river or lake": 830,
        "forest": 250,
        "residential": 1000,
        "parking": 390,
    }
    assert excluded == {}  # Meadow and Industrial map to null in scene5: not listed at all


# ----------------------------------------------------------------------------------------------- the LODO datamodule
def test_spec_and_split_sizes(lodo):
    dm = lodo["dm"]
    assert dm.spec.classes == ("field", "river or lake", "forest", "residential", "parking")
    assert dm.spec.domains == ("ucm", "aid", "rsscn7") and dm.spec.source_domains == ("ucm", "aid")
    assert dm.spec.modalities == {"rgb": 3} and dm.spec.patch_size == 64
    assert dm.summary() == {
        "ucm": {"train": 560, "val": 140, "test": 0},
        "aid": {"train": 2272, "val": 568, "test": 0},
        "rsscn7": {"train": 0, "val": 0, "test": 2000},
    }
    ucm = dm._prepared["ucm"]
    val_per_class = Counter(ucm.records[i].label for i in ucm.val)
    assert set(val_per_class.values()) == {20, 60}  # 20 % of each class (residential: 3 folders of 100)
    assert set(ucm.train).isdisjoint(ucm.val)


def test_targets_are_not_opened_before_test(lodo):
    assert lodo["fit_sources"], "the recorder must see the source files being read"
    assert lodo["fit_targets"] == []  # fit setup + train/val batches never open an RSSCN7 file
    opened = set(lodo["test_targets"])
    assert len(opened) == 2000  # the test stage hashes every target image once (duplicate check)


def test_batches_have_the_sample_contract(lodo):
    for part, domains in (("train", {0, 1}), ("val", {0, 1}), ("test", {2})):
        b = lodo[part]
        assert set(b) == {"image_rgb", "label", "domain", "index"}
        assert b["image_rgb"].shape == (8 if part == "train" else 16, 3, 64, 64)
        assert b["image_rgb"].dtype == torch.float32
        assert float(b["image_rgb"].min()) >= -1.0 and float(b["image_rgb"].max()) <= 1.0
        assert b["label"].dtype == b["domain"].dtype == b["index"].dtype == torch.int64
        assert int(b["label"].max()) < 5 and set(b["domain"].tolist()) <= domains
        assert len(set(b["index"].tolist())) == len(b["index"])


def test_duplicates_removed_before_split_real_data(shared):
    dm = SceneDomainDataModule(["aid"], ["rsscn7"], class_set="scene7", root=str(shared), cache=False)
    dm.setup("fit")
    rep = dm.dedup_report()["aid"]
    assert rep == {
        "images": 3510, "duplicates": 1, "conflicting": 0, "kept": 3509, "in_a_source": 0, "across_splits": 0
    }  # fmt: skip
    files = {r.path.name for r in dm._prepared["aid"].records}
    assert "industrial_203.jpg" in files and "industrial_205.jpg" not in files
    # UC Merced's airplane01 = airplane02 (a class no scene set uses): found by the same functions
    d = parse_domain("ucm")
    mapping = {c: ("airplane" if c == "airplane" else None) for c in dataset_info("ucm").classes}
    records, _ = scan_domain(d, dataset_folder("ucm", shared), mapping, ["airplane"], class_set="t")
    keep, report = remove_duplicates(records, read_images(records, decode=False)[0])
    assert (report.duplicates, len(keep)) == (1, 99)
    assert [Path(p).name for p in report.examples[0]] == ["airplane01.jpg", "airplane02.jpg"]


def test_zoom_blocks_are_domains(shared):
    d = parse_domain("rsscn7_zoom2")
    assert (d.dataset, d.block, d.first, d.last) == ("rsscn7", 2, 101, 200)
    classes = ["grass", "field", "industrial", "river or lake", "forest", "residential", "parking"]
    records, _ = scan_domain(
        d, dataset_folder("rsscn7", shared), class_mapping("scene7", "rsscn7"), classes, class_set="scene7"
    )
    assert len(records) == 700 and Counter(r.label for r in records) == {k: 100 for k in range(7)}
    assert all(101 <= int(r.path.stem[1:]) <= 200 for r in records)
    dm = SceneDomainDataModule(
        ["rsscn7_zoom1", "rsscn7_zoom2", "rsscn7_zoom3"],
        ["rsscn7_zoom4"],
        class_set="scene7",
        root=str(shared),
    )
    assert dm.spec.domains[-1] == "rsscn7_zoom4" and dm.num_classes == 7


def test_split_depends_on_seed_and_domain_name_not_on_company(shared):
    def val_files(sources, seed=42):
        dm = SceneDomainDataModule(sources, [], root=str(shared), cache=False, seed=seed)
        dm.setup("fit")
        dom = dm._prepared["ucm"]
        return sorted(dom.records[i].path.name for i in dom.val)

    alone = val_files(["ucm"])
    assert alone == val_files(["rsscn7_zoom1", "ucm"])
    assert alone != val_files(["ucm"], seed=43)


def test_in_domain_split_and_target_fraction(shared):
    dm = SceneDomainDataModule(["ucm"], ["ucm", "rsscn7_zoom4"], root=str(shared), target_split="per_class:4")
    dm.setup("test")
    s = dm.summary()
    assert s["ucm"] == {"train": 448, "val": 112, "test": 140}
    dom = dm._prepared["ucm"]
    assert len(set(dom.train) | set(dom.val) | set(dom.test)) == 700
    assert Counter(dom.records[i].label for i in dom.test) == {0: 20, 1: 20, 2: 20, 3: 60, 4: 20}
    assert s["rsscn7_zoom4"]["test"] == 20  # 4 per class
    loaders = dm.test_dataloader()
    assert [len(dl.dataset) for dl in loaders] == [140, 20]
    assert set(next(iter(loaders[1]))["domain"].tolist()) == {1}


# ----------------------------------------------------------------------------------------------- config errors
def test_config_errors_name_the_field_and_fix():
    with pytest.raises(ConfigError, match="rsscn7_zoom4"):
        SceneDomainDataModule(["rsscn7_zoom9"], ["ucm"])
    with pytest.raises(ConfigError, match="share images"):
        SceneDomainDataModule(["rsscn7"], ["rsscn7_zoom1"])
    with pytest.raises(ConfigError) as e:
        SceneDomainDataModule(["ucm"], ["aid"], class_set="scene7")
    msg = str(e.value)
    assert "['grass', 'industrial']" in msg and "class_sets.yaml" in msg
    assert "fix: use class_set: scene5" in msg
    with pytest.raises(ConfigError, match="scene5"):
        SceneDomainDataModule(["ucm"], ["aid"], class_set="native")
    with pytest.raises(ConfigError, match="bicubic"):
        SceneDomainDataModule(["ucm"], ["aid"], interpolation="area")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="per_class"):
        SceneDomainDataModule(["ucm"], ["aid"], target_split="half")
    with pytest.raises(ConfigError, match="listed twice"):
        SceneDomainDataModule(["ucm", "ucm"], ["aid"])


# ----------------------------------------------------------------------------------------------- tiny folders
def write_images(folder: Path, names: list[str], size: int = 20, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / name, quality=95)


def tiny_pack(root: Path, per_class: int = 4) -> Path:
    """scene5 folders of UC Merced and RSSCN7 (numbered like the originals), with random pixels."""
    for i, cls in enumerate(SCENE5_FOLDERS["ucm"]):
        write_images(root / "ucm_150" / cls, [f"{cls}{k:02d}.jpg" for k in range(per_class)], seed=i)
    for i, cls in enumerate(SCENE5_FOLDERS["rsscn7"]):
        names = [f"{cls[0]}{k:03d}.jpg" for k in (1, 2, 101, 102, 201, 202, 301, 302)]
        write_images(root / "rsscn7" / cls, names, seed=100 + i)
    return root


def test_corrupt_image_names_the_file(tmp_path):
    root = tiny_pack(tmp_path)
    bad = root / "ucm_150" / "forest" / "forest01.jpg"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # truncated JPEG
    dm = SceneDomainDataModule(["ucm"], ["rsscn7"], root=str(root), image_size=16)
    with pytest.raises(DataError) as e:
        dm.setup("fit")
    msg = str(e.value)
    assert "forest01.jpg" in msg and "truncated or corrupt" in msg and "fix:" in msg
    (root / "ucm_150" / "forest" / "notes.jpg").write_text("not an image")
    with pytest.raises(DataError, match="not an image"):
        decode_image((root / "ucm_150" / "forest" / "notes.jpg").read_bytes(), Path("notes.jpg"))
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4), 40000, dtype=np.uint16)).save(buf, format="PNG")
    with pytest.raises(DataError, match="expected an 8-bit image"):
        decode_image(buf.getvalue(), Path("deep.png"))
    gray = io.BytesIO()
    Image.fromarray(np.full((4, 5), 7, dtype=np.uint8)).save(gray, format="PNG")
    assert decode_image(gray.getvalue(), Path("gray.png")).shape == (3, 4, 5)


def test_empty_class_folder_is_an_error(tmp_path):
    root = tiny_pack(tmp_path)
    for f in (root / "ucm_150" / "river").iterdir():
        f.unlink()
    (root / "ucm_150" / "river" / "Thumbs.db").write_bytes(b"x")  # not an image: does not count
    dm = SceneDomainDataModule(["ucm"], ["rsscn7"], root=str(root), image_size=16)
    with pytest.raises(DataError) as e:
        dm.setup("fit")
    msg = str(e.value)
    assert "empty class folder" in msg and str(root / "ucm_150" / "river") in msg and "null" in msg


def test_empty_block_of_a_target_is_an_error_before_training(tmp_path):
    root = tiny_pack(tmp_path)
    for f in (root / "rsscn7" / "eForest").glob("e3*.jpg"):
        f.unlink()
    dm = SceneDomainDataModule(["ucm"], ["rsscn7_zoom4"], root=str(root), image_size=16)
    with pytest.raises(DataError, match="numbered 301-400"):
        dm.setup("fit")  # the target is listed (not read) at fit: layout errors come before training


def test_folder_class_missing_from_the_mapping(tmp_path):
    root = tiny_pack(tmp_path)
    write_images(root / "ucm_150" / "volcano", ["volcano00.jpg"])
    (root / "ucm_150" / ".ipynb_checkpoints").mkdir()  # hidden folders are ignored
    dm = SceneDomainDataModule(["ucm"], ["rsscn7"], root=str(root), image_size=16)
    with pytest.raises(DataError) as e:
        dm.setup("fit")
    msg = str(e.value)
    assert "'volcano' is not in the class set 'scene5'" in msg and "class_sets.yaml" in msg
    assert "datasets.yaml" in msg and str(root / "ucm_150" / "volcano") in msg


def test_missing_dataset_says_how_to_get_it(tmp_path):
    tiny_pack(tmp_path)
    dm = SceneDomainDataModule(["aid"], ["rsscn7"], root=str(tmp_path))
    with pytest.raises(MissingDatasetError, match="rsmg download aid"):
        dm.setup("fit")


def test_duplicates_with_conflicting_labels_are_all_removed(tmp_path):
    root = tiny_pack(tmp_path)
    forest = root / "ucm_150" / "forest"
    (forest / "forest09.jpg").write_bytes((forest / "forest00.jpg").read_bytes())  # same class: one copy kept
    conflict = (forest / "forest01.jpg").read_bytes()
    (root / "ucm_150" / "river" / "river09.jpg").write_bytes(conflict)  # other class: no copy kept
    dm = SceneDomainDataModule(["ucm"], ["rsscn7"], root=str(root), image_size=16, val_fraction=0.25)
    dm.setup("fit")
    assert dm.dedup_report()["ucm"] == {
        "images": 30, "duplicates": 1, "conflicting": 2, "kept": 27, "in_a_source": 0, "across_splits": 0
    }  # fmt: skip
    names = {r.path.name for r in dm._prepared["ucm"].records}
    assert "forest00.jpg" in names and not names & {"forest09.jpg", "forest01.jpg", "river09.jpg"}


def test_target_image_equal_to_a_source_image_is_left_out(tmp_path):
    root = tiny_pack(tmp_path)
    src = root / "ucm_150" / "forest" / "forest00.jpg"
    (root / "rsscn7" / "eForest" / "e001.jpg").write_bytes(src.read_bytes())
    dm = SceneDomainDataModule(["ucm"], ["rsscn7"], root=str(root), image_size=16)
    dm.setup("test")
    assert dm.dedup_report()["rsscn7"]["in_a_source"] == 1
    assert dm.summary()["rsscn7"]["test"] == 39


def test_cache_serves_the_same_pixels_as_decoding(tmp_path):
    root = tiny_pack(tmp_path)
    write_images(root / "ucm_150" / "forest", ["forest99.jpg"], size=50, seed=7)  # larger than image_size
    images = []
    for cache in (True, False):
        dm = SceneDomainDataModule(["ucm"], ["rsscn7"], root=str(root), image_size=32, cache=cache)
        dm.setup("fit")
        assert len(dm._images) == (29 if cache else 0)
        parts = [dm._dataset(["ucm"], part) for part in ("train", "val")]
        images.append(torch.cat([ds.__getitems__(list(range(len(ds))))["image_rgb"] for ds in parts]))
    assert images[0].shape == (29, 3, 32, 32) and torch.equal(images[0], images[1])


def test_transform_matches_the_encoder_preprocessing():
    img = torch.full((3, 10, 12), 255, dtype=torch.uint8)
    img[0] = 0
    t = SceneTransform(image_size=16, interpolation="bicubic", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    x = t([img, img[:, :8, :8]])
    assert x.shape == (2, 3, 16, 16) and x.dtype == torch.float32
    assert torch.allclose(x[:, 0], torch.tensor(-1.0)) and torch.allclose(x[:, 1:], torch.tensor(1.0))
    assert t.for_cache(torch.zeros(3, 40, 30, dtype=torch.uint8)).shape == (3, 16, 16)
    assert t.for_cache(torch.zeros(3, 12, 12, dtype=torch.uint8)).shape == (3, 12, 12)


@pytest.mark.parametrize(
    ("dataset", "layout"),
    [
        ("rsscn7", "rsscn7/RSSCN7-6d77849df87d242b323184ab096e44dd63730c7e/eForest"),
        ("aid", "aid/AID/Forest"),
        ("ucm", "ucm/UCMerced_LandUse/Images/forest"),
    ],
)
def test_download_layout_is_found(tmp_path, dataset, layout):
    """What `rsmg download` unpacks (or the manual note asks for) is a folder the catalog reads."""
    from rsmg.data.download import load_sources

    (tmp_path / layout).mkdir(parents=True)
    assert dataset_folder(dataset, tmp_path) == (tmp_path / layout).parent
    spec = load_sources()[dataset][0]
    homepage = {
        "rsscn7": "github.com/palewithout/RSSCN7",
        "aid": "captain-whu.github.io/AID",
        "ucm": "weegee",
    }
    assert homepage[dataset] in " ".join(spec.urls) + (spec.manual or "")
    assert spec.unpack and spec.relpath.startswith(f"{dataset}/")


@pytest.mark.slow  # a real-data fit through the CLI (~12 s): the full suite runs it
@pytest.mark.skipif(not SHARED_DATA.exists(), reason="shared data pack missing")
def test_smoke_config_fits_and_tests_through_the_cli(tmp_path):
    """The datamodule plugs into ClassificationTask through `rsmg fit` (spec linked, per-domain test metrics)."""
    import json

    from _cli import log_args, run_rsmg
    from _paths import REPO

    cfg = REPO / "experiments/scenes/smoke_ucm_to_rsscn7_zoom4.yaml"
    run_rsmg(
        "fit", "--config", str(cfg), *log_args(tmp_path, "smoke"), "--test_after_fit", "true", cwd=tmp_path
    )
    metrics = json.loads(next(tmp_path.glob("logs/smoke/version_0/metrics.json")).read_text())
    assert metrics["domains"] == ["rsscn7_zoom4"]
    result = metrics["results"]["test"]["rsscn7_zoom4"]
    assert 0 <= result["oa"] <= 1 and len(result["per_class"]) == 5


def test_checkpoint_state_refuses_other_preprocessing():
    dm = SceneDomainDataModule(["ucm"], ["aid"], image_size=160)
    state = dm.state_dict()
    assert state["spec"]["patch_size"] == 160 and state["transform"]["interpolation"] == "bicubic"
    assert {"torch", "numpy"} <= set(state["rng"])
    SceneDomainDataModule(["ucm"], ["aid"], image_size=160).load_state_dict(state)
    with pytest.raises(DataError, match="mean") as e:
        SceneDomainDataModule(["ucm"], ["aid"], image_size=160, mean=(0.485, 0.456, 0.406)).load_state_dict(
            state
        )
    assert "checkpoint: [0.5, 0.5, 0.5]" in str(e.value)
