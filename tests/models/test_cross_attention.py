"""Dual cross-attention fusion, caption classifiers and image token encoders.

The two defects of the reference code (CJR7/MultiAtt-RSSC, docs/papers.md §2) are guarded here: attention
built with ``batch_first=False`` on batch-first tensors (samples attend across the batch) and no caption
padding mask. Each guard is shown to be *sensitive*: the same check, run on a module with the defect put back,
fails.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch
from torch import nn

from rsmg.data.spec import DataSpec
from rsmg.errors import ConfigError, DataError
from rsmg.models.caption_models import CaptionClassifier
from rsmg.models.cross_attention import DualCrossAttentionFusion, MultiHeadAttention
from rsmg.models.image_encoders import create_image_encoder

TOL = 1e-5
MODES = ["cross_attention", "concat", "image", "text", "vote"]
CAPTIONS = [
    "An airport with two runways and several aircraft parked near the terminal.",
    "Sand.",
    "A baseball field with a dirt infield, surrounded by grass, trees and a parking lot.",
]
SPEC = DataSpec(
    classes=("Airport", "Beach", "BaseballField", "BareLand"), modalities={"rgb": 3}, has_text=True
)


# ------------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------------
def batch_discrepancy(fn, *inputs: torch.Tensor | None) -> float:
    """Largest difference between a sample's output alone and inside the batch (inputs are batch-first)."""
    full = fn(*inputs)
    worst = 0.0
    for i in range(inputs[0].shape[0]):
        alone = fn(*[None if x is None else x[i : i + 1] for x in inputs])
        worst = max(worst, (alone - full[i : i + 1]).abs().max().item())
    return worst


def padding_discrepancy(fn, image, text, mask, extra: int = 5) -> float:
    """Difference in output when captions get ``extra`` more padded positions filled with junk."""
    gen = torch.Generator().manual_seed(1)
    junk = torch.randn(text.shape[0], extra, text.shape[2], generator=gen) * 10
    longer = torch.cat([text.masked_fill(~mask[..., None], 7.0), junk], dim=1)
    longer_mask = torch.cat([mask, torch.zeros(mask.shape[0], extra, dtype=torch.bool)], dim=1)
    return (fn(image, text, mask) - fn(image, longer, longer_mask)).abs().max().item()


def fusion_inputs(b: int = 4, n: int = 9, length: int = 7, img_dim: int = 24, txt_dim: int = 20):
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(b, n, img_dim, generator=gen)
    text = torch.randn(b, length, txt_dim, generator=gen)
    lengths = torch.tensor([length, 3, 5, 1][:b])
    mask = torch.arange(length)[None, :] < lengths[:, None]
    return image, text, mask


def tiny_fusion(**kw) -> DualCrossAttentionFusion:
    torch.manual_seed(0)
    return DualCrossAttentionFusion(24, 20, width=16, heads=2, levels=2, **kw).eval()


def pooled(fusion):
    return lambda i, t, m: fusion(i, t, m).fused


class SeqFirstSelfAttention(nn.Module):
    """The reference's defect: ``nn.MultiheadAttention(batch_first=False)`` fed ``B×L×D`` tensors, no mask."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(width, heads, batch_first=False)

    def forward(self, query, key_value=None, key_padding_mask=None, need_weights=False):
        return self.mha(query, query, query, need_weights=False)[0], None


class MasklessAttention(nn.Module):
    """Our attention with the key padding mask thrown away (the reference's second defect)."""

    def __init__(self, inner: MultiHeadAttention) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, query, key_value=None, key_padding_mask=None, need_weights=False):
        return self.inner(query, key_value, None, need_weights)


@pytest.fixture(scope="module")
def tower():
    """A real (tiny, randomly initialised) CLIP-BPE text tower: real tokenizer, real padding."""
    from rsmg.text.towers import create_text_tower

    torch.manual_seed(0)
    return create_text_tower("clip-bpe", width=32, layers=1, heads=2, context_length=40, frozen=False)


def make_model(mode: str, tower, **kw) -> CaptionClassifier:
    torch.manual_seed(0)
    return CaptionClassifier(
        SPEC,
        image_encoder="vit_test",
        image_size=32,
        text_tower=tower,
        freeze_text=kw.pop("freeze_text", False),
        fusion=mode,
        width=32,
        heads=2,
        **kw,
    )


def make_batch(b: int = 3) -> dict:
    gen = torch.Generator().manual_seed(0)
    return {"image_rgb": torch.randn(b, 3, 32, 32, generator=gen), "text": CAPTIONS[:b]}


