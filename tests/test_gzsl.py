"""Calibrated stacking for generalised zero-shot (issue 22): γ from source validation logits only.

Synthetic logits with the failure seen in the trained models: seen-class scores dominate, so raw predictions never
name an unseen class. The rule must give the γ its definition says, must let unseen accuracy rise above 0, and
must not read a label to choose γ — the callback is run on validation batches that carry no label at all, and
twice on test sets whose labels differ.
"""

from __future__ import annotations

import json
import math

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from rsmg.callbacks.gzsl import CalibratedStacking
from rsmg.data.spec import DataSpec
from rsmg.errors import ConfigError
from rsmg.gzsl import calibrated_predictions, calibration_gamma, gzsl_accuracy, stacking_margins
from rsmg.models.base import ModelOutput

SEEN = torch.tensor([True, True, True, False, False])  # classes 0-2 seen, 3-4 held out


def synthetic(n: int, labels: torch.Tensor, seed: int) -> torch.Tensor:
    """Logits where every seen class outscores every unseen one by about 4, and the true class leads its group."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g) * 0.5
    x[:, SEEN] += 4.0
    x[torch.arange(n), labels] += 2.0
    return x


def test_gamma_is_the_rate_quantile_of_the_validation_margins():
    margins = torch.arange(1.0, 101.0)  # seen best − unseen best = 1 … 100
    val = torch.zeros(100, 5)
    val[:, 0] = margins
    assert torch.equal(stacking_margins(val, SEEN), margins)
    assert calibration_gamma(val, SEEN, 0.05) == 6.0  # margins 1-5 (5 %) fall below it
    assert calibration_gamma(val, SEEN, 0.0) == 1.0  # no validation image switches
    for rate in (0.0, 0.05, 0.1, 0.37):
        gamma = calibration_gamma(val, SEEN, rate)
        switched = ~SEEN[calibrated_predictions(val, SEEN, gamma)]
        assert switched.sum() == math.floor(rate * 100)


def test_calibration_moves_unseen_accuracy_above_zero():
    val_labels = torch.arange(300) % 3
    val = synthetic(300, val_labels, seed=0)
    test_labels = torch.arange(500) % 5
    test = synthetic(500, test_labels, seed=1)
    raw = gzsl_accuracy(test.argmax(1), test_labels, SEEN)
    assert raw["unseen"] == 0.0 and raw["seen"] > 95.0 and raw["H"] == 0.0
    assert torch.equal(calibrated_predictions(test, SEEN, 0.0), test.argmax(1))  # γ = 0 is the raw argmax
    gamma = calibration_gamma(val, SEEN, 0.05)
    cal = gzsl_accuracy(calibrated_predictions(test, SEEN, gamma), test_labels, SEEN)
    assert 3.0 < gamma < 6.0  # validation margins are about 6 (4 + the true class lead), unseen ones about 2
    assert cal["unseen"] > 90.0 and cal["seen"] >= 90.0 and cal["H"] > 90.0
    assert (cal["n_seen"], cal["n_unseen"]) == (300, 200)


def test_rule_errors_name_the_field_and_fix():
    val = torch.zeros(4, 5)
    with pytest.raises(ConfigError, match="unseen rate") as e:
        calibration_gamma(val, SEEN, 1.0)
    assert "fix:" in str(e.value)
    with pytest.raises(ConfigError, match="held_out_classes"):
        calibration_gamma(val, torch.ones(5, dtype=torch.bool), 0.05)
    with pytest.raises(ConfigError, match="no validation image"):
        calibration_gamma(torch.zeros(0, 5), SEEN, 0.05)


class _Samples(Dataset):
    def __init__(self, logits: torch.Tensor, labels: torch.Tensor | None) -> None:
        self.logits, self.labels = logits, labels

    def __len__(self) -> int:
        return len(self.logits)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        out = {"logits": self.logits[i], "domain": torch.tensor(0)}
        if self.labels is not None:
            out["label"] = self.labels[i]
        return out


class _Data(pl.LightningDataModule):
    """Validation batches without labels (seen classes only), test batches with them."""

    seen_classes = ("a", "b", "c")

    def __init__(self, val: torch.Tensor, test: torch.Tensor, test_labels: torch.Tensor) -> None:
        super().__init__()
        self.val, self.test, self.test_labels = val, test, test_labels

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_Samples(self.val, None), batch_size=64)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(_Samples(self.test, self.test_labels), batch_size=64)


class _Model(pl.LightningModule):
    """Returns the logits the batch carries."""

    def __init__(self) -> None:
        super().__init__()
        self.spec = DataSpec(classes=("a", "b", "c", "d", "e"), modalities={"rgb": 3}, domains=("ucm",))
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, batch: dict) -> ModelOutput:
        return ModelOutput(logits=batch["logits"] + 0 * self.dummy)

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        return {"logits": self(batch).logits}


def run_callback(tmp_path, test_labels: torch.Tensor) -> dict:
    val = synthetic(300, torch.arange(300) % 3, seed=0)
    test = synthetic(500, torch.arange(500) % 5, seed=1)  # logits fixed: only the labels below vary
    cb = CalibratedStacking(unseen_rate=0.05)
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, callbacks=[cb], default_root_dir=tmp_path,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
    )  # fmt: skip
    trainer.test(_Model(), datamodule=_Data(val, test, test_labels), verbose=False)
    saved = json.loads((tmp_path / "gzsl.json").read_text())
    assert saved == json.loads(json.dumps(cb.results))
    assert saved["gamma"] == calibration_gamma(val, SEEN, 0.05)
    return saved


def test_callback_chooses_gamma_without_any_label_and_writes_raw_and_calibrated(tmp_path):
    labels = torch.arange(500) % 5
    saved = run_callback(tmp_path / "a", labels)
    assert saved["validation"] == {"n": 300, "sent_to_unseen": pytest.approx(0.05, abs=1 / 300)}
    raw, cal = saved["test"]["ucm"]["raw"], saved["test"]["ucm"]["calibrated"]
    assert raw["unseen"] == 0.0 and cal["unseen"] > 50.0
    assert sum(map(sum, cal["confusion"])) == 500 and saved["seen_classes"] == ["a", "b", "c"]
    # other test labels: other scores, the same γ
    other = run_callback(tmp_path / "b", labels.roll(1))
    assert other["gamma"] == saved["gamma"] and other["test"] != saved["test"]
