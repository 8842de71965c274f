"""Every experiment YAML parses against the current code (a renamed argument breaks this test, not a user)."""

import contextlib
import io
from pathlib import Path

import pytest

from _paths import REPO
from rsmg.cli.main import build_cli

FULL = sorted(
    p
    for p in (REPO / "experiments").rglob("*.yaml")
    if "model:" in p.read_text() and "data:" in p.read_text() and "class_path: rsmg" in p.read_text()
)
OVERLAYS = {
    "experiments/dtaug/tta.yaml": "experiments/fvmgn/trento_to_muufl_lidar.yaml",
    "experiments/dtaug/train_views.yaml": "experiments/fvmgn/trento_to_muufl_lidar.yaml",
    "experiments/captions/zero_shot_aid.yaml": "experiments/captions/aid_minitest.yaml",
    "experiments/fvmgn/lidar_height_only.yaml": "experiments/fvmgn/trento_to_muufl_lidar.yaml",
}


def parse(*configs: Path) -> str:
    args = ["fit"]
    for c in configs:
        args += ["--config", str(c)]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit) as e:
        build_cli([*args, "--print_config"])
    assert e.value.code in (0, None), buf.getvalue()[-2000:]
    return buf.getvalue()


def test_there_are_experiments():
    assert len(FULL) >= 10


@pytest.mark.parametrize("cfg", FULL, ids=lambda p: str(p.relative_to(REPO)))
def test_full_config_parses(cfg):
    out = parse(cfg)
    assert "class_path: rsmg" in out


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_overlay_parses_on_its_base(overlay):
    out = parse(REPO / OVERLAYS[overlay], REPO / overlay)
    key = {
        "tta": "DiffusionTTA",
        "train_views": "TrainingViews",
        "zero_shot_aid": "ZeroShotEval",
        "lidar_height_only": "standardize: {}",
    }[Path(overlay).stem]
    assert key in out


IP = REPO / "experiments" / "indian_pines"


@pytest.mark.parametrize("data", ["data_disjoint.yaml", "data_random.yaml"])
@pytest.mark.parametrize("model", ["model_concat_cnn.yaml", "model_fvmgn.yaml"])
def test_indian_pines_pieces_compose(data, model):
    """Each data piece (disjoint / optimistic split) with each model piece and the trainer is one valid config."""
    out = parse(IP / data, IP / model, IP / "trainer_cpu.yaml")
    assert "- indian_pines" in out and "patch_size: 7" in out
    assert ("target_split: blocks:16" in out) == (data == "data_disjoint.yaml")
    assert ("class_set: indian_pines" in out) == (model == "model_fvmgn.yaml")
