"""A benchmark grid reuses a finished run only when it was trained with the configuration the grid asks for now.

``benchmarks/_reuse.py`` resolves the grid's ``rsmg fit`` arguments (``--print_config``, in-process) and the run's
saved ``config.yaml`` the same way and compares them key by key. Checked here on the real LiDAR experiment
pieces, without training: the same arguments pass, a changed option is refused by name, an option added since
the run was trained passes at its default, a run trained before FVMGN's options were nested is compared through
the model's rename table, and where a run lies (the logger's name) is not compared.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from _paths import REPO
from rsmg.errors import DataError, UnknownOptionError

sys.path.insert(0, str(REPO / "benchmarks"))

from _common import FVMGN_LIDAR, config_args, grid_run_args
from _reuse import check_reuse, config_differences, resolved_config

NET = "--model.init_args.net.init_args."


def _args(run_root: Path) -> list[str]:
    return [*config_args(FVMGN_LIDAR), *grid_run_args(run_root, "fvmgn", 42, test=False)]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], dict]:
    """A run directory whose config.yaml is what the grid's arguments resolve to (as LightningCLI saves it)."""
    root = tmp_path_factory.mktemp("runs")
    args = _args(root)
    config = resolved_config(args)
    run_dir = root / "fvmgn" / "seed42"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    return run_dir, args, config


def test_the_same_arguments_reuse_the_run_and_a_changed_option_is_refused_by_name(saved) -> None:
    run_dir, args, _ = saved
    check_reuse(run_dir, args)
    with pytest.raises(
        DataError, match=r"(?s)another configuration.*sfie\.stem: 'pointwise' → 'auto'.*aside"
    ):
        check_reuse(run_dir, [*args, NET + "sfie.stem", "auto"])


def test_an_option_added_after_the_run_passes_at_its_default_and_not_otherwise(saved, tmp_path: Path) -> None:
    _, args, config = saved
    old = tmp_path / "old" / "seed42"
    old.mkdir(parents=True)
    del config["model"]["init_args"]["net"]["init_args"]["mwdis"]["high_swap"]  # as if added since
    (old / "config.yaml").write_text(yaml.safe_dump(config))
    check_reuse(old, args)
    with pytest.raises(DataError, match=r"mwdis\.high_swap: False → True"):
        check_reuse(old, [*args, NET + "mwdis.high_swap", "true"])


def test_a_run_trained_before_the_nested_options_is_compared_through_the_rename_table(
    saved, tmp_path: Path
) -> None:
    _, args, config = saved
    net = config["model"]["init_args"]["net"]["init_args"]
    net["use_mwdis"] = net["mwdis"].pop("enabled")  # the flat names of before 2026-12
    net["mwdis_p"] = net["mwdis"].pop("p")
    net["frequency"] = net.pop("frequency")["kind"]
    old = tmp_path / "flat" / "seed42"
    old.mkdir(parents=True)
    (old / "config.yaml").write_text(yaml.safe_dump(config))
    check_reuse(old, args)
    kind = net["frequency"]  # the flat value: the config's kind
    other = "wavelet" if kind == "fft" else "fft"
    with pytest.raises(DataError, match=rf"frequency\.kind: '{kind}' → '{other}'"):
        check_reuse(old, [*args, NET + "frequency.kind", other])


def test_location_and_the_options_of_a_part_switched_off_on_both_sides_are_not_compared() -> None:
    a = {"trainer": {"logger": {"init_args": {"name": "fvmgn", "version": "seed42"}}},
         "net": {"mwdis": {"enabled": False, "logits": "resampled"}, "sfie": {"width": 32}}}  # fmt: skip
    b = {"trainer": {"logger": {"init_args": {"name": "moved_aside", "version": "seed42"}}},
         "net": {"mwdis": {"enabled": False, "logits": "original"}, "sfie": {"width": 32}}}  # fmt: skip
    assert config_differences(a, b) == []
    b["net"]["mwdis"]["enabled"] = True
    assert config_differences(a, b) == [
        "net.mwdis.enabled: False → True",
        "net.mwdis.logits: 'resampled' → 'original'",
    ]


def test_a_run_without_its_config_or_with_a_config_that_no_longer_parses_is_refused(
    saved, tmp_path: Path
) -> None:
    _, args, config = saved
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(DataError, match=r"(?s)without its configuration.*config\.yaml"):
        check_reuse(bare, args)
    config["model"]["init_args"]["net"]["init_args"]["no_such_option"] = 1
    (bare / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(DataError, match=r"(?s)no longer parses.*no_such_option"):
        check_reuse(bare, args)


def test_an_unknown_option_in_a_grid_cell_is_rsmg_s_own_error_naming_the_field_and_the_fix() -> None:
    with pytest.raises(UnknownOptionError, match=r"unknown option --trainer.not_an_option(.|\n)*fix: remove"):
        resolved_config([*config_args(FVMGN_LIDAR), "--trainer.not_an_option", "1"])
