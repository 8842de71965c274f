"""FVMGN and its parts: contract, batch independence, gradients into every stem, each ablation switch."""

from __future__ import annotations

import pytest
import torch

from _tiny import with_options
from rsmg.data.spec import DataSpec
from rsmg.errors import ConfigError, DataError
from rsmg.models.base import ModelOutput
from rsmg.models.fvmgn import FVMGN
from rsmg.models.fvmgn_options import AlignmentOptions, SFIEOptions, TextOptions
from rsmg.models.sfie import SFIE, FrequencyBlock

CLASSES = ("trees", "grass", "ground", "road", "buildings", "water")
SPEC = DataSpec(
    classes=CLASSES,
    modalities={"hsi": 7, "lidar": 2},
    domains=("trento", "muufl", "houston2013"),
    source_domains=("trento", "muufl"),
    patch_size=11,
)
TINY = {
    "text": TextOptions(tower="clip-bpe", tower_kwargs={"width": 16, "layers": 1, "heads": 2}),
    "sfie": SFIEOptions(width=8, attn_heads=2),
    "alignment": AlignmentOptions(embed_dim=16),
}


def make(**kw) -> FVMGN:
    """The tiny FVMGN; a dict for a section (``mwdis={"p": 1.0}``) changes only those fields of it."""
    torch.manual_seed(0)
    return FVMGN(SPEC, **with_options(TINY, **kw))


def batch(b: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "image_hsi": torch.randn(b, 7, 11, 11, generator=g),
        "image_lidar": torch.randn(b, 2, 11, 11, generator=g) * 3 + 1,
        "label": torch.arange(b) % len(CLASSES),
        "domain": torch.arange(b) % 2,
    }


@pytest.fixture(scope="module")
def model() -> FVMGN:
    return make(mwdis={"p": 1.0})


def test_contract_training(model):
    model.train()
    out = model(batch())
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (6, len(CLASSES))
    assert set(out.aux_losses) == {"align", "invariance"}  # ce_resampled only with mwdis.logits: original
    assert all(v.ndim == 0 and v.isfinite() for v in out.aux_losses.values())
    assert set(out.embeddings) == {"fused", "hsi", "lidar"}
    assert all(v.shape[0] == 6 for v in out.embeddings.values())


def test_eval_has_no_aux_and_is_batch_independent(model):
    model.eval()
    b = batch(5)
    full = model(b)
    assert full.aux_losses == {}
    for i in (0, 3):
        alone = model({k: v[i : i + 1] for k, v in b.items()})
        torch.testing.assert_close(alone.logits, full.logits[i : i + 1], atol=1e-5, rtol=0)
        torch.testing.assert_close(
            alone.embeddings["fused"], full.embeddings["fused"][i : i + 1], atol=1e-5, rtol=0
        )


def test_gradients_flow_through_mwdis_into_every_stem(model):
    model.train()
    b = batch()
    b["image_hsi"].requires_grad_(True)
    model.zero_grad()
    out = model(b)
    loss = torch.nn.functional.cross_entropy(out.logits, b["label"]) + sum(out.aux_losses.values())
    loss.backward()
    for m in SPEC.modalities:
        stem = model.encoder.branches[m].stem
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in stem.parameters()), m
    assert b["image_hsi"].grad is not None and b["image_hsi"].grad.abs().sum() > 0  # through MWDis
    assert model.align.logit_scale.grad is not None and model.align.text_proj.weight.grad is not None


def _encoder_inputs(m: FVMGN, b: dict) -> dict[str, torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}
    h = m.encoder.register_forward_pre_hook(lambda mod, args: seen.update(args[0]))
    try:
        m(b)
    finally:
        h.remove()
    return seen


def test_switch_use_mwdis():
    b = batch()
    on, off = make(mwdis={"p": 1.0}).train(), make(mwdis={"enabled": False}).train()
    x_on, x_off = _encoder_inputs(on, b), _encoder_inputs(off, b)
    assert x_on["hsi"].shape[0] == 12 and x_off["hsi"].shape[0] == 6
    torch.testing.assert_close(x_on["hsi"][:6], b["image_hsi"])
    assert not torch.allclose(x_on["hsi"][6:], b["image_hsi"])  # resampled view
    assert torch.equal(x_off["hsi"], b["image_hsi"])
    assert "invariance" in on(b).aux_losses and "invariance" not in off(b).aux_losses


