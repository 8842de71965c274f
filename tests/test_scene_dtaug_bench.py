"""``benchmarks/scene_dtaug.py`` reuses a finished TTA test only when it is the one asked for now.

A reused test with other TTA settings or of another checkpoint would put old numbers under new labels.
"""

from __future__ import annotations

import json
import sys

import pytest

from _paths import REPO
from rsmg.errors import DataError

sys.path.insert(0, str(REPO / "benchmarks"))
import scene_dtaug as bench


def _grid_run(tmp_path, ckpt_name: str = "best-epoch=4.ckpt"):
    run = tmp_path / "grid" / "seed0"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = run / "checkpoints" / ckpt_name
    ckpt.write_bytes(b"weights")
    (run / "metrics.json").write_text(json.dumps({"checkpoint": {"path": str(ckpt)}}))
    return run, str(ckpt)


def _finished_test(tmp_path, ckpt: str, blocks: list[str]):
    target = tmp_path / "tta" / "erm" / "seed0"
    target.mkdir(parents=True)
    results = {b: {"ucm": {"oa": 0.9}} for b in blocks}
    (target / "metrics.json").write_text(json.dumps({"checkpoint": {"path": ckpt}, "results": results}))
    (target / "bench_wall_s.txt").write_text("12.5\n")
    return target


def test_the_tta_block_name_is_the_callback_s_own():
    assert bench.tta_key(4, 5, 0.3) == "test with DTAug TTA (K=4, strength=0.3, steps=5, mean_prob)"


def test_a_finished_test_of_this_checkpoint_and_these_settings_is_reused(tmp_path):
    run, ckpt = _grid_run(tmp_path)
    key = bench.tta_key(4, 5, 0.3)
    target = _finished_test(tmp_path, ckpt, ["test", key])
    assert bench.test_again(run, tmp_path / "tta", "erm", "seed0", [], key) == (target, 12.5)


def test_other_tta_settings_or_another_checkpoint_are_refused_by_name(tmp_path):
    run, ckpt = _grid_run(tmp_path)
    _finished_test(tmp_path, ckpt, ["test", bench.tta_key(2, 5, 0.3)])
    with pytest.raises(DataError, match=r"other TTA settings(.|\n)*K=4(.|\n)*move .* aside"):
        bench.test_again(run, tmp_path / "tta", "erm", "seed0", [], bench.tta_key(4, 5, 0.3))
    other, _ = _grid_run(tmp_path / "other", "last.ckpt")
    with pytest.raises(DataError, match="another checkpoint"):
        bench.test_again(other, tmp_path / "tta", "erm", "seed0", [], None)


def test_a_grid_run_without_its_checkpoint_names_the_fix(tmp_path):
    run, _ = _grid_run(tmp_path)
    (run / "checkpoints" / "best-epoch=4.ckpt").unlink()
    with pytest.raises(DataError, match=r"rerun the cell with benchmarks/scene_dg\.py"):
        bench.selected_checkpoint(run)
