"""The cross-scene grid never uses the unseen target's labels before its test step (issue 21).

The strongest form of "reads no target labels": fit the grid's Trento → MUUFL settings twice, once with MUUFL's
real label map and once with its labelled pixels' classes shuffled, and require bit-identical checkpoints and
validation logs. Anything that let target labels into training, checkpoint selection or the input statistics
(a target validation loader, target-stratified batches, class weights counted over every domain) would change them.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from _budget import SMOKE_BUDGET
from _cli import call_rsmg
from _experiments import config_args
from _paths import SHARED_DATA, missing_shared_data

TARGET = "muufl"
SETTINGS = {
    "baseline_trento_to_muufl": ["--model.init_args.net.init_args.width", "8"],
    "fvmgn_trento_to_muufl_lidar": [
        "--model.init_args.net.init_args.sfie.width", "8",
        "--model.init_args.net.init_args.text.tower", "clip-bpe",
        "--model.init_args.net.init_args.text.pretrained", "false",
        "--model.init_args.net.init_args.text.tower_kwargs", "{width: 32, layers: 1, heads: 2}",
        "--model.init_args.net.init_args.alignment.embed_dim", "32",
    ],
}  # fmt: skip


def _shuffle_target_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every ``load_scene`` of the target return its labelled pixels' classes permuted (same mask)."""
    import rsmg.data.datamodule as datamodule

    real = datamodule.load_scene

    def load_scene(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        scene = real(name, *args, **kwargs)
        if name == TARGET:
            labels = scene.labels.copy()
            labelled = labels > 0
            labels[labelled] = np.random.default_rng(0).permutation(labels[labelled])
            assert (labels != scene.labels).any()
            scene.labels = labels
        return scene

    monkeypatch.setattr(datamodule, "load_scene", load_scene)


def _fit(setting: str, out: Path) -> tuple[dict[str, torch.Tensor], list[dict[str, str]]]:
    call_rsmg(
        "fit", *config_args(setting), *SETTINGS[setting], *SMOKE_BUDGET,
        "--seed_everything", "3", "--trainer.logger.init_args.save_dir", str(out),
        "--trainer.logger.init_args.version", "v", "--trainer.enable_progress_bar", "false",
        "--test_after_fit", "false", cwd=out.parent,
    )  # fmt: skip
    run = next(out.glob("*/v"))
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)[
        "state_dict"
    ]
    with (run / "metrics.csv").open() as f:
        return state, list(csv.DictReader(f))


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_fit_is_blind_to_the_targets_labels(
    setting: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("trento", TARGET):
        if not (SHARED_DATA / name).is_dir():
            missing_shared_data(SHARED_DATA / name, f"the {name} scene")
    state, log = _fit(setting, tmp_path / "real")
    _shuffle_target_labels(monkeypatch)
    state_shuffled, log_shuffled = _fit(setting, tmp_path / "shuffled")
    assert state.keys() == state_shuffled.keys()
    changed = [k for k in state if not torch.equal(state[k], state_shuffled[k])]
    assert not changed, f"target labels changed the trained weights: {changed[:5]}"
    assert log == log_shuffled  # validation (source pixels) and training logs alike
