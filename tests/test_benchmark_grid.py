"""Every cell of ``benchmarks/fvmgn_accuracy.py``'s grid is a valid ``rsmg fit`` command line.

A grid cell is a config plus CLI overrides; a renamed model argument or a typo in a method's overrides would
otherwise surface as a FAILED run an hour into a benchmark. Parsing (``--print_config``) checks every key
against the current signatures without training. Every method is parsed on one cross-scene protocol, and every
protocol with the FVMGN and baseline models (the data overrides are the protocol's own).
"""

import sys
from pathlib import Path

import pytest

from _cli import parses
from _paths import REPO
from rsmg.cli.signature import cli

sys.path.insert(0, str(REPO / "benchmarks"))
import fvmgn_accuracy as grid


@pytest.mark.parametrize("method", sorted(grid.METHODS))
def test_every_method_parses_on_trento_to_muufl(method):
    out = parses(grid.fit_args("trento_to_muufl", method, 2, "fraction:0.25"))
    which, extra = grid.METHODS[method]
    assert ("ConcatCNN" in out) == (which == "baseline")
    for key in extra[::2]:
        if key.startswith("--model.init_args.net.init_args."):  # the override reached the model
            assert f"{key.rsplit('.', 1)[1]}:" in out


@pytest.mark.parametrize("protocol", sorted(grid.PROTOCOLS))
@pytest.mark.parametrize("method", ["fvmgn", "baseline (concat CNN)"])
def test_every_protocol_parses(protocol, method):
    out = parses(grid.fit_args(protocol, method, 2, "fraction:0.25"))
    assert ("ConcatCNN" in out) == (method != "fvmgn")
    assert f"- {grid.PROTOCOLS[protocol].target}" in out or f"[{grid.PROTOCOLS[protocol].target}]" in out


def test_aliases_and_skips_name_real_methods():
    assert set(grid.ALIASES.values()) <= set(grid.METHODS)
    assert not set(grid.ALIASES) & set(grid.METHODS)
    for proto in grid.PROTOCOLS.values():
        assert proto.skip <= set(grid.METHODS), proto.skip - set(grid.METHODS)
    methods = set(grid.METHODS)
    assert set(grid.SHORT) <= methods


def test_per_class_table_and_majority_reference():
    run = {
        "classes": ["trees", "ground", "water"],
        "per_class": [0.9, 0.5, float("nan")],
        "confusion": [[27, 3, 0], [5, 5, 0], [0, 0, 0]],  # 30 trees, 10 ground, no water test pixels
    }
    other = {**run, "per_class": [0.7, 0.7, float("nan")]}
    lines = grid.per_class_table({"a": [run, other], "b": [], "c": [other]})
    text = "\n".join(lines)
    assert "always answering the most frequent target class (trees, 30 of 40" in text
    assert "OA 75.00 %, AA 50.00 % (2 classes present)" in text
    assert "| a | 80.0 | 60.0 | — |" in lines
    assert "| c | 70.0 | 70.0 | — |" in lines
    assert not any(line.startswith("| b |") for line in lines)  # a method whose runs all failed has no row
    closed = {"classes": ["trees", "ground"], "per_class": [0.6, 0.4], "confusion": [[6, 4], [6, 4]]}
    lines = grid.per_class_table({"a": [run], "closed": [closed]})
    assert "| method | trees | ground | water |" in lines
    assert "| closed | 60.0 | 40.0 | — |" in lines  # aligned by class name, not by position
    assert grid.per_class_table({"a": []}) == []


def test_a_grid_that_ran_nothing_leaves_the_results_file_alone(monkeypatch):
    """Asking for the paper settings without their cubes used to replace the full grid's file by a 'Not run' stub."""
    written = []
    monkeypatch.setattr(grid, "not_run", lambda protocol: ["Not run: cubes missing (test)."])
    monkeypatch.setattr(grid, "write_result", lambda name, text: written.append(name))
    with pytest.raises(SystemExit, match="unchanged"):
        grid.main(cli(grid.Options, ["--methods", "fvmgn", "--protocols", "trento_to_muufl"]))
    assert written == []


CLASSES = ["trees", "ground", "road", "buildings"]
CONFUSION = [[50, 5, 5, 0], [10, 10, 0, 0], [0, 0, 10, 0], [5, 0, 0, 5]]  # 60 trees of 100 test pixels


