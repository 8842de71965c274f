"""``rsmg report``: seeds into mean ± std, best per column, every run not counted listed, files written."""

import csv
import json
import math
import os
import re
import statistics

import pytest
import yaml

from _paths import REPO
from rsmg import report
from rsmg.cli.main import main as rsmg_main
from rsmg.cli.report import parser as _parser

CLASSES = ["trees", "ground", "road", "buildings"]


def make_run(
    root, experiment, version, net, seed, results=None, mtime=None, *, config=None, payload=None, ckpts=()
):
    """A run directory as `rsmg fit --test_after_fit true` leaves it (results=None: an unfinished run).

    config: extra top-level config.yaml keys (e.g. what `rsmg test` / `validate` / `predict` save); payload:
    extra metrics.json keys; ckpts: file names created in checkpoints/.
    """
    run = root / experiment / f"version_{version}"
    (run / "checkpoints").mkdir(parents=True)
    for name in ckpts:
        (run / "checkpoints" / name).write_bytes(b"")
    cfg = {
        "seed_everything": seed,
        "trainer": {
            "logger": {
                "class_path": "lightning.pytorch.loggers.CSVLogger",
                "init_args": {"save_dir": "outputs", "name": experiment},
            }
        },
        "model": {
            "class_path": "rsmg.tasks.ClassificationTask",
            "init_args": {"net": {"class_path": f"rsmg.models.{net}", "init_args": {}}},
        },
        **(config or {}),
    }
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    if results is not None:
        blocks = {
            d: {"oa": oa, "aa": aa, "kappa": k, "per_class": [oa] * 4, "n": 100}
            for d, (oa, aa, k) in results.items()
        }
        (run / "metrics.json").write_text(
            json.dumps(
                {"classes": CLASSES, "domains": list(results), "results": {"test": blocks}, **(payload or {})}
            )
        )
        if mtime is not None:
            os.utime(run / "metrics.json", (mtime, mtime))
    return run


@pytest.fixture
def runs(tmp_path):
    out = tmp_path / "outputs"
    # baseline: 3 seeds on two targets; fvmgn: 2 seeds, one also missing a target; plus an unfinished run
    for i, (seed, oa) in enumerate([(1, 0.50), (2, 0.60), (3, 0.70)]):
        make_run(
            out,
            "baseline_t2m",
            i,
            "baseline.ConcatCNN",
            seed,
            {"muufl": (oa, oa - 0.1, oa - 0.2), "houston": (0.3, 0.3, 0.1)},
        )
    make_run(out, "fvmgn_t2m", 0, "FVMGN", 1, {"muufl": (0.80, 0.40, 0.55), "houston": (0.2, 0.25, 0.05)})
    make_run(out, "fvmgn_t2m", 1, "FVMGN", 2, {"muufl": (0.90, 0.50, 0.65)})
    make_run(out, "fvmgn_t2m", 2, "FVMGN", 3)  # crashed: no metrics.json
    return out


