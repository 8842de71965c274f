"""The benchmark scripts' command lines (a typed ``Options`` dataclass each, :mod:`rsmg.cli.signature`).

The commands recorded in ``benchmarks/results/`` and the docs must keep reproducing, so each is parsed here to
the values it ran with, in this process and without running anything: every ``Command:`` line of a results file
that runs ``fvmgn_accuracy.py``, ``indian_pines.py`` or ``predict_memory.py``, and hand-picked ones of the others.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import json
import re
import shlex
import subprocess
import sys
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from _paths import REPO
from rsmg.cli.signature import cli

sys.path.insert(0, str(REPO / "benchmarks"))

SCRIPTS = (
    "caption_accuracy",
    "data_throughput",
    "dtaug_accuracy",
    "fusion_throughput",
    "fvmgn_accuracy",
    "fvmgn_compile",
    "fvmgn_speed",
    "gpu_precision",
    "gpu_protocols",
    "gpu_step",
    "indian_pines",
    "make_docs",
    "mwdis_donors",
    "predict_memory",
    "run_all",
    "scene_budget",
    "scene_data_throughput",
    "scene_dg",
    "scene_dtaug",
    "scene_step_cost",
    "source_choices",
    "standardize_validation",
    "tta_cost",
    "ucm_captions",
)
HIDDEN = {("fusion_throughput", "memory_of")}  # set only by the script itself for its child process


def script(name: str) -> ModuleType:
    return importlib.import_module(name)


def parse(name: str, command: str) -> Any:
    mod = script(name)
    return cli(mod.Options, shlex.split(command), description=mod.__doc__)


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_shows_the_script_docstring_and_every_option(name, capsys):
    mod = script(name)
    with pytest.raises(SystemExit) as e:
        cli(mod.Options, ["--help"], description=mod.__doc__)
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert (mod.__doc__ or "").strip().splitlines()[0] in out
    for f in dataclasses.fields(mod.Options):
        shown = f"--{f.name.replace('_', '-')}" in out
        assert shown != ((name, f.name) in HIDDEN), (name, f.name)


@pytest.mark.parametrize(
    ("name", "command", "expected"),
    [
        ("mwdis_donors", "--batches 64 512 2048 8192", {"batches": [64, 512, 2048, 8192], "reps": 5}),
        ("scene_data_throughput", "--seconds 2 --batch 16", {"seconds": 2.0, "batch": 16, "size": 224}),
        (
            "gpu_step",
            "--batch 8192 --name gpu/step_h200_batch8192",
            {
                "batch": 8192,
                "name": "gpu/step_h200_batch8192",
                "variants": ["eager", "eager + fused AdamW", "compiled", "compiled, CUDA graphs"],
            },
        ),
        ("gpu_step", "--variants", {"variants": []}),
        (
            "gpu_protocols",
            "--only 1 --name gpu/main_job_h200_parallel --timeout 95",
            {"only": [1], "name": "gpu/main_job_h200_parallel", "timeout": 95, "eval_batch": 4096},
        ),
        (
            "ucm_captions",
            "--held-out --methods 'unified (fvmgn_captions)' 'image + class texts (fvmgn_scenes)' --seeds 0 "
            "--leakage on",
            {
                "held_out": True,
                "methods": ["unified (fvmgn_captions)", "image + class texts (fvmgn_scenes)"],
                "seeds": [0],
                "leakage": "on",
                "transfer": None,
            },
        ),
        (
            "scene_step_cost",
            "--sizes 128 160 --freeze stages:3 --models erm fvmgn_captions_no_mwdis fvmgn_captions "
            "fvmgn_captions_resampled_view fvmgn_captions_frozen_prefix fvmgn_captions_frozen_prefix_resampled_view "
            "--steps 11 --out scene_data/step_cost_unified.md",
            {
                "sizes": [128, 160],
                "freeze": ["stages:3"],
                "models": [
                    "erm",
                    "fvmgn_captions_no_mwdis",
                    "fvmgn_captions",
                    "fvmgn_captions_resampled_view",
                    "fvmgn_captions_frozen_prefix",
                    "fvmgn_captions_frozen_prefix_resampled_view",
                ],
                "steps": 11,
                "out": "scene_data/step_cost_unified.md",
            },
        ),
        (
            "fvmgn_compile",
            "--batch 512 --rounds 4 --name fvmgn_speed/compile_cpu_batch512",
            {"batch": 512, "rounds": 4, "name": "fvmgn_speed/compile_cpu_batch512", "amp": "auto"},
        ),
        ("gpu_precision", "--name gpu/precision_h200 --timeout 120", {"timeout": 120, "seeds": [42, 43, 44]}),
        ("data_throughput", "--patch 9", {"patch": 9, "seconds": 4.0}),
        (
            "scene_dtaug",
            "--protocol rsscn7_zoom1 --methods erm --seeds 0 1 --prior-epochs 2",
            {"protocol": "rsscn7_zoom1", "methods": ["erm"], "seeds": [0, 1], "prior_epochs": 2, "views": 4},
        ),
        (
            "predict_memory",
            "--grids 2 4 8 --before-src /tmp/rsmg-f645fde/src",
            {"grids": [2, 4, 8], "strip_rows": 128, "before_src": Path("/tmp/rsmg-f645fde/src")},
        ),
        ("make_docs", "--check", {"check": True, "figure": False}),
        (
            "tta_cost",
            "--ckpt outputs/bench_fvmgn/fraction_0_25/trento_to_muufl/fvmgn/seed42/checkpoints/best-epoch=11.ckpt "
            "--unet-channels 16 32 --prior-steps 600 --steps 2 5 10 --threads 1 "
            "--name dtaug/tta_cost_fvmgn_small_prior",
            {
                "ckpt": Path(
                    "outputs/bench_fvmgn/fraction_0_25/trento_to_muufl/fvmgn/seed42/checkpoints/best-epoch=11.ckpt"
                ),
                "unet_channels": [16, 32],
                "prior_steps": 600,
                "steps": [2, 5, 10],
                "ks": [1, 2, 4, 8],
                "threads": 1,
                "prior": None,
                "n": None,
            },
        ),
        (
            "caption_accuracy",
            "--seeds 42 43 44 --datasets aid_minitest ucm_captions --methods image text concat vote "
            "cross_attention --zero-shot",
            {
                "datasets": ["aid_minitest", "ucm_captions"],
                "methods": ["image", "text", "concat", "vote", "cross_attention"],
                "zero_shot": True,
            },
        ),
        (
            "run_all",
            "--only fvmgn_speed tta_cost --args tta_cost='--n 2048' --args fvmgn_speed='--batch 8'",
            {"only": ["fvmgn_speed", "tta_cost"], "args": ["tta_cost=--n 2048", "fvmgn_speed=--batch 8"]},
        ),
        ("run_all", "--summary-only", {"summary_only": True, "only": None, "args": []}),
        (
            "dtaug_accuracy",
            "--seeds 42 43 44 --methods 'baseline' 'baseline + DTAug training views' 'fvmgn' "
            "'fvmgn + DTAug training views' --epochs 15 --prior-epochs 40 --views 4 --steps 5 --strength 0.3 "
            "--target-split fraction:0.05",
            {
                "methods": [
                    "baseline",
                    "baseline + DTAug training views",
                    "fvmgn",
                    "fvmgn + DTAug training views",
                ],
                "prior_epochs": 40,
                "strength": 0.3,
                "target_split": "fraction:0.05",
            },
        ),
        ("standardize_validation", "--seeds 42 43 44 --epochs 15", {"seeds": [42, 43, 44], "epochs": 15}),
        (
            "source_choices",
            "--settings trento_to_muufl muufl_to_trento --seeds 42 43 44 45 46 "
            "--name source_choices/mwdis_logits_cross_scene",
            {
                "seeds": [42, 43, 44, 45, 46],
                "settings": ["trento_to_muufl", "muufl_to_trento"],
                "name": "source_choices/mwdis_logits_cross_scene",
            },
        ),
        (
            "source_choices",
            "--settings indian_pines_disjoint --seeds 42 43 44 --name source_choices/mwdis_logits_in_scene",
            {"seeds": [42, 43, 44], "settings": ["indian_pines_disjoint"]},
        ),
        ("fusion_throughput", "--batch 4 --iters 2", {"batch": 4, "iters": 2, "memory_of": None}),
        (  # the child command fusion_throughput.launch_memory starts
            "fusion_throughput",
            "--memory-of rsmg --batch 64 --device auto --amp auto --threads 2 --train-text",
            {"memory_of": "rsmg", "batch": 64, "threads": 2, "train_text": True},
        ),
        (
            "fvmgn_speed",
            "--batch 512 --skip-generated --threads 1 --attn-sr 2 1 "
            "--name fvmgn_speed/cpu_batch512_heads4_kv_pooling_2_1",
            {
                "batch": 512,
                "skip_generated": True,
                "attn_sr": [2, 1],
                "attn_heads": None,
                "channels_last": True,
            },
        ),
        (
            "scene_dg",
            "--protocols lodo_ucm lodo_aid indomain_ucm --methods 'erm' 'linear probe' 'fvmgn w/o MWDis' "
            "--seeds 0 1 2 --data-seed 0 --reuse-only --name scene_dg/lodo",
            {
                "protocols": ["lodo_ucm", "lodo_aid", "indomain_ucm"],
                "methods": ["erm", "linear probe", "fvmgn w/o MWDis"],
                "seeds": [0, 1, 2],
                "data_seed": 0,
                "reuse_only": True,
                "name": "scene_dg/lodo",
            },
        ),
        (
            "fvmgn_speed",
            "--batch 512 --attn-heads 2 4 --no-channels-last --compile",
            {"attn_heads": [2, 4], "channels_last": False, "compile": True, "attn_sr": None},
        ),
    ],
)
def test_recorded_commands_parse_to_the_values_they_ran_with(name, command, expected):
    options = parse(name, command)
    got = {k: getattr(options, k) for k in expected}
    assert got == expected


def test_ucm_captions_methods_default_to_the_protocols():
    ucm = script("ucm_captions")
    assert parse("ucm_captions", "").methods == list(ucm.METHODS)
    assert parse("ucm_captions", "--held-out").methods == list(ucm.ZERO_SHOT_METHODS)
    assert "concat" not in parse("ucm_captions", "--transfer ucm_aid").methods


def test_ucm_captions_karpathy_split_has_its_own_runs_and_results(tmp_path, monkeypatch):
    ucm = script("ucm_captions")
    seeded = parse("ucm_captions", "--held-out --seeds 0")
    karpathy = parse("ucm_captions", "--held-out --split karpathy --seeds 0")
    assert (seeded.split, karpathy.split) == ("seeded", "karpathy")
    # the seeded names are those of the results files already written
    assert ucm.result_name(seeded) == "captions_ucm/ucm21_zero_shot_leakage_on_seeds0.md"
    assert ucm.result_name(karpathy) == "captions_ucm/ucm21_karpathy_zero_shot_leakage_on_seeds0.md"
    assert (
        ucm.result_name(parse("ucm_captions", "--seeds 0 1 2")) == "captions_ucm/ucm21_leakage_on_seeds012.md"
    )
    transfer = parse("ucm_captions", "--transfer ucm_aid --split karpathy --seeds 0")
    assert (
        ucm.result_name(transfer) == "captions_ucm/ucm_to_aid_minitest_ucm_aid_karpathy_leakage_on_seeds0.md"
    )
    assert (ucm.options_tail(seeded), ucm.options_tail(karpathy)) == ("", " --split karpathy")
    calls: list[list[str]] = []
    monkeypatch.setattr(ucm, "timed_fit", lambda args, label, run_dir: calls.append(args) or None)
    for split in ("seeded", "karpathy"):
        ucm.run("unified (fvmgn_captions)", 0, "on", None, tmp_path, held_out=True, split=split)
    dirs = [a[a.index("--trainer.logger.init_args.save_dir") + 1] for a in calls]
    assert dirs == [str(tmp_path / "zero_shot_leakage_on"), str(tmp_path / "karpathy_zero_shot_leakage_on")]
    pieces = [[Path(a[i + 1]).name for i in range(len(a)) if a[i] == "--config"] for a in calls]
    assert "split_karpathy.yaml" not in pieces[0] and "split_karpathy.yaml" in pieces[1]
    assert all(ucm.CALIBRATION in a for a in calls)  # held-out runs write gzsl.json


def test_ucm_captions_budgets_fit_untested_apart_and_another_budget_has_its_own_runs(tmp_path, monkeypatch):
    """``--budgets`` fits without a test in its own folders; ``--image-size/--epochs`` runs and names apart."""
    ucm = script("ucm_captions")
    with pytest.raises(SystemExit, match="SIZE:EPOCHS"):
        parse("ucm_captions", "--budgets 128:5 160x")
    with pytest.raises(SystemExit, match="ignores --held-out, --epochs"):
        parse("ucm_captions", "--budgets 128:5 --held-out --epochs 3")
    study = parse("ucm_captions", "--budgets 128:5 160:10 --methods 'image only' --seeds 0 --split karpathy")
    assert ucm.result_name(study) == "captions_ucm/budget_karpathy_leakage_on_seeds0.md"
    chosen = parse("ucm_captions", "--split karpathy --image-size 160 --epochs 10 --seeds 0 1 2")
    assert ucm.result_name(chosen) == "captions_ucm/ucm21_karpathy_160px_10ep_leakage_on_seeds012.md"
    assert ucm.options_tail(chosen) == " --split karpathy --image-size 160 --epochs 10"
    calls: list[list[str]] = []
    for module in (ucm, script("_common")):  # its own runs, and --budgets' (through _reuse)
        monkeypatch.setattr(module, "timed_fit", lambda args, label, run_dir: calls.append(args) or None)
    assert ucm.budget_run("image only", "160:10", 0, dataclasses.replace(study, out=tmp_path)) is None
    ucm.run("image only", 0, "on", 10, tmp_path, split="karpathy", image_size=160)
    ucm.run("image only", 0, "on", None, tmp_path, split="karpathy")
    got = [dict(itertools.pairwise(a)) for a in calls]
    assert [g["--test_after_fit"] for g in got] == ["false", "true", "true"]
    assert [g.get("--data.init_args.image_size") for g in got] == ["160", "160", None]
    assert [g.get("--trainer.max_epochs") for g in got] == ["10", "10", None]
    saves = [Path(g["--trainer.logger.init_args.save_dir"]) for g in got]
    assert [s.relative_to(tmp_path).as_posix() for s in saves] == [
        "karpathy_budget_leakage_on/image_only",
        "karpathy_160px_10ep_leakage_on",
        "karpathy_leakage_on",
    ]
    assert got[0]["--trainer.logger.init_args.name"] == "160px_10ep"


def test_ucm_captions_budget_rule_prefers_the_cheaper_within_one_image():
    choose = script("scene_budget").choose
    assert (
        100 / 210 <= script("ucm_captions").BUDGET_TOLERANCE < 2 * 100 / 210
    )  # one validation image, not two
    cost = {"128:5": 0, "160:10": 1}
    assert choose({"128:5": [96.0, 96.2], "160:10": [96.5, 96.3]}, cost, 0.48) == "128:5"
    assert choose({"128:5": [96.0, 96.2], "160:10": [97.0, 96.8]}, cost, 0.48) == "160:10"


def test_ucm_captions_held_out_table_has_raw_and_calibrated_rows(tmp_path, monkeypatch):
    """A run without gzsl.json is re-tested from the cell's pieces; the table shows both class-name-aware rows."""
    import numpy as np

    ucm = script("ucm_captions")
    options = parse("ucm_captions", "--held-out --split karpathy --seeds 0")
    run_dir = tmp_path / "karpathy_zero_shot_leakage_on" / "unified__fvmgn_captions" / "seed0"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "best-epoch=3.ckpt").write_bytes(b"")
    classes = [f"c{i}" for i in range(21)]
    classes[2], classes[6] = "baseballdiamond", "denseresidential"  # two of HELD_OUT
    raw = np.diag([10] * 21)
    raw[2, 2] = raw[6, 6] = 0
    raw[2, 0] = raw[6, 0] = 10  # every unseen image named as a seen class
    cal = np.diag([10] * 21)
    cal[0, 0], cal[0, 2] = 8, 2  # two seen images sent to an unseen class
    gzsl = {"gamma": 6.25, "classes": classes, "test": {"ucm": {"calibrated": {"confusion": cal.tolist()}}}}
    commands: list[list[str]] = []

    def fake_run(cmd, **kwargs):
        commands.append(cmd)
        (run_dir / "test_0").mkdir()
        (run_dir / "test_0" / "gzsl.json").write_text(json.dumps(gzsl))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(ucm.subprocess, "run", fake_run)
    assert ucm.calibrated(run_dir, "unified (fvmgn_captions)", 0, options) == gzsl
    assert ucm.calibrated(run_dir, "unified (fvmgn_captions)", 0, options) == gzsl and len(commands) == 1
    cmd = commands[0]
    assert cmd[3] == "test" and "config.yaml" not in " ".join(cmd) and ucm.CALIBRATION in cmd
    assert "split_karpathy.yaml" in " ".join(cmd) and "zero_shot_ucm21.yaml" in " ".join(cmd)
    assert cmd[cmd.index("--trainer.logger.init_args.save_dir") + 1] == str(
        tmp_path / "karpathy_zero_shot_leakage_on"
    )
    assert cmd[cmd.index("--trainer.logger.init_args.version") + 1] == "seed0"
    monkeypatch.setattr(ucm, "zero_shot", lambda *a, **k: {
        "confusion": np.diag([1] * 21), "classes": classes, "missing": 0, "with_caption": 1.0, "n": 21,
    })  # fmt: skip
    results = {"unified (fvmgn_captions)": {0: {"confusion": raw.tolist(), "classes": classes, "oa": 0.9,
                                                "gzsl": gzsl}}}  # fmt: skip
    lines = ucm.zero_shot_report(options, results, 0.0)
    assert "--split karpathy" in lines[2] and "karpathy split" in lines[0]
    rows = [ln for ln in lines if ln.startswith("| unified")]
    assert rows[0].startswith("| unified (fvmgn_captions) (class-name-aware, raw) | 100.00 ± – | 0.00 ± – |")
    # calibrated: 188 of 190 seen images right, 20 of 20 unseen; H = 2·98.95·100 / 198.95
    assert rows[1].startswith(
        "| unified (fvmgn_captions) (class-name-aware, calibrated, γ 6.25 ± –) | 98.95 ± – | 100.00 ± – | 99.47 ± – |"
    )


