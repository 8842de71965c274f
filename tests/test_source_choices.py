"""``benchmarks/source_choices.py``: its cells parse, its rule picks on source validation, and it refuses tested runs.

The script re-makes choices once made on target test numbers (issue 21), so the guard matters as much as the
arithmetic: a run directory holding any test result, or shaped by a target statistic, must not be counted.
"""

import csv
import sys
from pathlib import Path

import pytest
import yaml

from _cli import parses
from _paths import REPO
from rsmg.errors import DataError, UsageError

sys.path.insert(0, str(REPO / "benchmarks"))
import source_choices as bench

LOGITS = bench.CHOICES["mwdis.logits"].values  # ("resampled", "original"): the values decide() compares


@pytest.mark.parametrize("setting", sorted(bench.SETTINGS))
def test_every_cell_parses_with_block_validation_and_no_test(setting, tmp_path):
    out = parses(bench.cell_args(setting, "mwdis.logits", "original", 7, tmp_path))
    # UC Merced validates on the Karpathy split's own validation images; the scenes on disjoint tiles
    validation = "split: karpathy" if setting == "ucm_unified" else "val_split: blocks:16"
    assert "logits: original" in out and validation in out
    assert f"max_epochs: {bench.SETTINGS[setting].epochs}" in out
    assert "test_after_fit: false" in out and "seed_everything: 7" in out and "version: seed7" in out


@pytest.mark.parametrize("key", sorted(bench.CHOICES))
def test_the_value_a_configuration_holds_runs_it_unchanged_and_the_other_is_an_override(key, tmp_path):
    """Every choice's two values on its first setting: one is the config's own (shared runs); the other comes
    with the overrides bundled with it."""
    choice = bench.CHOICES[key]
    setting = next(iter(choice.groups.values()))[0][0]
    held = bench.config_value(setting, key)
    assert held in choice.values  # the configuration holds one of the two values compared
    for value in choice.values:
        args = bench.cell_args(setting, key, value, 7, tmp_path)
        extra = choice.extra.get(value, ())
        if value == held:
            assert bench.cell_name(setting, key, value) == "config" and bench.NET + key not in args
        else:
            assert bench.cell_name(setting, key, value) == f"{key}={value}" + "".join(
                f",{k}={v}" for k, v in extra
            )
            assert args[args.index(bench.NET + key) + 1] == value
        leaf = key.split(".")[-1]
        out = parses(args)
        assert f"{leaf}: {value}" in out
        assert all(f"{k.split('.')[-1]}: {v}" in out for k, v in extra)


def _run(tmp: Path, val: list[float], *, config: dict | None = None, test_col: bool = False) -> Path:
    """A fit-only run directory: config.yaml and the CSV log ModelCheckpoint's val/oa comes from."""
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = {"test_after_fit": False, "data": {"init_args": {"sources": ["trento"], "targets": ["muufl"]}}}
    (tmp / "config.yaml").write_text(yaml.safe_dump(config or cfg))
    cols = ["epoch", "step", "train/loss", "val/oa", *(["test/oa"] if test_col else [])]
    rows = [{"epoch": e, "step": e, "val/oa": v} for e, v in enumerate(val)]
    rows.insert(1, {"epoch": 0, "step": 5, "train/loss": 0.7})  # a training-only row: no val/oa
    with (tmp / "metrics.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        w.writerows(rows)
    return tmp


def test_source_val_oa_is_the_best_epoch_in_percent(tmp_path):
    assert bench.source_val_oa(_run(tmp_path, [0.5, 0.875, 0.75])) == 87.5


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("metrics.json", "holds metrics.json"),
        ("test column", "test/oa"),
        ("test_after_fit", "test_after_fit: true"),
        ("transductive", "transductive"),
    ],
)
def test_a_run_that_read_a_target_number_or_statistic_is_refused(tmp_path, case, message):
    args = {"sources": ["trento"], "targets": ["muufl"]}
    if case == "transductive":
        args |= {"standardize": {"lidar": ["intensity"]}, "standardize_stats": "per_scene"}
    cfg = {"test_after_fit": case == "test_after_fit", "data": {"init_args": args}}
    run = _run(tmp_path, [0.9], config=cfg, test_col=case == "test column")
    if case == "metrics.json":
        (run / "metrics.json").write_text("{}")
    with pytest.raises(DataError, match=message):
        bench.source_val_oa(run)
    # in-scene, per-scene statistics are the training scene's own: inductive, so counted
    args |= {"targets": ["trento"], "standardize": {"lidar": ["intensity"]}, "standardize_stats": "per_scene"}
    ok = _run(tmp_path / "in_scene", [0.9], config={"test_after_fit": False, "data": {"init_args": args}})
    assert bench.source_val_oa(ok) == 90.0