def test_switch_use_frequency():
    b = batch()
    on, off = (
        make(mwdis={"enabled": False}).train(),
        make(mwdis={"enabled": False}, frequency={"enabled": False}).train(),
    )
    assert any(isinstance(x, FrequencyBlock) for x in on.modules())
    assert not any(isinstance(x, FrequencyBlock) for x in off.modules())
    assert not any(k == "frequency" for _, _, k in off.align.keys)
    # the frequency pathway takes part in the alignment loss: perturbing it changes "align"
    a0 = on(b).aux_losses["align"].item()
    with torch.no_grad():
        for blk in on.modules():
            if isinstance(blk, FrequencyBlock):
                blk.mix[0].weight.mul_(-1.5)
    assert on(b).aux_losses["align"].item() != pytest.approx(a0, abs=1e-6)


def test_switch_frequency_kind():
    x = torch.randn(2, 4, 11, 11)
    wav, fft = FrequencyBlock(4, "wavelet"), FrequencyBlock(4, "fft")
    assert wav.transform(x).shape == (2, 16, 6, 6)
    assert fft.transform(x).shape == (2, 4, 11, 6)


def test_fft_phase_pathway_sees_layout_that_amplitude_cannot():
    torch.manual_seed(0)
    amp, phase = FrequencyBlock(4, "fft"), FrequencyBlock(4, "fft_phase")
    x = torch.randn(2, 4, 11, 11)
    shifted = torch.roll(x, shifts=(3, 5), dims=(-2, -1))  # same content, moved (circularly)
    # amplitude is blind to a circular shift, the phase is not
    torch.testing.assert_close(amp.transform(shifted), amp.transform(x), atol=1e-5, rtol=1e-5)
    tx, ts = phase.transform(x), phase.transform(shifted)
    assert tx.shape == (2, 12, 11, 6)
    torch.testing.assert_close(ts[:, :4], tx[:, :4], atol=1e-5, rtol=1e-5)  # the amplitude part
    assert (ts[:, 4:] - tx[:, 4:]).abs().max() > 0.5
    # unit phasor: cos² + sin² = 1 wherever the amplitude is clear of the 1e-6 guard against zero amplitude
    norm = tx[:, 4:8] ** 2 + tx[:, 8:] ** 2
    clear = torch.expm1(tx[:, :4]) > 1e-2
    assert clear.float().mean() > 0.9
    torch.testing.assert_close(norm[clear], torch.ones_like(norm[clear]), atol=1e-4, rtol=0)
    # finite gradients even where the spectrum vanishes (constant map: every non-DC bin is 0)
    flat = torch.ones(1, 4, 6, 6, requires_grad=True)
    phase.transform(flat).sum().backward()
    assert torch.isfinite(flat.grad).all()
    # the FVMGN switch builds it and trains through it
    m = make(frequency={"kind": "fft_phase"}, mwdis={"enabled": False}).train()
    out = m(batch())
    (out.logits.sum() + out.aux_losses["align"]).backward()
    blocks = [b for b in m.modules() if isinstance(b, FrequencyBlock)]
    assert blocks and all(b.kind == "fft_phase" and b.mix[0].in_channels % 3 == 0 for b in blocks)
    assert all(b.mix[0].weight.grad is not None for b in blocks)


def test_switch_texts_changes_prototypes_and_loss():
    b = batch()
    ref = make(text={"use": "both"}, mwdis={"enabled": False})
    sd = ref.state_dict()
    outs = {}
    for kind in ("both", "shared", "proprietary"):
        m = make(text={"use": kind}, mwdis={"enabled": False})
        m.load_state_dict(sd)  # identical weights and text features: only the switch differs
        m.train()
        outs[kind] = m(b)
    for a, c in (("both", "shared"), ("both", "proprietary"), ("shared", "proprietary")):
        assert not torch.allclose(outs[a].logits, outs[c].logits)
        assert outs[a].aux_losses["align"].item() != pytest.approx(
            outs[c].aux_losses["align"].item(), abs=1e-6
        )


