"""Resume after SIGKILL: a killed-and-resumed ``rsmg fit`` ends exactly where an uninterrupted one does.

The end-to-end test runs the real Trento → MUUFL configuration of the concat CNN and of FVMGN, and the unified
model (``fvmgn_captions``) on real UC Merced images and captions (tiny networks, 2 epochs), three times each as
``python -m rsmg fit`` subprocesses: uninterrupted; killed with SIGKILL in the middle of epoch 0 right after
its first step checkpoint (the run says it has reached that point and waits there, so the kill lands at the
same step every time); resumed from that checkpoint with ``--ckpt_path last``. The resumed run must end
with bit-identical weights (and optimiser state) and an identical ``metrics.json``. That needs the training
order and position (``rsmg.data.sampling.ResumableSampler``) and the RNG that dropout and FVMGN's MWDis
resampling draw from restored mid-epoch (the caption each image is served, and caption dropout, are hashed from
seed, epoch and index, so they need only the epoch and position; the cached caption features of the frozen text
tower must not depend on which batch first met a caption, ``rsmg.text.caption_features``); the unit
tests below pin those pieces down without a subprocess.

The shipped configurations keep checkpoints in the logger's ``version_N/checkpoints`` (no fixed ``dirpath``), so
``--ckpt_path last`` must find the newest ``last.ckpt`` of the experiment and keep logging into that version
(``test_ckpt_path_last_continues_the_version_of_a_shipped_config``), and refuse to start from scratch when
there is none. Those runs need no process boundary and call ``rsmg.cli.main.main`` in the test process.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from _cli import call_rsmg
from _experiments import BASELINE, EXPERIMENTS, SETTINGS
from _paths import REPO, SHARED_DATA
from _tiny import TINY_CAPTION_NET
from rsmg.data.sampling import (
    EvalShardSampler,
    ResumableDataLoader,
    ResumableSampler,
    capture_rng_states,
    epoch_permutation,
    restore_rng_states,
)
from rsmg.errors import ConfigError


@dataclass(frozen=True)
class Run:
    """One model's kill-and-resume run: its real configuration pieces, a tiny network and a small budget."""

    configs: tuple[Path, ...]
    net: dict[str, Any]  # model.init_args.net.init_args over the configs'
    data: dict[str, Any]  # data.init_args over the configs' (batch_size included)
    steps_per_epoch: int  # training batches per epoch (the kill lands in the middle of epoch 0)
    test_domain: str
    test_n: int  # test samples counted in metrics.json


# FVMGN adds MWDis, whose donor and jitter draws come from the global RNG mid-step, and the learnable alignment
# temperature. The unified model (fvmgn_captions) runs on real UC Merced images and captions (3 training images
# per class, 64 px, untrained tiny image and text towers) with caption dropout, so the hashed per-epoch caption
# choice and dropout (rsmg.data.scene_captions) must come back after the kill too; its test loader serves all
# 210 held-out UC Merced images (4 batches of 64). 2 × 6 steps: a multiple of STEPS_PER_CKPT, so both runs
# write a checkpoint at the last step.
CAPTIONED = REPO / "experiments/captioned_scenes"
SCENE_TRAINER = REPO / "experiments/scenes/trainer_cpu.yaml"
RUNS = {
    "concat_cnn": Run(
        tuple(EXPERIMENTS / p for p in SETTINGS["baseline_trento_to_muufl"]),
        {"width": 8, "depth": 2, "dropout": 0.2},
        {"batch_size": 32, "eval_batch_size": 512},
        steps_per_epoch=16,
        test_domain="muufl",
        test_n=4 * 512,
    ),
    "fvmgn": Run(
        tuple(EXPERIMENTS / p for p in SETTINGS["fvmgn_trento_to_muufl_lidar"]),
        {"sfie": {"width": 8}, "alignment": {"embed_dim": 32}},
        {"batch_size": 32, "eval_batch_size": 512},
        steps_per_epoch=16,
        test_domain="muufl",
        test_n=4 * 512,
    ),
    "fvmgn_captions": Run(
        (CAPTIONED / "data_ucm21.yaml", CAPTIONED / "model_fvmgn_captions.yaml", SCENE_TRAINER),
        TINY_CAPTION_NET,
        {
            "image_size": 64,
            "source_split": "per_class:3",  # 42 training images, 21 validation images
            "caption_dropout": 0.3,
            "num_workers": 0,
            "batch_size": 7,
            "eval_batch_size": 64,
        },
        steps_per_epoch=6,
        test_domain="ucm",
        test_n=210,
    ),
}
STEPS_PER_CKPT = 4

