"""Zero-shot classifier from class names × prompt templates, with the real (offline) MiniLM tower."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from rsmg.errors import ConfigError
from rsmg.text.zero_shot import (
    build_zero_shot_classifier,
    load_prompt_templates,
    zero_shot_accuracy,
    zero_shot_logits,
)

AID_4 = ["Airport", "BareLand", "BaseballField", "Beach"]


class BagOfCharsTower(nn.Module):
    """Stand-in tower: one embedding per character, mean-pooled (enough to test the arithmetic)."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.width = width
        self.emb = nn.Embedding(128, width)
        self.seen: list[str] = []

    def tokenize(self, texts):
        self.seen += texts
        length = max(len(t) for t in texts)
        ids = torch.zeros(len(texts), length, dtype=torch.long)
        mask = torch.zeros(len(texts), length, dtype=torch.bool)
        for i, t in enumerate(texts):
            ids[i, : len(t)] = torch.tensor([min(ord(ch), 127) for ch in t])
            mask[i, : len(t)] = True
        return {"input_ids": ids, "attention_mask": mask}

    def forward(self, tokens):
        m = tokens["attention_mask"].float()[..., None]
        hidden = self.emb(tokens["input_ids"])
        return type("F", (), {"pooled": (hidden * m).sum(1) / m.sum(1)})()


@pytest.fixture(scope="module")
def minilm():
    from rsmg.text.towers import create_text_tower

    return create_text_tower("minilm", pretrained=True, frozen=True)


def test_real_minilm_zero_shot_classifier(minilm):
    templates = load_prompt_templates("simple")
    weights = build_zero_shot_classifier(
        minilm, AID_4, templates, descriptions={"beach": ["sand and waves along the sea"]}
    )
    assert weights.shape == (4, minilm.width) == (4, 384)
    assert torch.allclose(weights.norm(dim=1), torch.ones(4), atol=1e-5)
    assert (weights @ weights.t() - torch.eye(4)).abs().max() < 0.999  # distinct classes
    queries = minilm.encode(
        [
            "planes parked at an airport terminal",
            "a sandy beach by the sea",
            "a baseball field with an infield",
        ]
    ).pooled
    assert zero_shot_logits(queries, weights).argmax(1).tolist() == [0, 3, 2]


def test_classifier_is_normalised_mean_over_templates():
    tower = BagOfCharsTower()
    tower.train()
    templates = ["a {c}.", "the {c} from above", "{c}"]
    weights = build_zero_shot_classifier(
        tower, ["BareLand", "Beach"], templates, descriptions={"Beach": "sand"}
    )
    assert tower.training  # mode restored
    assert "a bare land." in tower.seen and "sand" in tower.seen  # prose names, descriptions appended
    with torch.no_grad():
        texts = ["a beach.", "the beach from above", "beach", "sand"]
        per_text = F.normalize(tower(tower.tokenize(texts)).pooled, dim=-1)
        expected = F.normalize(per_text.mean(0), dim=-1)
    assert torch.allclose(weights[1], expected, atol=1e-6)


def test_prompt_templates_are_shipped_and_checked(tmp_path):
    default = load_prompt_templates()
    assert len(default) >= 5 and all("{c}" in t for t in default)
    assert load_prompt_templates("simple") == ["a satellite image of a {c}."]
    with pytest.raises(ConfigError, match="did you mean"):
        load_prompt_templates("remote_sensin")
    bad = tmp_path / "t.yaml"
    bad.write_text(yaml.safe_dump({"sets": {"x": ["no placeholder"]}}))
    with pytest.raises(ConfigError, match="placeholder"):
        load_prompt_templates("x", file=bad)
    with pytest.raises(ConfigError, match="not in class_names"):
        build_zero_shot_classifier(BagOfCharsTower(), ["Beach"], ["{c}"], descriptions={"Desert": ["dunes"]})
    with pytest.raises(ConfigError, match="class names"):
        build_zero_shot_classifier(BagOfCharsTower(), [], ["{c}"])


def test_harmonic_mean():
    assert zero_shot_accuracy(0.8, 0.4) == pytest.approx(2 * 0.8 * 0.4 / 1.2)
    assert zero_shot_accuracy(90.0, 90.0) == pytest.approx(90.0)
    assert zero_shot_accuracy(1.0, 0.0) == 0.0
    assert zero_shot_accuracy(0.0, 0.0) == 0.0
    with pytest.raises(ValueError):
        zero_shot_accuracy(-0.1, 0.5)
