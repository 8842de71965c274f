"""``benchmarks/indian_pines.py``: the RBF-SVM baseline on real spectra, and every network cell parses."""

import sys

import numpy as np
import pytest

from _cli import parses
from _paths import REPO, SHARED_DATA, missing_shared_data

sys.path.insert(0, str(REPO / "benchmarks"))
import indian_pines as bench


def test_svm_on_a_tiny_subset_of_the_disjoint_split():
    """400 training spectra of the real cube: chosen on validation, far above the majority floor on test."""
    if not (SHARED_DATA / "indian_pines/Indian_pines_corrected.npy").is_file():
        missing_shared_data(SHARED_DATA / "indian_pines", "Indian Pines cube")
    dm = bench.datamodule("disjoint", 0, str(SHARED_DATA))
    res = bench.svm_spectra(dm, max_train=400)
    cm = np.asarray(res["confusion"])
    assert cm.shape == (16, 16) and cm.sum() == res["n"] == len(dm._prepared["indian_pines"].test)
    assert res["C"] in bench.SVM_C and res["gamma"] in bench.SVM_GAMMA and 0 < res["val_oa"] <= 1
    majority = cm.sum(1).max() / cm.sum()
    assert res["oa"] > majority + 0.15  # spectra alone separate the crops well beyond the floor
    assert res["oa"] == pytest.approx(np.trace(cm) / cm.sum())


@pytest.mark.parametrize("split", sorted(bench.SPLITS))
@pytest.mark.parametrize("method", sorted(bench.NETS))
def test_every_network_cell_parses(split, method):
    out = parses(bench.fit_args(split, method, 3))
    assert "max_epochs: 3" in out and ("FVMGN" in out) == method.startswith("fvmgn")
    switched_off = {
        "fvmgn w/o MWDis": "mwdis:\n          enabled: false",
        "fvmgn image-only (no text)": "use: none",
        "fvmgn w/o frequency branch": "frequency:\n          enabled: false",
        "fvmgn single-scale alignment": "multiscale: false",
    }
    if method in switched_off:  # each ablation switches its one part off
        assert switched_off[method] in out
