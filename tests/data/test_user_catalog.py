"""A user catalog adds a dataset and its class mapping without editing the package; bad entries name the fix."""

from pathlib import Path

import pytest

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
