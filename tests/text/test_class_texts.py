"""Class texts: every class × modality of every class set is covered; errors name file, class and fix."""

from __future__ import annotations

from importlib import resources

import pytest
import torch
import yaml

from rsmg.errors import ConfigError, DataError
from rsmg.text.class_texts import (
    class_texts_file,
    encode_class_texts,
    list_class_sets,
    load_class_texts,
)
from rsmg.text.towers import create_text_tower

MODALITIES = ["hsi", "lidar", "sar", "msi", "rgb"]
EXPECTED = {
    "shared": ["trees", "grass", "ground", "road", "buildings", "water"],
    "trento": ["Apple trees", "Buildings", "Ground", "Woods", "Vineyard", "Roads"],
    "muufl": [
        "Trees", "Mostly grass", "Mixed ground surface", "Dirt and sand", "Road", "Water",
        "Building shadow", "Buildings", "Sidewalk", "Yellow curb", "Cloth panels",
    ],
    "houston2013": [
        "Healthy grass", "Stressed grass", "Synthetic grass", "Trees", "Soil", "Water", "Residential",
        "Commercial", "Road", "Highway", "Railway", "Parking Lot 1", "Parking Lot 2", "Tennis Court",
        "Running Track",
    ],
    "salinas_a": [
        "Brocoli_green_weeds_1", "Corn_senesced_green_weeds", "Lettuce_romaine_4wk", "Lettuce_romaine_5wk",
        "Lettuce_romaine_6wk", "Lettuce_romaine_7wk",
    ],
    "augsburg": [
        "Forest", "Residential area", "Industrial area", "Low plants", "Allotment", "Commercial area",
        "Water",
    ],
}  # fmt: skip


@pytest.mark.parametrize("class_set", sorted(EXPECTED))
def test_every_class_and_modality_covered(class_set):
    table = yaml.safe_load(class_texts_file(class_set).read_text())["classes"]
    assert list(table) == EXPECTED[class_set]  # exactly these names, in label order
    ct = load_class_texts(class_set, EXPECTED[class_set], MODALITIES)
    assert len(ct.shared) == len(EXPECTED[class_set])
    assert len(ct.proprietary) == len(EXPECTED[class_set]) * len(MODALITIES)
    texts = list(ct.shared.values()) + list(ct.proprietary.values())
    assert all(isinstance(t, str) and len(t) > 30 and "{" not in t for t in texts)
    assert len(set(texts)) == len(texts), "every text distinct"


def test_indian_pines_texts_cover_its_only_modality():
    """Indian Pines is HSI only: a shared and an hsi text per native class (catalog order), all distinct."""
    from rsmg.data.catalog import dataset_info

    classes = dataset_info("indian_pines").classes
    table = yaml.safe_load(class_texts_file("indian_pines").read_text())["classes"]
    assert tuple(table) == classes and len(classes) == 16
    ct = load_class_texts("indian_pines", classes, ["hsi"])
    texts = [*ct.shared_list(), *ct.proprietary_list("hsi")]
    assert len(set(texts)) == 32 and all(len(t) > 30 and "{" not in t for t in texts)
    with pytest.raises(DataError, match="lidar"):
        load_class_texts("indian_pines", classes, ["lidar"])  # no texts claimed for a sensor never flown


def test_dataset_catalog_classes_have_texts():
    """The scenes' native classes (datasets.yaml) and the shared set (class_sets.yaml) all have texts."""
    root = resources.files("rsmg.data") / "resources"
    datasets = yaml.safe_load((root / "datasets.yaml").read_text())
    for name, entry in datasets.items():
        if isinstance(entry, dict) and "classes" in entry and name in list_class_sets():
            load_class_texts(name, entry["classes"], list(entry.get("modalities", {})))
    sets = yaml.safe_load((root / "class_sets.yaml").read_text())
    load_class_texts("shared", sets["shared"]["classes"], MODALITIES)


def test_templates_and_normalised_names():
    ct = load_class_texts("trento", ["apple trees", "ROADS"], ["hsi", "lidar"])
    assert ct.shared["apple trees"].startswith("a remote sensing image patch of apple trees:")
    assert ct.proprietary[("lidar", "ROADS")].startswith("a LiDAR elevation image patch of roads:")
    assert "red edge" in load_class_texts("shared", ["trees"], ["hsi"]).proprietary[("hsi", "trees")]


def test_display_names_are_the_files_display_field():
    """Zero-shot prompts name a class as the texts do: the ``display`` field, else the key with spaces."""
    ct = load_class_texts("ucm21", ["airplane", "baseballdiamond"], [])
    assert ct.display == {"airplane": "airplanes", "baseballdiamond": "baseball diamond"}
    assert ct.shared["airplane"].startswith(f"an aerial scene of {ct.display['airplane']}:")
    assert load_class_texts("trento", ["apple trees"], []).display == {"apple trees": "apple trees"}


def test_missing_class_or_modality_is_a_clear_error():
    with pytest.raises(DataError) as e:
        load_class_texts("trento", ["Buildings", "Railway"], ["hsi"])
    msg = str(e.value)
    assert "class_texts_trento.yaml" in msg and "Railway" in msg and "fix:" in msg
    with pytest.raises(DataError) as e:
        load_class_texts("shared", ["trees"], ["thermal"])
    msg = str(e.value)
    assert "class_texts_shared.yaml" in msg and "thermal" in msg and "fix:" in msg
    with pytest.raises(ConfigError, match="class-text set"):
        load_class_texts("nowhere", ["trees"], ["hsi"])


def test_alias_and_custom_file(tmp_path):
    assert class_texts_file("houston2013_vectors") == class_texts_file("houston2013")
    f = tmp_path / "mine.yaml"
    f.write_text("classes:\n  rock:\n    shared: 'bare rock outcrops'\n    hsi: 'flat bright spectrum'\n")
    ct = load_class_texts(str(f), ["rock"], ["hsi"])
    assert "bare rock outcrops" in ct.shared["rock"]


def test_encode_class_texts_shapes_and_cache():
    torch.manual_seed(0)
    tower = create_text_tower("clip-bpe", width=16, layers=1, heads=2)
    ct = load_class_texts("shared", EXPECTED["shared"], ["hsi", "lidar"])
    a = encode_class_texts(tower, ct)
    assert a.shared.shape == (6, 16) and set(a.proprietary) == {"hsi", "lidar"}
    assert a.proprietary["hsi"].shape == (6, 16)
    assert not torch.allclose(a.proprietary["hsi"], a.proprietary["lidar"])
    b = encode_class_texts(tower, ct)
    assert b.shared.data_ptr() == a.shared.data_ptr(), "frozen tower: cached, not re-encoded"
    # the cached rows equal a direct encoding of the same texts
    torch.testing.assert_close(a.shared[2], tower.encode([ct.shared_list()[2]]).pooled[0], atol=1e-5, rtol=0)