def test_switch_multiscale_alignment():
    b = batch()
    ms, last = (
        make(mwdis={"enabled": False}).train(),
        make(mwdis={"enabled": False}, alignment={"multiscale": False}).train(),
    )
    assert {s for _, s, _ in ms.align.keys} == {0, 1} and {s for _, s, _ in last.align.keys} == {1}
    missing, unexpected = last.load_state_dict(ms.state_dict(), strict=False)
    assert not missing and all("__s0__" in k for k in unexpected)
    o_ms, o_last = ms(b), last(b)
    torch.testing.assert_close(o_ms.logits, o_last.logits)  # same classifier
    assert o_ms.aux_losses["align"].item() != pytest.approx(o_last.aux_losses["align"].item(), abs=1e-6)


def test_texts_none_is_image_only():
    m = make(text={"use": "none"}).train()
    assert m.align is None and m.text_tower is None and isinstance(m.head, torch.nn.Linear)
    out = m(batch())
    assert set(out.aux_losses) == {"invariance"}
    assert out.logits.shape == (6, len(CLASSES))
    original = make(text={"use": "none"}, mwdis={"logits": "original"}).train()
    assert set(original(batch()).aux_losses) == {"invariance", "ce_resampled"}  # a term of its own there


def test_trainable_text_tower_gets_gradients():
    m = make(text={"freeze": False}, mwdis={"enabled": False}).train()
    out = m(batch())
    out.aux_losses["align"].backward()
    emb = m.text_tower.model.token_embedding.weight
    assert emb.grad is not None and emb.grad.abs().sum() > 0


def test_frozen_text_features_are_restored_from_checkpoint():
    a = make()
    torch.manual_seed(123)  # a different random clip-bpe tower → different text features
    b = FVMGN(SPEC, **TINY)
    assert not torch.allclose(a.text_shared, b.text_shared)
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a.text_shared, b.text_shared)


def test_bad_inputs():
    m = make().eval()
    b = batch()
    with pytest.raises(DataError, match="image_sar"):
        m({**b, "image_sar": torch.randn(6, 2, 11, 11)})
    with pytest.raises(DataError, match="image_lidar"):
        m({k: v for k, v in b.items() if k != "image_lidar"})
    with pytest.raises(DataError, match="image_hsi"):
        m({**b, "image_hsi": torch.randn(6, 5, 11, 11)})
    with pytest.raises(ConfigError, match="texts"):
        make(text={"use": "captions"})
    tiny = DataSpec(classes=CLASSES, modalities={"hsi": 3}, patch_size=1)
    with pytest.raises(ConfigError, match=r"mwdis\.levels"):
        FVMGN(tiny, **TINY)
    with pytest.raises(ConfigError, match="scales"):
        FVMGN(tiny, **with_options(TINY, mwdis={"enabled": False}))
    FVMGN(
        tiny, **with_options(TINY, mwdis={"enabled": False}, frequency={"enabled": False}, sfie={"scales": 1})
    )({"image_hsi": torch.randn(2, 3, 1, 1)})  # 1×1 vectors work without the wavelet parts


def test_sfie_any_channel_count_and_scales():
    enc = SFIE({"hsi": 144, "sar": 4}, width=8, scales=3, attn_heads=2, frequency="fft").eval()
    out = enc({"hsi": torch.randn(2, 144, 13, 13), "sar": torch.randn(2, 4, 13, 13)})
    assert [t.shape[-1] for t in out.maps["hsi"]] == [13, 7, 4]
    assert [t.shape[1] for t in out.spatial["sar"]] == [8, 16, 32]
    assert len(out.frequency["sar"]) == 3 and out.fused.shape == (2, 32)


def test_switch_global_blocks_and_fuse_norm():
    from rsmg.models.sfie import GlobalBlock

    on = make(mwdis={"enabled": False}).eval()
    off = make(mwdis={"enabled": False}, sfie={"global_blocks": False, "fuse_norm": False}).eval()
    assert any(isinstance(x, GlobalBlock) for x in on.modules())
    assert not any(isinstance(x, GlobalBlock) for x in off.modules())
    assert not any(isinstance(x, torch.nn.LayerNorm) for x in off.encoder.fuse)
    # local-only SFIE still gives every output and passes gradients to the stems
    off.train()
    out = off(batch())
    (out.logits.sum() + out.aux_losses["align"]).backward()
    for m in ("hsi", "lidar"):
        assert off.encoder.branches[m].stem[0].weight.grad.abs().sum() > 0
    # with the LayerNorm (at init) every fused vector has mean 0 and std 1; without it, it keeps its own scale
    x = torch.randn(3, 2, 11, 11, generator=torch.Generator().manual_seed(1)) * 5
    fused = {}
    for norm in (True, False):
        torch.manual_seed(0)
        enc = SFIE({"lidar": 2}, width=8, scales=1, attn_heads=2, fuse_norm=norm).eval()
        fused[norm] = enc({"lidar": x}).fused
    torch.testing.assert_close(fused[True].std(1, unbiased=False), torch.ones(3), atol=1e-3, rtol=0)
    assert not torch.allclose(fused[False].std(1, unbiased=False), torch.ones(3), atol=0.05)