def recorded_commands(*names: str) -> list[tuple[str, str, str]]:
    """``(script, results file, arguments)`` of every ``Command:`` line under benchmarks/results/ running one."""
    out = []
    for f in sorted((REPO / "benchmarks" / "results").glob("*/*.md")):
        for line in re.findall(r"^Command: `([^`]*)`", f.read_text(encoding="utf-8"), flags=re.M):
            for name in names:
                _, found, args = line.partition(f" benchmarks/{name}.py")
                if found:
                    out.append((name, f.relative_to(REPO / "benchmarks" / "results").as_posix(), args))
    return out


RECORDED = recorded_commands("fvmgn_accuracy", "indian_pines", "predict_memory")
AS_GIVEN = {
    "seeds": int,
    "epochs": int,
    "grids": int,
    "eval_batch_size": int,
    "out": Path,
    "before_src": Path,
}


def test_every_results_folder_of_these_scripts_has_recorded_commands():
    """The pattern finds what it should: a results file renamed or reformatted would leave the test below empty."""
    files = {(name, f.split("/")[0]) for name, f, _ in RECORDED}
    assert {("fvmgn_accuracy", "fvmgn_accuracy"), ("indian_pines", "indian_pines")} <= files
    assert ("predict_memory", "predict") in files
    assert sum(name == "fvmgn_accuracy" for name, _, _ in RECORDED) >= 15