def _fake_run(out, protocol, method, seed, oa, kind=None, wall=None, data=None):
    """A finished grid cell as ``rsmg fit --test_after_fit`` leaves it (metrics.json, config.yaml)."""
    import json

    import yaml

    run_dir = out / grid.slug("fraction:0.25") / protocol / grid.slug(method) / f"seed{seed}"
    run_dir.mkdir(parents=True)
    target = grid.PROTOCOLS[protocol].target
    test = {"oa": oa, "aa": oa - 0.1, "kappa": oa - 0.2, "per_class": [oa, 0.5, 1.0, 0.5], "n": 100}
    payload = {
        "classes": CLASSES,
        "domains": [target],
        "results": {"test": {target: {**test, "confusion": CONFUSION}}},
        "checkpoint": {"kind": "best", "path": str(run_dir / "checkpoints" / "best.ckpt")},
    }
    if kind is not None:  # older runs predate the protocol record
        payload |= {"protocol": kind, "protocol_reason": "test"}
    (run_dir / "metrics.json").write_text(json.dumps(payload))
    cfg = {"seed_everything": seed, "data": {"init_args": data or {}}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    if wall is not None:
        (run_dir / "bench_wall_s.txt").write_text(f"{wall}\n")
    return run_dir


def test_tables_from_reused_runs_pair_seeds_label_protocols_and_state_the_floor(tmp_path, monkeypatch):
    """Issue 21: paired per-seed differences, inductive / transductive per row, majority floor, wall times."""
    import make_docs

    out = tmp_path / "runs"
    base, fv = "baseline (concat CNN)", "fvmgn"
    for seed, b, f, w in [(42, 0.50, 0.55, 100), (43, 0.60, 0.58, 200), (44, 0.70, 0.80, None)]:
        _fake_run(out, "trento_to_muufl", base, seed, b, "inductive", wall=w)
        _fake_run(out, "trento_to_muufl", fv, seed, f, "transductive")
        _fake_run(out, "muufl_to_trento", base, seed, b, "inductive", wall=60)
        per_scene = {
            "scene_standardize": {"lidar": ["intensity"]},
            "sources": ["muufl"],
            "targets": ["trento"],
        }
        _fake_run(out, "muufl_to_trento", fv, seed, f, data=per_scene)  # no record: inferred from config.yaml
    written = {}
    monkeypatch.setattr(grid, "write_result", lambda name, text: written.setdefault(name, text))
    monkeypatch.setattr(grid, "timed_fit", lambda *a: pytest.fail(f"trained a cell: {a[1]}"))
    monkeypatch.setattr(
        grid, "check_reuse", lambda *a: None
    )  # fake runs hold partial configs (_reuse's tests)
    argv = ["--seeds", "42", "43", "44", "--epochs", "15", "--methods", "baseline", "fvmgn"]
    argv += ["--protocols", "trento_to_muufl", "muufl_to_trento", "--target-split", "fraction:0.25"]
    grid.main(cli(grid.Options, [*argv, "--out", str(out), "--results", "fvmgn_accuracy/_test.md"]))
    text = written["fvmgn_accuracy/_test.md"]
    assert f"--target-split fraction:0.25 --out {out} --results fvmgn_accuracy/_test.md`" in text
    assert "for 0 newly trained runs" in text
    assert "Summed wall time of the 12 runs in this file: 0.13 h (5 with a recorded time" in text
    lines = text.splitlines()
    assert (
        "| method | protocol | OA % | AA % | Kappa % | seeds | OA − baseline per seed (paired) | wall per run (s) |"
        in lines
    )
    paired = "+5.00, -2.00, +10.00 (mean +4.33; 2/3 > 0)"
    assert (
        f"| {base} | inductive | 60.00 ± 10.00 | 50.00 ± 10.00 | 40.00 ± 10.00 | 3 | – | 150 (2 of 3 recorded) |"
        in lines
    )
    assert (
        f"| {fv} | **transductive** | 64.33 ± 13.65 | 54.33 ± 13.65 | 44.33 ± 13.65 | 3 | {paired} — baseline runs: "
        "inductive | (not recorded) |" in lines
    )
    assert (
        f"| {fv} | **transductive (inferred)** | 64.33 ± 13.65 | 54.33 ± 13.65 | 44.33 ± 13.65 | 3 | {paired}"
        in text
    )
    assert f"| {base} | inductive | 60.00 ± 10.00 | 50.00 ± 10.00 | 40.00 ± 10.00 | 3 | – | 60 |" in lines
    floor = "Reference: always answering the most frequent target class (trees, 60 of 100 test samples) scores OA 60"
    assert sum(line.startswith(floor) for line in lines) == 2  # one per protocol
    assert "## Summary: FVMGN against the concat CNN" in lines
    assert (
        f"| muufl to trento | **transductive (inferred)** | 60.00 ± 10.00 | 64.33 ± 13.65 | {paired}" in text
    )
    # make_docs reads the main tables back for the README figure: the new columns must not break it
    (tmp_path / "fvmgn_accuracy").mkdir()
    (tmp_path / "fvmgn_accuracy" / "_test.md").write_text(text, encoding="utf-8")
    monkeypatch.setattr(make_docs, "RESULTS", tmp_path)
    parsed = make_docs.mean_std_table("fvmgn_accuracy/_test.md")
    assert parsed["trento to muufl"][base]["oa"] == pytest.approx((0.60, 0.10))
    assert parsed["muufl to trento"][fv]["kappa"] == pytest.approx((0.4433, 0.1365))


def test_a_newly_trained_cell_records_its_wall_time(tmp_path, monkeypatch):
    """The wall file is written beside a run trained now, and read back when the run is reused."""
    import yaml

    import _common
    from _reuse import resolved_config

    def fake_fit(args, label):  # what `rsmg fit` leaves in the run directory the grid names
        value = lambda key: args[args.index(f"--trainer.logger.init_args.{key}") + 1]  # noqa: E731
        run_dir = Path(value("save_dir")) / value("name") / value("version")
        run_dir.mkdir(parents=True)
        (run_dir / "metrics.json").write_text("{}")
        (run_dir / "config.yaml").write_text(
            yaml.safe_dump(resolved_config(args))
        )  # as LightningCLI saves it
        return True

    out = tmp_path / "out"
    monkeypatch.setattr(_common, "rsmg_fit", fake_fit)
    d, wall, fresh = grid.run("trento_to_muufl", "fvmgn", 7, 2, out, "fraction:0.25")
    assert fresh and d == out / "fraction_0_25" / "trento_to_muufl" / "fvmgn" / "seed7"
    assert float((d / _common.WALL_FILE).read_text()) == pytest.approx(wall, abs=0.05)
    assert grid.run("trento_to_muufl", "fvmgn", 7, 2, out, "fraction:0.25") == (
        d,
        pytest.approx(wall, abs=0.05),
        False,
    )
    monkeypatch.setattr(_common, "rsmg_fit", lambda args, label: False)
    failed, wall, fresh = grid.run("trento_to_muufl", "fvmgn", 8, 2, out, "fraction:0.25")
    assert failed is None and wall != wall and fresh  # NaN: no time recorded for a failed run


def test_dtaug_table_has_sample_std_paired_differences_protocol_majority_and_per_class(tmp_path, monkeypatch):
    """Issue 21's statistics in the DTAug file: every row paired against the baseline, the floor, per class."""
    import json

    import dtaug_accuracy as dtaug

    def fake(method: str, seed: int, args, tta, views) -> Path:
        run_dir = tmp_path / grid.slug(method) / f"seed{seed}"
        run_dir.mkdir(parents=True)
        oa = {"baseline": 0.50, "fvmgn": 0.60}[method] + 0.01 * (seed - 42)
        block = lambda acc: {"muufl": {"oa": acc, "aa": acc, "kappa": acc, "per_class": [acc, 1 - acc],  # noqa: E731
                                       "n": 10, "confusion": [[6, 0], [0, 4]]}}  # fmt: skip
        saved = {"classes": ["trees", "road"], "protocol": "inductive",
                 "results": {"test": block(oa), "test with DTAug TTA (4 views)": block(oa + 0.02)}}  # fmt: skip
        (run_dir / "metrics.json").write_text(json.dumps(saved))
        return run_dir

    written = {}
    monkeypatch.setattr(dtaug, "train_prior", lambda out, epochs: tmp_path / "prior.ckpt")
    monkeypatch.setattr(dtaug, "prior_loss", lambda out: "0.05")
    monkeypatch.setattr(dtaug, "run", fake)
    monkeypatch.setattr(dtaug, "write_result", lambda name, text: written.setdefault(name, text))
    argv = [
        "--seeds",
        "42",
        "43",
        "--methods",
        "baseline",
        "fvmgn",
        "--out",
        str(tmp_path / "o"),
        "--name",
        "d/x",
    ]
    dtaug.main(cli(dtaug.Options, argv))
    lines = written["d/x.md"].splitlines()
    assert (
        "| baseline | inductive | 50.50 ± 0.71 | 50.50 ± 0.71 | 50.50 ± 0.71 | 52.50 ± 0.71 |"
        in "\n".join(lines)
    )
    fv = next(line for line in lines if line.startswith("| fvmgn |"))
    assert "+10.00, +10.00 (mean +10.00; 2/2 > 0)" in fv and "+12.00, +12.00 (mean +12.00; 2/2 > 0)" in fv
    assert any(
        line.startswith("Reference: always answering the most frequent target class (trees, 6 of 10")
        for line in lines
    )
    assert "| method | trees | road |" in lines and any(
        line.startswith("| fvmgn + TTA | 62.5") for line in lines
    )