PAUSE = '''
"""Test helper: at the start of one training step, say so on stdout and wait there to be killed."""
import os
import sys

import lightning.pytorch as pl


class PauseAt(pl.Callback):
    def __init__(self, step: int | None = None) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, *args, **kwargs) -> None:
        if self.step is not None and trainer.global_step == self.step:
            print(f"PAUSED at step {trainer.global_step}", flush=True)
            sys.stdin.read()  # blocks until SIGKILL (or EOF, if the test died)
            os._exit(3)
'''


# ---------------------------------------------------------------------------------------------- unit tests
def _drain(sampler: ResumableSampler, n: int | None = None, bs: int = 1) -> list[int]:
    """Iterate like a training loop: take indices and report each batch as consumed."""
    out: list[int] = []
    it = iter(sampler)
    for i in it:
        out.append(i)
        if len(out) % bs == 0:
            sampler.advance(bs)
        if n is not None and len(out) >= n:
            break
    return out


def test_permutation_is_a_function_of_seed_and_epoch():
    a = epoch_permutation(100, seed=3, epoch=0)
    assert a == epoch_permutation(100, seed=3, epoch=0) and sorted(a) == list(range(100))
    assert a != epoch_permutation(100, seed=3, epoch=1)
    assert epoch_permutation(100, seed=1, epoch=0) != epoch_permutation(100, seed=0, epoch=1)
    s = ResumableSampler(range(100), seed=3)
    s.set_epoch(1)
    assert list(s) == epoch_permutation(100, seed=3, epoch=1)


def test_sampler_resumes_mid_epoch_and_rolls_over_at_epoch_end():
    ref = ResumableSampler(range(50), seed=7)
    ref.set_epoch(2)
    full = list(ref)
    s = ResumableSampler(range(50), seed=7)
    s.set_epoch(2)
    head = _drain(s, n=20, bs=5)  # prefetching past this point must not matter: only advance() counts
    state = s.state_dict()
    assert state["epoch"] == 2 and state["samples_consumed"] == 20 and not state["epoch_complete"]
    fresh = ResumableSampler(range(50), seed=7)
    fresh.load_state_dict(state)
    assert head + list(fresh) == full
    # a checkpoint at the end of an epoch (or after limit_train_batches) resumes at the next epoch
    s.advance(5, end_of_epoch=True)
    nxt = ResumableSampler(range(50), seed=7)
    nxt.load_state_dict(s.state_dict())
    assert nxt.epoch == 3 and list(nxt) == epoch_permutation(50, seed=7, epoch=3)


def test_sampler_refuses_a_state_from_other_data():
    s = ResumableSampler(range(50), seed=7)
    with pytest.raises(ConfigError, match=r"(?s)dataset_length.*data"):
        ResumableSampler(range(49), seed=7).load_state_dict(s.state_dict())
    with pytest.raises(ConfigError, match=r"(?s)seed.*data.seed"):
        ResumableSampler(range(50), seed=8).load_state_dict(s.state_dict())


def test_distributed_shards_train_padded_eval_exact():
    n, world = 103, 4
    train = [ResumableSampler(range(n), seed=1, num_replicas=world, rank=r) for r in range(world)]
    shards = [list(t) for t in train]
    assert len({len(x) for x in shards}) == 1  # equal steps on every rank
    assert set().union(*map(set, shards)) == set(range(n))
    ev = [list(EvalShardSampler(range(n), num_replicas=world, rank=r)) for r in range(world)]
    assert [i for shard in ev for i in shard] == list(range(n))  # disjoint, no padding, dataset order
    assert list(EvalShardSampler(range(n))) == list(range(n))
    with pytest.raises(ConfigError, match="rank"):
        EvalShardSampler(range(n), num_replicas=2, rank=2)


@pytest.mark.parametrize(
    ("start", "stop", "batch", "workers"), [(0, 710, 50, 2), (5, 108, 10, 3), (0, 30, 10, 4)]
)
def test_worker_order_gives_each_loader_worker_one_contiguous_run_of_full_batches(
    start: int, stop: int, batch: int, workers: int
) -> None:
    from rsmg.data.sampling import worker_order

    order = list(worker_order(start, stop, batch, workers))
    assert sorted(order) == list(range(start, stop))  # every sample once
    batches = [order[i : i + batch] for i in range(0, len(order), batch)]
    assert all(len(b) == batch for b in batches[:-1])  # only the last batch is short
    n_full = (stop - start) // batch
    for k in range(workers):  # a DataLoader gives batch j to worker j % workers
        mine = [b for j, b in enumerate(batches[:n_full]) if j % workers == k]
        flat = [i for b in mine for i in b]
        if flat:  # one contiguous run (a worker may have none when there are fewer batches than workers)
            assert flat == list(range(flat[0], flat[0] + len(flat)))
    shard = EvalShardSampler(range(stop), num_replicas=1, batch_size=batch, workers=workers)
    assert list(shard) == list(worker_order(0, stop, batch, workers)) and len(shard) == stop
    assert list(EvalShardSampler(range(stop), batch_size=batch, workers=1)) == list(range(stop))


