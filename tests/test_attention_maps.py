"""Caption→image attention-map figures (issue: captions, "attention maps") on the real AID minitest.

A tiny, randomly initialised caption model (ViT at 32 px, 1-layer CLIP-BPE tower) is tested on the real AID
test split through a Lightning ``Trainer``: the figure must be written, cover every class, and show the same
samples whatever the batch size; a fusion without attention must be skipped with a stated reason.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from _paths import SHARED_DATA
from rsmg import plotting
from rsmg.callbacks.attention_maps import AttentionMapFigures, patch_grid
from rsmg.callbacks.figures import FigureCallback
from rsmg.data.captioned import CaptionedSceneDataModule
from rsmg.errors import ConfigError
from rsmg.models.caption_models import CaptionClassifier
from rsmg.tasks import ClassificationTask


def _task(spec, fusion: str) -> ClassificationTask:
    from rsmg.text.towers import create_text_tower

    def net(s):
        torch.manual_seed(0)
        tower = create_text_tower("clip-bpe", width=32, layers=1, heads=2, context_length=160, frozen=True)
        return CaptionClassifier(
            s, image_encoder="vit_test", image_size=32, text_tower=tower, fusion=fusion, width=32, heads=2
        )

    return ClassificationTask(spec=spec, net=net)


def _test(tmp_path, fusion: str, batch_size: int, num_samples: int = 8, extra=()) -> AttentionMapFigures:
    dm = CaptionedSceneDataModule("aid_minitest", root=str(SHARED_DATA), image_size=32, batch_size=batch_size)
    dm.setup("test")
    cb = AttentionMapFigures(num_samples=num_samples)
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        logger=False,
        callbacks=[cb, *extra],
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.test(_task(dm.spec, fusion), datamodule=dm, verbose=False)
    return cb


def test_attention_map_figure_on_real_aid(tmp_path, capsys):
    cb = _test(tmp_path / "a", "cross_attention", batch_size=16)
    assert cb.skipped_reason is None
    (path,) = cb.written
    assert path.name == "attention_maps.png" and path.stat().st_size > 10_000
    chosen = cb._choose()
    assert len(chosen) == 8
    assert {s["label"] for s in chosen} == {0, 1, 2, 3}  # round-robin over the 4 classes
    for s in chosen:
        assert s["map"].shape == (2, 2)  # 32 px / 16 px patches, CLS dropped
        assert np.isfinite(s["map"]).all() and s["map"].sum() <= 1.0 + 1e-5  # share of one softmax
        assert s["caption"]
    # the same scenes (and maps) whatever the batch size
    other = _test(tmp_path / "b", "cross_attention", batch_size=5)._choose()
    assert [s["index"] for s in other] == [s["index"] for s in chosen]
    for a, b in zip(chosen, other, strict=True):
        np.testing.assert_allclose(a["map"], b["map"], atol=1e-5)
    assert "attention maps written" in capsys.readouterr().out


def test_tsne_of_image_text_and_fused_embeddings(tmp_path, caplog):
    figs = FigureCallback(every=["tsne"], tsne_embedding=["image", "text", "fused", "nope"], tsne_points=60)
    _test(tmp_path, "cross_attention", batch_size=32, extra=[figs])
    assert sorted(p.name for p in figs.written) == ["tsne_fused.png", "tsne_image.png", "tsne_text.png"]
    assert "no 'nope' embedding" in caplog.text


def test_fusion_without_attention_is_skipped_with_reason(tmp_path, capsys):
    cb = _test(tmp_path, "concat", batch_size=32)
    assert cb.written == [] and "cross_attention" in (cb.skipped_reason or "")
    assert "attention maps skipped" in capsys.readouterr().out


def test_patch_grid_and_bad_options():
    assert patch_grid(49, 112, 112) == (7, 7)
    assert patch_grid(8, 64, 128) == (2, 4)
    with pytest.raises(ValueError, match="patch grid"):
        patch_grid(7, 64, 64)
    with pytest.raises(ConfigError, match="num_samples"):
        AttentionMapFigures(num_samples=0)
    with pytest.raises(ConfigError, match="level"):
        AttentionMapFigures(level="max")


def test_display_image_and_plot_shapes():
    rng = np.random.default_rng(0)
    img = plotting.display_image(rng.normal(size=(3, 16, 16)))
    assert img.shape == (16, 16, 3) and img.min() >= 0 and img.max() <= 1
    assert plotting.display_image(rng.normal(size=(1, 8, 8))).shape == (8, 8, 3)
    fig = plotting.plot_attention_maps([img], [rng.random((2, 2))], ["a caption"], ["true A / pred A"])
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="same non-zero number"):
        plotting.plot_attention_maps([img], [], ["c"], ["t"])
