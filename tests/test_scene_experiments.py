"""Scene-protocol YAML pieces compose (data × model × trainer, ablation overlays); FVMGN-scenes fits end to end."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import yaml

import _cli
from _cli import log_args, run_rsmg
from _paths import REPO, SHARED_DATA
from rsmg.cli.main import build_cli

SCENES = REPO / "experiments" / "scenes"
MODELS = {
    "model_erm.yaml": ("rsmg.models.scene_models.SceneClassifier", "scenes_erm"),
    "model_linear_probe.yaml": ("rsmg.models.scene_models.SceneClassifier", "scenes_linear_probe"),
    "model_mixstyle.yaml": ("rsmg.models.scene_models.SceneClassifier", "scenes_mixstyle"),
    "model_fvmgn.yaml": ("rsmg.models.fvmgn_scenes.SceneFVMGN", "scenes_fvmgn"),
}
ABLATIONS = {
    "fvmgn_no_mwdis.yaml": ("mwdis.enabled", False),
    "fvmgn_no_texts.yaml": ("text.use", "none"),
    "fvmgn_no_frequency.yaml": ("frequency.enabled", False),
    "fvmgn_single_scale.yaml": ("reductions", [32]),
}
TARGETS = {"ucm": ["aid", "rsscn7"], "aid": ["rsscn7", "ucm"], "rsscn7": ["aid", "ucm"]}


def composed(*names: str) -> dict:
    """The config ``rsmg fit --config ... --print_config`` prints for these pieces of experiments/scenes."""
    args = ["fit"]
    for n in names:
        args += ["--config", str(SCENES / n)]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit) as e:
        build_cli([*args, "--print_config"])
    assert e.value.code in (0, None), buf.getvalue()[-2000:]
    return yaml.safe_load(buf.getvalue())


def test_every_model_composes_with_the_data_and_trainer_pieces():
    freezes = set()
    for target, sources in TARGETS.items():
        cfg = composed(f"data_lodo_{target}.yaml", "model_erm.yaml", "trainer_cpu.yaml")
        data = cfg["data"]["init_args"]
        assert (data["sources"], data["targets"], data["class_set"]) == (sources, [target], "scene5")
    for model, (class_path, run_name) in MODELS.items():
        cfg = composed("data_lodo_ucm.yaml", model, "trainer_cpu.yaml")
        net = cfg["model"]["init_args"]["net"]
        assert net["class_path"] == class_path and net["init_args"]["pretrained"] is True
        if model != "model_linear_probe.yaml":
            freezes.add(net["init_args"]["freeze"])
        trainer = cfg["trainer"]
        assert trainer["logger"]["init_args"]["name"] == run_name
        (ckpt,) = [c for c in trainer["callbacks"] if c["class_path"].endswith("ModelCheckpoint")]
        assert ckpt["init_args"]["monitor"] == "val/oa"  # selection on the sources' validation images only
    assert len(freezes) == 1  # every fine-tuned method on the same frozen prefix (same budget)


def _dotted(tree: dict, prefix: str = "") -> dict:
    """``{"mwdis": {"p": 0.5}}`` → ``{"mwdis.p": 0.5}`` (the option sections' fields as dotted keys)."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict) and k in ("mwdis", "frequency", "text", "alignment"):
            out.update(_dotted(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


@pytest.mark.parametrize("overlay", sorted(ABLATIONS))
def test_ablation_overlays_switch_one_part_off(overlay):
    key, value = ABLATIONS[overlay]
    base = composed("data_lodo_aid.yaml", "model_fvmgn.yaml", "trainer_cpu.yaml")["model"]["init_args"]["net"]
    cfg = composed("data_lodo_aid.yaml", "model_fvmgn.yaml", overlay, "trainer_cpu.yaml")
    new, old = _dotted(cfg["model"]["init_args"]["net"]["init_args"]), _dotted(base["init_args"])
    changed = {k for k in new if new[k] != old[k]}
    assert changed == {key} and new[key] == value  # the section's other options stay as the base sets them
    assert cfg["trainer"]["logger"]["init_args"]["name"] == "scenes_" + Path(overlay).stem


@pytest.mark.slow  # a real-data fit through the CLI (~12 s): the full suite runs it
@pytest.mark.skipif(not SHARED_DATA.exists(), reason="shared data pack missing")
def test_fvmgn_scenes_fits_the_smoke_protocol_end_to_end(tmp_path, monkeypatch):
    """Pretrained Lite0 + MiniLM, the real YAML piece on the smoke data (one source: same-domain donors)."""
    # one OpenMP thread: batches of 8 gain nothing from two, and on a loaded machine two spin-wait (7x slower)
    monkeypatch.setitem(_cli.RSMG_ENV, "OMP_NUM_THREADS", "1")
    run_rsmg(
        "fit",
        "--config", str(SCENES / "smoke_ucm_to_rsscn7_zoom4.yaml"),
        "--config", str(SCENES / "model_fvmgn.yaml"),
        "--data.init_args.image_size", "64",
        "--model.init_args.net.init_args.mwdis.same_domain_fallback", "true",
        "--trainer.limit_train_batches", "2",
        "--trainer.limit_val_batches", "1",
        "--trainer.limit_test_batches", "1",
        "--trainer.enable_progress_bar", "false",
        *log_args(tmp_path, "fvmgn_scenes"),
        "--test_after_fit", "true",
        cwd=tmp_path,
    )  # fmt: skip
    (run,) = tmp_path.glob("logs/fvmgn_scenes/version_0")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["domains"] == ["rsscn7_zoom4"]
    assert 0 <= metrics["results"]["test"]["rsscn7_zoom4"]["oa"] <= 1
    logged = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/align", "train/invariance", "val/oa"} <= set(logged)
    assert (run / "checkpoints" / "last.ckpt").exists()