@pytest.mark.parametrize(("name", "results", "command"), RECORDED, ids=[f for _, f, _ in RECORDED])
def test_every_recorded_command_parses_to_the_values_it_ran_with(name, results, command):
    """Each option given has the value the shell handed over (converted to its type); the others their default."""
    options = parse(name, command)
    given: dict[str, list[str]] = {}
    for token in shlex.split(command):
        if token.startswith("--"):
            key = token[2:].replace("-", "_")
            given[key] = []
        else:
            given[key].append(token)
    hints = typing.get_type_hints(type(options))
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if f.name not in given:
            assert value == default, (results, f.name)
            continue
        convert = AS_GIVEN.get(f.name, str)
        tokens = [convert(t) for t in given.pop(f.name)]
        assert value == (tokens if "list[" in str(hints[f.name]) else tokens[0]), (results, f.name)
    assert not given, f"{results}: options the script no longer has: {sorted(given)}"
    if name == "fvmgn_accuracy":  # the script wrote the line from the options it parsed: it writes it again
        recorded = re.search(
            r"^Command: `([^`]*)`", (REPO / "benchmarks/results" / results).read_text(), re.M
        )
        assert recorded and script(name).command_line(options) == recorded.group(1)


@pytest.mark.parametrize(
    ("name", "command", "message"),
    [
        ("run_all", "--args nosuch='--n 1'", "--args: unknown script 'nosuch'"),
        ("run_all", "--only nosuch", "invalid choice: 'nosuch'"),
        ("ucm_captions", "--leakage maybe", "maybe"),
        ("fvmgn_speed", "--attn-sr 2", "expected 2 arguments"),
        ("tta_cost", "--unet-chanels 16 32", "did you mean --unet-channels?"),
        ("gpu_step", "--batch big", "big"),
        ("fvmgn_accuracy", "--methods fvmgn 'fvmgn w/o mwdis'", "invalid choice: 'fvmgn w/o mwdis'"),
        ("fvmgn_accuracy", "--protocols trento_to_houston", "invalid choice: 'trento_to_houston'"),
        ("indian_pines", "--splits blocks", "invalid choice: 'blocks'"),
        ("predict_memory", "--before-scr /tmp/src", "did you mean --before-src?"),
    ],
)
def test_bad_commands_exit_2_with_a_message(name, command, message, capsys):
    with pytest.raises(SystemExit) as e:
        parse(name, command)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err, err
