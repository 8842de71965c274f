"""The DWT parts of ``benchmarks/fvmgn_speed.py`` run and validate (CI has no GPU, so at least every CPU path runs).

The script's GPU run is rare and short; a bug in a code path the CPU never took (a one-shot context manager
entered twice) once cost a GPU loan's first try. These run its DWT comparison, its validation against ptwt and
its ptwt-path switch on small tensors.
"""

import sys

import torch
from torch import nn

from _paths import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import fvmgn_speed
from rsmg.models.wavelet import MWDis


def test_dwt_table_row_validates_every_fast_path_against_ptwt():
    x = torch.randn(3, 2, 11, 11)
    row = fvmgn_speed.bench_tensor("tiny", x, torch.device("cpu"), reps=1)
    assert row["err"] <= 1e-5
    expected = {"ptwt", "rsmg", *fvmgn_speed.FAST}
    assert set(row["fwd"]) == expected and set(row["inv"]) == expected
    assert all(t > 0 for t in [*row["fwd"].values(), *row["inv"].values()])
    assert fvmgn_speed.validate_haar(torch.device("cpu")) <= 1e-5


def test_ptwt_path_switches_every_dwt_of_the_model_and_restores_it():
    model = nn.ModuleDict({"mwdis": MWDis(), "inner": nn.Sequential(MWDis(), MWDis(fast_haar=False))})
    before = [m.fast_haar for m in model.modules() if isinstance(m, MWDis)]
    with fvmgn_speed.ptwt_path(model):
        assert not any(m.fast_haar for m in model.modules() if isinstance(m, MWDis))
    assert [m.fast_haar for m in model.modules() if isinstance(m, MWDis)] == before == [True, True, False]


def test_heads_argument_is_passed_as_fvmgn_takes_it():
    assert fvmgn_speed.heads_arg(None) is None
    assert fvmgn_speed.heads_arg([4]) == 4
    assert fvmgn_speed.heads_arg([2, 4]) == (2, 4)
