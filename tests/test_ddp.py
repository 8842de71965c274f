"""Rank invariance: the per-domain test metrics do not depend on the number of DDP processes.

``rsmg fit`` runs with ``--trainer.strategy ddp --trainer.devices 2 --trainer.accelerator cpu`` (gloo) on the
real Trento → MUUFL configurations of the concat CNN and of FVMGN and tests its best checkpoint on MUUFL; then
``rsmg test`` tests the same checkpoint in one process. ``metrics.json`` must agree to 1e-6 with identical
confusion matrices and pixel counts: evaluation shards (``rsmg.data.sampling.EvalShardSampler``) are disjoint
and unpadded, so no MUUFL pixel is counted twice, and the confusion matrices are summed across ranks. Every
process group lives in a subprocess, so nothing is left behind between tests; the one-process test runs in the
test process.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from _cli import call_rsmg, log_args, run_rsmg
from _paths import REPO, SHARED_DATA
from rsmg.data.datamodule import CrossDomainDataModule

pytestmark = pytest.mark.skipif(not SHARED_DATA.exists(), reason="shared data pack missing")

# model -> (its real Trento -> MUUFL config, a tiny network of that model); FVMGN's DDP fit also checks that
# every parameter gets a gradient on every rank (MWDis views, alignment temperature), or DDP would refuse to sync
RUNS = {
    "concat_cnn": (REPO / "experiments/baseline/trento_to_muufl.yaml", "{width: 8, depth: 2}"),
    "fvmgn": (REPO / "experiments/fvmgn/trento_to_muufl_lidar.yaml", "{width: 8, embed_dim: 32}"),
}
DDP = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]


def _rsmg(cwd: Path, *args: str) -> str:
    """``rsmg ARGS``: DDP in a subprocess (Lightning relaunches argv for each rank), one process in this one."""
    p = run_rsmg(*args, cwd=cwd, timeout=400) if "ddp" in args else call_rsmg(*args, cwd=cwd)
    return p.stdout + p.stderr


def _config(tmp: Path, net_args: str) -> Path:
    cfg = tmp / "tiny.yaml"
    cfg.write_text(
        textwrap.dedent(f"""\
        trainer:
          max_epochs: 1
          limit_train_batches: 3
          limit_val_batches: 2
          enable_progress_bar: false
          num_sanity_val_steps: 0
        model:
          init_args:
            net:
              init_args: {net_args}
        data:
          init_args:
            eval_batch_size: 4096
        """)
    )
    return cfg


def _logger(tmp: Path, name: str) -> list[str]:
    return log_args(tmp, name)


def _assert_same_metrics(a: dict, b: dict, tol: float = 1e-6) -> None:
    assert a["classes"] == b["classes"]
    assert a["domains"] == b["domains"] == ["muufl"]  # only target domains, never a NaN row for a source
    for dom in a["domains"]:
        ra, rb = a["results"]["test"][dom], b["results"]["test"][dom]
        assert ra["n"] == rb["n"], f"{dom}: {ra['n']} vs {rb['n']} pixels (double counting?)"
        assert ra["confusion"] == rb["confusion"], dom
        for key in ("oa", "aa", "kappa"):
            assert abs(ra[key] - rb[key]) <= tol, (dom, key, ra[key], rb[key])
        for x, y in zip(ra["per_class"], rb["per_class"], strict=True):
            assert (math.isnan(x) and math.isnan(y)) or abs(x - y) <= tol


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(RUNS))
def test_ddp_two_processes_match_one_process(tmp_path, model):
    config, net_args = RUNS[model]
    cfg = _config(tmp_path, net_args)
    # 1) DDP fit on 2 CPU processes (gloo), then test of its best checkpoint, still on 2 processes
    _rsmg(
        tmp_path,
        "fit",
        "--config",
        str(config),
        "--config",
        str(cfg),
        *_logger(tmp_path, "ddp"),
        *DDP,
        "--test_after_fit",
        "true",
    )
    run = tmp_path / "logs/ddp/version_0"
    ckpt = next((run / "checkpoints").glob("best-*.ckpt"))
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    sampler_state = state["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["sampler"]
    assert sampler_state["num_replicas"] == 2  # the training shards really were split over 2 ranks
    two = json.loads((run / "metrics.json").read_text())
    # 2) the same checkpoint tested by one process
    _rsmg(
        tmp_path,
        "test",
        "--config",
        str(config),
        "--config",
        str(cfg),
        *_logger(tmp_path, "one"),
        "--ckpt_path",
        str(ckpt),
    )
    one = json.loads((tmp_path / "logs/one/version_0/metrics.json").read_text())
    _assert_same_metrics(one, two)
    assert (
        one["results"]["test"]["muufl"]["n"] == 23246 + 6882 + 1826 + 6687 + 1385 + 6240
    )  # every pixel once


def test_eval_shards_cover_every_sample_once_and_train_shards_are_equal():
    dm = CrossDomainDataModule(
        sources=["trento"],
        targets=["muufl"],
        modalities=["lidar"],
        root=str(SHARED_DATA),
        batch_size=64,
        eval_batch_size=4096,
    )
    dm.setup("fit")
    full = torch.cat([b["index"] for b in dm.test_dataloader()[0]])
    world = 3
    per_rank, train_batches = [], []
    for rank in range(world):
        dm.trainer = SimpleNamespace(world_size=world, global_rank=rank, training=False)  # type: ignore[assignment]
        per_rank.append(torch.cat([b["index"] for b in dm.test_dataloader()[0]]))
        train_batches.append(len(dm.train_dataloader()))
    dm.trainer = None
    assert torch.equal(torch.cat(per_rank), full)  # disjoint, no padding, dataset order
    assert len(set(train_batches)) == 1  # same number of optimiser steps on every rank
