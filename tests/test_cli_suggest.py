"""Misspelt ``rsmg fit`` options and YAML keys: one rsmg error naming the key, the closest valid keys and the fix.

Parsing fails before any data is read or model built, so each command costs a parse (~0.1 s in-process).
"""

import pytest
import yaml

from _cli import call_rsmg
from _experiments import EXPERIMENTS, FVMGN_LIDAR, SETTINGS
from _paths import REPO

DATA, MODEL, TRAINER = (EXPERIMENTS / p for p in SETTINGS["fvmgn_trento_to_muufl_lidar"])
SCENES = REPO / "experiments/scenes"


def _configs(*files) -> list[str]:
    return [arg for f in files for arg in ("--config", str(f))]


def _fail(*args: str, cwd) -> str:
    p = call_rsmg("fit", *FVMGN_LIDAR, *args, cwd=cwd, check=False)
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert "Traceback" not in p.stderr and "NestedArg" not in p.stderr, p.stderr[-2000:]
    return p.stderr


def test_model_option_at_the_wrong_level_points_to_the_net(tmp_path):
    err = _fail("--model.init_args.widht", "3", cwd=tmp_path)
    first = next(line for line in err.splitlines() if line.startswith("rsmg fit: error:"))
    assert "unknown option --model.init_args.widht on the command line" in first
    assert "did you mean --model.init_args.net.init_args.sfie.width" in first  # found a class level below
    assert "expected: one of the keys valid there: " in err and "model.init_args.lr" in err
    assert "fix: write --model.init_args.net.init_args.sfie.width instead of --model.init_args.widht" in err


def test_data_and_trainer_options_get_the_closest_key_first(tmp_path):
    err = _fail("--data.init_args.patchsize", "9", cwd=tmp_path)
    assert "did you mean --data.init_args.patch_size or" in err
    err = _fail("--trainer.max_epohcs", "3", cwd=tmp_path)
    assert "unknown option --trainer.max_epohcs" in err and "did you mean --trainer.max_epochs" in err
    # a class_path given by the YAML (the CSV logger): its own init_args are the candidates
    err = _fail("--trainer.logger.init_args.save_dri", "x", cwd=tmp_path)
    assert "did you mean --trainer.logger.init_args.save_dir)" in err
    err = _fail("--model.init_args.net.init_args.mwdis.pp", "0.3", cwd=tmp_path)  # inside an option section
    assert "did you mean --model.init_args.net.init_args.mwdis.p" in err
    err = _fail("--model.init_args.net.init_args.mwdis_pp", "0.3", cwd=tmp_path)  # close to an old flat name
    assert "did you mean --model.init_args.net.init_args.mwdis.p" in err


def test_unknown_option_without_a_close_key_says_how_to_list_them(tmp_path):
    err = _fail("--frobnicate", "3", cwd=tmp_path)
    assert "unknown option --frobnicate on the command line." in err
    assert "fix: remove --frobnicate (`rsmg fit --help` lists every option" in err
    assert "seed_everything" in err  # the valid top-level keys are listed


def test_misspelt_yaml_key_names_the_file(tmp_path):
    """The misspelt key is in the data piece, the first of three config files: the error names that one."""
    cfg = yaml.safe_load(DATA.read_text())
    cfg["data"]["init_args"]["standardize_stat"] = cfg["data"]["init_args"].pop("standardize_stats")
    bad = tmp_path / "mine.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    p = call_rsmg("fit", *_configs(bad, MODEL, TRAINER), cwd=tmp_path, check=False)
    assert p.returncode == 2, p.stderr[-2000:]
    assert f"unknown option data.init_args.standardize_stat in {bad}" in p.stderr
    assert "did you mean data.init_args.standardize_stats" in p.stderr
    assert f"file: {bad}" in p.stderr and "in that file" in p.stderr


def test_misspelt_key_in_a_callback_list_item(tmp_path):
    cfg = yaml.safe_load(TRAINER.read_text())
    cfg["trainer"]["callbacks"][0]["init_args"]["monitr"] = cfg["trainer"]["callbacks"][0]["init_args"].pop(
        "monitor"
    )
    bad = tmp_path / "cb.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    p = call_rsmg("fit", *_configs(DATA, MODEL, bad), cwd=tmp_path, check=False)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "unknown option trainer.callbacks[0].init_args.monitr" in p.stderr
    assert "did you mean trainer.callbacks[0].init_args.monitor" in p.stderr


def test_other_parse_errors_keep_jsonargparse_message(tmp_path):
    """A bad value of a valid key is not a misspelling: usage, jsonargparse's message and exit status 2."""
    p = call_rsmg("fit", *FVMGN_LIDAR, "--model.init_args.lr", "abc", cwd=tmp_path, check=False)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "unknown option" not in p.stderr
    assert "Expected a <class 'float'>. Got value: abc" in p.stderr
    assert "usage: rsmg [options] fit" in p.stderr


# FVMGN's options as experiments/fvmgn/trento_to_muufl_lidar.yaml (now model/fvmgn_lidar.yaml) wrote them before
# they were nested (2026-12), plus the old `frequency` (the kind, a string; now the name of a section)
OLD_FLAT_NET = {
    "class_set": "shared", "text_tower": "minilm", "freeze_text": True, "width": 32, "scales": 2, "embed_dim": 128,
    "use_mwdis": True, "use_frequency": True, "frequency": "fft", "texts": "both", "multiscale_alignment": True,
    "wavelet": "haar", "wavelet_levels": 1, "mwdis_p": 0.5, "mwdis_same_domain_fallback": True,
}  # fmt: skip


