"""Scene classifiers (ERM, linear probe, MixStyle) and FVMGN-scenes on real scene images.

Every model is built from the spec of a real :class:`SceneDomainDataModule` (UC Merced and RSSCN7's first zoom
block as two source domains, scene5, 64 px) and trained one step on a real batch holding both domains. The
backbone is EfficientNet-Lite0 with random weights and the text tower a tiny random CLIP tower: the weights do not
change what is checked here (shapes, terms, donors, switches), and the pretrained ones are exercised by the
end-to-end fit in ``test_scene_fit.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from _paths import SHARED_DATA, missing_shared_data
from _tiny import with_options
from rsmg.data.scene_domains import SceneDomainDataModule
from rsmg.data.spec import DataSpec
from rsmg.models.alignment import domain_class_infonce
from rsmg.models.fvmgn_options import AlignmentOptions, FrequencyOptions, TextOptions
from rsmg.models.fvmgn_scenes import SceneFVMGN
from rsmg.models.mixstyle import MixStyle, stage_modules
from rsmg.models.registry import create_model, list_models
from rsmg.models.scene_models import SceneClassifier
from rsmg.models.wavelet import MWDisOutput
from rsmg.text.class_texts import load_class_texts

TINY: dict[str, Any] = {
    "text": TextOptions(
        class_set="scene5",
        tower="clip-bpe",
        pretrained=False,
        tower_kwargs={"width": 32, "layers": 1, "heads": 2},
    ),
    "alignment": AlignmentOptions(embed_dim=32),
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small batches: one thread is faster than contending for shared cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def scenes() -> tuple[DataSpec, dict[str, Any]]:
    """Spec and a real 8-image training batch, 4 images from each source domain (ucm, rsscn7_zoom1)."""
    for folder in ("ucm_150", "rsscn7"):
        if not (SHARED_DATA / folder).is_dir():
            missing_shared_data(SHARED_DATA / folder, f"scene folder {folder}")
    dm = SceneDomainDataModule(
        ["ucm", "rsscn7_zoom1"],
        ["rsscn7_zoom4"],
        root=str(SHARED_DATA),
        image_size=64,
        source_split="per_class:4",
        val_fraction=0.25,
        batch_size=8,
    )
    dm.setup("fit")
    ds = dm.train_dataset()
    idx = [int(i) for d in (0, 1) for i in np.flatnonzero(ds.domains == d)[::3][:4]]
    batch = dict(ds.__getitems__(idx))
    assert sorted(batch["domain"].tolist()) == [0, 0, 0, 0, 1, 1, 1, 1]
    return dm.spec, batch


def fvmgn(spec: DataSpec, **kwargs: Any) -> SceneFVMGN:
    torch.manual_seed(0)
    return SceneFVMGN(spec, pretrained=False, fused_dim=64, **with_options(TINY, **kwargs))


def train_step(model: torch.nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """One forward / backward in training mode; finite loss and gradients; returns the aux losses."""
    model.train()
    out = model(batch)
    assert out.logits.shape == (batch["image_rgb"].shape[0], 5)
    loss = torch.nn.functional.cross_entropy(out.logits, batch["label"])
    for v in out.aux_losses.values():
        assert torch.isfinite(v)
        loss = loss + v
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    return out.aux_losses


def test_registered():
    assert {"scene_classifier", "fvmgn_scenes"} <= set(list_models())


@pytest.mark.parametrize(
    ("kwargs", "mode", "trainable"),
    [
        ({}, "erm", "all"),
        ({"freeze": "stages:3"}, "erm", "some"),
        ({"freeze": "all"}, "linear_probe", "head"),
        ({"freeze": "stages:3", "mixstyle_p": 0.5}, "mixstyle", "some"),
    ],
)
def test_scene_classifier_trains_on_a_real_batch(scenes, kwargs, mode, trainable):
    spec, batch = scenes
    torch.manual_seed(0)
    model = create_model("scene_classifier", spec, pretrained=False, **kwargs)
    assert isinstance(model, SceneClassifier) and model.mode == mode
    assert train_step(model, batch) == {}
    backbone = [p.requires_grad for p in model.backbone.parameters()]
    assert {"all": all(backbone), "head": not any(backbone), "some": 0 < sum(backbone) < len(backbone)}[
        trainable
    ]


def test_mixstyle_is_identity_in_eval_and_mixes_statistics_in_training():
    torch.manual_seed(0)
    x = (
        torch.randn(8, 6, 5, 5) * torch.arange(1, 9.0)[:, None, None, None]
        + torch.arange(8.0)[:, None, None, None]
    )
    domain = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    ms = MixStyle(p=1.0, alpha=0.1, num_source_domains=2).eval()
    assert ms(x, domain) is x
    ms.train()
    y = ms(x, domain)
    mu_x, mu_y = x.mean((2, 3)), y.mean((2, 3))
    assert not torch.allclose(mu_x, mu_y, atol=1e-3)
    assert not torch.allclose(x.std((2, 3)), y.std((2, 3)), atol=1e-3)
    # each sample's new means are a convex mix of its own and its partner's: within the batch's range
    assert (mu_y >= mu_x.min(0).values - 1e-4).all() and (mu_y <= mu_x.max(0).values + 1e-4).all()
    # partners come from the other domain when the batch has two, from another sample when it has one
    for _ in range(5):
        partner = ms.partners(8, domain)
        assert (domain[partner] != domain).all()
        alone = ms.partners(8, torch.zeros(8, dtype=torch.long))
        assert (alone != torch.arange(8)).all()
    assert MixStyle(p=0.0).train()(x, domain) is x


def test_mixstyle_hooks_sit_after_the_early_stages(scenes):
    spec, batch = scenes
    torch.manual_seed(0)
    model = SceneClassifier(spec, pretrained=False, mixstyle_p=1.0)
    assert stage_modules(model.backbone, [4, 8, 16]) == ["blocks.1", "blocks.2", "blocks.4"]
    blocks = model.backbone.backbone.blocks
    raw: list[torch.Tensor] = []
    passed_on: list[torch.Tensor] = []
    blocks[2].register_forward_hook(lambda m, i, o: raw.append(o), prepend=True)  # before MixStyle's hook
    blocks[3].register_forward_pre_hook(lambda m, i: passed_on.append(i[0]))  # what the next stage receives
    with torch.no_grad():
        model.eval()
        model(batch)
        assert torch.equal(raw[-1], passed_on[-1])  # identity in eval
        model.train()
        model(batch)
    assert not torch.allclose(raw[-1].mean((2, 3)), passed_on[-1].mean((2, 3)), atol=1e-4)


def test_fvmgn_scenes_trains_with_every_term(scenes):
    spec, batch = scenes
    model = fvmgn(spec)
    assert set(train_step(model, batch)) == {"align", "invariance"}
    assert model.text_domain.shape == (2, 5, 32)  # one text block per source domain (ucm, rsscn7)
    model.eval()
    out = model(batch)
    assert out.aux_losses == {} and out.logits.shape == (8, 5)


def test_fvmgn_scenes_per_domain_texts_follow_the_source_datasets(scenes, monkeypatch):
    spec, _ = scenes
    import rsmg.text.towers as towers
    from rsmg.text.class_texts import encode_class_texts

    built: list[torch.nn.Module] = []
    real = towers.create_text_tower
    monkeypatch.setattr(towers, "create_text_tower", lambda *a, **k: built.append(real(*a, **k)) or built[-1])
    model = fvmgn(spec)
    ct = load_class_texts("scene5", list(spec.classes), [], domains=["ucm", "rsscn7"])
    assert ct.domain[("ucm", "forest")] != ct.domain[("rsscn7", "forest")]
    emb = encode_class_texts(built[0], ct)
    # one block per source domain in spec order: ucm, then rsscn7_zoom1, which reads the rsscn7 texts
    assert spec.source_domains == ("ucm", "rsscn7_zoom1")
    assert torch.allclose(model.text_domain[0], emb.domain["ucm"], atol=1e-6)
    assert torch.allclose(model.text_domain[1], emb.domain["rsscn7"], atol=1e-6)
    assert torch.allclose(model.text_shared, emb.shared, atol=1e-6)


def test_fvmgn_scenes_takes_mwdis_donors_from_the_other_domain_only(scenes):
    spec, batch = scenes
    model = fvmgn(spec, mwdis={"p": 1.0}).train()
    assert model.mwdis is not None
    calls: list[MWDisOutput] = []
    real = model.mwdis.resample

    def spy(*args: Any, **kwargs: Any) -> MWDisOutput:
        calls.append(real(*args, **kwargs))
        return calls[-1]

    model.mwdis.resample = spy  # type: ignore[method-assign]
    for _ in range(3):
        model(batch)
    assert len(calls) == 3
    d = batch["domain"]
    for out in calls:
        assert (out.donor >= 0).all()  # p = 1: every source image is resampled
        assert (d[out.donor] != d).all()  # and its donor is always from the other dataset
        assert not torch.equal(out.images["rgb"], batch["image_rgb"])


def test_alignment_uses_each_samples_own_domain_texts():
    torch.manual_seed(0)
    texts = torch.nn.functional.normalize(torch.randn(2, 5, 16), dim=-1)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    domain = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    image = texts[domain, labels]  # every image equals its own domain's text of its class
    scale = torch.tensor(20.0)
    right = domain_class_infonce(image, texts, domain, labels, scale)
    swapped = domain_class_infonce(image, texts, 1 - domain, labels, scale)
    assert right is not None and swapped is not None and right < swapped
    assert domain_class_infonce(image, texts, torch.full_like(domain, 2), labels, scale) is None  # no texts


def _trainable(model: torch.nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_each_ablation_switch_removes_its_part(scenes):
    spec, batch = scenes
    full = fvmgn(spec)
    names = _trainable(full)
    assert full.align is not None and any("__frequency" in k for k in full.align.image_proj)

    no_mwdis = fvmgn(spec, mwdis={"enabled": False})
    assert no_mwdis.mwdis is None and set(train_step(no_mwdis, batch)) == {"align"}

    no_texts = fvmgn(spec, text={"use": "none"})
    assert no_texts.align is None and no_texts.head is not None
    assert not hasattr(no_texts, "text_shared") and not any(
        n.startswith("align.") for n in _trainable(no_texts)
    )
    assert set(train_step(no_texts, batch)) == {"invariance"}

    shared_only = fvmgn(spec, text={"use": "shared"})
    assert not hasattr(shared_only, "text_domain") and _trainable(shared_only) == names

    no_freq = fvmgn(spec, frequency={"enabled": False})
    assert no_freq.freq is None and not any(n.startswith("freq.") for n in _trainable(no_freq))
    assert no_freq.align is not None and not any("__frequency" in k for k in no_freq.align.image_proj)
    assert set(train_step(no_freq, batch)) == {"align", "invariance"}

    single = fvmgn(spec, reductions=[32])
    assert single.align is not None and sorted(single.align.image_proj) == [
        "rgb__s0__frequency",
        "rgb__s0__spatial",
    ]
    assert len(single.freq or []) == 1 and len(_trainable(single)) < len(names)
    assert set(train_step(single, batch)) == {"align", "invariance"}


def test_image_only_batches_work(scenes):
    spec, batch = scenes
    images = {"image_rgb": batch["image_rgb"]}
    for model in (fvmgn(spec), SceneClassifier(spec, pretrained=False, mixstyle_p=1.0, freeze="stages:3")):
        model.train()
        out = model(images)  # no label, no domain: no alignment; MWDis / MixStyle see one domain
        assert torch.isfinite(out.logits).all() and "align" not in out.aux_losses
        model.eval()
        with torch.no_grad():
            assert model(images).logits.shape == (8, 5)


def test_too_small_images_for_the_frequency_pathway_are_refused():
    spec = DataSpec(("a", "b"), {"rgb": 3}, ("x", "y"), ("x", "y"), patch_size=32)
    from rsmg.errors import ConfigError

    with pytest.raises(ConfigError, match="image_size") as e:
        SceneFVMGN(spec, pretrained=False, text=TextOptions(use="none"))
    assert e.value.field == "reductions"
    SceneFVMGN(
        spec, pretrained=False, text=TextOptions(use="none"), frequency=FrequencyOptions(enabled=False)
    )  # the fix works


def test_scene_class_texts_cover_every_class_and_source_dataset():
    scene7 = ["grass", "field", "industrial", "river or lake", "forest", "residential", "parking"]
    ct = load_class_texts("scene7", scene7, ["rgb"], domains=["aid", "rsscn7"])
    ct5 = load_class_texts("scene5", scene7[1:2] + scene7[3:], ["rgb"], domains=["ucm", "aid", "rsscn7"])
    texts = [*ct.shared.values(), *ct.proprietary.values(), *ct.domain.values(), *ct5.domain.values()]
    assert len(set(texts)) == len(texts) - len(ct5.classes) * 2  # scene5's aid / rsscn7 texts are scene7's
    assert all(len(t) > 40 and "{" not in t for t in texts)
    assert ct5.domain[("ucm", "parking")].startswith("a UC Merced USGS aerial image of parking:")
    from rsmg.errors import DataError

    with pytest.raises(DataError, match="per-domain text") as e:
        load_class_texts("scene7", ["grass"], [], domains=["ucm"])  # UC Merced has no meadow class
    assert e.value.field == "classes.grass.domains.ucm" and "class_texts_scene7.yaml" in str(e.value)