def test_mean_std_best_and_not_counted(runs, tmp_path):
    rep = report.build_report([runs, tmp_path / "nope"], tmp_path / "rep")
    assert rep.rows == ["ConcatCNN", "FVMGN"]
    assert rep.domains == ["muufl", "houston"]
    c = rep.cells["ConcatCNN"]["muufl"]["oa"]
    assert (
        c.n == 3
        and c.mean == pytest.approx(0.6)
        and c.std == pytest.approx(statistics.stdev([0.5, 0.6, 0.7]))
    )
    f = rep.cells["FVMGN"]["houston"]["oa"]
    assert f.n == 1 and math.isnan(f.std)  # one value: no std invented
    assert rep.best[("muufl", "oa")] == ["FVMGN"] and rep.best[("muufl", "aa")] == ["ConcatCNN"]
    assert rep.best[("houston", "oa")] == ["ConcatCNN"]
    skipped = {(r.path.name if r.status != "missing" else "nope", r.status) for r in rep.not_counted()}
    assert skipped == {("version_2", "unfinished"), ("nope", "missing")}

    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| method | runs | seeds | checkpoint | protocol | experiments | muufl · OA |" in md
    assert "**85.00 ± 7.07**" in md  # FVMGN muufl OA, best of its column, in bold
    assert "60.00 ± 10.00" in md and "**60.00 ± 10.00**" not in md.split("muufl · OA")[1].split("\n")[2]
    assert "(1/2 runs)" in md  # FVMGN houston: counted over fewer runs than the row
    assert "fvmgn_t2m/version_2 | unfinished | no metrics.json" in md
    assert "nope | missing | path does not exist" in md
    rows = list(csv.DictReader((tmp_path / "rep" / "report.csv").open()))
    assert [r["method"] for r in rows] == ["ConcatCNN", "FVMGN"]
    assert float(rows[1]["muufl/oa/mean"]) == pytest.approx(0.85) and rows[1]["muufl/oa/best"] == "True"
    assert rows[0]["seeds"] == "1, 2, 3"
    payload = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert payload["rows"]["FVMGN"]["domains"]["houston"]["oa"]["std"] is None
    assert {d["status"] for d in payload["not_counted"]} == {"unfinished", "missing"}
    per_run = list(csv.DictReader((tmp_path / "rep" / "runs.csv").open()))
    assert (
        len(per_run) == 6 + 3 + 1 + 1
    )  # one per (run, domain), then the unfinished run and the missing path
    assert (tmp_path / "rep" / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_group_by_experiment_and_metric_subset(runs, tmp_path):
    rep = report.build_report([runs], tmp_path / "rep", group_by="experiment", metrics=["kappa"])
    assert rep.rows == ["baseline_t2m", "fvmgn_t2m"] and rep.metrics == ["kappa"]
    md = (tmp_path / "rep" / "report.md").read_text()
    assert (
        "| experiment | runs | seeds | checkpoint | protocol | methods | muufl · Kappa | houston · Kappa |"
        in md
    )


def test_rerun_of_same_seed_supersedes_older_run(tmp_path):
    out = tmp_path / "outputs"
    make_run(out, "exp", 0, "A", 7, {"m": (0.1, 0.1, 0.1)}, mtime=1_000_000)
    make_run(out, "exp", 1, "A", 7, {"m": (0.9, 0.9, 0.9)}, mtime=2_000_000)
    rep = report.build_report([out], tmp_path / "rep")
    assert rep.cells["A"]["m"]["oa"].n == 1 and rep.cells["A"]["m"]["oa"].mean == pytest.approx(0.9)
    (old,) = rep.not_counted()
    assert old.status == "superseded" and old.path.name == "version_0" and "version_1" in old.reason


def test_cli_exit_codes_and_errors(runs, tmp_path, capsys):
    assert report.main([str(runs), "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr()
    assert "| ConcatCNN |" in out.out and "not counted" in out.err and "version_2" in out.err
    assert report.main([str(runs), "--out", str(tmp_path / "b"), "--strict"]) == 1
    assert report.main([str(runs), "--out", str(tmp_path / "c"), "--metric", "oa,f1"]) == 1
    assert "unknown metric" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert report.main([str(empty), "--out", str(tmp_path / "d")]) == 1
    assert "no finished run" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # the `rsmg report` verb routes to report.main
        rsmg_main(["report", str(runs), "--out", str(tmp_path / "e"), "--no-figure"])
    assert e.value.code == 0 and (tmp_path / "e" / "report.md").exists()
    assert not (tmp_path / "e" / "comparison.png").exists()


def test_unreadable_metrics_is_listed(tmp_path):
    run = make_run(tmp_path, "exp", 0, "A", 1, {"m": (0.5, 0.5, 0.5)})
    (run / "metrics.json").write_text("{truncated")
    rep = report.build_report([tmp_path], tmp_path / "rep", figure=False)
    assert rep.rows == [] and rep.not_counted()[0].status == "unreadable"
    assert "metrics.json unreadable" in (tmp_path / "rep" / "report.md").read_text()


def test_block_selected_by_unique_part_of_its_name(tmp_path):
    run = make_run(tmp_path, "exp", 0, "A", 1, {"m": (0.5, 0.5, 0.5)})
    payload = json.loads((run / "metrics.json").read_text())
    tta = {"m": {"oa": 0.7, "aa": 0.6, "kappa": 0.5, "per_class": [0.7] * 4, "n": 100}}
    payload["results"]["test with DTAug TTA (K=4, strength=0.4, steps=5, mean_prob)"] = tta
    nan = float("nan")  # a source domain no rank tested comes back with n = 0 under DDP: not a target column
    payload["results"]["test"]["src"] = {"oa": nan, "aa": nan, "kappa": nan, "per_class": [nan] * 4, "n": 0}
    (run / "metrics.json").write_text(json.dumps(payload))
    rep = report.build_report([tmp_path], tmp_path / "rep", figure=False)
    assert rep.domains == ["m"]
    rep = report.build_report([tmp_path], tmp_path / "rep", block="tta", figure=False)
    assert rep.cells["A"]["m"]["oa"].mean == pytest.approx(0.7)
    rep = report.build_report([tmp_path], tmp_path / "rep", block="nothing", figure=False)
    assert rep.rows == [] and "no result block matches 'nothing'" in rep.not_counted()[0].reason


def _metrics_payload(oa, **extra):
    res = {"muufl": {"oa": oa, "aa": oa, "kappa": oa, "per_class": [oa] * 4, "n": 256}}
    return json.dumps({"classes": CLASSES, "domains": ["muufl"], "results": {"test": res}, **extra})


def test_runs_below_a_folder_with_results_of_its_own_are_found(runs, tmp_path):
    # what an older fast_dev_run left straight in the experiments root: results but no config.yaml
    (runs / "metrics.json").write_text(_metrics_payload(0.99))
    (runs / "checkpoints").mkdir()
    (runs / "checkpoints" / "last.ckpt").write_bytes(b"")
    rep = report.build_report([runs], tmp_path / "rep", figure=False)
    assert rep.rows == ["ConcatCNN", "FVMGN"] and len(rep.counted()) == 5  # every run below is still read
    (stray,) = [r for r in rep.not_counted() if r.path == runs]
    assert stray.status == "unidentified" and "no config.yaml" in stray.reason
    md = (tmp_path / "rep" / "report.md").read_text()
    assert f"| {runs} | unidentified |" in md and "every run" not in md


def test_every_run_line_only_when_every_run_found_is_counted(tmp_path):
    make_run(tmp_path / "outputs", "exp", 0, "A", 1, {"m": (0.5, 0.5, 0.5)})
    rep = report.build_report([tmp_path / "outputs"], tmp_path / "rep", figure=False)
    assert rep.not_counted() == []
    assert "None: every run directory found has test results" in (tmp_path / "rep" / "report.md").read_text()


def test_fast_dev_run_directory_is_listed_as_debug_never_counted(runs, tmp_path):
    fdr = runs / "fast_dev_run"
    fdr.mkdir()
    (fdr / "metrics.json").write_text(_metrics_payload(0.99, fast_dev_run=True))
    rep = report.build_report([runs], tmp_path / "rep", figure=False)
    assert rep.rows == ["ConcatCNN", "FVMGN"]
    (debug,) = [r for r in rep.not_counted() if r.path == fdr]
    assert debug.status == "debug" and "fast_dev_run" in debug.reason


def _fit_and_retest(out, retest_ckpt, retest_oa=0.5, legacy_fit=True):
    """A fit tested on its best checkpoint, then `rsmg test --ckpt_path <retest_ckpt>` of it (newer)."""
    fit_payload = None if legacy_fit else {"checkpoint": {"kind": "best", "path": "x/best-epoch=3.ckpt"}}
    fit = make_run(
        out,
        "exp",
        0,
        "A",
        42,
        {"m": (0.6, 0.6, 0.6)},
        mtime=1_000_000,
        config={"test_after_fit": True, "ckpt_path": None},
        payload=fit_payload,
        ckpts=("best-epoch=3.ckpt", "last.ckpt"),
    )
    ckpt = str(fit / "checkpoints" / retest_ckpt)
    kind = "last" if retest_ckpt.startswith("last") else "best"
    make_run(
        out,
        "exp",
        1,
        "A",
        42,
        {"m": (retest_oa, retest_oa, retest_oa)},
        mtime=2_000_000,
        config={"test_after_fit": False, "ckpt_path": ckpt, "verbose": True},
        payload={"checkpoint": {"kind": kind, "path": ckpt}},
    )
    return fit, ckpt


def test_best_and_last_checkpoint_tests_of_one_run_are_two_rows(tmp_path):
    out = tmp_path / "outputs"
    _, last = _fit_and_retest(out, "last.ckpt")
    rep = report.build_report([out], tmp_path / "rep", figure=False)
    assert rep.not_counted() == []  # the test of last.ckpt does not silently replace the fit's test of best
    assert rep.rows == ["A · best", "A · last"]
    assert rep.cells["A · best"]["m"]["oa"].mean == pytest.approx(0.6)
    assert rep.cells["A · last"]["m"]["oa"].mean == pytest.approx(0.5)
    assert any("different checkpoints" in n for n in rep.notes)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert f"last: {last}" in md and "| A · best | 1 | 42 | best |" in md
    per_run = list(csv.DictReader((tmp_path / "rep" / "runs.csv").open()))
    assert sorted(r["checkpoint"] for r in per_run) == ["best", "last"]


def test_retest_of_the_same_checkpoint_supersedes_and_names_it(tmp_path):
    out = tmp_path / "outputs"
    _fit_and_retest(out, "best-epoch=3.ckpt", retest_oa=0.6, legacy_fit=False)
    rep = report.build_report([out], tmp_path / "rep", figure=False)
    (old,) = rep.not_counted()
    assert old.status == "superseded" and old.path.name == "version_0"
    assert "checkpoint (best)" in old.reason and "ckpt_path" in old.reason and "verbose" not in old.reason


def test_validate_and_predict_directories_are_labelled_as_such(tmp_path):
    out = tmp_path / "outputs"
    make_run(out, "exp", 0, "A", 1, {"m": (0.5, 0.5, 0.5)})
    common = {"test_after_fit": False, "ckpt_path": "outputs/exp/version_0/checkpoints/last.ckpt"}
    val = make_run(out, "exp", 1, "A", 1, config={**common, "verbose": True})
    (val / "metrics.csv").write_text("epoch,step,val/ce,val/loss,val/oa\n0,0,1.2,1.2,0.5\n")
    make_run(out, "exp", 2, "A", 1, config={**common, "return_predictions": None})
    make_run(out, "exp", 3, "A", 1, config={**common, "verbose": True})  # no metrics.csv: can't tell which
    rep = report.build_report([out], tmp_path / "rep", figure=False)
    status = {r.path.name: (r.status, r.reason) for r in rep.not_counted()}
    assert status["version_1"][0] == "validate" and "rsmg validate" in status["version_1"][1]
    assert status["version_2"][0] == "predict" and "rsmg predict" in status["version_2"][1]
    assert status["version_3"][0] == "unfinished" and "rsmg validate" in status["version_3"][1]
    assert not any("training or testing did not finish" in reason for _, reason in status.values())


def test_one_seed_in_two_experiments_is_never_one_mean(tmp_path):
    out = tmp_path / "outputs"
    for exp, target, oa in [("exp_a", "muufl", 0.5), ("exp_b", "trento", 0.7)]:
        data = {"class_path": "D", "init_args": {"targets": [target]}}
        make_run(out, exp, 0, "A", 42, {"m": (oa, oa, oa)}, config={"data": data})
    make_run(
        out,
        "exp_a",
        1,
        "A",
        43,
        {"m": (0.6, 0.6, 0.6)},
        config={"data": {"class_path": "D", "init_args": {"targets": ["muufl"]}}},
    )
    rep = report.build_report([out], tmp_path / "rep", figure=False)
    assert rep.rows == ["A · exp_a", "A · exp_b"] and rep.not_counted() == []
    assert rep.cells["A · exp_a"]["m"]["oa"].n == 2 and rep.cells["A · exp_b"]["m"]["oa"].n == 1
    (note,) = rep.notes
    assert "42" in note and "data.init_args.targets" in note
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "42, 42" not in md and "| A · exp_a | 2 | 42, 43 |" in md


def test_examples_name_directories_the_shipped_experiments_write():
    names = set()
    for cfg in (REPO / "experiments").rglob("*.yaml"):
        names |= set(re.findall(r"\bname:\s*([\w.-]+)", cfg.read_text()))
    text = (report.__doc__ or "") + _parser().format_help()
    used = set(re.findall(r"outputs/([\w.-]+)", text)) - {"report"}
    assert used and used <= names, sorted(used - names)


def test_transductive_runs_are_labelled_and_never_averaged_with_inductive_ones(tmp_path):
    """The protocol from metrics.json, or inferred for older files from the config's per-scene option."""
    from types import SimpleNamespace

    from rsmg.callbacks.results import PerDomainResults
    from rsmg.data.spec import DataSpec

    out = tmp_path / "outputs"
    # a run written by the results callback itself, with a data module that says transductive
    run = make_run(out, "fvmgn_t2m", 0, "FVMGN", 1)
    dm = SimpleNamespace(
        protocol="transductive", protocol_reason="muufl standardised with its own statistics"
    )
    trainer = SimpleNamespace(
        is_global_zero=True, log_dir=str(run), default_root_dir=str(out), datamodule=dm, global_step=1
    )
    res = {"muufl": {"oa": 0.8, "aa": 0.4, "kappa": 0.5, "per_class": [0.8] * 4, "n": 10}}
    module = SimpleNamespace(test_results=res, spec=DataSpec(classes=tuple(CLASSES), modalities={"lidar": 2}))
    PerDomainResults(title="t").on_test_end(trainer, module)  # type: ignore[arg-type]
    assert json.loads((run / "metrics.json").read_text())["protocol"] == "transductive"
    assert (run / "results.md").read_text().startswith("Protocol: **transductive** (muufl standardised")
    # the same method, inductive (recorded), and an older run whose config used the removed per-scene option
    make_run(out, "fvmgn_t2m", 1, "FVMGN", 2, {"muufl": (0.6, 0.4, 0.3)}, payload={"protocol": "inductive"})
    old = {
        "data": {
            "init_args": {
                "sources": ["trento"],
                "targets": ["muufl"],
                "scene_standardize": {"lidar": ["intensity"]},
            }
        }
    }
    make_run(out, "fvmgn_old", 0, "FVMGN", 3, {"muufl": (0.7, 0.4, 0.3)}, config=old)
    rep = report.build_report([out], tmp_path / "rep", figure=False)
    assert rep.rows == ["FVMGN · transductive", "FVMGN"]
    assert sorted(r.seed for r in rep.counted("FVMGN · transductive")) == [1, 3]
    assert rep.cells["FVMGN"]["muufl"]["oa"].mean == pytest.approx(0.6)  # the inductive run alone
    md = (tmp_path / "rep" / "report.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| FVMGN · transductive | 2 | 1, 3 |"))
    assert set(row.split(" | ")[4].split(", ")) == {"transductive", "transductive (inferred)"}
    assert "| FVMGN | 1 | 2 | end of fit | inductive |" in md
