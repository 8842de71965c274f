"""Text towers: offline loading, masking, truncation accounting, freezing."""

from __future__ import annotations

import warnings

import pytest
import torch

from rsmg.errors import ConfigError
from rsmg.text.towers import TextTower, create_text_tower

TEXTS = [
    "a patch of trees",
    "flat roofs of buildings and their shadows seen by an airborne hyperspectral camera",
]


@pytest.fixture(scope="module")
def minilm() -> TextTower:
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    try:
        import pytest_socket

        pytest_socket.disable_socket(allow_unix_socket=True)
    except ImportError:  # pragma: no cover
        pytest_socket = None
    try:
        tower = create_text_tower("minilm")
    finally:
        if pytest_socket is not None:
            pytest_socket.enable_socket()
        mp.undo()
    return tower


@pytest.fixture(scope="module")
def clip_tiny() -> TextTower:
    torch.manual_seed(0)
    return create_text_tower("clip-bpe", width=32, layers=2, heads=2)


@pytest.fixture(params=["minilm", "clip"])
def tower(request, minilm, clip_tiny) -> TextTower:
    return minilm if request.param == "minilm" else clip_tiny


def test_minilm_loads_offline_pretrained(minilm):
    assert minilm.width == 384
    assert minilm.context_length == 256
    f = minilm.encode(["trees", "forest", "asphalt road"])
    p = torch.nn.functional.normalize(f.pooled, dim=-1)
    # pretrained weights: "trees" is closer to "forest" than to "asphalt road"
    assert p[0] @ p[1] > p[0] @ p[2]


def test_shapes_and_mask(tower):
    tok = tower.tokenize(TEXTS)
    assert tok["input_ids"].dtype == torch.long and tok["attention_mask"].dtype == torch.bool
    f = tower(tok)
    b, n = tok["input_ids"].shape
    assert f.hidden.shape == (b, n, tower.width)
    assert f.pooled.shape == (b, tower.width)
    assert torch.equal(f.mask, tok["attention_mask"])
    assert f.mask[0].sum() < f.mask[1].sum()  # the short text is padded


def test_padding_and_batch_invariance(tower):
    alone = tower.encode(TEXTS[:1]).pooled
    padded = tower(tower.tokenize(TEXTS[:1], padding="max_length")).pooled
    batched = tower.encode(TEXTS).pooled[:1]
    torch.testing.assert_close(alone, padded, atol=1e-5, rtol=0)
    torch.testing.assert_close(alone, batched, atol=1e-5, rtol=0)


def test_truncation_is_counted(tower):
    long = "word " * (tower.context_length + 5)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        tok = tower.tokenize([long, "short", long])
    msgs = [str(x.message) for x in w if "truncated" in str(x.message)]
    assert len(msgs) == 1 and msgs[0].startswith("2 of 3 texts")
    assert tok["input_ids"].shape[1] == tower.context_length
    assert tower(tok).pooled.isfinite().all()


def test_no_warning_when_nothing_truncated(tower):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tower.tokenize(TEXTS)


def test_frozen_tower_has_no_grad_and_stays_eval(clip_tiny):
    assert not any(p.requires_grad for p in clip_tiny.parameters())
    clip_tiny.train()
    assert not clip_tiny.training
    assert not clip_tiny.encode(TEXTS).pooled.requires_grad


def test_unfrozen_tower_trains():
    t = create_text_tower("clip-bpe", width=16, layers=1, heads=2, frozen=False)
    t.train()
    assert t.training
    t.encode(TEXTS).pooled.sum().backward()
    assert t.model.token_embedding.weight.grad is not None


def test_clip_checkpoint_roundtrip(tmp_path, clip_tiny):
    path = tmp_path / "clip.pt"
    torch.save({"text." + k: v for k, v in clip_tiny.model.state_dict().items()}, path)
    t2 = create_text_tower("clip-bpe", width=32, layers=2, heads=2, checkpoint=str(path))
    torch.testing.assert_close(t2.encode(TEXTS).pooled, clip_tiny.encode(TEXTS).pooled)
    with pytest.raises(ConfigError, match="width"):
        create_text_tower("clip-bpe", width=16, layers=2, heads=2, checkpoint=str(path))


def test_bad_inputs(clip_tiny):
    with pytest.raises(ConfigError, match="text tower"):
        create_text_tower("bert")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="list of strings"):
        clip_tiny.tokenize("trees")  # type: ignore[arg-type]
