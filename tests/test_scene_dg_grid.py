"""Every cell of ``benchmarks/scene_dg.py`` is a valid ``rsmg fit`` command line, and its statistics are right.

A typo in a method's config pieces would otherwise surface as a FAILED run hours into an overnight grid.
``--print_config`` checks every key against the current signatures without reading data or training.
"""

import sys

import pytest

from _cli import parses
from _paths import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import _stats
import scene_dg


@pytest.mark.parametrize("method", sorted(scene_dg.METHODS))
def test_every_method_parses_on_the_core_protocol(method, monkeypatch):
    out = parses(scene_dg.fit_args("lodo_ucm", method, 2), monkeypatch)
    assert ("SceneFVMGN" in out) == method.startswith("fvmgn")
    assert "max_epochs: 2" in out and "- ucm" in out


@pytest.mark.parametrize("protocol", sorted(scene_dg.PROTOCOLS))
def test_every_protocol_parses_with_fvmgn(protocol, monkeypatch):
    out = parses(scene_dg.fit_args(protocol, "fvmgn", None), monkeypatch)
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
