"""The concat-CNN baseline, with and without FVMGN's MWDis as a training augmentation."""

from __future__ import annotations

import pytest
import torch

from rsmg.data.spec import DataSpec
from rsmg.errors import ConfigError
from rsmg.models.baseline import ConcatCNN

SPEC = DataSpec(
    classes=("trees", "ground", "road", "buildings"),
    modalities={"hsi": 7, "lidar": 2},
    domains=("trento", "muufl", "houston2013"),
    source_domains=("trento", "muufl"),
    patch_size=11,
)


def batch(b: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "image_hsi": torch.randn(b, 7, 11, 11, generator=g) * 2 + 3,
        "image_lidar": torch.randn(b, 2, 11, 11, generator=g) * 5 + 1,
        "label": torch.arange(b) % 4,
        "domain": torch.arange(b) % 2,
    }


def make(**kw) -> ConcatCNN:
    torch.manual_seed(0)
    return ConcatCNN(SPEC, width=8, dropout=0.0, **kw)


def _encoder_inputs(model: ConcatCNN, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        enc.register_forward_pre_hook(lambda _m, args, name=name: seen.__setitem__(name, args[0].detach()))
        for name, enc in model.encoders.items()
    ]
    try:
        model(b)
    finally:
        for h in hooks:
            h.remove()
    return seen


def test_plain_baseline_has_no_mwdis():
    model = make()
    assert model.mwdis is None
    seen = _encoder_inputs(model.train(), batch())
    assert torch.equal(seen["lidar"], batch()["image_lidar"])


def test_mwdis_resamples_training_inputs_only_and_adds_no_parameters():
    plain, aug = make(), make(mwdis_p=1.0)
    assert aug.state_dict().keys() == plain.state_dict().keys()  # checkpoints interchangeable
    aug.load_state_dict(plain.state_dict())
    b = batch()
    with torch.no_grad():  # eval: MWDis is the identity, so the two models agree exactly
        torch.testing.assert_close(aug.eval()(b).logits, plain.eval()(b).logits)
    torch.manual_seed(1)
    seen = _encoder_inputs(aug.train(), b)
    for m in ("hsi", "lidar"):
        assert not torch.allclose(seen[m], b[f"image_{m}"]), m  # p = 1: every sample has a donor
    # the resampled LL statistics come from the other source domain: per-sample means change
    assert not torch.allclose(
        seen["lidar"].mean(dim=(-2, -1)), b["image_lidar"].mean(dim=(-2, -1)), atol=1e-3
    )


def test_mwdis_baseline_trains():
    model = make(mwdis_p=1.0).train()
    out = model(batch())
    torch.nn.functional.cross_entropy(out.logits, batch()["label"]).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_mwdis_needs_a_patch_the_wavelet_can_split():
    tiny = DataSpec(
        classes=("a", "b"), modalities={"lidar": 2}, domains=("s", "t"), source_domains=("s",), patch_size=1
    )
    with pytest.raises(ConfigError, match="mwdis_levels"):
        ConcatCNN(tiny, mwdis_p=0.5)
    ConcatCNN(tiny)  # the plain baseline takes 1×1 inputs
