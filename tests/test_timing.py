"""``PhaseTimer``: a real fit + test writes a timing.json whose counts and shares add up."""

import json
from pathlib import Path

import pytest

from _budget import SMOKE_BUDGET
from _cli import call_rsmg, log_args
from _experiments import FVMGN_LIDAR
from _paths import REPO, SHARED_DATA, missing_shared_data
from rsmg.callbacks.timing import PhaseTimer, _batch_size


@pytest.fixture(scope="module")
def timing(tmp_path_factory: pytest.TempPathFactory) -> dict:
    for scene in ("trento", "muufl"):
        if not (SHARED_DATA / scene).is_dir():
            missing_shared_data(SHARED_DATA / scene, f"{scene} LiDAR")
    tmp = tmp_path_factory.mktemp("timing")
    call_rsmg(
        "fit",
        *FVMGN_LIDAR,
        *SMOKE_BUDGET,
        *log_args(tmp, "timed"),
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.callbacks+",
        "rsmg.callbacks.timing.PhaseTimer",
        "--data.init_args.target_split",
        "fraction:0.01",
        "--test_after_fit",
        "true",
        cwd=REPO,
    )
    (path,) = Path(tmp / "logs" / "timed").glob("version_*/timing.json")
    return json.loads(path.read_text())


def test_every_stage_is_timed_with_its_samples(timing: dict) -> None:
    stages = timing["stages"]
    assert set(stages) == {"train", "validate", "test"}
    assert stages["train"]["batches"] == 3 and stages["train"]["samples"] == 3 * 64  # limit_train_batches 3
    assert stages["test"]["samples"] > 0
    for stage in stages.values():
        assert stage["wall_s"] > 0 and stage["samples_per_s"] > 0
        parts = stage["data_wait_share"] + stage["batch_share"]
        assert 0 < parts <= 1.0 + 1e-6, "data wait and batch time are disjoint parts of the stage's wall time"


def test_mwdis_is_timed_in_training_only(timing: dict) -> None:
    """MWDis resamples only in training mode: its hooks fire there and nowhere else."""
    stages = timing["stages"]
    assert 0 < stages["train"]["mwdis_share"] < stages["train"]["batch_share"]
    assert stages["test"]["mwdis_share"] == 0.0


def test_batch_size_reads_the_label() -> None:
    import torch

    assert _batch_size({"label": torch.zeros(7), "image_lidar": torch.zeros(3, 2)}) == 7
    assert _batch_size({"image_lidar": torch.zeros(5, 2)}) == 5
    assert _batch_size([1, 2]) == 0
    assert PhaseTimer().summary() == {}
