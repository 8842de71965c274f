"""``rsmg predict`` writes one predictions file per target domain, consistent with ``rsmg test``.

End to end on the real Trento → MUUFL baseline (tiny network, 2 % of the MUUFL pixels): ``rsmg fit`` for one
short epoch, then ``rsmg predict`` and ``rsmg test`` of its ``last.ckpt`` with the run's own ``config.yaml``,
as the README tells a user to. Trento is added as a second target (in-scene: its pixels outside training and
validation), so the predict step has two dataloaders and the ``dataloader_idx → domain`` naming is exercised.
The unit test pins down the merge of DDP rank shards without a process group; the slow test runs ``predict``
on 2 CPU processes and checks the files equal the single-process ones.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from _budget import SMOKE_BUDGET
from _cli import call_rsmg, log_args, run_rsmg
from _experiments import BASELINE
from _paths import SHARED_DATA, missing_shared_data
from rsmg.callbacks.prediction_writer import merge_shards

TARGETS = ("muufl", "trento")
TINY = (
    "--model.init_args.net.init_args.width",
    "8",
    "--data.init_args.target_split",
    "fraction:0.02",
    "--data.init_args.targets",
    f"[{','.join(TARGETS)}]",
    "--data.init_args.eval_batch_size",
    "2048",
    "--trainer.enable_progress_bar",
    "false",
)


def _rsmg(cwd: Path, *args: str) -> str:
    """``rsmg ARGS`` in this process; with ``--trainer.strategy ddp`` in a subprocess (DDP relaunches argv)."""
    p = run_rsmg(*args, cwd=cwd, timeout=600) if "ddp" in args else call_rsmg(*args, cwd=cwd)
    return p.stdout + p.stderr


def _logs(tmp: Path, name: str) -> list[str]:
    return log_args(tmp, name)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    """The version directory of a one-epoch fit (config.yaml + checkpoints/last.ckpt)."""
    if not SHARED_DATA.exists():
        missing_shared_data(SHARED_DATA, "shared data pack")  # a skip on a laptop, a failure under CI
    tmp = tmp_path_factory.mktemp("predict")
    _rsmg(tmp, "fit", *BASELINE, *SMOKE_BUDGET, *TINY, *_logs(tmp, "fit"))
    run = tmp / "logs/fit/version_0"
    assert (run / "checkpoints/last.ckpt").is_file() and (run / "config.yaml").is_file()
    return run


def _predict(run: Path, name: str, *extra: str) -> tuple[Path, str]:
    tmp = run.parents[2]
    out = _rsmg(
        tmp,
        "predict",
        "--config",
        str(run / "config.yaml"),
        "--ckpt_path",
        str(run / "checkpoints/last.ckpt"),
        *_logs(tmp, name),
        *extra,
    )
    return tmp / "logs" / name / "version_0", out


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="shared data pack missing")
def test_predict_writes_every_target_domain_and_agrees_with_test(fitted):
    pred_dir, out = _predict(fitted, "predict")
    assert "predictions" in out and str(pred_dir) in out  # it says where it wrote
    tmp = fitted.parents[2]
    _rsmg(
        tmp,
        "test",
        "--config",
        str(fitted / "config.yaml"),
        "--ckpt_path",
        str(fitted / "checkpoints/last.ckpt"),
        *_logs(tmp, "test"),
    )
    metrics = json.loads((tmp / "logs/test/version_0/metrics.json").read_text())
    assert sorted(metrics["domains"]) == sorted(TARGETS)
    for dom in TARGETS:
        z = np.load(pred_dir / f"predictions_{dom}.npz")
        probs, pred, label, index = z["probs"], z["pred"], z["label"], z["index"]
        ref = metrics["results"]["test"][dom]
        n = len(index)
        assert n == ref["n"] > 0  # one row per target pixel of the split
        assert len(np.unique(index)) == n and np.all(np.diff(index) > 0)  # each pixel once, sorted
        assert probs.shape == (n, len(metrics["classes"])) and probs.dtype == np.float32
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
        assert np.array_equal(pred, probs.argmax(1))
        assert list(z["classes"]) == metrics["classes"] and str(z["domain"]) == dom
        # the same predictions as `rsmg test`: identical confusion matrix, hence identical OA
        k = len(metrics["classes"])
        cm = np.bincount(label * k + pred, minlength=k * k).reshape(k, k)
        assert cm.tolist() == ref["confusion"]
        assert abs(float((pred == label).mean()) - ref["oa"]) < 1e-9
        pos = z["row"] * 100_000 + z["col"]
        assert (z["row"] >= 0).all() and (z["col"] >= 0).all() and len(np.unique(pos)) == n
        with (pred_dir / f"predictions_{dom}.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == n
        assert [int(r["index"]) for r in rows] == index.tolist()
        assert [int(r["pred"]) for r in rows] == pred.tolist()
        assert [r["pred_name"] for r in rows[:5]] == [metrics["classes"][p] for p in pred[:5]]
        np.testing.assert_allclose([float(r["confidence"]) for r in rows], probs.max(1), atol=1e-6)
        _check_map_without_georeference(pred_dir / f"prediction_{dom}.tif", z, out)
    assert not list(pred_dir.glob("*.tmp*"))  # atomic writes leave no temporary file


def _check_map_without_georeference(tif: Path, z: np.lib.npyio.NpzFile, out: str) -> None:
    """The .mat scenes have no grid: their map is in pixel coordinates, no CRS invented, and the output says so."""
    import rasterio

    with rasterio.open(tif) as src:
        m, crs, transform = src.read(1), src.crs, src.transform
    assert crs is None and transform.is_identity
    assert np.array_equal(m[z["row"], z["col"]], z["pred"])  # the predicted (test) pixels
    assert int((m != 255).sum()) == len(z["pred"])  # 255 elsewhere: labelled targets map their split only
    assert f"classification map of {z['domain']} written to {tif} without CRS" in out


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="shared data pack missing")
def test_a_configured_prediction_writer_replaces_the_default(fitted):
    own = fitted.parents[2] / "own_writer.yaml"
    own.write_text(
        "trainer:\n  callbacks:\n    - class_path: rsmg.callbacks.PredictionWriter\n"
        "      init_args: {prefix: mine, write_csv: false}\n"
    )
    pred_dir, _ = _predict(fitted, "predict_own", "--config", str(own))
    names = sorted(p.name for p in pred_dir.glob("*.npz")) + sorted(p.name for p in pred_dir.glob("*.csv"))
    assert names == [f"mine_{d}.npz" for d in sorted(TARGETS)]  # no second, default writer


def test_merge_shards_is_rank_invariant():
    """Rank shards merge into one table sorted by sample index; repeated (padded) samples are dropped."""
    rng = np.random.default_rng(0)
    n, k = 50, 3
    cols = {
        "index": np.arange(n, dtype=np.int64) + 1000,
        "label": rng.integers(0, k, n),
        "domain": np.full(n, 2),
        "probs": rng.random((n, k), dtype=np.float32),
    }
    whole = merge_shards([{0: cols}])[0]
    order = rng.permutation(n)
    shards = [{0: {c: v[order[r::3]] for c, v in cols.items()}} for r in range(3)]
    shards[2][1] = {c: v[:4] for c, v in cols.items()}  # a second loader seen by one rank only
    shards[1][0] = {c: np.concatenate([v, v[:1]]) for c, v in shards[1][0].items()}  # a padded repeat
    merged = merge_shards(shards)
    assert sorted(merged) == [0, 1] and len(merged[1]["index"]) == 4
    for c in cols:
        assert np.array_equal(merged[0][c], whole[c]), c
    assert np.array_equal(whole["index"], cols["index"])


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.exists(), reason="shared data pack missing")
def test_ddp_predict_writes_the_same_files(fitted):
    one, _ = _predict(fitted, "predict_one")
    two, _ = _predict(
        fitted,
        "predict_ddp",
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--trainer.accelerator",
        "cpu",
    )
    for dom in TARGETS:
        a, b = np.load(one / f"predictions_{dom}.npz"), np.load(two / f"predictions_{dom}.npz")
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            if key == "probs":
                np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-6)
            else:
                assert np.array_equal(a[key], b[key]), (dom, key)
        assert (one / f"predictions_{dom}.csv").read_text().count("\n") == len(a["index"]) + 1