# ------------------------------------------------------------------------------------------------------------
# fusion block
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("share_levels", [True, False])
def test_fusion_is_batch_invariant(share_levels):
    fusion = tiny_fusion(share_levels=share_levels)
    with torch.no_grad():
        assert batch_discrepancy(pooled(fusion), *fusion_inputs()) <= TOL


def test_batch_first_false_defect_fails_the_batch_check():
    fusion = tiny_fusion()
    image, text, mask = fusion_inputs()
    with torch.no_grad():
        assert batch_discrepancy(pooled(fusion), image, text, mask) <= TOL
        fusion.blocks[0].text_self = SeqFirstSelfAttention(16, 2).eval()
        # the same check now sees each caption attending across the batch
        assert batch_discrepancy(pooled(fusion), image, text, mask) > 1e-3


def test_fusion_is_padding_invariant():
    fusion = tiny_fusion()
    with torch.no_grad():
        assert padding_discrepancy(pooled(fusion), *fusion_inputs()) <= TOL


def test_missing_padding_mask_fails_the_padding_check():
    fusion = tiny_fusion()
    blk = fusion.blocks[0]
    blk.text_self = MasklessAttention(blk.text_self)
    with torch.no_grad():
        assert padding_discrepancy(pooled(fusion), *fusion_inputs()) > 1e-3


def test_attention_maps_match_fused_kernel_path():
    fusion = tiny_fusion()
    image, text, mask = fusion_inputs()
    with torch.no_grad():
        fast = fusion(image, text, mask)
        slow = fusion(image, text, mask, need_weights=True)
    assert fast.attention is None
    assert torch.allclose(fast.fused, slow.fused, atol=TOL)
    assert slow.attention.shape == (4, 2, 7, 9)  # B × levels × L × N
    assert torch.allclose(slow.attention.sum(-1), torch.ones(4, 2, 7), atol=TOL)


def test_fusion_shapes_and_config_errors():
    fusion = DualCrossAttentionFusion(768, 384, width=64, heads=4, levels=2)
    assert fusion.out_dim == 768 + 64
    assert isinstance(fusion.text_in, nn.Linear)  # 384-wide MiniLM tokens projected to the fusion width
    assert isinstance(DualCrossAttentionFusion(24, 16, width=16, heads=2).text_in, nn.Identity)
    with pytest.raises(ConfigError, match="divisible"):
        DualCrossAttentionFusion(24, 16, width=18, heads=4)
    with pytest.raises(ConfigError, match="level"):
        DualCrossAttentionFusion(24, 16, width=16, heads=2, levels=0)


# ------------------------------------------------------------------------------------------------------------
# caption classifier
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_classifier_prediction_independent_of_batch(mode, tower):
    model = make_model(mode, tower).eval()
    batch = make_batch()
    with torch.no_grad():
        full = model(batch).logits
        for i in range(3):
            alone = model({"image_rgb": batch["image_rgb"][i : i + 1], "text": [batch["text"][i]]}).logits
            assert (alone - full[i : i + 1]).abs().max().item() <= TOL, mode


@pytest.mark.parametrize("mode", ["cross_attention", "concat", "text", "vote"])
def test_classifier_padding_length_does_not_change_outputs(mode, tower, monkeypatch):
    model = make_model(mode, tower).eval()
    batch = make_batch()
    with torch.no_grad():
        short = model(batch)
        real_tokenize = type(tower).tokenize
        monkeypatch.setattr(
            tower, "tokenize", lambda texts: real_tokenize(tower, texts, padding="max_length")
        )
        assert tower.tokenize(batch["text"])["input_ids"].shape[1] == 40
        long = model(batch)
    assert (short.logits - long.logits).abs().max().item() <= TOL
    for key in short.embeddings:
        assert (short.embeddings[key] - long.embeddings[key]).abs().max().item() <= TOL


def test_gradients_reach_both_towers_and_the_fusion(tower):
    model = make_model("cross_attention", tower).train()
    out = model(make_batch())
    nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2])).backward()
    groups = {
        "image": model.image_encoder,
        "text": model.text_tower,
        "fusion": model.fusion,
        "head": model.head,
    }
    for name, module in groups.items():
        grads = [p.grad for p in module.parameters() if p.requires_grad]
        assert grads, name
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name
    model.zero_grad(set_to_none=True)


