"""The unified model (FVMGN on scenes + caption cross-attention) on real UC Merced images and captions."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from _paths import SHARED_DATA, missing_shared_data
from _tiny import TINY_CAPTION_NET_UCM21, with_options
from rsmg.data.scene_domains import SceneDomainDataModule
from rsmg.errors import DataError
from rsmg.models.frozen_prefix import forward_multiscale_from_prefix, forward_prefix
from rsmg.models.fvmgn_captions import CaptionFVMGN
from rsmg.models.registry import list_models
from rsmg.models.wavelet import MWDisOutput
from rsmg.text.caption_features import CaptionFeatureCache
from rsmg.text.towers import create_text_tower

TINY = TINY_CAPTION_NET_UCM21


@pytest.fixture(scope="module")
def ucm() -> tuple[Any, dict[str, Any]]:
    """Spec and a real 12-image batch (64 px) with leakage-controlled captions, some of them empty."""
    if not (SHARED_DATA / "ucm_captions").is_dir():
        missing_shared_data(SHARED_DATA / "ucm_captions", "UCM captions")
    dm = SceneDomainDataModule(
        ["ucm"], ["ucm"], class_set="ucm21", root=str(SHARED_DATA), image_size=64, source_split="per_class:3",
        captions=True, text_transforms=["drop_verdicts", "mask_class_names"],
    )  # fmt: skip
    dm.setup("fit")
    ds = dm.train_dataset()
    batch = dict(ds.__getitems__(list(range(0, 36, 3))))
    batch["text"][3] = ""  # at least one sample without a caption
    return dm.spec, batch


def model(spec: Any, **kw: Any) -> CaptionFVMGN:
    torch.manual_seed(0)
    return CaptionFVMGN(spec, **with_options(TINY, **kw))


def test_registered_and_trains_with_every_term(ucm):
    spec, batch = ucm
    assert "fvmgn_captions" in list_models()
    m = model(spec).train()
    out = m(batch)
    assert out.logits.shape == (12, 21) and set(out.aux_losses) == {"align", "invariance"}
    loss = torch.nn.functional.cross_entropy(out.logits, batch["label"]) + sum(out.aux_losses.values())
    loss.backward()
    for name in ("null_token", "caption_fusion.blocks.0.text_to_image.q.weight", "fuse.0.weight"):
        g = dict(m.named_parameters())[name].grad
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, name
    assert not any(p.requires_grad for p in m.captions.parameters())  # the frozen tower


def test_a_sample_without_caption_uses_its_image_only(ucm):
    spec, batch = ucm
    m = model(spec, return_attention=True).eval()
    none = dict(batch, text=[""] * 12)
    with torch.no_grad():
        a = m(none)
        b = m(dict(batch, text=["", *batch["text"][1:]]))
        c = m(dict(none, text=["   ", *[""] * 11]))  # whitespace is no caption either
    assert torch.isfinite(a.logits).all() and torch.isfinite(a.attention["text_to_image"]).all()
    assert torch.allclose(a.logits[0], b.logits[0], atol=1e-5)  # other samples' captions do not matter
    assert torch.allclose(a.logits[0], c.logits[0], atol=1e-5)
    # ... and a caption does change the prediction of a sample that has one
    with_caption = next(i for i, t in enumerate(batch["text"]) if t and i > 0)
    assert not torch.allclose(a.logits[with_caption], b.logits[with_caption], atol=1e-4)
    assert a.attention["text_to_image"].shape[:2] == (12, 2)


def test_a_batch_without_captions_is_refused(ucm):
    spec, batch = ucm
    m = model(spec).eval()
    with pytest.raises(DataError, match="caption list") as e:
        m({k: v for k, v in batch.items() if k != "text"})
    assert "captions: true" in str(e.value)


def test_caption_cache_matches_the_tower_and_encodes_each_caption_once():
    tower = create_text_tower("clip-bpe", pretrained=False, frozen=True, width=32, layers=1, heads=2)
    cache = CaptionFeatureCache(tower)
    texts = ["a beach with waves", "", "many cars in rows", "a beach with waves"]
    hidden, mask = cache(texts)
    assert len(cache) == 2 and mask[1].sum() == 0 and (hidden[1] == 0).all()
    direct = tower.encode(["a beach with waves", "many cars in rows"])
    n0, n2 = int(mask[0].sum()), int(mask[2].sum())
    assert torch.allclose(hidden[0, :n0], direct.hidden[0, :n0], atol=1e-5)
    assert torch.allclose(hidden[2, :n2], direct.hidden[1, :n2], atol=1e-5)
    assert torch.equal(hidden[0], hidden[3])
    cache.to(torch.float64)
    assert len(cache) == 0  # features of the old dtype/device are dropped
    keep = CaptionFeatureCache(tower.float(), empty_is_none=False)
    assert keep([""])[1].sum() > 0  # encoded as its special tokens


def test_cached_caption_features_do_not_depend_on_the_batch_they_were_first_met_in():
    """Bit-identical features whatever the cache held before: what resume and DDP rank invariance need.

    Encoded in a batch, a caption's features move in the last bits with the batch's size and padded length;
    the cache would then make each step's features depend on the run's history.
    """
    torch.manual_seed(0)
    tower = create_text_tower("clip-bpe", pretrained=False, frozen=True, width=32, layers=1, heads=2)
    text = "a beach with waves"
    company = ["many buildings and some green trees are around a parking lot with many cars", "a river", text]
    alone, _ = CaptionFeatureCache(tower)([text])
    crowd, mask = CaptionFeatureCache(tower)(company)
    n = alone.shape[1]
    assert int(mask[2].sum()) == n
    assert torch.equal(crowd[2, :n], alone[0])


def test_second_view_of_resampled_samples_only_gives_the_same_views(ucm):
    """``second_view="resampled"`` skips the samples MWDis left unchanged; with batch statistics frozen (the
    only difference with dropout off), logits, invariance and embeddings match ``"all"`` exactly."""
    spec, batch = ucm
    outs, encoded = {}, {}
    for mode in ("all", "resampled"):
        m = model(spec, second_view=mode, mwdis={"p": 0.5}, caption_dropout=0.0).train()  # no dropout draws
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.eval()
        seen: list[int] = []
        m.fuse.register_forward_pre_hook(lambda _m, args, seen=seen: seen.append(args[0].shape[0]))
        torch.manual_seed(3)  # the same MWDis draws
        outs[mode] = m(batch)
        encoded[mode] = seen[0]
    a, r = outs["all"], outs["resampled"]
    assert encoded["all"] == 24 and 12 < encoded["resampled"] < 24
    assert torch.allclose(a.logits, r.logits, atol=1e-5)
    assert torch.allclose(a.aux_losses["invariance"], r.aux_losses["invariance"], atol=1e-6)
    assert torch.allclose(a.embeddings["caption"], r.embeddings["caption"], atol=1e-5)


def test_attention_maps_cover_the_image_tokens_for_every_sample(ucm):
    """What AttentionMapFigures draws: per level, caption→image attention averaged over the caption's words
    (or over the no-caption token for a sample without caption); a distribution over the image tokens."""
    spec, batch = ucm
    m = model(spec, return_attention=True).eval()
    with torch.no_grad():
        out = m(batch)
    pooled, full = out.attention["text_to_image_pooled"], out.attention["text_to_image"]
    assert pooled.shape == (12, 2, 4)  # 64 px: a 2 × 2 stride-32 map
    assert torch.allclose(pooled.sum(-1), torch.ones(12, 2), atol=1e-5)
    assert torch.allclose(pooled[3], full[3, :, 0])  # batch["text"][3] == "": the no-caption token's row
    assert not torch.allclose(pooled[0], full[0, :, 0])  # a captioned sample: its words, not that token


def test_mwdis_on_the_frozen_prefix_runs_the_frozen_stages_once(ucm):
    """``mwdis.at: frozen_prefix``: MWDis resamples the frozen stem + stages' output, so those stages see the
    batch once and only the trainable ones see both views; the split forward is the plain one, bit for bit."""
    spec, batch = ucm
    split = model(
        spec, freeze="stages:3", caption_dropout=0.0, mwdis={"at": "frozen_prefix", "p": 1.0}
    ).train()
    rows: dict[str, list[int]] = {"first": [], "trainable": []}
    blocks = split.backbone.backbone.blocks
    blocks[0].register_forward_pre_hook(lambda _m, a: rows["first"].append(a[0].shape[0]))
    blocks[3].register_forward_pre_hook(lambda _m, a: rows["trainable"].append(a[0].shape[0]))
    out = split(batch)
    assert rows == {"first": [12], "trainable": [24]}
    loss = torch.nn.functional.cross_entropy(out.logits, batch["label"]) + sum(out.aux_losses.values())
    loss.backward()
    g = dict(split.named_parameters())["backbone.backbone.blocks.3.0.conv_pw.weight"].grad
    assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
    assert out.aux_losses["invariance"] > 0  # the resampled view differs from the original
    x = batch["image_rgb"].contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        whole = split.backbone.forward_multiscale(x, split.reductions)
        parts = forward_multiscale_from_prefix(
            split.backbone, forward_prefix(split.backbone, x), split.reductions
        )
    assert all(torch.equal(a, b) for a, b in zip(whole.maps, parts.maps, strict=True))
    assert torch.equal(whole.pooled, parts.pooled) and torch.equal(whole.tokens, parts.tokens)


def test_views_made_at_the_prefix_or_the_input_agree_when_mwdis_changes_nothing(ucm):
    """MWDis patched to mark every other sample resampled but leave its pixels as they are: the second view made
    from the frozen prefix's output is then the one made from the input, so with ``second_view: resampled``
    both positions encode the same rows (captions included) and give the same logits and losses. What differs
    with a real MWDis is only where its statistics are swapped."""
    spec, batch = ucm
    donor = torch.tensor([i if i % 2 == 0 else -1 for i in range(12)])

    def unchanged(images, domain, *, labels=None, generator=None):
        return MWDisOutput(images=dict(images), donor=donor, donors=dict.fromkeys(images, donor))

    outs, rows = {}, {}
    for at in ("input", "frozen_prefix"):
        m = model(spec, freeze="stages:3", caption_dropout=0.0, second_view="resampled", mwdis={"at": at})
        if at == "frozen_prefix":
            m.load_state_dict(outs["input"][0].state_dict())
        m.train().mwdis.resample = unchanged  # type: ignore[union-attr]
        seen: list[int] = []
        m.backbone.backbone.blocks[3].register_forward_pre_hook(
            lambda _m, a, seen=seen: seen.append(a[0].shape[0])
        )
        outs[at], rows[at] = (m, m(batch)), seen
    a, b = outs["input"][1], outs["frozen_prefix"][1]
    assert rows == {"input": [18], "frozen_prefix": [18]}  # 12 originals + the 6 resampled samples' views
    # float rounding only: the prefix convolves 12 images here and 18 there
    assert torch.allclose(a.logits, b.logits, atol=1e-3)
    assert a.aux_losses.keys() == b.aux_losses.keys()
    assert all(torch.allclose(a.aux_losses[k], b.aux_losses[k], atol=1e-4) for k in a.aux_losses)
    assert torch.allclose(a.embeddings["caption"], b.embeddings["caption"], atol=1e-3)
