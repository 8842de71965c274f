"""Every experiment YAML parses against the current code (a renamed argument breaks this test, not a user).

Settings composed of ``experiments/{data,model,trainer}/`` pieces are parsed, and compared with the one-file YAMLs
they replaced, in ``test_composed_configs.py``; this file covers the one-file experiments, the overlays, that every
piece belongs to a setting, and that no README, doc, script or benchmark names an experiment file that is gone.
"""

import re
from pathlib import Path

import pytest

from _cli import parses
from _experiments import BASELINE, EXPERIMENTS, FVMGN_LIDAR, SETTINGS
from _paths import REPO

FULL = sorted(
    p
    for p in (REPO / "experiments").rglob("*.yaml")
    if "model:" in p.read_text() and "data:" in p.read_text() and "class_path: rsmg" in p.read_text()
)
LIDAR_DATA = str(EXPERIMENTS / "data/trento_to_muufl_lidar.yaml")
OVERLAYS = {  # overlay -> the configs it goes after
    "experiments/dtaug/tta.yaml": FVMGN_LIDAR,
    "experiments/dtaug/train_views.yaml": FVMGN_LIDAR,
    # the scene prior composes with the classifier's data piece (it models exactly those inputs)
    "experiments/dtaug/prior_scenes.yaml": ["--config", str(REPO / "experiments/scenes/data_lodo_ucm.yaml")],
    "experiments/captions/zero_shot_aid.yaml": [
        "--config",
        str(REPO / "experiments/captions/aid_minitest.yaml"),
    ],
    "experiments/data/lidar_height_only.yaml": ["--config", LIDAR_DATA],  # after the data piece
    "experiments/trainer/ddp_sim.yaml": BASELINE,
}


def parse(*configs: Path | str) -> str:
    args: list[str] = []
    for c in configs:
        args += ["--config", str(c)] if isinstance(c, Path) else [c]
    return parses(args)


def test_there_are_experiments():
    assert len(FULL) >= 4 and len(SETTINGS) >= 10


@pytest.mark.parametrize("cfg", FULL, ids=lambda p: str(p.relative_to(REPO)))
def test_full_config_parses(cfg):
    out = parse(cfg)
    assert "class_path: rsmg" in out


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_overlay_parses_on_its_base(overlay):
    base = OVERLAYS[overlay]
    if overlay.endswith(
        "lidar_height_only.yaml"
    ):  # a data overlay: the model and trainer pieces come after it
        rest = SETTINGS["fvmgn_trento_to_muufl_lidar"][1:]
        out = parse(*base, REPO / overlay, *(EXPERIMENTS / p for p in rest))
    else:
        out = parse(*base, REPO / overlay)
    key = {
        "tta": "DiffusionTTA",
        "train_views": "TrainingViews",
        "prior_scenes": "patch_size: 64",
        "zero_shot_aid": "ZeroShotEval",
        "lidar_height_only": "standardize: {}",
        "ddp_sim": "strategy: ddp",
    }[Path(overlay).stem]
    assert key in out


def test_every_piece_belongs_to_a_setting_or_is_an_overlay():
    used = {p for pieces in SETTINGS.values() for p in pieces}
    used |= {
        o.removeprefix("experiments/") for o in OVERLAYS if o.split("/")[1] in {"data", "model", "trainer"}
    }
    pieces = {
        p.relative_to(EXPERIMENTS).as_posix()
        for folder in ("data", "model", "trainer")
        for p in (EXPERIMENTS / folder).glob("*.yaml")
    }
    assert pieces == used, (
        f"pieces no setting uses: {sorted(pieces - used)}; missing: {sorted(used - pieces)}"
    )


# where people and scripts read experiment paths; benchmarks/results/ records what ran then, so it is left as is
NAMING_FILES = [
    REPO / "README.md",
    *(REPO / "docs").glob("*.md"),
    *(REPO / "experiments").rglob("*"),
    *(REPO / "scripts").glob("*.sh"),
    *(REPO / "benchmarks").glob("*.py"),
    *(REPO / "src").rglob("*.py"),
    *(REPO / "notebooks").glob("*.ipynb"),
]  # not tests/: a test that names a missing file fails by itself, and some name the old files on purpose
EXPERIMENT_PATH = re.compile(r"experiments/[\w./*<>-]*[\w*>/]")  # a file, a folder or a glob


def test_every_experiment_path_named_in_the_repository_exists():
    """A moved experiment file breaks this test, not a reader who copies a command from the docs."""
    gone = set()
    for f in NAMING_FILES:
        if not f.is_file() or f.suffix not in {".md", ".py", ".yaml", ".sh", ".sbatch", ".ipynb"}:
            continue
        for path in EXPERIMENT_PATH.findall(f.read_text(encoding="utf-8")):
            pattern = re.sub(r"<[^>]*>", "*", path)  # experiments/data/paper_<x>.yaml names a family
            if not list(REPO.glob(pattern)):
                gone.add(f"{f.relative_to(REPO)}: {path}")
    assert not gone, sorted(gone)


IP = REPO / "experiments" / "indian_pines"


@pytest.mark.parametrize("data", ["data_disjoint.yaml", "data_random.yaml"])
@pytest.mark.parametrize("model", ["model_concat_cnn.yaml", "model_fvmgn.yaml"])
def test_indian_pines_pieces_compose(data, model):
    """Each data piece (disjoint / optimistic split) with each model piece and the trainer is one valid config."""
    out = parse(IP / data, IP / model, IP / "trainer_cpu.yaml")
    assert "- indian_pines" in out and "patch_size: 7" in out
    assert ("target_split: blocks:16" in out) == (data == "data_disjoint.yaml")
    assert ("class_set: indian_pines" in out) == (model == "model_fvmgn.yaml")
