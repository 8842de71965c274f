"""Every cell of ``benchmarks/fvmgn_accuracy.py``'s grid is a valid ``rsmg fit`` command line.

A grid cell is a config plus CLI overrides; a renamed model argument or a typo in a method's overrides would
otherwise surface as a FAILED run an hour into a benchmark. Parsing (``--print_config``) checks every key
against the current signatures without training. Every method is parsed on one cross-scene protocol, and every
protocol with the FVMGN and baseline models (the data overrides are the protocol's own).
"""

import sys

import pytest

from _cli import parses
from _paths import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import fvmgn_accuracy as grid


@pytest.mark.parametrize("method", sorted(grid.METHODS))
def test_every_method_parses_on_trento_to_muufl(method, monkeypatch):
    out = parses(grid.fit_args("trento_to_muufl", method, 2, "fraction:0.25"), monkeypatch)
    which, extra = grid.METHODS[method]
    assert ("ConcatCNN" in out) == (which == "baseline")
    for key in extra[::2]:
        if key.startswith("--model.init_args.net.init_args."):  # the override reached the model
            assert f"{key.rsplit('.', 1)[1]}:" in out


@pytest.mark.parametrize("protocol", sorted(grid.PROTOCOLS))
@pytest.mark.parametrize("method", ["fvmgn", "baseline (concat CNN)"])
def test_every_protocol_parses(protocol, method, monkeypatch):
    out = parses(grid.fit_args(protocol, method, 2, "fraction:0.25"), monkeypatch)
    assert ("ConcatCNN" in out) == (method != "fvmgn")
    assert f"- {grid.PROTOCOLS[protocol].target}" in out or f"[{grid.PROTOCOLS[protocol].target}]" in out


def test_aliases_and_skips_name_real_methods():
    assert set(grid.ALIASES.values()) <= set(grid.METHODS)
    assert not set(grid.ALIASES) & set(grid.METHODS)
    for proto in grid.PROTOCOLS.values():
        assert proto.skip <= set(grid.METHODS), proto.skip - set(grid.METHODS)
    methods = set(grid.METHODS)
    assert set(grid.SHORT) <= methods
    assert methods >= grid.CROSS_SCENE_ONLY


def test_per_class_table_and_majority_reference():
    run = {
        "classes": ["trees", "ground", "water"],
        "per_class": [0.9, 0.5, float("nan")],
        "confusion": [[27, 3, 0], [5, 5, 0], [0, 0, 0]],  # 30 trees, 10 ground, no water test pixels
    }
    other = {**run, "per_class": [0.7, 0.7, float("nan")]}
    lines = grid.per_class_table({"a": [run, other], "b": [], "c": [other]})
    text = "\n".join(lines)
    assert "always answering the most frequent target class (trees, 30 of 40" in text
    assert "OA 75.00 %, AA 50.00 % (2 classes present)" in text
    assert "| a | 80.0 | 60.0 | — |" in lines
    assert "| c | 70.0 | 70.0 | — |" in lines
    assert not any(line.startswith("| b |") for line in lines)  # a method whose runs all failed has no row
    closed = {"classes": ["trees", "ground"], "per_class": [0.6, 0.4], "confusion": [[6, 4], [6, 4]]}
    lines = grid.per_class_table({"a": [run], "closed": [closed]})
    assert "| method | trees | ground | water |" in lines
    assert "| closed | 60.0 | 40.0 | — |" in lines  # aligned by class name, not by position
    assert grid.per_class_table({"a": []}) == []


def test_a_grid_that_ran_nothing_leaves_the_results_file_alone(monkeypatch):
    """Asking for the paper settings without their cubes used to replace the full grid's file by a 'Not run' stub."""
    written = []
    monkeypatch.setattr(grid, "not_run", lambda protocol: ["Not run: cubes missing (test)."])
    monkeypatch.setattr(grid, "write_result", lambda name, text: written.append(name))
    monkeypatch.setattr(
        sys, "argv", ["fvmgn_accuracy.py", "--methods", "fvmgn", "--protocols", "trento_to_muufl"]
    )
    with pytest.raises(SystemExit, match="unchanged"):
        grid.main()
    assert written == []