def test_channels_last_is_a_layout_switch_only():
    """``channels_last`` changes memory layout, not maths: same logits, losses and gradients as NCHW."""
    ref = make(mwdis={"p": 1.0}, channels_last=False)
    fast = make(mwdis={"p": 1.0})  # the default layout
    assert fast.channels_last and not ref.channels_last
    fast.load_state_dict(ref.state_dict())
    convs = [
        m.weight for m in fast.encoder.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)
    ]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not all(w.is_contiguous() for w in convs)  # the layout really changed
    with torch.no_grad():
        torch.testing.assert_close(
            fast.eval()(batch()).logits, ref.eval()(batch()).logits, atol=1e-5, rtol=1e-5
        )
    grads = {}
    for name, m in (("ref", ref), ("fast", fast)):
        m.train()
        torch.manual_seed(3)  # MWDis draws donors and jitters: same draws for both layouts
        out = m(batch())
        (out.logits.sum() + out.aux_losses["align"] + out.aux_losses["invariance"]).backward()
        grads[name] = m.encoder.branches["hsi"].stem[0].weight.grad
    torch.testing.assert_close(grads["fast"], grads["ref"], atol=1e-4, rtol=1e-4)


def test_mwdis_at_stem_resamples_stem_features():
    """``mwdis.at: stem``: MWDis receives the stems' feature maps, gradients reach every stem, eval unchanged."""
    ref = make(mwdis={"p": 1.0})
    stem = make(mwdis={"p": 1.0, "at": "stem"})
    stem.load_state_dict(ref.state_dict())
    # eval: MWDis is the identity wherever it sits (checked before training steps move BatchNorm statistics)
    with torch.no_grad():
        torch.testing.assert_close(stem.eval()(batch()).logits, ref.eval()(batch()).logits)
    seen: list[dict[str, tuple[int, ...]]] = []
    stem.mwdis.register_forward_hook(
        lambda mod, args, out: seen.append({m: tuple(v.shape) for m, v in out.items()})
    )
    stem.train()
    out = stem(batch())
    width = TINY["sfie"].width
    assert seen == [{"hsi": (6, width, 11, 11), "lidar": (6, width, 11, 11)}]  # features, not 7/2-band inputs
    (out.logits.sum() + out.aux_losses["align"] + out.aux_losses["invariance"]).backward()
    for m in ("hsi", "lidar"):
        assert stem.encoder.branches[m].stem[0].weight.grad.abs().sum() > 0
    # the two training views really differ (resampled stem features), and differ from input-level MWDis
    assert out.aux_losses["invariance"] > 1e-4
    with torch.no_grad():
        torch.manual_seed(5)
        a = stem(batch()).logits
        torch.manual_seed(5)
        b = ref.train()(batch()).logits
    assert not torch.allclose(a, b, atol=1e-4)
    with pytest.raises(ConfigError, match=r"mwdis\.at"):
        make(mwdis={"at": "logits"})


def test_mwdis_high_swap_and_donors_reach_mwdis():
    assert make(mwdis={"high_swap": True}).mwdis.high_swap and not make().mwdis.high_swap
    assert (
        make(mwdis={"donors": "per_modality"}).mwdis.donors == "per_modality"
        and make().mwdis.donors == "shared"
    )


