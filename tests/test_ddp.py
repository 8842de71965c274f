"""Rank invariance: the per-domain test metrics do not depend on the number of DDP processes.

``rsmg fit`` runs with ``--trainer.strategy ddp --trainer.devices 2 --trainer.accelerator cpu`` (gloo) on the
real Trento → MUUFL configurations of the concat CNN and of FVMGN, and of the unified model (``fvmgn_captions``)
on real UC Merced images and captions, and tests its best checkpoint on the target (MUUFL, UC Merced); then
``rsmg test`` tests the same checkpoint in one process. ``metrics.json`` must agree to 1e-6 with identical
confusion matrices and sample counts: evaluation shards (``rsmg.data.sampling.EvalShardSampler``) are disjoint
and unpadded, so no test sample is counted twice, and the confusion matrices are summed across ranks. The
source-validation OA the DDP fit logged equals a one-process ``rsmg validate`` of the same checkpoint. Every
process group lives in a subprocess, so nothing is left behind between tests; the one-process runs are in the
test process.
"""

from __future__ import annotations

import csv
import json
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from _cli import call_rsmg, log_args, run_rsmg
from _experiments import EXPERIMENTS, SETTINGS
from _paths import REPO, SHARED_DATA
from _tiny import TINY_CAPTION_NET
from rsmg.data.datamodule import CrossDomainDataModule

pytestmark = pytest.mark.skipif(not SHARED_DATA.exists(), reason="shared data pack missing")


@dataclass(frozen=True)
class Run:
    """One model's DDP run: its real configuration pieces, a tiny network, and the test set it is scored on."""

    configs: tuple[Path, ...]
    net: dict[str, Any]  # model.init_args.net.init_args over the configs'
    data: dict[str, Any]  # data.init_args over the configs'
    test_domain: str
    test_n: int  # every test sample once


MUUFL_PIXELS = 23246 + 6882 + 1826 + 6687 + 1385 + 6240  # muufl/README.md
# FVMGN's DDP fit also checks that every parameter gets a gradient on every rank (MWDis views, alignment
# temperature), or DDP would refuse to sync. The unified model (fvmgn_captions) runs on real UC Merced images
# and captions (64 px, untrained tiny image and text towers): the caption branch (no-caption token, fusion) must
# get gradients on both ranks too, and the 210 held-out UC Merced images are split into two eval shards.
CAPTIONED = REPO / "experiments/captioned_scenes"
RUNS = {
    "concat_cnn": Run(
        tuple(EXPERIMENTS / p for p in SETTINGS["baseline_trento_to_muufl"]),
        {"width": 8, "depth": 2},
        {"eval_batch_size": 4096},
        test_domain="muufl",
        test_n=MUUFL_PIXELS,
    ),
    "fvmgn": Run(
        tuple(EXPERIMENTS / p for p in SETTINGS["fvmgn_trento_to_muufl_lidar"]),
        {"sfie": {"width": 8}, "alignment": {"embed_dim": 32}},
        {"eval_batch_size": 4096},
        test_domain="muufl",
        test_n=MUUFL_PIXELS,
    ),
    "fvmgn_captions": Run(
        (
            CAPTIONED / "data_ucm21.yaml",
            CAPTIONED / "model_fvmgn_captions.yaml",
            REPO / "experiments/scenes/trainer_cpu.yaml",
        ),
        TINY_CAPTION_NET,
        {
            "image_size": 64,
            "source_split": "per_class:3",
            "caption_dropout": 0.3,
            "num_workers": 0,
            "batch_size": 7,
            "eval_batch_size": 64,
        },
        test_domain="ucm",
        test_n=210,
    ),
}
DDP = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]


def _rsmg(cwd: Path, *args: str) -> str:
    """``rsmg ARGS``: DDP in a subprocess (Lightning relaunches argv for each rank), one process in this one."""
    p = run_rsmg(*args, cwd=cwd, timeout=400) if "ddp" in args else call_rsmg(*args, cwd=cwd)
    return p.stdout + p.stderr


def _config(tmp: Path, run: Run) -> Path:
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
              init_args: {json.dumps(run.net)}
        data:
          init_args: {json.dumps(run.data)}
        """)
    )
    return cfg


def _logger(tmp: Path, name: str) -> list[str]:
    return log_args(tmp, name)


def _assert_same_metrics(a: dict, b: dict, domains: list[str], tol: float = 1e-6) -> None:
    assert a["classes"] == b["classes"]
    assert a["domains"] == b["domains"] == domains  # only target domains, never a NaN row for a source
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
    run = RUNS[model]
    cfg = _config(tmp_path, run)
    configs = [a for c in (*run.configs, cfg) for a in ("--config", str(c))]
    # 1) DDP fit on 2 CPU processes (gloo), then test of its best checkpoint, still on 2 processes
    _rsmg(
        tmp_path,
        "fit",
        *configs,
        *_logger(tmp_path, "ddp"),
        *DDP,
        "--test_after_fit",
        "true",
    )
    logs = tmp_path / "logs/ddp/version_0"
    ckpt = next((logs / "checkpoints").glob("best-*.ckpt"))
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    sampler_state = state["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["sampler"]
    assert sampler_state["num_replicas"] == 2  # the training shards really were split over 2 ranks
    two = json.loads((logs / "metrics.json").read_text())
    # 2) the same checkpoint tested by one process
    _rsmg(
        tmp_path,
        "test",
        *configs,
        *_logger(tmp_path, "one"),
        "--ckpt_path",
        str(ckpt),
    )
    one = json.loads((tmp_path / "logs/one/version_0/metrics.json").read_text())
    _assert_same_metrics(one, two, [run.test_domain])
    assert one["results"]["test"][run.test_domain]["n"] == run.test_n  # every sample once
    # 3) source-validation OA (torchmetrics' counts summed over ranks) equals one process's, sample for
    # sample: the fit's 2 × 2 validation batches covered every validation sample, so validate them all here
    _rsmg(
        tmp_path,
        "validate",
        *configs,
        *_logger(tmp_path, "one_val"),
        "--ckpt_path",
        str(ckpt),
        "--trainer.limit_val_batches",
        "1.0",
    )
    (one_val_csv,) = (tmp_path / "logs/one_val").glob("**/metrics.csv")
    assert _val_oa(logs / "metrics.csv") == _val_oa(one_val_csv)


def _val_oa(metrics_csv: Path) -> str:
    """The one ``val/oa`` a one-epoch run logged, as the CSV logger wrote it."""
    with metrics_csv.open() as f:
        (value,) = [row["val/oa"] for row in csv.DictReader(f) if row.get("val/oa")]
    return value


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
