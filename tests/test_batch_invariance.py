"""Batch invariance: in eval mode a sample's output never depends on which samples share its batch.

Every model in ``rsmg.models.registry.list_models()`` is built (with a small configuration) for the spec of
the real Trento → MUUFL LiDAR data and fed real Trento patches. A sample's logits must be the same (≤ 1e-5)
alone, at any position of a larger batch, next to other samples and next to copies of itself. This is
what makes test metrics independent of ``eval_batch_size`` and of the number of DDP ranks (BatchNorm in
training mode, batch-level statistics or padding leaks would break it). Models registered later are picked
up automatically; models that read captions get a ``text`` list.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any

import pytest
import torch

from _paths import SHARED_DATA
from _tiny import with_options
from rsmg.data.datamodule import CrossDomainDataModule
from rsmg.data.spec import DataSpec
from rsmg.models.registry import _MODELS, create_model, list_models

pytestmark = pytest.mark.skipif(not SHARED_DATA.exists(), reason="shared data pack missing")

TOL = 1e-5
# Small, offline settings; applied only where the model's constructor has the parameter.
GENERIC_SMALL: dict[str, Any] = {
    "width": 16,
    "embed_dim": 32,
    "depth": 2,
    "modality": "lidar",
    "text_pretrained": False,
    "image_pretrained_path": None,
}
# FVMGN's option sections (with_options makes them dataclasses)
TINY_TEXT = {"tower": "clip-bpe", "pretrained": False, "tower_kwargs": {"width": 32, "layers": 1, "heads": 2}}
PER_MODEL: dict[str, dict[str, Any]] = {
    "fvmgn": {
        "text": TINY_TEXT,
        "sfie": {"width": 16, "attn_heads": 2},
        "alignment": {"embed_dim": 32},
        "mwdis": {"same_domain_fallback": True},  # one source scene (Trento)
    },
    "scene_classifier": {"pretrained": False, "mixstyle_p": 0.5},
    "fvmgn_scenes": {
        "pretrained": False,
        # Trento's classes; no per-domain texts for LiDAR scenes
        "text": {**TINY_TEXT, "class_set": "shared", "use": "shared"},
        "frequency": {
            "kind": "fft"
        },  # 11-px patches give 1-px maps at stride 16: too small for a wavelet level
        "alignment": {"embed_dim": 32},
        "mwdis": {"same_domain_fallback": True},
    },
}
# CaptionFVMGN passes its SceneFVMGN options through **kwargs, so the generic ones are named here
PER_MODEL["fvmgn_captions"] = {
    **PER_MODEL["fvmgn_scenes"],
    "modality": "lidar",
    "caption_width": 16,
    "caption_heads": 2,
}
CAPTIONS = ("a road between buildings", "dense trees", "bare ground near a road", "a flat roof")


@pytest.fixture(scope="module")
def real_batch() -> tuple[DataSpec, dict[str, Any]]:
    dm = CrossDomainDataModule(
        sources=["trento"],
        targets=["muufl"],
        modalities=["lidar"],
        root=str(SHARED_DATA),
        batch_size=32,
        augment=False,
    )
    dm.setup("fit")
    ds = dm._dataset("trento", "train")
    batch = ds.__getitems__(list(range(0, 24 * 7, 7)))  # 24 real Trento LiDAR patches of several classes
    batch = dict(batch)
    batch["text"] = [CAPTIONS[i % len(CAPTIONS)] for i in range(24)]
    return dm.spec, batch


def _small_kwargs(name: str) -> dict[str, Any]:
    params = inspect.signature(_MODELS[name]).parameters
    kwargs = {k: v for k, v in GENERIC_SMALL.items() if k in params}
    return with_options(kwargs, **PER_MODEL.get(name, {}))


def _select(batch: dict[str, Any], idx: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            out[k] = v[idx]
        elif isinstance(v, list):
            out[k] = [v[i] for i in idx]
    return out


def test_registry_is_not_empty_and_rsmg_models_exports_it():
    import rsmg.models

    assert "concat_cnn" in list_models()
    assert rsmg.models.list_models is list_models and rsmg.models.create_model is create_model
    assert {"create_model", "list_models"} <= set(rsmg.models.__all__)


def _batch_dependence(model: torch.nn.Module, batch: dict[str, Any]) -> tuple[float, str]:
    """Largest logit difference between a sample in the full batch and in other batches, and where."""
    n = len(batch["label"])
    worst, where = 0.0, ""
    with torch.no_grad():
        full = model(batch).logits
        assert full.shape[0] == n and torch.isfinite(full).all()
        others = [j for j in range(n) if j % 3]
        for i in (0, 5, n - 1):
            layouts = {
                "alone": ([i], 0),
                "reversed batch": (list(range(n))[::-1], n - 1 - i),
                "with 6 others": ([*others[:3], i, *others[3:6]], 3),
                "next to copies of itself": ([i, i, i], 2),
                "last of 2": ([others[-1], i], 1),
            }
            for what, (idx, pos) in layouts.items():
                diff = float((model(_select(batch, idx)).logits[pos] - full[i]).abs().max())
                if diff > worst:
                    worst, where = diff, f"sample {i} {what}"
    return worst, where


@pytest.mark.parametrize("name", list_models())
def test_output_of_a_sample_does_not_depend_on_its_batch(name, real_batch):
    spec, batch = real_batch
    torch.manual_seed(0)
    model = create_model(name, replace(spec, has_text=True), **_small_kwargs(name)).eval()
    assert model(_select(batch, [0, 1])).logits.shape == (2, spec.num_classes)
    worst, where = _batch_dependence(model, batch)
    assert worst <= TOL, f"{name}: {where}: logits differ by {worst:.3g} from the full batch (eval mode)"


def test_the_check_catches_batch_dependence(real_batch):
    """Control: BatchNorm left in training mode mixes samples, and the check must see it."""
    spec, batch = real_batch
    torch.manual_seed(0)
    model = create_model("concat_cnn", spec, width=8).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.train()
    worst, _ = _batch_dependence(model, batch)
    assert worst > 100 * TOL