def test_kl_alignment_targets_and_switch():
    """``alignment.loss: kl``: soft targets from frozen text similarity; the loss is minimal at the target."""
    from rsmg.models.alignment import MSFFA

    msffa = MSFFA(["lidar"], [8], 8, 4, embed_dim=4, loss="kl", kl_target_temperature=0.1)
    text = torch.tensor([[1.0, 0, 0, 0], [0.9, 0.1, 0, 0], [0, 0, 1.0, 0]])
    q = msffa.soft_targets(text)
    torch.testing.assert_close(q.sum(1), torch.ones(3))
    assert q[0, 1] > q[0, 2] and q[0, 0] == q[0].max()  # similar classes share mass, own class most
    ref = make(mwdis={"enabled": False})
    kl = make(mwdis={"enabled": False}, alignment={"loss": "kl"})
    kl.load_state_dict(ref.state_dict())
    a, b = ref.train()(batch()).aux_losses["align"], kl.train()(batch()).aux_losses["align"]
    assert torch.isfinite(b) and b >= 0 and not torch.allclose(a, b)
    b.backward()
    assert kl.encoder.branches["hsi"].stem[0].weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match=r"alignment\.loss"):
        make(alignment={"loss": "cosine"})


def test_spatial_reduction_attention_pools_keys_and_keeps_parameters():
    from rsmg.models.sfie import GlobalBlock

    torch.manual_seed(0)
    full, pooled = GlobalBlock(16, 4), GlobalBlock(16, 4, sr_ratio=2)
    pooled.load_state_dict(full.state_dict())  # same parameters for every ratio
    x = torch.randn(3, 16, 11, 11, requires_grad=True)
    y_full, y_pooled = full(x), pooled(x)
    assert y_pooled.shape == y_full.shape
    assert not torch.allclose(y_pooled, y_full, atol=1e-4)  # the switch changes the computation
    y_pooled.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # ratio 1 is exactly the full block, and pooling a 1-pixel map changes nothing
    same = GlobalBlock(16, 4, sr_ratio=1)
    same.load_state_dict(full.state_dict())
    torch.testing.assert_close(same(x), y_full)
    one = torch.randn(2, 16, 1, 1)
    torch.testing.assert_close(pooled(one), full(one), atol=1e-6, rtol=1e-5)
    with pytest.raises(ConfigError, match="attn_sr_ratios"):
        GlobalBlock(16, 4, sr_ratio=0)
    with pytest.raises(ConfigError, match="attn_sr_ratios"):
        make(sfie={"attn_sr_ratios": [2]})
    m = make(sfie={"attn_sr_ratios": [2, 1]}, mwdis={"enabled": False}).train()
    blocks = [b for b in m.modules() if isinstance(b, GlobalBlock)]
    assert [b.sr_ratio for b in blocks[:2]] == [2, 1]
    m(batch()).logits.sum().backward()
    assert all(b.qkv.weight.grad is not None for b in blocks)


def test_attention_heads_per_scale_change_the_maths_not_the_parameters():
    """``sfie.attn_heads: [2, 4]``: each scale's blocks get their own count; checkpoints load across counts."""
    from rsmg.models.sfie import SFIE, GlobalBlock

    one = make(
        sfie={"attn_heads": 2}, mwdis={"enabled": False}
    ).eval()  # width 8: scales of 8 and 16 channels
    per_scale = make(sfie={"attn_heads": [2, 4]}, mwdis={"enabled": False}).eval()
    heads = [[b.heads for b in branch.glob] for branch in per_scale.encoder.branches.values()]
    assert heads == [[2, 4], [2, 4]]  # every modality, per scale
    per_scale.load_state_dict(one.state_dict())  # head counts split the same weights: same parameter shapes
    x = batch()
    with torch.no_grad():
        two_heads, per_scale_heads = one(x).logits, per_scale(x).logits
    assert not torch.allclose(two_heads, per_scale_heads, atol=1e-5)  # 4 heads at scale 2 is other attention
    # scale 1 alone: 2 heads in both, so a 1-scale model is equal whatever the list's first entry says
    a, b = (
        make(sfie={"attn_heads": 2, "scales": 1}, mwdis={"enabled": False}).eval(),
        make(sfie={"attn_heads": [2], "scales": 1}, mwdis={"enabled": False}),
    )
    b.eval().load_state_dict(a.state_dict())
    torch.testing.assert_close(a(x).logits, b(x).logits)
    # unset: one head per 16 channels at each scale (at least one)
    assert SFIE({"lidar": 2}, width=32, scales=2).attn_heads == (2, 4)
    assert SFIE({"lidar": 2}, width=64, scales=1).attn_heads == (4,)
    assert SFIE({"lidar": 2}, width=8, scales=3, frequency="none").attn_heads == (1, 1, 2)
    per_scale.train()(batch()).logits.sum().backward()
    blocks = [m for m in per_scale.modules() if isinstance(m, GlobalBlock)]
    assert all(blk.qkv.weight.grad is not None for blk in blocks)
    with pytest.raises(ConfigError, match="one attention-head count per scale") as err:
        make(sfie={"attn_heads": [2]})
    assert "attn_heads" in str(err.value) and "2 integers" in str(err.value)
    with pytest.raises(ConfigError, match="attn_heads"):
        make(sfie={"attn_heads": [3, 4]})  # 3 does not divide 8 channels
    with pytest.raises(ConfigError, match="at least 1"):
        make(sfie={"attn_heads": [0, 4]})


