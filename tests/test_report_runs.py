"""What real `rsmg` runs leave for `rsmg report`: fast_dev_run outputs, the checkpoint tested, profiler files."""

import json
import os
from types import SimpleNamespace

import pytest
from lightning.pytorch.callbacks import ModelCheckpoint

from _cli import call_rsmg
from _experiments import BASELINE
from _paths import REPO, SHARED_DATA
from rsmg import report
from rsmg.callbacks.results import PerDomainResults, checkpoint_used, run_dir
from rsmg.data.spec import DataSpec

DEBUG = REPO / "experiments/debug"
TINY = ("--data.init_args.target_split", "fraction:0.02")
needs_data = pytest.mark.skipif(not SHARED_DATA.exists(), reason="shared data pack missing")


def rsmg(*args, cwd):
    return call_rsmg(*args, cwd=cwd)


# ---------------------------------------------------------------------------------------------- unit
def test_fast_dev_run_writes_into_its_own_throwaway_directory(tmp_path):
    trainer = SimpleNamespace(
        is_global_zero=True, log_dir=None, default_root_dir=str(tmp_path), fast_dev_run=True, global_step=1
    )
    assert run_dir(trainer) == tmp_path / "fast_dev_run"  # type: ignore[arg-type]
    res = {"muufl": {"oa": 0.5, "aa": 0.4, "kappa": 0.3, "per_class": [0.5, 0.5], "n": 10}}
    module = SimpleNamespace(
        test_results=res, spec=DataSpec(classes=("trees", "road"), modalities={"lidar": 2})
    )
    PerDomainResults().on_test_end(trainer, module)  # type: ignore[arg-type]
    assert sorted(os.listdir(tmp_path)) == ["fast_dev_run"]
    payload = json.loads((tmp_path / "fast_dev_run" / "metrics.json").read_text())
    assert payload["fast_dev_run"] is True and payload["checkpoint"] == {"kind": "end of fit", "path": None}
    trainer.fast_dev_run = False
    assert run_dir(trainer) == tmp_path  # type: ignore[arg-type]


def test_checkpoint_used_says_which_weights_were_tested(tmp_path):
    mc = ModelCheckpoint(dirpath=tmp_path)
    mc.best_model_path = str(tmp_path / "epoch=3-step=9.ckpt")

    def kind(ckpt, step=5):
        t = SimpleNamespace(ckpt_path=ckpt, global_step=step, checkpoint_callbacks=[mc])
        return checkpoint_used(t)["kind"]  # type: ignore[arg-type]

    assert kind(mc.best_model_path) == "best"  # --test_after_fit: ckpt_path="best", whatever its file name
    assert kind(str(tmp_path / "best-epoch=1.ckpt")) == "best"
    assert kind(str(tmp_path / "last.ckpt")) == "last" and kind(str(tmp_path / "last-v1.ckpt")) == "last"
    assert kind(str(tmp_path / "epoch=1-step=3.ckpt")) == "other"
    assert kind(None) == "end of fit" and kind(None, step=0) == "no checkpoint"
    assert checkpoint_used(SimpleNamespace(ckpt_path="a/last.ckpt"))["path"] == "a/last.ckpt"  # type: ignore[arg-type]


def test_setup_stops_last_ckpt_of_a_fast_dev_run_only(tmp_path):
    for fast_dev_run, expected in [(True, False), (0, True)]:
        mc = ModelCheckpoint(dirpath=tmp_path, save_last=True)
        trainer = SimpleNamespace(fast_dev_run=fast_dev_run, checkpoint_callbacks=[mc])
        PerDomainResults().setup(trainer, None, "fit")  # type: ignore[arg-type]
        assert mc.save_last is expected


# ---------------------------------------------------------------------------------------------- real runs
@needs_data
def test_fast_dev_run_overlay_leaves_the_experiments_root_clean(tmp_path):
    fdr = str(DEBUG / "fast_dev_run.yaml")
    rsmg("fit", *BASELINE, "--config", fdr, *TINY, "--test_after_fit", "true", cwd=tmp_path)
    out = tmp_path / "outputs"  # the default_root_dir (and the baseline's logger save_dir)
    assert sorted(os.listdir(out)) == ["fast_dev_run"], sorted(map(str, out.rglob("*")))
    assert not list(tmp_path.rglob("*.ckpt"))  # "no checkpoint", as the overlay says
    assert json.loads((out / "fast_dev_run" / "metrics.json").read_text())["fast_dev_run"] is True
    assert (out / "fast_dev_run" / "figures").is_dir()
    header = (DEBUG / "fast_dev_run.yaml").read_text().split("trainer:")[0]
    assert "outputs/fast_dev_run" in header.replace("<default_root_dir>", "outputs")
    rep = report.build_report([out], tmp_path / "rep", figure=False)
    assert rep.rows == [] and [r.status for r in rep.not_counted()] == ["debug"]


@pytest.mark.slow
@needs_data
def test_report_of_fit_retest_validate_and_predict(tmp_path):
    """fit --test_after_fit (profiled), then test of last.ckpt, validate and predict of the same run."""
    small = ("--config", str(DEBUG / "limit_batches.yaml"), *TINY)
    prof = ("--config", str(DEBUG / "profiler.yaml"), "--trainer.limit_train_batches", "3")
    prof += ("--trainer.limit_val_batches", "2", "--trainer.limit_test_batches", "3")
    p = rsmg("fit", *BASELINE, *small, *prof, "--test_after_fit", "true", cwd=tmp_path)
    exp = tmp_path / "outputs" / "baseline_trento_to_muufl"
    fit = exp / "version_0"
    # profiler.yaml's claim: the per-hook table goes to <run_dir>/fit-profile.txt (and test-profile.txt), not
    # to the terminal
    assert "Profiler Report" in (fit / "fit-profile.txt").read_text() and (fit / "test-profile.txt").exists()
    assert "Profiler Report" not in p.stdout + p.stderr
    header = (DEBUG / "profiler.yaml").read_text().split("trainer:")[0]
    assert "fit-profile.txt" in header and "printed" not in header
    assert json.loads((fit / "metrics.json").read_text())["checkpoint"]["kind"] == "best"

    last = str(fit / "checkpoints" / "last.ckpt")
    rsmg("test", *BASELINE, *small, "--ckpt_path", last, cwd=tmp_path)
    rsmg("validate", *BASELINE, *small, "--ckpt_path", last, cwd=tmp_path)
    rsmg(
        "predict",
        *BASELINE,
        *small,
        "--trainer.limit_predict_batches",
        "2",
        "--ckpt_path",
        last,
        cwd=tmp_path,
    )

    rep = report.build_report([tmp_path / "outputs"], tmp_path / "rep", figure=False)
    assert rep.rows == ["ConcatCNN · best", "ConcatCNN · last"]  # neither test replaces the other
    assert {r.path.name: r.checkpoint for r in rep.counted()} == {"version_0": "best", "version_1": "last"}
    assert {r.path.name: r.status for r in rep.not_counted()} == {
        "version_2": "validate",
        "version_3": "predict",
    }
    md = (tmp_path / "rep" / "report.md").read_text()
    assert f"last: {last}" in md and "did not finish" not in md
