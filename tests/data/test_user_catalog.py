"""A user catalog adds a dataset and its class mapping without editing the package; bad entries name the fix."""

from pathlib import Path

import numpy as np
import pytest

from _experiments import BASELINE
from _paths import SHARED_DATA, missing_shared_data
from rsmg.data import catalog
from rsmg.errors import ConfigError, DataError

UCM = SHARED_DATA / "ucm_150"
# my own scene folders (German names), each filled with real UC Merced images, mapped onto scene5
MINE = {"Acker": ("agricultural", "field"), "Fluss": ("river", "river or lake"), "Parkplatz": ("parkinglot", "parking"),
        "Wald": ("forest", "forest"), "Wohngebiet": ("denseresidential", "residential")}  # fmt: skip
CATALOG = """\
datasets:
  mine:
    kind: image_folder
    description: my scenes
    dir: my_scenes
    classes: [Acker, Fluss, Parkplatz, Wald, Wohngebiet]
    modalities: {rgb: {sensor: rgb}}
class_sets:
  scene5:
    scenes:
      mine:
"""


@pytest.fixture
def user_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    if not UCM.is_dir():
        missing_shared_data(UCM, "UC Merced (150 px)")
    monkeypatch.delenv(catalog.CATALOG_ENV, raising=False)
    text = CATALOG
    for mine, (ucm, common) in MINE.items():
        folder = tmp_path / "my_scenes" / mine
        folder.mkdir(parents=True)
        for i in range(6):
            (folder / f"{mine}_{i}.jpg").symlink_to(UCM / ucm / f"{ucm}{i:02d}.jpg")
        text += f"        {mine}: {{to: {common}, why: same scene type as UC Merced's {ucm}}}\n"
    path = tmp_path / "my_catalog.yaml"
    path.write_text(text)
    return path


def test_user_dataset_is_merged_and_its_paths_are_relative_to_the_catalog(user_catalog: Path) -> None:
    assert "mine" not in catalog.list_datasets()
    catalog.use_catalog(user_catalog)
    assert "mine" in catalog.list_datasets() and "ucm" in catalog.list_datasets()  # merged, not replaced
    assert catalog.class_mapping("scene5", "mine")["Wald"] == "forest"
    assert catalog.class_mapping("scene5", "ucm")["forest"] == "forest"  # the packaged mappings stay
    from rsmg.data.scene_folders import dataset_folder

    assert dataset_folder("mine") == user_catalog.parent / "my_scenes"


def test_datamodule_trains_on_a_user_dataset(user_catalog: Path) -> None:
    from rsmg.data.scene_domains import SceneDomainDataModule

    dm = SceneDomainDataModule(
        sources=["mine"], targets=["aid"], catalog=str(user_catalog), root=str(SHARED_DATA), image_size=64,
        batch_size=8, cache=False, val_fraction=0.34,
    )  # fmt: skip
    dm.setup("fit")
    assert dm.spec.classes == ("field", "river or lake", "forest", "residential", "parking")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image_rgb"].shape == (8, 3, 64, 64)
    assert set(batch["label"].tolist()) <= set(range(5))


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("scenes: {}\n", "(top level)"),
        ("datasets:\n  x: {kind: image_folder, classes: [a]}\n", "datasets.x.modalities"),
        ("datasets:\n  x: {kind: image_folder, classes: [a], modalities: {rgb: {file: a.tif}}}\n",
         "datasets.x.modalities.rgb"),
        ("datasets:\n  x: {kind: scene, classes: [a], labels: {file: l.npy}, modalities: {lidar: {sensor: lidar_dsm, "
         "file: a.npy}}}\n", "datasets.x.modalities.lidar.layout"),
        ("datasets:\n  x: {kind: vectors, classes: [a], modalities: {lidar: {sensor: lidar_dsm, file: a.npy, "
         "layout: NC}}}\n", "datasets.x.labels"),  # a scene may lack labels (a target to map), vectors not
        ("datasets:\n  x: {kind: scene, labels: {file: l.npy}, modalities: {lidar: {sensor: lidar_dsm, file: a.npy, "
         "layout: HWC}}}\n", "datasets.x.classes"),  # labels need their class names
        ("class_sets:\n  scene5: {classes: [a, b], scenes: {}}\n", "class_sets.scene5.classes"),
        ("class_sets:\n  brand_new: {scenes: {}}\n", "class_sets.brand_new.classes"),
    ],
)  # fmt: skip
def test_bad_user_catalog_names_file_and_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str,
                                               field: str) -> None:  # fmt: skip
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    monkeypatch.setenv(catalog.CATALOG_ENV, str(path))
    with pytest.raises(DataError) as err:
        catalog.list_datasets() and catalog.class_set_names("scene5")
    assert str(path) in str(err.value) and field in str(err.value)