def test_stem_kinds_auto_rule_and_checkpoint_mismatch_error():
    """``sfie.stem``: auto = 1×1 only where a modality has more bands than the width; each kind changes the maths."""
    auto = make(
        sfie={"width": 4, "stem": "auto"}, mwdis={"enabled": False}
    )  # hsi 7 bands > 4: pointwise; lidar 2 bands: spatial
    kernel = {m: b.stem[0].kernel_size for m, b in auto.encoder.branches.items()}
    assert kernel == {"hsi": (1, 1), "lidar": (3, 3)}
    assert {
        m: b.stem_kind
        for m, b in make(mwdis={"enabled": False}, sfie={"stem": "auto"}).encoder.branches.items()
    } == {
        "hsi": "spatial",  # 7 bands, width 8: no band reduction to do
        "lidar": "spatial",
    }
    point = make(sfie={"width": 4}, mwdis={"enabled": False})  # the default
    assert {b.stem_kind for b in point.encoder.branches.values()} == {"pointwise"}
    spatial = make(sfie={"width": 4, "stem": "spatial"}, mwdis={"enabled": False})
    assert {b.stem[0].kernel_size for b in point.encoder.branches.values()} == {(1, 1)}
    assert {b.stem[0].kernel_size for b in spatial.encoder.branches.values()} == {(3, 3)}
    b = batch()
    outs = [m.eval()(b).logits for m in (auto, point, spatial)]
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[0], outs[2])
    spatial.train()(b).logits.sum().backward()
    assert all(br.stem[0].weight.grad.abs().sum() > 0 for br in spatial.encoder.branches.values())
    with pytest.raises(ConfigError, match="stem"):
        make(sfie={"stem": "3x3"})
    # a checkpoint of the other kind: an error naming the setting and the fix, not a tensor-shape mismatch
    with pytest.raises(ConfigError, match="stem='pointwise'"):
        auto.load_state_dict(point.state_dict())


@pytest.mark.parametrize("frequency", ["wavelet", "fft_phase"])
def test_encoder_traces_as_one_graph(frequency):
    """``torch.compile`` sees SFIE as one graph: no graph breaks (each one costs a launch-bound GPU step).

    The wavelet pathway used to build a ``pywt.Wavelet`` in every forward (level check); Dynamo cannot trace
    it, which split SFIE into 12 graphs and made the compiled step 20 % slower than eager on an H200.
    """
    m = make(mwdis={"enabled": False}, frequency={"kind": frequency}).train()
    images = {k.removeprefix("image_"): v for k, v in batch().items() if k.startswith("image_")}
    torch._dynamo.reset()
    explained = torch._dynamo.explain(m.encoder)(images)
    assert explained.graph_break_count == 0, [str(b.reason)[:200] for b in explained.break_reasons]
    assert explained.graph_count == 1


def test_max_level_matches_pywt():
    """The pure-Python level rule used inside compiled code equals ``pywt.dwt_max_level`` everywhere."""
    import pywt

    from rsmg.models.wavelet import _max_level

    for name in pywt.wavelist(kind="discrete"):
        n_taps = pywt.Wavelet(name).dec_len
        assert [_max_level(n, n_taps) for n in range(300)] == [
            pywt.dwt_max_level(n, n_taps) for n in range(300)
        ]