def test_decide_picks_the_higher_mean_and_flags_a_weak_preference():
    oa = {"resampled": {1: 80.0, 2: 82.0, 3: 84.0}, "original": {1: 81.0, 2: 80.0, 3: 82.0}}
    d = bench.decide(oa, "original", LOGITS)
    assert d.chosen == "resampled" and d.means == {"resampled": 82.0, "original": 81.0}
    assert d.diffs == {1: -1.0, 2: 2.0, 3: 2.0} and d.within_spread  # mean +1.00 < 2 × sd 1.73
    clear = bench.decide(
        {"resampled": {1: 70.0, 2: 71.0}, "original": {1: 80.0, 2: 80.5}}, "resampled", LOGITS
    )
    assert clear.chosen == "original" and not clear.within_spread
    tie = {"resampled": {1: 80.0, 2: 82.0}, "original": {1: 82.0, 2: 80.0}}
    assert (
        bench.decide(tie, "original", LOGITS).chosen == "original"
        and bench.decide(tie, "resampled", LOGITS).chosen == "resampled"
    )


def test_decide_refuses_unpaired_or_missing_values():
    with pytest.raises(DataError, match="did not finish the same seeds") as unpaired:
        bench.decide({"resampled": {1: 80.0, 2: 81.0}, "original": {1: 80.0}}, "resampled", LOGITS)
    assert "'original': [1]" in str(unpaired.value) and "rerun the missing cells" in str(unpaired.value)
    with pytest.raises(DataError, match="did not finish the same seeds"):
        bench.decide({"resampled": {1: 80.0}, "original": {}}, "resampled", LOGITS)


def test_a_group_weighs_each_setting_the_same():
    a = bench.decide({"resampled": {1: 90.0, 2: 90.0}, "original": {1: 80.0, 2: 80.0}}, "resampled", LOGITS)
    b = bench.decide({"resampled": {1: 40.0, 2: 40.0}, "original": {1: 52.0, 2: 52.0}}, "resampled", LOGITS)
    assert bench.decide_group([a, b], "resampled") == "original"  # means 65 vs 66
    assert bench.decide_group([a], "original") == "resampled"


def test_tolerance_lets_the_cheaper_value_win_within_it_and_only_there():
    """``--tolerance``: the budget rule, for options of equal validation accuracy that differ in cost."""
    at = ("input", "frozen_prefix")
    tie = {"input": {0: 100.0, 1: 100.0}, "frozen_prefix": {0: 100.0, 1: 100.0}}
    cost = {"input": 2600.0, "frozen_prefix": 1600.0}
    assert bench.decide(tie, "input", at).chosen == "input"  # without it: a tie keeps the value before
    assert bench.decide(tie, "input", at, 0.48, cost).chosen == "frozen_prefix"
    near = {"input": {0: 100.0, 1: 99.52}, "frozen_prefix": {0: 99.52, 1: 99.52}}  # 0.24 points apart
    assert bench.decide(near, "input", at, 0.48, cost).chosen == "frozen_prefix"
    far = {"input": {0: 100.0, 1: 100.0}, "frozen_prefix": {0: 99.05, 1: 99.05}}  # two images apart
    assert bench.decide(far, "frozen_prefix", at, 0.48, cost).chosen == "input"
    d = bench.decide(tie, "input", at, 0.48, cost)
    assert bench.decide_group([d, d], "input", 0.48, cost) == "frozen_prefix"
    same = {"input": 1600.0, "frozen_prefix": 1600.0}  # a tie in OA and in cost keeps the value before
    assert bench.decide(tie, "input", at, 0.48, same).chosen == "input"
    assert bench.decide(tie, "frozen_prefix", at, 0.48, same).chosen == "frozen_prefix"
    with pytest.raises(UsageError, match="0 or more"):
        bench.decide(tie, "input", at, -0.5, cost)
    with pytest.raises(DataError, match="compares fit walls"):  # a run trained before walls were recorded
        bench.decide(tie, "input", at, 0.48, {"input": 2600.0, "frozen_prefix": float("nan")})


def test_a_setting_the_choice_is_not_made_on_is_refused_before_any_fit(tmp_path, monkeypatch):
    """``--choice mwdis.at`` (the unified model's) on a LiDAR setting would fit config cells for an hour, then
    fail on the override the pixel-patch FVMGN refuses: it is refused at once instead."""
    from rsmg.errors import UsageError

    monkeypatch.setattr(bench, "run", lambda *a: pytest.fail("fitted a cell"))
    args = bench.Options(choice="mwdis.at", settings=["trento_to_muufl"], out=tmp_path)
    with pytest.raises(UsageError, match="not made on"):
        bench.main(args)