def test_missing_user_catalog_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(catalog.CATALOG_ENV, raising=False)
    with pytest.raises(ConfigError, match="user catalog not found"):
        catalog.use_catalog(tmp_path / "nope.yaml")


# ------------------------------------------------------------------ user pixel scenes for CrossDomainDataModule
_SCENE = """\
  {name}:
    kind: scene
    description: a 40x40 LiDAR tile saved with numpy
    classes: [Forest, Street]
    labels: {{file: {name}/labels.npy}}
    modalities:
      lidar: {{file: {name}/lidar.npy, sensor: lidar_dsm_intensity, layout: HWC, height: above_ground}}
"""
SCENE_CATALOG = (
    "datasets:\n"
    + _SCENE.format(name="my_scene")
    + _SCENE.format(name="my_other")
    + """\
class_sets:
  shared:
    scenes:
      my_scene: &mine
        Forest: {to: trees, why: tree canopy}
        Street: {to: road, why: same class}
      my_other: *mine
"""
)


def _write_scene(folder: Path, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Forest (1) and street (2) halves with a 4-px unlabelled seam; tall trees, flat street."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((40, 40), dtype=np.uint8)
    labels[:, :18], labels[:, 22:] = 1, 2
    if seed:  # the other scene: street on the left
        labels = labels[:, ::-1].copy()
    height = np.where(labels == 1, 12.0, 0.1) + rng.normal(0, 0.5, labels.shape)
    lidar = np.stack([height, rng.uniform(0, 255, labels.shape)], axis=-1).astype(
        np.float32
    )  # H x W x (dsm, int.)
    folder.mkdir(parents=True)
    np.save(folder / "labels.npy", labels)
    np.save(folder / "lidar.npy", lidar)
    return labels, lidar


@pytest.fixture
def scene_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(catalog.CATALOG_ENV, "")  # restored after the test: use_catalog writes the variable
    _write_scene(tmp_path / "my_scene", 0)
    _write_scene(tmp_path / "my_other", 1)
    path = tmp_path / "my_scenes.yaml"
    path.write_text(SCENE_CATALOG)
    return path


def test_cross_domain_datamodule_reads_a_user_npy_scene(scene_catalog: Path) -> None:
    from rsmg.data.datamodule import CrossDomainDataModule

    labels = np.load(scene_catalog.parent / "my_scene/labels.npy")
    dm = CrossDomainDataModule(
        sources=["my_scene"], targets=["my_other"], catalog=str(scene_catalog), source_split="all", patch_size=5,
        batch_size=16, val_fraction=0.25,
    )  # fmt: skip
    assert dm.spec.classes == (
        "trees",
        "road",
    )  # the user mapping onto the packaged shared names, in their order
    assert dm.spec.band_names == {"lidar": ("dsm", "intensity")}
    assert "trento" in catalog.list_datasets()  # merged over the packaged entries, not instead of them
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image_lidar"].shape == (16, 2, 5, 5)
    assert set(batch["label"].tolist()) <= {0, 1}
    n_train, n_val = len(dm.train_dataloader().dataset), len(dm.val_dataloader().dataset)  # type: ignore[arg-type]
    assert n_train + n_val == int((labels > 0).sum()) == 40 * 36


def test_fit_on_a_user_scene_from_the_cli(scene_catalog: Path, tmp_path: Path) -> None:
    """`data.init_args.catalog` in a real `rsmg fit` (in-process): the user scenes train one fast_dev_run step."""
    from _cli import call_rsmg, log_args

    p = call_rsmg(
        "fit", *BASELINE,
        "--data.init_args.catalog", str(scene_catalog),
        "--data.init_args.sources", "[my_scene]", "--data.init_args.targets", "[my_other]",
        "--data.init_args.source_split", "all", "--data.init_args.batch_size", "16",
        "--trainer.fast_dev_run", "true", *log_args(tmp_path, "mine"),
        cwd=tmp_path,
    )  # fmt: skip
    assert p.returncode == 0
    assert "`Trainer.fit` stopped: `max_steps=1` reached." in p.stderr  # one real training step
    assert "train/loss" in p.stdout and "val/oa" in p.stdout
    assert (
        "my_other: LiDAR band 'dsm' is already height above ground (catalog)" in p.stderr
    )  # the user entry read