def test_loader_state_restores_rng():
    ds = list(range(10))
    loader = ResumableDataLoader(ds, batch_size=2, sampler=ResumableSampler(ds, seed=0))
    state = loader.state_dict()
    expected = torch.rand(3)
    torch.rand(5)
    loader.load_state_dict(state)
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)
    rng = capture_rng_states()
    restore_rng_states(torch.load(_roundtrip(rng), weights_only=True))  # checkpoint-safe types only


def _roundtrip(obj: object) -> object:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf


# ---------------------------------------------------------------------------------------------- end to end
def _write_run_config(tmp: Path, name: str, ckpt_dir: Path, pause_at: int | None, run: Run) -> Path:
    cfg = tmp / f"{name}{'' if pause_at is None else f'_paused_at_{pause_at}'}.yaml"
    cfg.write_text(
        textwrap.dedent(f"""\
        trainer:
          max_epochs: 2
          limit_val_batches: 2
          limit_test_batches: 4
          log_every_n_steps: 1
          enable_progress_bar: false
          num_sanity_val_steps: 0
          logger:
            class_path: lightning.pytorch.loggers.CSVLogger
            init_args: {{save_dir: {tmp / (name + "_logs")}, name: resume}}
          callbacks:
            - class_path: lightning.pytorch.callbacks.ModelCheckpoint
              init_args:
                dirpath: {ckpt_dir}
                every_n_train_steps: {STEPS_PER_CKPT}
                save_top_k: -1
                save_last: true
                filename: "{{step}}"
            - class_path: rsmg_test_pause.PauseAt
              init_args: {{step: {"null" if pause_at is None else pause_at}}}
        model:
          init_args:
            net:
              init_args: {json.dumps(run.net)}
        data:
          init_args: {json.dumps(run.data)}
        """)
    )
    return cfg


def _env(tmp: Path) -> dict[str, str]:
    pythonpath = os.pathsep.join([str(tmp), os.environ.get("PYTHONPATH", "")])
    return {
        **os.environ,
        "RSMG_DATA_ROOT": str(SHARED_DATA),
        "PYTHONWARNINGS": "ignore",
        "PYTHONPATH": pythonpath,
    }


def _popen_rsmg(tmp: Path, *args: str) -> subprocess.Popen[str]:
    """``python -m rsmg ARGS`` in ``tmp``, running in the background (so a test can kill it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "rsmg", *args],
        cwd=tmp,
        env=_env(tmp),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _fit(tmp: Path, configs: tuple[Path, ...], cfg: Path, *extra: str) -> subprocess.Popen[str]:
    pieces = [a for c in (*configs, cfg) for a in ("--config", str(c))]
    return _popen_rsmg(
        tmp,
        *("fit", *pieces, "--trainer.default_root_dir", str(tmp)),
        *("--test_after_fit", "true", *extra),
    )


def _finish(p: subprocess.Popen[str], what: str) -> str:
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, f"{what} failed ({p.returncode}):\n{out[-4000:]}"
    return out


def _assert_same_training_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Two checkpoints hold bit-identical weights and optimiser state."""
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), f"weight {k} differs after resume"
    for sa, sb in zip(
        a["optimizer_states"][0]["state"].values(), b["optimizer_states"][0]["state"].values(), strict=True
    ):
        for k in sa:
            assert torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])), f"optimiser {k} differs"


