"""The ``rsmg`` command end to end on real data (tiny budgets), and its help and errors.

The commands run in this process (``rsmg.cli.main.main``, see ``tests/_cli.py``); ``python -m rsmg --help`` runs
as a real subprocess, which also checks the module entry point (cheap: the usage needs no torch).
"""

import json

import pytest

from _budget import SMOKE_BUDGET
from _cli import call_rsmg, run_rsmg
from _experiments import BASELINE
from _paths import SHARED_DATA


def rsmg(*args, cwd, check=True):
    return call_rsmg(*args, cwd=cwd, check=check)


def test_help_lists_every_command(tmp_path):
    out = run_rsmg("--help").stdout  # the real `python -m rsmg`
    for verb in ("fit", "validate", "test", "predict", "download", "report", "caption"):
        assert verb in out
    assert "--data" in rsmg("fit", "--help", cwd=tmp_path).stdout


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="shared data pack missing")
def test_fit_then_test_writes_results(tmp_path):
    rsmg(
        "fit",
        *BASELINE,
        *SMOKE_BUDGET,
        "--trainer.limit_test_batches",
        "3",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path),
        "--trainer.default_root_dir",
        str(tmp_path),
        "--test_after_fit",
        "true",
        cwd=tmp_path,
    )
    runs = list(tmp_path.glob("*/version_0"))
    assert len(runs) == 1, list(tmp_path.rglob("*"))
    run = runs[0]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["domains"] == ["muufl"]
    r = metrics["results"]["test"]["muufl"]
    assert 0 <= r["oa"] <= 1 and len(r["per_class"]) == 4
    assert "| muufl |" in (run / "results.md").read_text()
    assert (run / "config.yaml").exists()
    assert (run / "checkpoints" / "last.ckpt").exists()


def test_misspelled_config_key_is_an_error(tmp_path):
    p = rsmg(
        "fit",
        *BASELINE,
        "--data.init_args.patchsize",
        "9",
        check=False,
        cwd=tmp_path,
    )
    assert p.returncode != 0
    assert "patchsize" in p.stderr


def test_unknown_dataset_is_a_clear_error(tmp_path):
    p = rsmg(
        "fit",
        *BASELINE,
        "--data.init_args.targets",
        "[mufl]",
        check=False,
        cwd=tmp_path,
    )
    assert p.returncode != 0
    assert "unknown dataset 'mufl'" in p.stderr and "muufl" in p.stderr


@pytest.mark.parametrize("verb", ["fit", "predict"])
def test_missing_ckpt_path_is_a_clear_error_and_leaves_nothing(tmp_path, verb):
    out = tmp_path / "out"
    nope = tmp_path / "outputs" / "version_0" / "checkpoints" / "nope.ckpt"
    p = rsmg(
        verb,
        *BASELINE,
        *SMOKE_BUDGET,
        "--model.init_args.net.init_args.width",
        "4",
        "--trainer.logger.init_args.save_dir",
        str(out),
        "--trainer.default_root_dir",
        str(out),
        "--ckpt_path",
        str(nope),
        check=False,
        cwd=tmp_path,
    )
    assert p.returncode == 1, f"exit {p.returncode}:\n{p.stderr[-3000:]}"
    assert f"rsmg {verb}: error:" in p.stderr and "Traceback" not in p.stderr, p.stderr[-3000:]
    assert str(nope) in p.stderr and "field: ckpt_path" in p.stderr and "fix:" in p.stderr
    left = sorted(str(q.relative_to(tmp_path)) for q in tmp_path.rglob("*"))
    assert left == [], f"output left behind: {left}"  # no version_N/config.yaml
