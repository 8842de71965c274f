"""Misspelt ``rsmg fit`` options and YAML keys: one rsmg error naming the key, the closest valid keys and the fix.

Parsing fails before any data is read or model built, so each command costs a parse (~0.1 s in-process).
"""

import yaml

from _cli import call_rsmg
from _paths import REPO

FVMGN = REPO / "experiments/fvmgn/trento_to_muufl_lidar.yaml"


def _fail(*args: str, cwd) -> str:
    p = call_rsmg("fit", "--config", str(FVMGN), *args, cwd=cwd, check=False)
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert "Traceback" not in p.stderr and "NestedArg" not in p.stderr, p.stderr[-2000:]
    return p.stderr


def test_model_option_at_the_wrong_level_points_to_the_net(tmp_path):
    err = _fail("--model.init_args.widht", "3", cwd=tmp_path)
    first = next(line for line in err.splitlines() if line.startswith("rsmg fit: error:"))
    assert "unknown option --model.init_args.widht on the command line" in first
    assert "did you mean --model.init_args.net.init_args.width" in first  # found one class level below
    assert "expected: one of the keys valid there: " in err and "model.init_args.lr" in err
    assert "fix: write --model.init_args.net.init_args.width instead of --model.init_args.widht" in err


def test_data_and_trainer_options_get_the_closest_key_first(tmp_path):
    err = _fail("--data.init_args.patchsize", "9", cwd=tmp_path)
    assert "did you mean --data.init_args.patch_size or" in err
    err = _fail("--trainer.max_epohcs", "3", cwd=tmp_path)
    assert "unknown option --trainer.max_epohcs" in err and "did you mean --trainer.max_epochs" in err
    # a class_path given by the YAML (the CSV logger): its own init_args are the candidates
    err = _fail("--trainer.logger.init_args.save_dri", "x", cwd=tmp_path)
    assert "did you mean --trainer.logger.init_args.save_dir)" in err
    err = _fail("--model.init_args.net.init_args.mwdis_pp", "0.3", cwd=tmp_path)
    assert "did you mean --model.init_args.net.init_args.mwdis_p" in err


def test_unknown_option_without_a_close_key_says_how_to_list_them(tmp_path):
    err = _fail("--frobnicate", "3", cwd=tmp_path)
    assert "unknown option --frobnicate on the command line." in err
    assert "fix: remove --frobnicate (`rsmg fit --help` lists every option" in err
    assert "seed_everything" in err  # the valid top-level keys are listed


def test_misspelt_yaml_key_names_the_file(tmp_path):
    cfg = yaml.safe_load(FVMGN.read_text())
    cfg["data"]["init_args"]["standardize_stat"] = cfg["data"]["init_args"].pop("standardize_stats")
    bad = tmp_path / "mine.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    p = call_rsmg("fit", "--config", str(bad), cwd=tmp_path, check=False)
    assert p.returncode == 2, p.stderr[-2000:]
    assert f"unknown option data.init_args.standardize_stat in {bad}" in p.stderr
    assert "did you mean data.init_args.standardize_stats" in p.stderr
    assert f"file: {bad}" in p.stderr and "in that file" in p.stderr


def test_misspelt_key_in_a_callback_list_item(tmp_path):
    cfg = yaml.safe_load(FVMGN.read_text())
    cfg["trainer"]["callbacks"][0]["init_args"]["monitr"] = cfg["trainer"]["callbacks"][0]["init_args"].pop(
        "monitor"
    )
    bad = tmp_path / "cb.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    p = call_rsmg("fit", "--config", str(bad), cwd=tmp_path, check=False)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "unknown option trainer.callbacks[0].init_args.monitr" in p.stderr
    assert "did you mean trainer.callbacks[0].init_args.monitor" in p.stderr


def test_other_parse_errors_keep_jsonargparse_message(tmp_path):
    """A bad value of a valid key is not a misspelling: usage, jsonargparse's message and exit status 2."""
    p = call_rsmg("fit", "--config", str(FVMGN), "--model.init_args.lr", "abc", cwd=tmp_path, check=False)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "unknown option" not in p.stderr
    assert "Expected a <class 'float'>. Got value: abc" in p.stderr
    assert "usage: rsmg [options] fit" in p.stderr