def _metrics(log_root: Path) -> dict[str, object]:
    files = sorted(log_root.glob("resume/version_*/metrics.json"))
    assert files, f"no metrics.json under {log_root}"
    return json.loads(files[-1].read_text())


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.exists(), reason="shared data pack missing")
@pytest.mark.parametrize("model", sorted(RUNS))
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path, model):
    run = RUNS[model]
    total = 2 * run.steps_per_epoch
    assert (
        run.steps_per_epoch > STEPS_PER_CKPT and total % STEPS_PER_CKPT == 0
    )  # a mid-epoch kill, a final ckpt
    (tmp_path / "rsmg_test_pause.py").write_text(PAUSE)
    ref_ckpt, run_ckpt = tmp_path / "ref_ckpt", tmp_path / "run_ckpt"
    ref_cfg = _write_run_config(tmp_path, "ref", ref_ckpt, pause_at=None, run=run)
    # the victim stops at the start of the step after its first step checkpoint (step=4.ckpt and last.ckpt
    # written) and waits there to be killed
    run_cfg = _write_run_config(tmp_path, "run", run_ckpt, pause_at=STEPS_PER_CKPT, run=run)
    # same logs, same checkpoint dir
    resume_cfg = _write_run_config(tmp_path, "run", run_ckpt, pause_at=None, run=run)
    t0 = time.monotonic()
    ref = _fit(tmp_path, run.configs, ref_cfg)  # the uninterrupted run works alongside the one we kill
    victim = _fit(tmp_path, run.configs, run_cfg)
    try:
        assert victim.stdout is not None
        lines: list[str] = []
        while not (lines and lines[-1].startswith("PAUSED")):
            line = victim.stdout.readline()
            assert line, "the run ended before it reached its first checkpoint:\n" + "".join(lines)[-3000:]
            lines.append(line)
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=60)
    finally:
        victim.kill()
    assert victim.returncode == -signal.SIGKILL
    saved = sorted(p.name for p in run_ckpt.glob("*.ckpt"))
    assert saved == sorted(["last.ckpt", f"step={STEPS_PER_CKPT}.ckpt"]), saved
    killed_at = torch.load(run_ckpt / "last.ckpt", map_location="cpu", weights_only=False)
    step, epoch = killed_at["global_step"], killed_at["epoch"]
    loader_state = killed_at["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["sampler"]
    assert epoch == 0 and step == STEPS_PER_CKPT, (step, epoch, saved)  # mid-epoch
    assert (
        loader_state["samples_consumed"] == run.data["batch_size"] * step
        and not loader_state["epoch_complete"]
    )

    resumed = _fit(tmp_path, run.configs, resume_cfg, "--ckpt_path", "last")
    out = _finish(resumed, "resumed fit")
    _finish(ref, "uninterrupted fit")
    assert "Restoring states from the checkpoint" in out

    final = f"step={total}.ckpt"  # 2 epochs
    a = torch.load(ref_ckpt / final, map_location="cpu", weights_only=False)
    b = torch.load(run_ckpt / final, map_location="cpu", weights_only=False)
    assert a["global_step"] == b["global_step"] == total
    _assert_same_training_state(a, b)
    ma, mb = _metrics(tmp_path / "ref_logs"), _metrics(tmp_path / "run_logs")
    assert ma["results"] == mb["results"], (ma, mb)
    assert ma["results"]["test"][run.test_domain]["n"] == run.test_n
    print(f"{model}: kill-and-resume at step {step}: {time.monotonic() - t0:.1f} s")


# ------------------------------------------------------------------ --ckpt_path last with the shipped configs
SHIPPED = BASELINE  # --config for each piece of the shipped concat-CNN setting
# The shipped config with a tiny network and budget. A constant learning rate, because the cosine schedule
# spans trainer.max_epochs, so a 2-epoch run extended to 3 and a 3-epoch run follow different schedules. No
# dropout here, so this test is about finding and continuing the version only; the RNG across an epoch-end
# resume (dropout masks) is the subject of test_resume_from_an_epoch_end_checkpoint_keeps_the_dropout_rng.
SHIPPED_TINY = (
    "--model.init_args.net.init_args.width",
    "8",
    "--model.init_args.net.init_args.dropout",
    "0",
    "--model.init_args.scheduler",
    "none",
    "--data.init_args.target_split",
    "fraction:0.02",
    "--trainer.limit_train_batches",
    "3",
    "--trainer.limit_val_batches",
    "2",
    "--trainer.enable_progress_bar",
    "false",
)


def _shipped_fit(
    tmp: Path, save_dir: Path, *extra: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``rsmg fit`` of the shipped config (in this process), logging (and checkpointing) under ``save_dir``."""
    return call_rsmg(
        *("fit", *SHIPPED, *SHIPPED_TINY),
        *("--trainer.logger.init_args.save_dir", str(save_dir), "--trainer.default_root_dir", str(save_dir)),
        *extra,
        cwd=tmp,
        check=check,
    )


def _output(p: subprocess.CompletedProcess[str]) -> str:
    return p.stdout + p.stderr


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="shared data pack missing")
def test_ckpt_path_last_continues_the_version_of_a_shipped_config(tmp_path):
    exp = "baseline_trento_to_muufl"
    _shipped_fit(tmp_path, tmp_path / "ref", "--trainer.max_epochs", "3")  # uninterrupted
    _shipped_fit(tmp_path, tmp_path / "run", "--trainer.max_epochs", "2")
    run = tmp_path / "run" / exp / "version_0"
    before = _csv_rows(run / "metrics.csv")
    assert {r["epoch"] for r in before} == {"0", "1"}

    out = _output(
        _shipped_fit(tmp_path, tmp_path / "run", "--trainer.max_epochs", "3", "--ckpt_path", "last")
    )
    # the same version directory, not a fresh version_1 that trains from epoch 0
    assert sorted(p.name for p in (tmp_path / "run" / exp).iterdir()) == ["version_0"]
    assert "Restoring states from the checkpoint" in out
    assert str(run / "checkpoints" / "last.ckpt") in out  # says what it resumed
    after = _csv_rows(run / "metrics.csv")
    assert [{k: r[k] for k in before[0]} for r in after[: len(before)]] == before  # kept, not rewritten
    assert {r["epoch"] for r in after[len(before) :]} == {"2"}  # only the new epoch is appended

    a = torch.load(
        tmp_path / "ref" / exp / "version_0/checkpoints/last.ckpt", map_location="cpu", weights_only=False
    )
    b = torch.load(run / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    assert a["epoch"] == b["epoch"] == 2 and a["global_step"] == b["global_step"] == 9  # 3 epochs × 3 batches
    _assert_same_training_state(a, b)


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="shared data pack missing")
def test_resume_from_an_epoch_end_checkpoint_keeps_the_dropout_rng(tmp_path):
    """2 epochs, then resumed from the epoch-end ``last.ckpt`` to 3, equals 3 uninterrupted epochs, with dropout.

    Lightning does not give a training loader its state back when the checkpoint was written at the end of
    a complete epoch (``FitLoop`` does not count that as restarting), so the RNG must come back another way;
    the data order alone (a function of seed and epoch) was always right, the dropout masks were not.
    """
    exp = "baseline_trento_to_muufl"
    dropout = ("--model.init_args.net.init_args.dropout", "0.5")  # overrides SHIPPED_TINY's 0
    _shipped_fit(tmp_path, tmp_path / "ref", *dropout, "--trainer.max_epochs", "3")  # uninterrupted
    _shipped_fit(tmp_path, tmp_path / "run", *dropout, "--trainer.max_epochs", "2")
    run = tmp_path / "run" / exp / "version_0"
    written = torch.load(run / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    loader_state = written["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["sampler"]
    assert written["global_step"] == 6 and loader_state["epoch_complete"]  # written at an epoch's end

    resumed = _shipped_fit(
        tmp_path, tmp_path / "run", *dropout, "--trainer.max_epochs", "3", "--ckpt_path", "last"
    )
    out = _output(resumed)
    assert "Restoring states from the checkpoint" in out
    a = torch.load(
        tmp_path / "ref" / exp / "version_0/checkpoints/last.ckpt", map_location="cpu", weights_only=False
    )
    b = torch.load(run / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    assert a["epoch"] == b["epoch"] == 2 and a["global_step"] == b["global_step"] == 9
    _assert_same_training_state(a, b)


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="shared data pack missing")
def test_ckpt_path_last_without_a_checkpoint_is_an_error(tmp_path):
    """No ``last.ckpt`` to resume: one clear error, no silent fresh start, no new version directory."""
    root = tmp_path / "out"
    stale = root / "baseline_trento_to_muufl" / "version_0"  # a run that died before its first checkpoint
    stale.mkdir(parents=True)
    (stale / "config.yaml").write_text("{}\n")
    budget = (
        "--trainer.max_epochs",
        "1",
        "--trainer.limit_train_batches",
        "1",
        "--trainer.limit_val_batches",
        "1",
    )
    p = _shipped_fit(tmp_path, root, *budget, "--ckpt_path", "last", check=False)
    out, err = p.stdout, p.stderr
    assert p.returncode == 1, f"exit {p.returncode}:\n{out[-2000:]}\n{err[-3000:]}"
    assert "rsmg fit: error:" in err and "Traceback" not in err, err[-3000:]
    assert "ckpt_path" in err and str(root / "baseline_trento_to_muufl") in err, err[-3000:]
    assert "fix:" in err and "--ckpt_path" in err.split("fix:", 1)[1]
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert left == [
        "baseline_trento_to_muufl",
        "baseline_trento_to_muufl/version_0",
        "baseline_trento_to_muufl/version_0/config.yaml",
    ]
