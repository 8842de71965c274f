"""Command lines built from typed signatures (:mod:`rsmg.cli.signature`) and the verbs served by them.

The verbs ``rsmg download | report | caption`` and the benchmark scripts keep their argparse spellings
(``--max-new-tokens 3 --skip-bad --seeds 0 1 --only a --only b``) while jsonargparse checks the types, writes
the help from the docstring and reads ``--config`` YAML files.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Literal

import pytest

from _cli import call_rsmg
from _paths import SHARED_DATA, missing_shared_data
from rsmg.cli.signature import Arg, cli, parse_kwargs, signature_parser
from rsmg.errors import UsageError


def toy(
    name: Annotated[str | None, Arg(metavar="NAME")] = None,
    *,
    max_new_tokens: int = 128,
    skip_bad: bool = False,
    channels_last: bool = True,
    seeds: list[int] = [0, 1, 2],  # noqa: B006 - a default the command line replaces, never mutated
    pair: Annotated[tuple[int, int] | None, Arg(metavar=("S1", "S2"))] = None,
    device: Literal["auto", "cpu"] = "auto",
    only: Annotated[list[str] | None, Arg(repeat=True, metavar="FILE")] = None,
    root: Path | None = None,
    secret: Annotated[str | None, Arg(hidden=True)] = None,
    list_all: Annotated[bool, Arg(option="--list")] = False,
    model: Annotated[str | None, Arg(exclusive="src")] = None,
    from_files: Annotated[str | None, Arg(exclusive="src")] = None,
) -> dict:
    """Toy verb: what each parameter becomes on the command line.

    Args:
        name: a positional that may be left out
        max_new_tokens: longest caption in tokens
        skip_bad: a flag
        channels_last: a flag that is on by default
        seeds: one or more seeds
        pair: exactly two numbers
        device: one of the choices
        only: repeatable
        root: a path
        secret: not shown in the help
        list_all: spelt --list
        model: excludes --from-files
        from_files: excludes --model
    """
    if name == "usage":
        raise UsageError("NAME must not be 'usage'")
    return {k: v for k, v in locals().items()}


DEFAULTS = toy()


def test_argparse_spellings_parse_to_typed_values():
    argv = ["n", "--max-new-tokens", "3", "--skip-bad", "--no-channels-last", "--seeds", "4", "5"]
    argv += [
        "--pair",
        "2",
        "4",
        "--device",
        "cpu",
        "--only",
        "a",
        "--only",
        "b",
        "--root",
        "r",
        "--secret",
        "s",
    ]
    argv += ["--list", "--model", "m"]
    got = cli(toy, argv)
    assert got == {
        **DEFAULTS,
        "name": "n",
        "max_new_tokens": 3,
        "skip_bad": True,
        "channels_last": False,
        "seeds": [4, 5],
        "pair": (2, 4),
        "device": "cpu",
        "only": ["a", "b"],
        "root": Path("r"),
        "secret": "s",
        "list_all": True,
        "model": "m",
    }
    assert cli(toy, []) == DEFAULTS
    assert cli(toy, ["--max-new", "7"])["max_new_tokens"] == 7  # argparse's abbreviations still work


def test_help_comes_from_the_signature_and_docstring(capsys):
    with pytest.raises(SystemExit) as e:
        cli(toy, ["--help"], prog="toy", epilog="exit status:\n  0  fine\n  2  usage")
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert out.startswith("usage: toy ") and "Toy verb: what each parameter becomes" in out
    assert (
        "--max-new-tokens MAX_NEW_TOKENS" in out
        and "longest caption in tokens (type: int, default: 128)" in out
    )
    assert "--channels-last, --no-channels-last" in out and "--pair S1 S2" in out and "--list " in out
    assert "--device {auto,cpu}" in out and "--secret" not in out
    assert "\n  0  fine\n  2  usage" in out  # the epilog keeps its lines


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-new-tokns", "3"], "unknown option --max-new-tokns (did you mean --max-new-tokens?)"),
        (["--frobnicate"], "unknown option --frobnicate"),
        (["--device", "gpu"], "gpu"),
        (["--max-new-tokens", "many"], "many"),
        (["--model", "m", "--from-files", "t"], "not allowed with argument --model"),
        (["usage"], "NAME must not be 'usage'"),
    ],
)
def test_a_bad_command_line_exits_2_with_the_usage(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        cli(toy, argv, prog="toy")
    err = capsys.readouterr().err
    assert e.value.code == 2 and "usage: toy" in err and message in err, err


def test_config_file_sets_every_kind_of_parameter_and_the_command_line_wins(tmp_path, capsys):
    cfg = tmp_path / "toy.yaml"
    cfg.write_text(
        "name: from_yaml\nmax_new_tokens: 5\nskip_bad: true\nchannels_last: false\nseeds: [7, 8]\n"
        "pair: [1, 2]\ndevice: cpu\nonly: [a, b]\nlist_all: true\n"
    )
    got = cli(toy, ["--config", str(cfg)])
    assert got == {
        **DEFAULTS,
        "name": "from_yaml",
        "max_new_tokens": 5,
        "skip_bad": True,
        "channels_last": False,
        "seeds": [7, 8],
        "pair": (1, 2),
        "device": "cpu",
        "only": ["a", "b"],
        "list_all": True,
    }
    later = cli(toy, ["--config", str(cfg), "cli_name", "--max-new-tokens", "9", "--seeds", "3"])
    assert (later["name"], later["max_new_tokens"], later["seeds"]) == ("cli_name", 9, [3])

    # --print_config writes a file that --config reads back to the same call
    parser = signature_parser(toy)
    with pytest.raises(SystemExit) as e:
        parse_kwargs(parser, toy, ["n", "--seeds", "4", "--print_config"])
    assert e.value.code == 0
    dumped = tmp_path / "dumped.yaml"
    dumped.write_text(capsys.readouterr().out)
    assert cli(toy, ["--config", str(dumped)]) == {**DEFAULTS, "name": "n", "seeds": [4]}

    cfg.write_text("max_new_tokenz: 5\n")
    with pytest.raises(SystemExit) as e:
        cli(toy, ["--config", str(cfg)])
    assert e.value.code == 2
    assert f"unknown key 'max_new_tokenz' in {cfg} (did you mean max_new_tokens?)" in capsys.readouterr().err


@dataclasses.dataclass(kw_only=True)
class Options:
    """Options of a benchmark script.

    Attributes:
        batch: samples per step
        data_seed: seed of the split
    """

    batch: int = 64
    data_seed: int = 0


def test_a_kw_only_dataclass_is_a_set_of_options(capsys):
    assert cli(Options, ["--batch", "8", "--data-seed", "3"]) == Options(batch=8, data_seed=3)
    with pytest.raises(SystemExit):
        cli(Options, ["--help"], description="module docstring")
    out = capsys.readouterr().out
    assert "module docstring" in out and "--data-seed DATA_SEED" in out and "seed of the split" in out


# ------------------------------------------------------------------------------------------------------------
# the verbs
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("verb", "options"),
    [
        ("download", ["--verify-only", "--require-hash", "--no-progress", "--list", "--all", "--only FILE"]),
        ("report", ["--group-by {method,experiment}", "--no-figure", "--strict", "RUN_DIR [RUN_DIR ...]"]),
        ("caption", ["--max-new-tokens", "--from-files TEXT_DIR", "--skip-bad", "--classes-from-folders"]),
    ],
)
def test_verb_help_keeps_the_option_spellings(verb, options, tmp_path):
    p = call_rsmg(verb, "--help", cwd=tmp_path)
    for option in [*options, "--config CONFIG", "--print_config"]:
        assert option in p.stdout, (verb, option)


def test_misspelt_verb_option_names_the_closest(tmp_path):
    p = call_rsmg("caption", "x", "--max-new-tokns", "3", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "did you mean --max-new-tokens?" in p.stderr
    p = call_rsmg("report", "x", "--no-figur", "--stict", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "unknown option --stict (did you mean --strict" in p.stderr
    p = call_rsmg("download", "trento", "--verify-onyl", cwd=tmp_path, check=False)
    assert p.returncode == 1 and "did you mean --verify-only?" in p.stderr  # 2 means "place files by hand"


def test_download_list_from_a_config_file(tmp_path):
    cfg = tmp_path / "download.yaml"
    cfg.write_text(f"name: trento\nlist_datasets: true\nroot: {tmp_path / 'data'}\n")
    p = call_rsmg("download", "--config", str(cfg), cwd=tmp_path)
    assert f"data root: {(tmp_path / 'data').resolve()} (from --root)" in p.stdout
    assert p.stdout.count("licence:") == 1 and "TRLabel.mat" in p.stdout


def test_caption_from_files_by_config_equals_the_command_line(tmp_path):
    aid = SHARED_DATA / "aid_text_minitest" / "minitest"
    if not aid.is_dir():
        missing_shared_data(aid, "AID minitest captions")
    by_cli, by_cfg = tmp_path / "cli.jsonl", tmp_path / "cfg.jsonl"
    call_rsmg(
        "caption", str(aid / "image"), "--from-files", str(aid / "text"), "--out", str(by_cli), cwd=tmp_path
    )
    cfg = tmp_path / "caption.yaml"
    cfg.write_text(f"image_dir: {aid / 'image'}\nfrom_files: {aid / 'text'}\nout: {by_cfg}\n")
    call_rsmg("caption", "--config", str(cfg), cwd=tmp_path)
    captions = [
        [json.loads(line)["caption"] for line in f.read_text().splitlines()] for f in (by_cli, by_cfg)
    ]
    assert len(captions[0]) == 200 and captions[0] == captions[1]
    cfg.write_text(f"image_dir: {aid / 'image'}\nfrom_files: {aid / 'text'}\nmodel: m\nout: {by_cfg}\n")
    p = call_rsmg("caption", "--config", str(cfg), cwd=tmp_path, check=False)
    assert p.returncode == 2 and "--model and --from-files exclude each other" in p.stderr
