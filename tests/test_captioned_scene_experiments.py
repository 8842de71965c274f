"""The captioned-scene YAML pieces compose: every method with the UC Merced data piece and the scene trainer, and
the unified model with the UC Merced → AID minitest and zero-shot pieces (what benchmarks/ucm_captions.py runs)."""

from __future__ import annotations

import pytest
import yaml

from _cli import parses
from _paths import REPO

CAP = REPO / "experiments" / "captioned_scenes"
TRAINER = REPO / "experiments" / "scenes" / "trainer_cpu.yaml"
MODELS = {
    "model_fvmgn_captions.yaml": ("rsmg.models.fvmgn_captions.CaptionFVMGN", None),
    "model_caption_text.yaml": ("rsmg.models.caption_models.CaptionClassifier", "text"),
    "model_caption_concat.yaml": ("rsmg.models.caption_models.CaptionClassifier", "concat"),
    "model_caption_vote.yaml": ("rsmg.models.caption_models.CaptionClassifier", "vote"),
    "model_caption_cross_attention.yaml": ("rsmg.models.caption_models.CaptionClassifier", "cross_attention"),
}


def composed(*paths) -> dict:
    return yaml.safe_load(parses([a for p in paths for a in ("--config", str(p))]))


@pytest.mark.parametrize("piece", sorted(MODELS))
def test_every_method_reads_captions_on_the_same_towers_and_budget(piece):
    class_path, fusion = MODELS[piece]
    cfg = composed(CAP / "data_ucm21.yaml", CAP / piece, TRAINER)
    data, net = cfg["data"]["init_args"], cfg["model"]["init_args"]["net"]
    assert data["captions"] is True and data["class_set"] == "ucm21"
    assert data["text_transforms"] == ["drop_verdicts", "mask_class_names"]  # leakage control by default
    assert net["class_path"] == class_path
    args = net["init_args"]
    if fusion is None:
        assert (args["pretrained"], args["freeze"], args["text"]["tower"]) == (True, "stages:3", "minilm")
    else:
        assert (
            args["fusion"] == fusion
            and args["image_pretrained"] is True
            and args["freeze_image"] == "stages:3"
        )
        assert args["text_tower"] == "minilm" and args["freeze_text"] is True
    assert cfg["model"]["init_args"]["lr"] == 0.0003


def test_unified_model_with_the_transfer_and_zero_shot_pieces():
    cfg = composed(CAP / "data_ucm_to_aid_minitest.yaml", CAP / "model_fvmgn_captions.yaml", TRAINER)
    data = cfg["data"]["init_args"]
    assert (data["sources"], data["targets"], data["class_set"]) == (["ucm"], ["aid_minitest_vlm"], "ucm_aid")
    zs = composed(
        CAP / "data_ucm21.yaml",
        CAP / "model_fvmgn_captions.yaml",
        CAP / "zero_shot_ucm21.yaml",
        TRAINER,
    )
    assert len(zs["data"]["init_args"]["held_out_classes"]) == 5


def test_the_karpathy_split_and_the_calibration_are_one_option_each():
    base = [CAP / "data_ucm21.yaml", CAP / "model_fvmgn_captions.yaml", CAP / "zero_shot_ucm21.yaml"]
    assert composed(*base, TRAINER)["data"]["init_args"]["split"] == "seeded"
    cfg = composed(*base, CAP / "split_karpathy.yaml", TRAINER)
    data = cfg["data"]["init_args"]
    assert data["split"] == "karpathy" and len(data["held_out_classes"]) == 5
    args = [a for p in (*base, TRAINER) for a in ("--config", str(p))]
    extra = ["--trainer.callbacks+=rsmg.callbacks.CalibratedStacking"]  # what benchmarks/ucm_captions.py adds
    callbacks = yaml.safe_load(parses([*args, *extra]))["trainer"]["callbacks"]
    assert [c["class_path"] for c in callbacks] == [
        "lightning.pytorch.callbacks.ModelCheckpoint",
        "rsmg.callbacks.CalibratedStacking",
    ]
    assert callbacks[1]["init_args"] == {"unseen_rate": 0.05}