@pytest.mark.slow
def test_compile_encoder_matches_eager_and_keeps_checkpoint_names():
    """``compile_encoder`` compiles SFIE in place: same parameter names (checkpoints load both ways), same maths."""
    eager = make(mwdis={"p": 1.0})
    compiled = make(mwdis={"p": 1.0}, compile_encoder=True)
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # no "_orig_mod." prefix
    compiled.load_state_dict(eager.state_dict())
    assert compiled.encoder._compiled_call_impl is not None and eager.encoder._compiled_call_impl is None
    grads, losses = {}, {}
    for name, m in (("eager", eager), ("compiled", compiled)):
        m.train()
        torch.manual_seed(3)  # MWDis draws donors and jitters: same draws for both
        out = m(batch())
        loss = out.logits.logsumexp(-1).sum() + out.aux_losses["align"] + out.aux_losses["invariance"]
        loss.backward()
        losses[name] = loss.detach()
        grads[name] = {k: p.grad for k, p in m.named_parameters() if p.grad is not None}
    torch.testing.assert_close(losses["compiled"], losses["eager"], atol=1e-4, rtol=1e-4)
    assert grads["compiled"].keys() == grads["eager"].keys() and len(grads["eager"]) > 10
    for k, g in grads["eager"].items():
        torch.testing.assert_close(grads["compiled"][k], g, atol=1e-4, rtol=1e-3, msg=k)


def test_same_class_donors_reach_mwdis_from_the_batch_labels(monkeypatch):
    m = make(mwdis={"p": 1.0, "donor_class": "same"}).train()
    seen: list[torch.Tensor | None] = []
    pick = m.mwdis.pick_donors

    def spy(domain, *, labels=None, generator=None):
        seen.append(labels)
        return pick(domain, labels=labels, generator=generator)

    monkeypatch.setattr(m.mwdis, "pick_donors", spy)
    b = batch(8)
    out = m(b)
    assert len(seen) == 1 and torch.equal(seen[0], b["label"])
    assert out.aux_losses["invariance"].isfinite()


def test_mwdis_that_could_never_resample_is_refused():
    one_source = DataSpec(
        classes=CLASSES, modalities={"lidar": 2}, domains=("trento", "muufl"), source_domains=("trento",),
        patch_size=11,
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"mwdis\.same_domain_fallback"):
        FVMGN(one_source, **TINY)
    FVMGN(one_source, **with_options(TINY, mwdis={"same_domain_fallback": True}))
    FVMGN(one_source, **with_options(TINY, mwdis={"enabled": False}))
    with pytest.raises(ConfigError, match=r"mwdis\.p"):
        make(mwdis={"p": 0.0})


def test_wavelet_pathway_size_is_checked_for_every_wavelet_at_construction():
    # 11 px at 3 scales: a 3×3 last map takes one Haar level but no db2 level (4 taps)
    make(sfie={"scales": 3}, wavelet="haar")
    with pytest.raises(ConfigError, match="scales") as e:
        make(sfie={"scales": 3}, wavelet="db2")
    assert "'db2'" in str(e.value) and "fewer sfie.scales" in str(e.value)
    make(sfie={"scales": 3}, frequency={"kind": "fft"}, wavelet="db2")  # the FFT pathway has no such limit


def test_invariance_is_float32_under_cpu_bf16_autocast():
    m = make(mwdis={"p": 1.0}).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(batch(8))
    assert out.aux_losses["invariance"].dtype == torch.float32


def test_logit_scale_is_clamped_as_a_parameter_so_its_gradient_never_dies():
    """CLIP's habit: the parameter is kept in [0, ln 100]; clamping exp() instead froze it above the cap."""
    import math

    m = make(mwdis={"p": 1.0}).train()
    for start, expected in ((5.0, math.log(100.0)), (-3.0, 0.0)):
        with torch.no_grad():
            m.align.logit_scale.fill_(start)
        m.zero_grad()
        out = m(batch(8))
        (
            out.aux_losses["align"] + torch.nn.functional.cross_entropy(out.logits, batch(8)["label"])
        ).backward()
        assert m.align.logit_scale.item() == pytest.approx(expected)
        assert m.align.logit_scale.grad is not None and m.align.logit_scale.grad.abs() > 0
    m.eval()
    with torch.no_grad():
        m.align.logit_scale.fill_(
            7.0
        )  # e.g. a hand-edited checkpoint: eval reads it clamped, without writing
    assert m.align.scale().item() == pytest.approx(100.0) and m.align.logit_scale.item() == 7.0
