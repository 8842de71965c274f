"""Label-leakage transforms and audit, checked on the real AID captions shipped with the reference code."""

from __future__ import annotations

import re

import pytest
import yaml

from _paths import SHARED_DATA, missing_shared_data
from rsmg.errors import ConfigError, DataError
from rsmg.text.leakage import (
    Compose,
    DropVerdictSentences,
    MaskClassNames,
    audit_captions,
    audit_totals,
    build_text_transform,
    class_display_name,
    load_synonyms,
    normalise_class_name,
    split_sentences,
)

AID_TEXT = SHARED_DATA / "aid_text_minitest/minitest/text"
UCM_IMAGES = SHARED_DATA / "ucm_captions/images"
AID_30 = [
    "Airport",
    "BareLand",
    "BaseballField",
    "Beach",
    "Bridge",
    "Center",
    "Church",
    "Commercial",
    "DenseResidential",
    "Desert",
    "Farmland",
    "Forest",
    "Industrial",
    "Meadow",
    "MediumResidential",
    "Mountain",
    "Park",
    "Parking",
    "Playground",
    "Pond",
    "Port",
    "RailwayStation",
    "Resort",
    "River",
    "School",
    "SparseResidential",
    "Square",
    "Stadium",
    "StorageTanks",
    "Viaduct",
]
UCM_21 = [
    "agricultural",
    "airplane",
    "baseballdiamond",
    "beach",
    "buildings",
    "chaparral",
    "denseresidential",
    "forest",
    "freeway",
    "golfcourse",
    "harbor",
    "intersection",
    "mediumresidential",
    "mobilehomepark",
    "overpass",
    "parkinglot",
    "river",
    "runway",
    "sparseresidential",
    "storagetanks",
    "tenniscourt",
]
# Independent of the code under test: how each AID class is spelled in prose, with its plural.
OWN_NAME = {
    "Airport": r"\bairports?\b",
    "BareLand": r"\bbare[\s_-]*lands?\b",
    "BaseballField": r"\bbaseball[\s_-]*fields?\b",
    "Beach": r"\bbeach(?:es)?\b",
}
VERDICT = re.compile(r"classified as|classification|categori[sz]ed as", re.IGNORECASE)


@pytest.fixture(scope="module")
def aid():
    if not AID_TEXT.is_dir():
        missing_shared_data(AID_TEXT, "real AID captions")
    files = sorted(AID_TEXT.glob("*/*.txt"))
    captions = [f.read_text(encoding="utf-8") for f in files]
    labels = [f.parent.name for f in files]
    return captions, labels


def test_real_aid_captions_leak_and_the_audit_sees_it(aid):
    captions, labels = aid
    assert len(captions) == 200 and sorted(set(labels)) == list(OWN_NAME)
    report = audit_captions(captions, labels)
    total = audit_totals(report)
    assert total["n"] == 200
    assert (
        total["verdict"] >= 190
    )  # README: 192 of 200 say "classified as"; the others "classification ... is"
    assert total["verdict"] >= sum(bool(VERDICT.search(c)) for c in captions)
    assert report["Airport"]["class_name"] >= 45  # "an airport" is in nearly every airport caption
    assert all(row["n"] == 50 for row in report.values())


def test_drop_verdicts_and_mask_names_remove_the_label_from_real_captions(aid):
    captions, labels = aid
    classes = sorted(set(labels))
    transform = Compose([DropVerdictSentences(classes), MaskClassNames(classes)])
    cleaned = [transform(c) for c in captions]
    for text, label in zip(cleaned, labels, strict=True):
        assert not re.search(OWN_NAME[label], text, re.IGNORECASE), (label, text)
        assert not VERDICT.search(text), (label, text)
    total = audit_totals(audit_captions(cleaned, labels))
    assert total["verdict"] == total["class_name"] == total["synonym"] == 0
    # descriptive content is kept: most captions keep something, and the mask shows where names were
    assert sum(bool(c.strip()) for c in cleaned) >= 190
    assert sum("[MASK]" in c for c in cleaned) > 20


