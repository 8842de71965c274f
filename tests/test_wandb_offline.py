"""Tracking presets: a tiny real fit + test with W&B offline (no network), and every preset parses.

The tiny run is shared with tests/test_notebooks.py through :func:`tiny_tracked_run` (one real fit per session
instead of two on a 2-core CI machine).
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import yaml

from _experiments import BASELINE
from _paths import REPO, SHARED_DATA

needs_data = pytest.mark.skipif(not SHARED_DATA.exists(), reason="shared data pack missing")
HAS_WANDB = importlib.util.find_spec("wandb") is not None
_CACHE = {}


def tiny_tracked_run(tmp_path_factory):
    """Run `rsmg fit ... --test_after_fit true` once (3 batches) with W&B offline, figures and embeddings.

    Returns (root, run_dir, completed process). W&B is forced offline and pointed at an unreachable server,
    and its config / cache / data directories are inside the temporary root: the test neither needs nor uses
    the network or the home directory.
    """
    if "run" not in _CACHE:
        root = tmp_path_factory.mktemp("tracked")
        env = {
            **os.environ,
            "RSMG_DATA_ROOT": str(SHARED_DATA),
            "PYTHONWARNINGS": "ignore",
            "WANDB_MODE": "offline",
            "WANDB_SILENT": "true",
            "WANDB_DISABLE_GIT": "true",
            "WANDB_BASE_URL": "http://127.0.0.1:9",
            "WANDB_CONFIG_DIR": str(root / ".wandb_config"),
            "WANDB_CACHE_DIR": str(root / ".wandb_cache"),
            "WANDB_DATA_DIR": str(root / ".wandb_data"),
        }
        exp = REPO / "experiments"
        args = [sys.executable, "-m", "rsmg", "fit", *BASELINE]
        if HAS_WANDB:
            args += ["--config", str(exp / "logger/wandb.yaml")]
        args += [
            "--config",
            str(exp / "debug/limit_batches.yaml"),
            "--trainer.callbacks+=rsmg.callbacks.embeddings.EmbeddingExport",
            "--trainer.callbacks.max_samples=300",
            "--test_after_fit",
            "true",
        ]
        p = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, f"tiny fit failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
        runs = sorted((root / "outputs").glob("*/version_*"))
        assert len(runs) == 1, sorted(map(str, (root / "outputs").rglob("*")))
        _CACHE["run"] = (root, runs[0], p)
    return _CACHE["run"]


@needs_data
@pytest.mark.slow
@pytest.mark.skipif(not HAS_WANDB, reason="wandb not installed")
def test_wandb_offline_run_keeps_the_run_directory(tmp_path_factory):
    root, run, _ = tiny_tracked_run(tmp_path_factory)
    # the run directory is the CSV logger's: everything `rsmg report` and the notebooks read is there
    assert run.parent.name == "baseline_trento_to_muufl"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["domains"] == ["muufl"] and 0 <= metrics["results"]["test"]["muufl"]["oa"] <= 1
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    loggers = cfg["trainer"]["logger"]
    assert [lg["class_path"].rsplit(".", 1)[1] for lg in loggers] == ["CSVLogger", "WandbLogger"]
    assert loggers[1]["init_args"]["offline"] is True and loggers[1]["init_args"]["name"] == run.parent.name
    assert (run / "checkpoints" / "last.ckpt").exists()
    figures = sorted(p.name for p in (run / "figures").glob("*.png"))
    assert figures == ["confusion_muufl.png", "map_muufl.png", "per_class_accuracy.png"]
    assert (run / "embeddings.npz").exists()
    # W&B wrote an offline run holding the metrics stream and the figures as images
    (offline,) = (root / "outputs" / "wandb").glob("offline-run-*")
    assert list(offline.glob("run-*.wandb"))
    images = {p.name.split("_")[0] for p in (offline / "files" / "media" / "images").rglob("*.png")}
    assert {"confusion", "map", "per"} <= images
    # and the sync script finds it without touching the network
    p = subprocess.run(
        ["bash", str(REPO / "scripts/wandb_sync.sh"), "--dry-run", str(root / "outputs")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0 and offline.name in p.stdout and "1 offline run" in p.stdout


PRESETS = sorted(
    [
        *(
            str(p.relative_to(REPO / "experiments"))
            for sub in ("logger", "debug")
            for p in (REPO / "experiments" / sub).glob("*.yaml")
        ),
        "trainer/ddp_sim.yaml",  # the other trainer/ files are a setting's trainer piece, not an overlay
    ]
)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_is_accepted_by_the_cli(preset, tmp_path, monkeypatch):
    """Each preset merges onto the main experiment and instantiates (no data read, nothing trained)."""
    from rsmg.cli.lightning_cli import RsmgCLI

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["rsmg"])
    monkeypatch.setenv("WANDB_MODE", "offline")
    exp = REPO / "experiments"
    cli = RsmgCLI(
        args=[*BASELINE, "--config", str(exp / preset)],
        run=False,
    )
    loggers = [type(lg).__name__ for lg in cli.trainer.loggers]
    if preset.startswith("logger/"):
        expected = {
            "logger/wandb.yaml": ["CSVLogger", "WandbLogger"],
            "logger/tensorboard.yaml": ["TensorBoardLogger"],
        }[preset]
        assert loggers == expected
        cfg = cli.config["trainer"]["logger"]
        names = [lg["init_args"]["name"] for lg in (cfg if isinstance(cfg, list) else [cfg])]
        assert names == ["baseline_trento_to_muufl"] * len(expected)  # inherited from the experiment
    if preset == "trainer/ddp_sim.yaml":
        assert type(cli.trainer.strategy).__name__ == "DDPStrategy" and cli.trainer.num_devices == 2