def test_an_old_config_with_flat_fvmgn_options_names_each_new_key_and_the_fix_parses(tmp_path):
    """An old run's config.yaml: one file with every key, FVMGN's options flat as they were written then."""
    cfg = yaml.safe_load(call_rsmg("fit", *FVMGN_LIDAR, "--print_config", cwd=tmp_path).stdout)
    cfg["model"]["init_args"]["net"]["init_args"] = dict(OLD_FLAT_NET)
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump(cfg, sort_keys=False))
    p = call_rsmg("fit", "--config", str(old), cwd=tmp_path, check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    first = next(line for line in p.stderr.splitlines() if line.startswith("rsmg fit: error:"))
    assert (
        f"renamed option model.init_args.net.init_args.class_set in {old}: `class_set` is now `text.class_set`"
        in first
    )
    for pair in (
        "mwdis_p → mwdis.p",
        "use_mwdis → mwdis.enabled",
        "frequency → frequency.kind",
        "width → sfie.width",
    ):
        assert pair in p.stderr
    assert "wavelet →" not in p.stderr  # kept its name
    # the replacement the message gives, written into the file, is the current config
    fix = p.stderr.split("replace those keys with ")[1].splitlines()[0]
    init = {"wavelet": "haar"}
    for part in fix.split("; "):
        init.update(yaml.safe_load(part))
    assert init["mwdis"] == {"enabled": True, "levels": 1, "p": 0.5, "same_domain_fallback": True}
    cfg["model"]["init_args"]["net"]["init_args"] = init
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = yaml.safe_load(call_rsmg("fit", "--config", str(fixed), "--print_config", cwd=tmp_path).stdout)
    net = out["model"]["init_args"]["net"]["init_args"]
    assert net["frequency"] == {"enabled": True, "kind": "fft"} and net["sfie"]["width"] == 32
    # an old run's config.yaml given to test: the same error, before the checkpoint is opened
    p = call_rsmg(
        "test", "--config", str(old), "--ckpt_path", str(tmp_path / "last.ckpt"), cwd=tmp_path, check=False
    )
    assert p.returncode == 2 and "`class_set` is now `text.class_set`" in p.stderr, p.stderr[-2000:]


def test_old_flat_options_on_the_command_line_name_the_new_option(tmp_path):
    err = _fail("--model.init_args.net.init_args.use_mwdis", "false", cwd=tmp_path)
    assert "`use_mwdis` is now `mwdis.enabled`" in err
    assert "fix: write --model.init_args.net.init_args.mwdis.enabled instead of " in err
    err = _fail("--model.init_args.net.init_args.frequency", "fft", cwd=tmp_path)  # a section now: not a kind
    assert "`frequency` is now `frequency.kind`" in err


def test_scene_models_name_only_their_own_old_options(tmp_path):
    scenes = [
        a
        for n in ("data_lodo_aid", "model_fvmgn", "trainer_cpu")
        for a in ("--config", str(SCENES / f"{n}.yaml"))
    ]
    p = call_rsmg("fit", *scenes, "--model.init_args.net.init_args.texts", "none", cwd=tmp_path, check=False)
    assert (
        p.returncode == 2 and "`texts` is now `text.use`" in p.stderr and "SceneFVMGN's options" in p.stderr
    )
    p = call_rsmg("fit", *scenes, "--model.init_args.net.init_args.width", "8", cwd=tmp_path, check=False)
    assert (
        p.returncode == 2 and "unknown option --model.init_args.net.init_args.width" in p.stderr
    )  # never its


# The 20 options users type most (the README, docs/usage.md, the benchmark grids and the main jobs), each
# misspelt by swapping two letters of its last name: every one must be answered with the right key.
MOST_USED = (
    "trainer.max_epochs", "trainer.accelerator", "trainer.devices", "trainer.precision",
    "trainer.default_root_dir", "trainer.enable_progress_bar", "trainer.logger.init_args.save_dir",
    "trainer.logger.init_args.name", "trainer.logger.init_args.version", "seed_everything", "test_after_fit",
    "data.init_args.sources", "data.init_args.targets", "data.init_args.batch_size", "data.init_args.patch_size",
    "data.init_args.seed", "data.init_args.num_workers", "data.init_args.target_split", "model.init_args.lr",
    "model.init_args.net.init_args.mwdis.p",
)  # fmt: skip


def _misspelt(key: str) -> str:
    """``key`` with two letters of its last name swapped (``max_epochs`` → ``max_epcohs``; ``p`` → ``pp``)."""
    *head, last = key.split(".")
    if len(last) < 3:
        typo = last + last[-1]
    else:
        i = len(last) // 2
        typo = last[: i - 1] + last[i] + last[i - 1] + last[i + 1 :]
        typo = typo if typo != last else last[:-1]  # two equal letters swapped: drop the last one instead
    return ".".join([*head, typo])


@pytest.mark.parametrize("key", MOST_USED)
def test_each_of_the_most_used_options_misspelt_gets_the_right_suggestion(key, tmp_path):
    typo = _misspelt(key)
    assert typo != key
    err = _fail(f"--{typo}", "1", cwd=tmp_path)
    assert f"unknown option --{typo}" in err or f"--{typo}" in err, err[-1500:]
    assert f"did you mean --{key}" in err, err[-1500:]