def test_mask_class_names_forms_and_word_boundaries():
    mask = MaskClassNames(["BareLand", "BaseballField", "Beach", "Park"])
    text = (
        "Bare land, bare-land and BARELANDS near two Baseball Fields, beaches and a park; parking, parkway."
    )
    out = mask(text)
    assert out == ("[MASK], [MASK] and [MASK] near two [MASK], [MASK] and a [MASK]; parking, parkway.")
    # synonyms too (baseball diamond, seashore), every class masked whatever the caption's label
    assert mask("a baseball diamond by the seashore") == "a [MASK] by the [MASK]"
    assert MaskClassNames(["Beach"], include_synonyms=False)("the seashore") == "the seashore"
    assert MaskClassNames(["StorageTanks"], mask_token="<c>")("one storage tank, two storage tanks") == (
        "one <c>, two <c>"
    )
    with pytest.raises(ConfigError, match="class names"):
        MaskClassNames("Beach")


def test_drop_verdict_sentences_keeps_descriptions():
    drop = DropVerdictSentences(["Airport"])
    text = (
        "The image shows an airport with runways. There are 3.5 km of taxiways. "
        "Overall, this scene can be classified as a transport hub. The overall classification is 'urban'."
    )
    assert drop(text) == "There are 3.5 km of taxiways."
    # without class names only class-agnostic patterns apply
    assert (
        DropVerdictSentences()(text)
        == "The image shows an airport with runways. There are 3.5 km of taxiways."
    )
    assert split_sentences("A 'B.' C? D") == ["A 'B.'", "C?", "D"]
    assert DropVerdictSentences(patterns=[r"\btaxiways\b"], use_file_patterns=False)(text).startswith(
        "The image"
    )


def test_transforms_build_from_yaml():
    config = yaml.safe_load(
        """
        text_transforms:
          - drop_verdicts
          - {name: mask_class_names, mask_token: "<cls>"}
          - class_path: rsmg.text.leakage.MaskClassNames
            init_args: {class_names: [Desert]}
        """
    )["text_transforms"]
    t = build_text_transform(config, class_names=["Beach"])
    assert t is not None and len(t.transforms) == 3
    assert t("A beach next to a desert. It can be classified as coastal.") == "A <cls> next to a [MASK]."
    assert build_text_transform([], ["Beach"]) is None
    with pytest.raises(ConfigError, match="did you mean"):
        build_text_transform(["drop_verdict"], ["Beach"])
    with pytest.raises(ConfigError, match="arguments"):
        build_text_transform([{"name": "mask_class_names", "colour": 1}], ["Beach"])


def test_synonyms_cover_aid_rsicd_and_ucm():
    table = load_synonyms()
    names = set(AID_30) | set(UCM_21)
    if UCM_IMAGES.is_dir():
        names |= {d.name for d in UCM_IMAGES.iterdir() if d.is_dir()}
    missing = sorted(n for n in names if normalise_class_name(n) not in table.classes)
    assert not missing
    assert class_display_name("BareLand") == "bare land"
    assert class_display_name("storagetanks") == "storage tanks"
    assert class_display_name("SomeNewClass") == "some new class"


def test_audit_and_file_errors(tmp_path):
    with pytest.raises(DataError, match="length"):
        audit_captions(["a"], ["Beach", "Beach"])
    with pytest.raises(ConfigError, match="not found"):
        load_synonyms(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("classes: {beach: {name: beach}}\nverdict_patterns: ['(unclosed']\n")
    with pytest.raises(ConfigError, match="regex"):
        load_synonyms(bad)
    good = tmp_path / "good.yaml"
    good.write_text("classes: {beach: {name: beach, synonyms: [strand]}}\n")
    assert MaskClassNames(["Beach"], synonyms_file=good)("a strand") == "a [MASK]"
    report = audit_captions(["a strand", "a beach", "waves"], ["Beach"] * 3, synonyms_file=good)
    expected = {"n": 3, "class_name": 1, "synonym": 1, "name_or_synonym": 2, "verdict": 0, "other_class": 0}
    assert report["Beach"] == {**expected, "clean": 1}
