"""Every composed experiment setting resolves to exactly the configuration of the one-file YAML it replaced.

``experiments/{data,model,trainer}/`` pieces replaced ``experiments/fvmgn/*.yaml``, ``experiments/fvmgn/paper/*.yaml``
and ``experiments/baseline/trento_to_muufl.yaml`` (issue 23). Those files are kept verbatim under
``tests/fixtures/monolithic_experiments/``: the benchmark results were run with them. Each is parsed beside its
composition (``--print_config``, parsing only) and the two resolved configurations must be equal, run name
included. Both go through today's code, so a new option default changes both alike; changing a setting on
purpose means editing its fixture in the same commit, which the diff then shows.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from _cli import parses
from _experiments import EXPERIMENTS, PAPER_PAIRS, SETTINGS, config_args
from _paths import REPO

MONOLITHIC = REPO / "tests" / "fixtures" / "monolithic_experiments"
OLD_FILE = {
    "baseline_trento_to_muufl": "baseline/trento_to_muufl.yaml",
    "fvmgn_trento_to_muufl_lidar": "fvmgn/trento_to_muufl_lidar.yaml",
    "fvmgn_houston2013_vectors": "fvmgn/houston2013_vectors.yaml",
    "fvmgn_salinas_a": "fvmgn/salinas_a.yaml",
    **{f"fvmgn_paper_{pair}": f"fvmgn/paper/{pair}.yaml" for pair in PAPER_PAIRS},
}


def resolved(args: list[str]) -> dict:
    return yaml.safe_load(parses(args))


def test_every_old_file_has_a_composition():
    assert sorted(OLD_FILE) == sorted(SETTINGS)
    assert sorted(p.relative_to(MONOLITHIC).as_posix() for p in MONOLITHIC.rglob("*.yaml")) == sorted(
        [*OLD_FILE.values(), "fvmgn/lidar_height_only.yaml"]
    )


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_composition_resolves_to_the_old_file(setting):
    old = resolved(["--config", str(MONOLITHIC / OLD_FILE[setting])])
    new = resolved(config_args(setting))
    # not two empty configurations compared: the run name, the scenes and the network come from the pieces
    assert new["trainer"]["logger"]["init_args"]["name"] == setting and new["data"]["init_args"]["sources"]
    assert new["model"]["init_args"]["net"]["class_path"].startswith("rsmg.models.")
    assert new == old


def _configs(root: Path, *files: str) -> list[str]:
    return [arg for f in files for arg in ("--config", str(root / f))]


def test_height_overlay_resolves_as_on_the_old_file():
    """data/lidar_height_only.yaml after the data piece does what it did after the one-file FVMGN config."""
    old = resolved(_configs(MONOLITHIC, "fvmgn/trento_to_muufl_lidar.yaml", "fvmgn/lidar_height_only.yaml"))
    pieces = ("data/trento_to_muufl_lidar.yaml", "data/lidar_height_only.yaml", "model/fvmgn_lidar.yaml")
    new = resolved(_configs(EXPERIMENTS, *pieces, "trainer/lidar.yaml"))
    assert new["data"]["init_args"]["bands"] == {"lidar": ["dsm"]} and new == old


def _without(cfg: dict, *keys: str) -> dict:
    out = yaml.safe_load(yaml.safe_dump(cfg))
    for key in keys:
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node[p]
        del node[leaf]
    return out


def test_paper_data_pieces_differ_only_in_the_scenes_and_the_split():
    """The six paper settings share one protocol: beyond source, target, source split and run name, no drift."""
    pieces = [yaml.safe_load((EXPERIMENTS / f"data/paper_{pair}.yaml").read_text()) for pair in PAPER_PAIRS]
    varying = ("data.init_args.sources", "data.init_args.targets", "data.init_args.source_split")
    common = [_without(p, *varying, "trainer.logger.init_args.name") for p in pieces]
    assert all(c == common[0] for c in common)
    for pair, piece in zip(PAPER_PAIRS, pieces, strict=True):
        source, target = pair.split("_to_")
        assert piece["data"]["init_args"]["sources"] == [source] and piece["data"]["init_args"][
            "targets"
        ] == [target]
        assert piece["trainer"]["logger"]["init_args"]["name"] == f"fvmgn_paper_{pair}"