def test_frozen_text_tower_gets_no_gradient_and_stays_in_eval():
    from rsmg.text.towers import create_text_tower

    frozen = create_text_tower("clip-bpe", width=32, layers=1, heads=2, context_length=40, frozen=False)
    model = make_model("cross_attention", frozen, freeze_text=True).train()
    assert not any(p.requires_grad for p in model.text_tower.parameters())
    assert not model.text_tower.training
    out = model(make_batch())
    out.logits.sum().backward()
    assert all(p.grad is None for p in model.text_tower.parameters())
    assert any(p.grad is not None for p in model.fusion.parameters())


def test_outputs_embeddings_and_attention(tower):
    model = make_model("cross_attention", tower, return_attention=True).eval()
    with torch.no_grad():
        out = model(make_batch())
    assert out.logits.shape == (3, 4)
    assert set(out.embeddings) == {"image", "text", "fused"}
    assert out.embeddings["fused"].shape == (3, 64 + 32)
    att = out.attention["text_to_image"]
    assert att.shape[:2] == (3, 2) and att.shape[-1] == 5  # 2×2 patches + CLS at 32 px
    # the figure's map: mean over the *real* caption tokens only (padded query rows excluded)
    pooled = out.attention["text_to_image_pooled"]
    mask = model.text_tower.tokenize(CAPTIONS[:3])["attention_mask"]
    assert not mask.all()  # the captions differ in length, so some rows are padding
    for i in range(3):
        expected = att[i][:, mask[i]].mean(dim=1)
        torch.testing.assert_close(pooled[i], expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(pooled.sum(-1), torch.ones(3, 2), atol=1e-5, rtol=0)
    image_only = make_model("image", tower)
    assert image_only.text_tower is None  # no text tower built, no text needed
    with torch.no_grad():
        assert image_only({"image_rgb": torch.randn(2, 3, 32, 32)}).logits.shape == (2, 4)
    assert make_model("text", tower).image_encoder is None


def test_vote_is_mean_of_unimodal_probabilities(tower):
    model = make_model("vote", tower, vote_aux_loss=True).eval()
    batch = make_batch()
    with torch.no_grad():
        out = model(batch)
        li = model.head(out.embeddings["image"])
        lt = model.head_text(out.embeddings["text"])
    expected = (li.softmax(-1) + lt.softmax(-1)) / 2
    assert torch.allclose(out.logits.softmax(-1), expected, atol=1e-6)
    model.train()
    aux = model({**batch, "label": torch.tensor([0, 1, 2])}).aux_losses
    assert set(aux) == {"ce_image", "ce_text"}


def test_classifier_errors(tower):
    with pytest.raises(ConfigError, match="fusion"):
        make_model("late", tower)
    with pytest.raises(ConfigError, match="modality"):
        make_model("image", tower, modality="sar")
    model = make_model("concat", tower)
    with pytest.raises(DataError, match="caption"):
        model({"image_rgb": torch.randn(2, 3, 32, 32)})
    with pytest.raises(DataError, match="differ"):
        model({"image_rgb": torch.randn(2, 3, 32, 32), "text": ["one"]})


# ------------------------------------------------------------------------------------------------------------
# image encoders
# ------------------------------------------------------------------------------------------------------------
def test_image_encoders_return_tokens_and_adapt_checkpoints(tmp_path):
    vit = create_image_encoder("vit_test", in_chans=3, img_size=32)
    assert vit(torch.randn(2, 3, 32, 32)).shape == (2, 5, vit.width)
    assert vit.num_prefix_tokens == 1
    cnn = create_image_encoder("resnet_test", in_chans=4)
    tokens = cnn(torch.randn(2, 4, 64, 64))
    assert tokens.ndim == 3 and tokens.shape[0] == 2 and tokens.shape[2] == cnn.width
    # an RGB checkpoint loads into a 5-band encoder at another size (stem adapted, position grid resampled)
    ckpt = tmp_path / "vit_rgb.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in vit.backbone.state_dict().items()}}, ckpt)
    five = create_image_encoder("vit_test", in_chans=5, pretrained_path=ckpt, img_size=48)
    assert five(torch.randn(1, 5, 48, 48)).shape == (1, 10, vit.width)
    blocks_equal = torch.equal(
        five.backbone.blocks[0].attn.qkv.weight, vit.backbone.blocks[0].attn.qkv.weight
    )
    assert blocks_equal
    with pytest.raises(ConfigError, match="does not match"):
        create_image_encoder("resnet_test", pretrained_path=ckpt)
    with pytest.raises(ConfigError, match="not found"):
        create_image_encoder("vit_test", pretrained_path=tmp_path / "missing.pth")
    with pytest.raises(ConfigError, match="vit_base"):
        create_image_encoder("vit_bse")
