"""validate / test / predict never change a finished run; no trained weights or a cut checkpoint is an error."""

import hashlib
from pathlib import Path

import pytest

from _budget import SMOKE_BUDGET
from _cli import call_rsmg
from _experiments import BASELINE
from _paths import SHARED_DATA, missing_shared_data

SMALL = [*SMOKE_BUDGET, "--model.init_args.net.init_args.width", "4", "--trainer.enable_progress_bar", "false",
         "--data.init_args.target_split", "fraction:0.01", "--data.init_args.root", str(SHARED_DATA)]  # fmt: skip


def _digest(run: Path) -> dict[str, str]:
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in run.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (SHARED_DATA / "muufl").is_dir():
        missing_shared_data(SHARED_DATA / "muufl", "MUUFL LiDAR")
    out = tmp_path_factory.mktemp("protect")
    log = ["--trainer.logger.init_args.save_dir", str(out), "--trainer.logger.init_args.name", "base",
           "--trainer.logger.init_args.version", "seed42"]  # fmt: skip
    call_rsmg("fit", *BASELINE, *SMALL, *log, "--test_after_fit", "true", cwd=out)
    return out / "base" / "seed42"


def test_test_and_predict_leave_every_file_of_the_run_as_it_was(fitted: Path) -> None:
    before = _digest(fitted)
    assert "metrics.csv" in before and "config.yaml" in before and "results.md" in before
    config, ckpt = str(fitted / "config.yaml"), str(fitted / "checkpoints" / "last.ckpt")
    call_rsmg("test", "--config", config, "--ckpt_path", ckpt, cwd=fitted)
    call_rsmg(
        "predict", "--config", config, "--ckpt_path", ckpt, "--trainer.limit_predict_batches", "1", cwd=fitted
    )
    p = call_rsmg("predict", "--config", config, "--ckpt_path", ckpt, "--trainer.limit_predict_batches", "1",
                  cwd=fitted)  # fmt: skip
    after = _digest(fitted)
    assert {k: v for k, v in after.items() if k in before} == before  # byte-identical
    new = {Path(k).parts[0] for k in set(after) - set(before)}
    assert new == {"test_0", "predict_0", "predict_1"}
    assert (fitted / "test_0" / "results.md").is_file()
    assert list((fitted / "predict_1").glob("predictions_*.npz"))
    assert f"writing into {fitted / 'predict_1'}" in p.stdout


def test_predict_without_a_checkpoint_is_an_error_unless_allowed(fitted: Path) -> None:
    config = str(fitted / "config.yaml")
    p = call_rsmg("predict", "--config", config, cwd=fitted, check=False)
    assert p.returncode == 1
    assert "never trained" in p.stderr and "--allow_untrained true" in p.stderr
    call_rsmg("predict", "--config", config, "--allow_untrained", "true", "--trainer.limit_predict_batches", "1",
              cwd=fitted)  # fmt: skip


def test_a_cut_checkpoint_is_a_one_line_error(fitted: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes((fitted / "checkpoints" / "last.ckpt").read_bytes()[:5000])
    p = call_rsmg(
        "test", "--config", str(fitted / "config.yaml"), "--ckpt_path", str(cut), cwd=tmp_path, check=False
    )
    assert p.returncode == 1
    err = p.stderr
    assert "not a complete checkpoint: 5,000 bytes, zip directory missing" in err and "Traceback" not in err
