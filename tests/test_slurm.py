"""Cluster readiness: the SLURM launcher, Lightning's SLURMEnvironment under srun variables, bf16 on CPU.

* ``experiments/cluster/slurm_ddp.sbatch`` is run by bash with a fake ``srun`` on PATH and the variables
  ``sbatch`` would set: the command it launches is checked, then parsed by the real ``rsmg`` CLI in a process
  that sees the per-task variables of rank 5 of 8 (2 nodes × 4 tasks), whose Trainer must pick up
  ``SLURMEnvironment`` with that world size, rank, local rank and node rank.
* ``SLURMEnvironment`` itself is checked in-process (it only reads the environment).
* ``--trainer.precision bf16-mixed`` on CPU: a tiny real fit through the CLI produces finite losses, weights
  and test metrics, and the convolutions really ran in bfloat16.
"""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from _experiments import BASELINE, EXPERIMENTS, SETTINGS
from _paths import REPO, SHARED_DATA

SBATCH = REPO / "experiments/cluster/slurm_ddp.sbatch"
PIECES = [str(EXPERIMENTS / p) for p in SETTINGS["baseline_trento_to_muufl"]]  # data, model, trainer

# What sbatch + srun set for task 5 of `--nodes=2 --ntasks-per-node=4` (node 1, local rank 1).
SLURM_TASK_ENV = {
    "SLURM_JOB_ID": "424242",
    "SLURM_JOB_NAME": "rsmg-ddp",
    "SLURM_NNODES": "2",
    "SLURM_NTASKS": "8",
    "SLURM_NTASKS_PER_NODE": "4",
    "SLURM_NODELIST": "gpu[017-018]",
    "SLURM_PROCID": "5",
    "SLURM_LOCALID": "1",
    "SLURM_NODEID": "1",
    "SLURM_CPUS_PER_TASK": "2",
}


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("SLURM_", "MASTER_", "RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "GROUP_RANK")
        )
    }
    env.update(extra)
    return env


def test_sbatch_script_is_valid_bash_and_asks_for_one_task_per_gpu():
    text = SBATCH.read_text()
    subprocess.run(["bash", "-n", str(SBATCH)], check=True)
    directives = dict(
        line[len("#SBATCH --") :].split("=", 1)
        for line in text.splitlines()
        if line.startswith("#SBATCH --") and "=" in line
    )
    assert directives["ntasks-per-node"] == directives["gpus-per-node"]
    assert directives["signal"].startswith("SIGUSR1@")  # Lightning's auto-requeue signal
    assert "requeue" in text


