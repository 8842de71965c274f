"""Every cell of ``benchmarks/scene_dg.py`` is a valid ``rsmg fit`` command line, and its statistics are right.

A typo in a method's config pieces would otherwise surface as a FAILED run hours into an overnight grid.
``--print_config`` checks every key against the current signatures without reading data or training.
"""

import sys

import pytest

from _cli import parses
from _paths import REPO
from rsmg.errors import DataError

sys.path.insert(0, str(REPO / "benchmarks"))
import _stats
import scene_budget
import scene_dg


@pytest.mark.parametrize("method", sorted(scene_dg.METHODS))
def test_every_method_parses_on_the_core_protocol(method):
    out = parses(scene_dg.fit_args("lodo_ucm", method, 2))
    assert ("SceneFVMGN" in out) == method.startswith("fvmgn")
    assert "max_epochs: 2" in out and "- ucm" in out


@pytest.mark.parametrize("protocol", sorted(scene_dg.PROTOCOLS))
def test_every_protocol_parses_with_fvmgn(protocol):
    out = parses(scene_dg.fit_args(protocol, "fvmgn", None))
    proto = scene_dg.PROTOCOLS[protocol]
    assert f"class_set: {proto.class_set}" in out
    for target in proto.targets:
        assert f"- {target}" in out


def test_paired_statistics_use_sample_std_and_matching_seeds():
    assert _stats.mean_sd([1.0, 2.0, 3.0]) == "2.00 ± 1.00"  # ddof = 1 (population std would be 0.82)
    assert _stats.mean_sd([5.0]) == "5.00 ± –"
    diffs = _stats.paired_differences({0: 3.0, 1: 1.0, 2: 7.0}, {0: 1.0, 1: 2.0})
    assert diffs == {0: 2.0, 1: -1.0}  # seed 2 has no baseline: not paired
    assert _stats.paired_cell(diffs) == "+2.00, -1.00 (mean +0.50; 1/2 > 0)"


@pytest.mark.parametrize("setting", sorted(scene_budget.SETTINGS))
def test_every_budget_setting_parses_and_changes_what_it_names(setting):
    overrides, _ = scene_budget.SETTINGS[setting]
    out = parses([*scene_dg.fit_args("lodo_aid", "erm", None), *overrides])
    size, freeze, epochs = (p.split()[0] for p in setting.split(", "))
    assert f"image_size: {size}" in out and f"freeze: {freeze}" in out and f"max_epochs: {epochs}" in out


def test_budget_choice_takes_the_best_source_score_unless_a_cheaper_one_is_within_tolerance():
    cost = {"a": 0, "b": 1, "c": 2}
    assert scene_budget.choose({"a": [97.0, 97.2], "b": [97.5], "c": [98.0]}, cost, 0.4) == "c"
    assert scene_budget.choose({"a": [97.0, 97.2], "b": [97.5], "c": [97.8]}, cost, 0.4) == "b"
    assert scene_budget.choose({"a": [97.7], "b": [97.5], "c": [97.8]}, cost, 0.4) == "a"


def test_budget_settings_that_finished_different_seeds_are_not_compared():
    with pytest.raises(DataError, match="did not finish the same seeds"):
        _stats.require_paired({"a": {0: 97.0, 1: 97.5}, "b": {0: 97.2}}, "budget")
    _stats.require_paired(
        {"a": {0: 97.0, 1: 97.5}, "b": {1: 97.2, 0: 96.0}}, "budget"
    )  # order does not matter


def test_best_val_oa_reads_only_finished_untested_runs(tmp_path):
    run = tmp_path / "seed0"
    run.mkdir()
    (run / "config.yaml").write_text("data:\n  init_args: {sources: [ucm, rsscn7], targets: [aid]}\n")
    (run / "metrics.csv").write_text(
        "epoch,step,train/loss,val/oa\n0,9,0.5,\n0,9,,0.95\n1,19,,0.97\n2,29,,0.96\n"
    )
    assert scene_budget.best_val_oa(run) is None  # no recorded wall: a killed run is refitted, not scored
    (run / "bench_wall_s.txt").write_text("12.0\n")
    assert scene_budget.best_val_oa(run) == pytest.approx(97.0)
    (run / "metrics.json").write_text("{}")  # a run that was tested may not choose
    with pytest.raises(DataError, match="may not choose"):
        scene_budget.best_val_oa(run)


def test_every_cross_domain_protocol_names_the_in_domain_ceiling_of_its_own_target_and_classes():
    for name, proto in scene_dg.PROTOCOLS.items():
        if name.startswith("indomain_"):
            assert proto.ceiling is None and proto.sources == proto.targets
            continue
        top = scene_dg.PROTOCOLS[str(proto.ceiling)]
        assert top.sources == top.targets == proto.targets and top.class_set == proto.class_set


def test_the_ceiling_line_shows_the_sample_std_or_says_how_to_run_it():
    runs = {0: {"oa": 0.97}, 1: {"oa": 0.99}}
    assert "OA 98.00 ± 1.41 % over 2 seeds" in scene_dg.ceiling_line("rsscn7_zoom2", runs)[0]
    assert "OA 97.00 % (1 seed)" in scene_dg.ceiling_line("rsscn7_zoom2", {0: runs[0]})[0]
    assert "`--protocols indomain_rsscn7_zoom2`" in scene_dg.ceiling_line("rsscn7_zoom2", {})[0]
    assert scene_dg.ceiling_line("indomain_aid", runs) == []