def _run_sbatch_with_fake_srun(tmp_path: Path, *extra: str) -> list[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text('#!/bin/bash\nfor a in "$@"; do printf "%s\\n" "$a"; done > "$SRUN_ARGS_FILE"\n')
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    args_file = tmp_path / "srun_args.txt"
    env = _clean_env(
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        SRUN_ARGS_FILE=str(args_file),
        RSMG_DATA_ROOT=str(SHARED_DATA),
        SLURM_SUBMIT_DIR=str(tmp_path),
        RSMG_VENV=str(Path(sys.executable).parents[1]),
        **{
            k: SLURM_TASK_ENV[k]
            for k in (
                "SLURM_JOB_ID",
                "SLURM_JOB_NAME",
                "SLURM_NNODES",
                "SLURM_NTASKS",
                "SLURM_NTASKS_PER_NODE",
                "SLURM_NODELIST",
                "SLURM_CPUS_PER_TASK",
            )
        },
    )
    p = subprocess.run(
        ["bash", str(SBATCH), *PIECES, *extra], env=env, capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    assert "2 node(s) x 4 GPU(s)" in p.stdout
    return args_file.read_text().splitlines()


def test_sbatch_launches_rsmg_fit_with_slurm_layout(tmp_path):
    args = _run_sbatch_with_fake_srun(tmp_path, "--trainer.max_epochs", "3")
    assert args[:9] == ["--kill-on-bad-exit=1", "rsmg", "fit", *BASELINE]
    pairs = dict(zip(args[9::2], args[10::2], strict=False))
    assert pairs["--trainer.num_nodes"] == "2"
    assert pairs["--trainer.devices"] == "4"
    assert pairs["--trainer.strategy"] == "ddp"
    assert args[-2:] == ["--trainer.max_epochs", "3"]  # user options come last and win


def test_sbatch_without_a_config_prints_its_usage(tmp_path):
    p = subprocess.run(
        ["bash", str(SBATCH), "--trainer.max_epochs", "3"],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2 and "usage: sbatch" in p.stderr and "CONFIG.yaml [CONFIG.yaml ...]" in p.stderr


def test_sbatch_refuses_to_run_outside_an_allocation(tmp_path):
    env = _clean_env(RSMG_DATA_ROOT=str(SHARED_DATA))
    p = subprocess.run(["bash", str(SBATCH), *PIECES], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "SLURM_NNODES" in p.stderr


PROBE = textwrap.dedent("""\
    import json, sys
    from rsmg.cli.main import build_cli
    cli = build_cli(sys.argv[1:], run=False)
    t = cli.trainer
    env = t.strategy.cluster_environment
    print("PROBE " + json.dumps({
        "env": type(env).__name__, "world_size": t.world_size, "global_rank": t.global_rank,
        "local_rank": t.local_rank, "node_rank": t.node_rank, "num_nodes": t.num_nodes,
        "devices": len(t.device_ids), "strategy": type(t.strategy).__name__,
        "main_address": env.main_address, "main_port": env.main_port,
    }))
""")


@pytest.mark.slow
def test_rsmg_under_srun_variables_sees_world_size_and_ranks(tmp_path):
    args = _run_sbatch_with_fake_srun(tmp_path)
    assert args[1:3] == ["rsmg", "fit"]
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    # the CPU stands in for the GPUs of the cluster node; everything else is the launched command line
    cmd = [
        sys.executable,
        str(probe),
        *args[3:],
        "--trainer.accelerator",
        "cpu",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path),
        "--trainer.default_root_dir",
        str(tmp_path),
    ]
    env = _clean_env(RSMG_DATA_ROOT=str(SHARED_DATA), PYTHONWARNINGS="ignore", **SLURM_TASK_ENV)
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    line = next(x for x in p.stdout.splitlines() if x.startswith("PROBE "))
    got = json.loads(line[len("PROBE ") :])
    assert got == {
        "env": "SLURMEnvironment",
        "world_size": 8,
        "global_rank": 5,
        "local_rank": 1,
        "node_rank": 1,
        "num_nodes": 2,
        "devices": 4,
        "strategy": "DDPStrategy",
        "main_address": "gpu017",
        "main_port": got["main_port"],
    }
    assert 10000 <= got["main_port"] <= 20000  # derived from SLURM_JOB_ID: the same on every task


def test_slurm_environment_reads_srun_variables(monkeypatch):
    from lightning.fabric.plugins.environments import SLURMEnvironment

    for k in list(os.environ):
        if k.startswith(("SLURM_", "MASTER_ADDR", "MASTER_PORT")):
            monkeypatch.delenv(k)
    assert not SLURMEnvironment.detect()
    for k, v in SLURM_TASK_ENV.items():
        monkeypatch.setenv(k, v)
    assert SLURMEnvironment.detect()
    env = SLURMEnvironment(auto_requeue=False)
    assert (env.world_size(), env.global_rank(), env.local_rank(), env.node_rank()) == (8, 5, 1, 1)
    assert env.main_address == "gpu017"
    monkeypatch.setenv("SLURM_JOB_NAME", "bash")  # an interactive shell is not a task launched by srun
    assert not SLURMEnvironment.detect()


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="shared data pack missing")
def test_bf16_mixed_on_cpu_is_finite(tmp_path):
    from rsmg.cli.main import build_cli

    cli = build_cli(
        [
            *BASELINE,
            "--trainer.precision",
            "bf16-mixed",
            "--trainer.accelerator",
            "cpu",
            "--trainer.devices",
            "1",
            "--trainer.max_epochs",
            "1",
            "--trainer.limit_train_batches",
            "4",
            "--trainer.limit_val_batches",
            "1",
            "--trainer.limit_test_batches",
            "1",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.num_sanity_val_steps",
            "0",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            "--trainer.default_root_dir",
            str(tmp_path),
            "--trainer.callbacks",
            "[]",
            "--model.init_args.net.init_args.width",
            "8",
            "--data.init_args.eval_batch_size",
            "512",
            "--data.init_args.root",
            str(SHARED_DATA),
        ],
        run=False,
    )
    dtypes: set[torch.dtype] = set()
    conv = next(m for m in cli.model.modules() if isinstance(m, torch.nn.Conv2d))
    handle = conv.register_forward_hook(lambda mod, inp, out: dtypes.add(out.dtype))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    handle.remove()
    assert cli.trainer.precision == "bf16-mixed"
    assert torch.bfloat16 in dtypes  # autocast really ran the convolutions in bf16
    logged = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    assert logged and all(math.isfinite(v) for v in logged.values()), logged
    assert all(torch.isfinite(p).all() for p in cli.model.parameters())
    cli.trainer.test(cli.model, datamodule=cli.datamodule)
    res = cli.model.test_results["muufl"]
    assert all(math.isfinite(res[k]) for k in ("oa", "aa", "kappa")), res
